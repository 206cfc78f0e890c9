"""Every bad input through the command line, in process: exit status 2, one line on stderr
starting with ``error:``, no traceback, and nothing in the workspace (store, figures)
changed. Also Ctrl-C (one line, exit 130) and the lazy imports behind a fast ``--help``."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from initlab.cli import paths as cli_paths
from initlab.cli.main import app

runner = CliRunner()

USER_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def raises():
        raise ValueError("boom in my factory")

    def wrong_shape():
        return nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 3)), torch.randn(8, 7)

    def int_inputs():
        return nn.Sequential(nn.Linear(10, 3)), torch.ones(8, 10, dtype=torch.long)

    def short_targets():
        return nn.Sequential(nn.Linear(10, 3)), torch.randn(8, 10), torch.zeros(5).long()

    def big_labels():
        return nn.Sequential(nn.Linear(10, 3)), torch.randn(8, 10), torch.full((8,), 7)

    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(10, 3)

        def forward(self, x):
            return self.layer(x)[self.missing]

    def bad_forward():
        return Bad(), torch.randn(8, 10)
    """
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with one small stored experiment, a file, user modules."""
    from initlab.experiments import run_experiment

    root = tmp_path_factory.mktemp("cli-errors")
    ws = root / "ws"
    run_experiment(
        "exploding-product", ["seeds=1", "multiplications=5", "points=11"], out_dir=ws,
        progress=False,
    )  # fmt: skip
    (root / "afile").write_text("not a folder")
    (root / "adir").mkdir()
    (root / "cli_err_user.py").write_text(USER_MODULE)
    (root / "cli_err_syntax.py").write_text("def build(:\n    pass\n")
    return root


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(("-shm", "-wal"))
    }


# (arguments with {root} for the fixture folder, a piece of the expected line)
CASES = [
    # Typer's usage errors: one line instead of a 5-line box
    (["diagnose", "--depth", "abc"], "Invalid value for '--depth'"),
    (["run"], "Missing argument 'name'"),
    (["no-such-command"], "No such command"),
    (["run", "exploding-product", "--sett", "x=1"], "No such option"),
    (["search", "random-search", "--threads", "-1"], "threads must be >= 0"),
    (["search", "random-search", "--workers", "0"], "workers must be positive"),
    # diagnose: sizes, memory estimate before allocation, schemes
    (["diagnose", "--depth", "0"], "--depth must be at least 1"),
    (["diagnose", "--batch", "1"], "--batch must be at least 2"),
    (["diagnose", "--width", "100000000"], "needs about"),
    (["diagnose", "--depth", "2", "--init", "he_normall"], "unknown init scheme"),
    # --model: the user's code, named by its file and line
    (["diagnose", "--model", "cli_err_user:raises"], "cli_err_user.py, line 6, in raises"),
    (["diagnose", "--model", "cli_err_user:wrong_shape"], "do not fit the model's first layer"),
    (["diagnose", "--model", "cli_err_user:int_inputs"], "inputs must be floating point"),
    (["diagnose", "--model", "cli_err_user:short_targets"], "of shape [8] (one per sample)"),
    (["diagnose", "--model", "cli_err_user:big_labels"], "must lie in 0..2"),
    (["diagnose", "--model", "cli_err_user:bad_forward"], "cli_err_user.py, line 26, in forward"),
    (["diagnose", "--model", "cli_err_syntax:build"], "SyntaxError: invalid syntax"),
    (["diagnose", "--model", "cli_err_none:build"], "cannot import 'cli_err_none'"),
    # paths
    (["run", "exploding-product", "--out", "{root}/afile"], "is a file, not a folder"),
    (["run", "exploding-product", "--out", "{root}/afile/sub"], "is a file, not a folder"),
    (["demo", "--out", "{root}/afile"], "is a file, not a folder"),
    (["report", "--out", "{root}/ws/runs.db"], "no experiment results"),
    (["data", "preview", "shapeset", "-o", "{root}/adir"], "is a folder, not a file"),
    (["data", "preview", "shapeset", "-o", "{root}/afile/x.png"], "is a file, not a folder"),
    (["data", "preview", "shapeset", "-o", "{root}/x.txt"], "must end in .png"),
    (["data", "preview", "shapeset", "-o", "{root}/x.png", "--ncols", "0"], "--ncols must be"),
    (["data", "preview", "shapeset", "-o", "{root}/x.png", "--n", "0"], "--n must be"),
    (
        ["store", "export-tb", "1", "--logdir", "{root}/afile", "--store", "{root}/ws/runs.db"],
        "is a file, not a folder",
    ),
    # advice that points to what exists
    (["store", "runs", "--store", "foo://x"], "unknown database URL scheme 'foo'"),
    (["report", "nope", "--out", "{root}/ws"], "unknown experiment 'nope'; valid: "),
    (["run", "nope"], "unknown experiment 'nope'; valid: "),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_error_line_exit_2_and_changes_nothing(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("INITLAB_DATA", str(workspace / "cache"))
    before = _snapshot(workspace)
    argv = [a.replace("{root}", str(workspace)) for a in args]
    result = runner.invoke(app, argv)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert _snapshot(workspace) == before


@pytest.mark.parametrize(
    "args",
    [
        ["run", "exploding-product", "--out", "{ro}/ws"],
        ["report", "--out", "{ro}"],
        ["store", "export-tb", "1", "--logdir", "{ro}/tb", "--store", "{root}/ws/runs.db"],
    ],
)
def test_read_only_folders_are_refused_up_front(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    read_only = workspace / "ro"
    (read_only / "exploding-product").mkdir(parents=True, exist_ok=True)
    (read_only / "exploding-product" / "summary.json").write_text("{}")
    real_access = os.access

    def access(path: object, mode: int, **kwargs: object) -> bool:  # root ignores chmod
        inside = Path(str(path)).absolute().is_relative_to(read_only)
        return False if inside and mode & os.W_OK else real_access(path, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(cli_paths.os, "access", access)
    before = _snapshot(workspace)
    argv = [a.replace("{ro}", str(read_only)).replace("{root}", str(workspace)) for a in args]
    result = runner.invoke(app, argv)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "read-only" in lines[0] and lines[0].startswith("error: ")
    assert _snapshot(workspace) == before


def test_ctrl_c_says_how_many_runs_are_stored_exit_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from initlab.experiments.signal.exploding_product import ExplodingProduct

    original = ExplodingProduct.execute
    calls: list[str] = []

    def execute(self, run, config, recorder, progress):  # type: ignore[no-untyped-def]
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(run.key)
        return original(self, run, config, recorder, progress)

    monkeypatch.setattr(ExplodingProduct, "execute", execute)
    args = ["run", "exploding-product", "--out", str(tmp_path), "--set", "seeds=3"]
    result = runner.invoke(app, [*args, "--set", "multiplications=5", "--set", "points=11"])
    assert result.exit_code == 130, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1] == "interrupted; 2 runs stored, rerun the same command to resume"


def test_cli_main_imports_neither_torch_nor_matplotlib() -> None:
    code = textwrap.dedent(
        """
        import sys
        import initlab.cli.main
        from typer.testing import CliRunner
        runner = CliRunner()
        codes = [runner.invoke(initlab.cli.main.app, args).exit_code
                 for args in (["--help"], ["list"], ["init", "list"],
                              ["diagnose", "--depth", "x"], ["run"])]
        heavy = [m for m in ("torch", "matplotlib", "sqlalchemy") if m in sys.modules]
        print(codes, heavy)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.stdout.strip() == "[0, 0, 0, 2, 2] []", done.stdout + done.stderr


def test_list_reads_the_same_experiments_as_the_registry() -> None:
    from initlab.experiments import list_experiments
    from initlab.experiments.listing import builtin_listing

    listed = builtin_listing()
    assert listed is not None
    expected = [(e.name, e.description, e.cost, e.quick_cost) for e in list_experiments()]
    assert [(x.name, x.description, x.cost, x.quick_cost) for x in listed] == expected


def test_init_list_rows_are_the_registry_s() -> None:
    from initlab.cli.scheme_listing import SCHEME_ROWS, live_rows

    # a built-in scheme was added or changed: python -m initlab.cli.scheme_listing
    assert live_rows() == SCHEME_ROWS


def test_diagnose_help_names_every_activation() -> None:
    from initlab.activations import ACTIVATION_NAMES
    from initlab.cli.diagnose_cmd import ACTIVATIONS_HELP

    assert ACTIVATIONS_HELP.split(", ") == list(ACTIVATION_NAMES)
