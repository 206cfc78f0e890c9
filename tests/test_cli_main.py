"""The ``initlab`` front door: every command is reachable from ``--help``, and user mistakes
end as one line on stderr with exit status 2 (run as a real subprocess, as a user would)."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from initlab import __version__
from initlab.cli.main import app

runner = CliRunner()


def _initlab(*args: str) -> subprocess.CompletedProcess[str]:
    code = "from initlab.cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"], terminal_width=120)
    assert result.exit_code == 0
    for command in ("init", "diagnose", "data", "store"):
        assert command in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"initlab {__version__}"


def test_init_list_shows_every_registered_scheme() -> None:
    from initlab.init import list_schemes

    result = runner.invoke(app, ["init", "list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for scheme in list_schemes():
        assert scheme.name in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["init", "show", "kaiming_gaussian"], "unknown init scheme 'kaiming_gaussian'; valid: "),
        (["diagnose", "--activation", "swish", "--depth", "2"], "unknown activation 'swish'"),
        (["diagnose", "--init", "normal:sd=1", "--depth", "2"], "normal"),
    ],
)
def test_user_mistakes_are_one_line_with_exit_2(args: list[str], message: str) -> None:
    result = _initlab(*args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_run_freezes_the_imports_in_its_own_process_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import gc

    from initlab.cli import run_cmd

    before = gc.get_freeze_count()
    run_cmd.settle_imports()  # a caller's process (this one): nothing frozen
    assert gc.get_freeze_count() == before and not run_cmd.OWN_PROCESS
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count(), file=sys.stderr))\n"
        "from initlab.cli.main import main; main()"
    )
    args = ["run", "exploding-product", "--quick", "--out", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    frozen = int(done.stderr.split("frozen ")[1].split()[0])
    assert frozen > 50_000  # torch's objects and the rest of the imports
    assert (tmp_path / "exploding-product" / "summary.json").exists()
