"""The run / list / demo / report commands, driven in-process through a tiny Typer app."""

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from initlab.cli.report_cmd import report_command
from initlab.cli.run_cmd import list_command, run_command, suite_command
from initlab.errors import InitlabError
from initlab.experiments import suite as suite_module

app = typer.Typer()
app.command("experiments")(list_command)
app.command("run")(run_command)
app.command("demo")(suite_command)
app.command("report")(report_command)
runner = CliRunner()


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def test_list_shows_every_experiment_with_its_cost() -> None:
    result = runner.invoke(app, ["experiments"])
    assert result.exit_code == 0, result.output
    for name in ("activation-histograms", "symmetry", "exploding-product", "depth-scan"):
        assert name in result.output
    assert "~25 s" in result.output  # depth-scan's cost


def test_run_with_set_then_report(tmp_path: Path) -> None:
    args = ["run", "exploding-product", "--out", str(tmp_path), "--quick"]
    result = runner.invoke(app, [*args, "--set", "multiplications=30", "--set", "points=11"])
    assert result.exit_code == 0, result.output
    assert "4 run(s) computed, 0 found in the store" in result.output
    assert "decades per multiplication" in result.output
    again = runner.invoke(app, [*args, "--set", "multiplications=30", "--set", "points=11"])
    assert "0 run(s) computed, 4 found in the store" in again.output
    report = runner.invoke(app, ["report", "exploding-product", "--out", str(tmp_path)])
    assert report.exit_code == 0, report.output
    path = Path(report.output.strip())
    assert path == tmp_path / "exploding-product" / "report.html" and path.exists()


def test_run_errors_are_one_line_initlab_errors(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["run", "exploding-product", "--out", str(tmp_path), "--set", "sizee=3"]
    )
    assert isinstance(result.exception, InitlabError)
    message = str(result.exception)
    assert message.startswith("unknown key 'sizee' for experiment 'exploding-product'; valid")
    assert "\n" not in message
    config = tmp_path / "bad.toml"
    config.write_text("[exploding-product]\nsize = 'four'\n")
    result = runner.invoke(app, ["run", "exploding-product", "--config", str(config)])
    assert str(result.exception) == "bad value for 'size': expected an integer, got 'four'"
    result = runner.invoke(app, ["report", "--out", str(tmp_path / "empty")])
    assert isinstance(result.exception, InitlabError)


def test_show_lists_settings_with_help() -> None:
    result = runner.invoke(app, ["run", "optimizer-paths", "--show"])
    assert result.exit_code == 0, result.output
    assert "momentum" in result.output and "momentum of Momentum and Nesterov" in result.output


def test_demo_runs_the_suite_and_prints_the_report_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the real suite takes a minute; here two of its fast members stand in for it
    monkeypatch.setattr(suite_module, "SUITE", ("exploding-product", "optimizer-paths"))
    result = runner.invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == f"report: {tmp_path / 'report.html'}"
    html = (tmp_path / "report.html").read_text()
    assert 'id="exploding-product"' in html and 'id="optimizer-paths"' in html
