"""Figure infos are drawn to PNG and SVG; malformed infos are one-line errors."""

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from initlab.errors import InitlabError
from initlab.report import (
    ContourPanel,
    FigureInfo,
    HeatmapPanel,
    HistogramPanel,
    LinePanel,
    Path2D,
    Series,
    draw_figure,
    render_figure,
    render_figures,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _every_panel_kind() -> FigureInfo:
    xs = [float(i) for i in range(1, 11)]
    line = LinePanel(
        [
            Series(xs, [10.0**-i for i in range(10)], "vanishing", "tab:blue"),
            Series(xs, [0.0, math.nan, *[1.0] * 8], "with gaps", linestyle="--"),
        ],
        title="log axis",
        xlabel="layer",
        ylabel="std",
        yscale="log",
        hlines=[(1.0, "reference")],
    )
    hist = HistogramPanel([0.0, 0.5, 1.0], [3, 5], title="histogram", note="std 0.3")
    heat = HeatmapPanel([[0.0, 1.0], [1.0, 0.0]], title="distances", colorbar_label="d")
    grid = [-1.0, 0.0, 1.0]
    contour = ContourPanel(
        grid,
        grid,
        [[x * x + y * y for x in grid] for y in grid],
        levels=[0.5, 1.0],
        paths=[Path2D([-1.0, 0.0], [1.0, 0.0], "path")],
        points=[(0.0, 0.0, "minimum")],
    )
    return FigureInfo("all-kinds", "Every panel kind", [[line, hist], [heat, contour]])


def test_every_panel_kind_renders_to_png_and_svg(tmp_path: Path) -> None:
    paths = render_figure(_every_panel_kind(), tmp_path)
    assert set(paths) == {"png", "svg"}
    assert paths["png"].read_bytes()[:8] == PNG_MAGIC
    svg = paths["svg"].read_text()
    assert "<svg" in svg and "<!-- Every panel kind -->" in svg
    assert paths["png"].stat().st_size > 10_000
    again = render_figure(_every_panel_kind(), tmp_path / "again")
    assert again["svg"].read_text() == svg  # no dates, fixed ids: the same figure, the same file


def test_layout_empty_cells_and_shared_axes() -> None:
    line = LinePanel([Series([1.0, 2.0], [1.0, 2.0])], xlabel="x", ylabel="y")
    info = FigureInfo(
        "grid",
        "Grid",
        [[line, None], [line, line]],
        sharex=True,
        sharey=True,
        row_labels=["first", "second"],
        col_labels=["a", "b"],
    )
    fig = draw_figure(info)
    axes = fig.axes
    assert len(axes) == 4 and not axes[1].get_visible()  # the None cell is hidden
    assert axes[0].get_xlabel() == ""  # shared x: only the bottom row keeps its label
    assert axes[2].get_ylabel() == "second\ny" and axes[3].get_ylabel() == ""


def test_bad_infos_are_one_line_errors(tmp_path: Path) -> None:
    bad_hist = FigureInfo("h", "H", [[HistogramPanel([0.0, 1.0], [1, 2])]])
    with pytest.raises(InitlabError, match="len\\(edges\\) == len\\(counts\\) \\+ 1"):
        render_figure(bad_hist, tmp_path)
    with pytest.raises(InitlabError, match="not a valid file stem"):
        render_figure(FigureInfo("a/b", "T", [[LinePanel([])]]), tmp_path)
    with pytest.raises(InitlabError, match="has no panels"):
        render_figure(FigureInfo("empty", "T", []), tmp_path)
    same = FigureInfo("same", "T", [[LinePanel([])]])
    with pytest.raises(InitlabError, match="repeated: same"):
        render_figures([same, same], tmp_path)


def test_heatmap_on_coordinates_with_curves_and_marks() -> None:
    heat = HeatmapPanel(
        [[0.1, 0.9, 0.2], [0.0, 0.6, 0.0]],
        x=[1.0, 2.0, 4.0],  # uneven columns: cells reach half-way to their neighbours
        y=[10.0, 50.0],
        curves=[Series([1.0, 2.0, 4.0], [20.0, 60.0, 30.0], "6 xi", "white")],
        vlines=[(1.76, "critical")],
    )
    ax = draw_figure(FigureInfo("phase", "Phase", [[heat]])).axes[0]
    assert ax.get_xlim() == (0.5, 5.0) and ax.get_ylim() == (-10.0, 70.0)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["6 xi", "critical"]


def test_one_layout_for_both_files_gives_the_png_of_a_layout_per_file(tmp_path: Path) -> None:
    # render_figure lays the figure out once (fix_layout) and draws each format once; the
    # PNG must be the one savefig makes with the constrained layout engine left on
    import matplotlib
    import numpy as np
    from PIL import Image

    from initlab.report.render import _RC, PNG_DPI

    paths = render_figure(_every_panel_kind(), tmp_path)
    with matplotlib.rc_context(_RC):
        fig = draw_figure(_every_panel_kind())
        assert fig.get_layout_engine() is not None
        fig.savefig(tmp_path / "reference.png", dpi=PNG_DPI, metadata={"Software": None})
    ours = np.asarray(Image.open(paths["png"]).convert("RGB"))
    reference = np.asarray(Image.open(tmp_path / "reference.png").convert("RGB"))
    assert ours.shape == reference.shape and np.array_equal(ours, reference)


def test_linear_tick_labels_are_plain_text_and_offsets_powers_of_ten() -> None:
    from initlab.report.render import _plain_tick_label

    assert _plain_tick_label("$\\mathdefault{0.25}$") == "0.25"
    assert _plain_tick_label("$\\mathdefault{\N{MINUS SIGN}2}$") == "\N{MINUS SIGN}2"
    assert _plain_tick_label("$\\mathdefault{10^{-3}}$") == "$\\mathdefault{10^{-3}}$"
    line = LinePanel([Series([0.0, 1.0, 2.0], [0.0, 3e-6, 6e-6])])
    fig = draw_figure(FigureInfo("small", "Small", [[line]]))
    fig.draw_without_rendering()  # ticks and their labels are made at draw time
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and not any("$" in text for text in labels)  # no mathtext per label
    assert "10^{" in ax.yaxis.get_offset_text().get_text()  # the shared x10^-6 stays math


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked drawing is Linux-only")
def test_figures_drawn_in_forked_processes_are_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``workers=2`` draws the figures in this process and one forked child: the same bytes
    as drawn one after the other, returned in the given order; a bad info drawn by the
    child is still the one-line error, raised here."""
    import initlab.report.render as render

    forks: list[int] = []
    real_fork = os.fork

    def counted_fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(render.os, "fork", counted_fork)
    infos = [_every_panel_kind()]
    infos.append(FigureInfo("second", "Second", [[LinePanel([Series([1.0, 2.0], [3.0, 1.0])])]]))
    serial = render_figures(infos, tmp_path / "serial")
    assert forks == []
    forked = render_figures(infos, tmp_path / "forked", workers=2)
    assert len(forks) == 2  # the small figure went to a child, the large one's SVG to another
    assert [sorted(p) for p in forked] == [["png", "svg"]] * 2
    for one, other in zip(serial, forked, strict=True):
        assert other["png"].parent == tmp_path / "forked"
        for fmt in ("png", "svg"):
            assert one[fmt].name == other[fmt].name
            assert one[fmt].read_bytes() == other[fmt].read_bytes()
    bad = FigureInfo("h", "H", [[HistogramPanel([0.0, 1.0], [1, 2])]])
    with pytest.raises(InitlabError, match="len\\(edges\\) == len\\(counts\\) \\+ 1"):
        render_figures([infos[1], bad], tmp_path / "bad", workers=2)  # bad: the child's
    assert len(forks) == 4 and (tmp_path / "bad" / "second.png").exists()


def test_format_child_saves_the_svg_and_a_failing_one_is_saved_again_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import initlab.report.render as render

    info = FigureInfo("one", "One", [[LinePanel([Series([1.0, 2.0], [3.0, 1.0])])]])
    serial = render.render_figure(info, tmp_path / "serial")
    forks: list[int] = []
    real_fork, real_save, parent = os.fork, render._save, os.getpid()

    def counted_fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    def child_breaks(fig: object, formats: list) -> None:
        if os.getpid() != parent:
            raise InitlabError("svg broke in the child")
        real_save(fig, formats)

    monkeypatch.setattr(render.os, "fork", counted_fork)
    split = render.render_figure(info, tmp_path / "split", fork_formats=True)
    assert len(forks) == 1  # the SVG was saved by a child, the same bytes
    for fmt in ("png", "svg"):
        assert split[fmt].read_bytes() == serial[fmt].read_bytes()
    monkeypatch.setattr(render, "_save", child_breaks)
    again = render.render_figure(info, tmp_path / "again", fork_formats=True)
    assert len(forks) == 2 and again["svg"].read_bytes() == serial["svg"].read_bytes()

    def always_breaks(fig: object, formats: list) -> None:
        if any(fmt == "svg" for fmt, _ in formats):
            raise InitlabError("svg broke")
        real_save(fig, formats)

    monkeypatch.setattr(render, "_save", always_breaks)
    with pytest.raises(InitlabError, match="svg broke"):  # saved again here: raised here
        render.render_figure(info, tmp_path / "broken", fork_formats=True)
    assert (tmp_path / "broken" / "one.png").exists()
    assert not (tmp_path / "broken" / "one.svg").exists()


def test_drawing_process_draws_the_same_files_and_this_process_imports_no_matplotlib(
    tmp_path: Path,
) -> None:
    # in a fresh process (this one has matplotlib already): the forked process imports and
    # warms up matplotlib, draws what it is sent (the same bytes as a serial drawing here),
    # and the parent never imports it; closing it leaves no child behind
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from initlab.report.figures import FigureInfo, LinePanel, Series\n"
        "from initlab.report.render import DrawingProcess\n"
        "infos = [FigureInfo(f'f{i}', 'F', [[LinePanel([Series([1.0, 2.0], [3.0, i])])]])\n"
        "         for i in range(3)]\n"
        "with DrawingProcess(workers=2) as drawing:\n"
        "    pid = drawing.pid\n"
        "    paths = drawing.render(infos, sys.argv[1])\n"
        "    again = drawing.render(infos[:1], sys.argv[1] + '-again')\n"
        "print(sorted(p.name for p in Path(sys.argv[1]).iterdir()), again[0]['png'].exists())\n"
        "print('matplotlib' in sys.modules)\n"
        "try:\n"
        "    os.kill(pid, 0)\n"
        "    print('alive')\n"
        "except ProcessLookupError:\n"
        "    print('gone')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "forked")],
        capture_output=True,
        text=True,
        check=True,
    )
    files, imported, alive = out.stdout.splitlines()
    names = [f"f{i}.{fmt}" for i in range(3) for fmt in ("png", "svg")]
    assert files == f"{sorted(names)} True" and imported == "False" and alive == "gone"
    infos = [
        FigureInfo(f"f{i}", "F", [[LinePanel([Series([1.0, 2.0], [3.0, float(i)])])]])
        for i in range(3)
    ]
    serial = render_figures(infos, tmp_path / "serial")
    for paths in serial:
        for fmt, path in paths.items():
            assert path.read_bytes() == (tmp_path / "forked" / path.name).read_bytes(), fmt


def test_drawing_process_failures_are_raised_here(tmp_path: Path) -> None:
    import initlab.report.render as render

    bad = FigureInfo("h", "H", [[HistogramPanel([0.0, 1.0], [1, 2])]])
    good = FigureInfo("g", "G", [[LinePanel([Series([1.0, 2.0], [3.0, 1.0])])]])
    with render.DrawingProcess(workers=1) as drawing:
        with pytest.raises(InitlabError, match="len\\(edges\\) == len\\(counts\\) \\+ 1"):
            drawing.render([bad], tmp_path)  # the process failed: drawn here, raised here
        assert drawing.render([good], tmp_path)[0]["svg"].exists()  # it goes on serving
        os.kill(drawing.pid, signal.SIGKILL)
        os.waitpid(drawing.pid, 0)
        good.name = "after-death"
        assert drawing.render([good], tmp_path)[0]["png"].exists()  # drawn here instead
    pid = None
    with pytest.raises(KeyboardInterrupt), render.DrawingProcess(workers=1) as drawing:
        pid = drawing.pid  # an interrupt kills the process at once
        raise KeyboardInterrupt
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)  # already reaped
