"""What the commands print, read as text: no raw reST, no lines broken mid-phrase when the
output is a file or a pipe."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from initlab.cli.main import app
from initlab.cli.run_cmd import print_result
from initlab.experiments.runner import ExperimentResult

runner = CliRunner()


def test_init_show_prints_plain_text_without_rest_markup() -> None:
    for name in ("he_normal", "critical", "orthogonal", "lecun_uniform"):
        result = runner.invoke(app, ["init", "show", name])
        assert result.exit_code == 0, result.output
        assert "``" not in result.output and ":func:" not in result.output, result.output
        assert ":mod:" not in result.output and ":math:" not in result.output
    text = runner.invoke(app, ["init", "show", "he_normal"]).output
    assert "torch.nn.init.kaiming_normal_" in text  # the literal kept, its quotes gone


def test_verdicts_are_whole_lines_when_not_a_terminal(capsys) -> None:  # type: ignore[no-untyped-def]
    verdict = (
        "he_normal learns fastest with relu: smoothed loss below 1 after 168 iterations "
        "(lecun_normal: 491, normal:std=0.01: never), which is the point of the lesson [x]"
    )
    result = ExperimentResult(
        name="init-compare",
        out_dir=Path("out/init-compare"),
        summary_path=Path("out/init-compare/summary.json"),
        summary={},
        verdicts=[verdict],
        figures=[],
        executed=["a"],
        statuses={"a": "done"},
    )
    print_result(result)
    lines = capsys.readouterr().out.splitlines()
    assert f"  • {verdict}" in lines  # one line, markup-like brackets kept


def test_preview_into_a_missing_folder_creates_it(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "shapes.png"
    result = runner.invoke(app, ["data", "preview", "shapeset", "-o", str(target), "--n", "4"])
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not target.with_suffix(".png.png").exists()
