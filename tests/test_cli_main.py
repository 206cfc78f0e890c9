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
