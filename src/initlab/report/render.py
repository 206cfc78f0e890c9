"""Draw :class:`~initlab.report.figures.FigureInfo` objects with matplotlib, to PNG and SVG.

The second half of "compute the info, then draw it": every panel kind of
:mod:`initlab.report.figures` has one small drawing function here. Figures are built on
``matplotlib.figure.Figure`` directly (no pyplot, no global state, no display needed), with
a constrained layout, a bold suptitle, per-row and per-column labels and a legend wherever a
curve has a label. On log axes, values that are not positive and finite are left out (a gap
in the curve) instead of being clipped to the axis, so vanishing signals read correctly.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import math
import os
import pickle
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initlab.errors import InitlabError
from initlab.report.figures import (
    BarPanel,
    ContourPanel,
    FigureInfo,
    HeatmapPanel,
    HistogramPanel,
    LinePanel,
    Panel,
    ScatterPanel,
    Series,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FORMATS: tuple[str, ...] = ("png", "svg")
CAN_FORK = sys.platform.startswith("linux")  # figures drawn in forked processes (Linux only)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PNG_DPI = 110
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_RC = {
    "svg.hashsalt": "initlab",  # stable element ids: the same figure gives the same SVG
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    # a figure whose layout is fixed (see render_figure) gets no layout engine again
    "figure.autolayout": False,
    "figure.constrained_layout.use": False,
}


def _clean(values: list[float], log: bool) -> list[float]:
    """Non-finite values (and non-positive ones on a log axis) become NaN: a gap."""
    out = []
    for v in values:
        ok = v is not None and math.isfinite(v) and (v > 0 or not log)
        out.append(float(v) if ok else math.nan)
    return out


def _note(ax: Axes, note: str | None) -> None:
    if note:
        ax.text(
            0.97,
            0.95,
            note,
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7.5,
            bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "0.8", "alpha": 0.85},
        )


_MATH_DEFAULT = ("$\\mathdefault{", "}$")


def _plain_tick_label(label: str) -> str:
    """``$\\mathdefault{0.5}$`` -> ``0.5``: the same characters in the same (default) font,
    as plain text; any other label unchanged."""
    start, end = _MATH_DEFAULT
    inner = label[len(start) : -len(end)]
    plain = label.startswith(start) and label.endswith(end) and "$" not in inner
    return inner if plain and "\\" not in inner and "{" not in inner else label


def _compact_ticks(ax: Axes, *, x: bool, y: bool) -> None:
    """At most 5 ticks per linear axis, very small or large numbers as powers of ten.

    The "x10^k" offset is mathtext; the tick labels themselves are plain text (with
    ``useMathText`` matplotlib wraps each in ``$\\mathdefault{...}$``, which looks the same
    but costs a mathtext parse per label and dpi: a sixth of a figure's drawing time).
    """
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    class PlainTickFormatter(ScalarFormatter):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return _plain_tick_label(super().__call__(x, pos))

    for axis, linear in ((ax.xaxis, x), (ax.yaxis, y)):
        if linear:
            axis.set_major_locator(MaxNLocator(5))
            formatter = PlainTickFormatter(useMathText=True)
            formatter.set_powerlimits((-3, 4))
            axis.set_major_formatter(formatter)


DIVERGED = "diverged"
"""Appended to the legend entry of a curve or path that diverged (reached NaN/Inf)."""


def divergence(x: list[float], y: list[float]) -> tuple[float, float | None] | None:
    """Where a curve diverged: (x of its first non-finite y, the last finite y before it,
    None when there is none), or None when every y is finite."""
    for i, v in enumerate(y):
        if v is None or not math.isfinite(v):
            before = [w for w in y[:i] if w is not None and math.isfinite(w)]
            return (x[i] if i < len(x) else math.nan), (before[-1] if before else None)
    return None


def _diverged_label(label: str | None) -> str | None:
    return None if label is None else f"{label} ({DIVERGED})"


def _mark_divergence(ax: Axes, x: float, y: float | None, color: Any) -> None:
    """An x at (x, y); with no finite y, at the top of the panel."""
    from matplotlib.transforms import blended_transform_factory

    style = {"marker": "x", "markersize": 9, "markeredgewidth": 2.2, "color": color, "zorder": 5}
    if y is None:
        ax.plot(
            [x], [0.92], transform=blended_transform_factory(ax.transData, ax.transAxes), **style
        )
    else:
        ax.plot([x], [y], **style)


def _self_contained_ticks(axis: Any, count: int, prune: str | None = None) -> None:
    """At most ``count`` ticks, each label a whole number (``1.4e+05``, ``0.002``): no
    shared "x10^5" multiplier that would land on the neighbouring panel."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis.set_major_locator(MaxNLocator(count, prune=prune))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))


def _draw_line(ax: Axes, panel: LinePanel) -> None:
    logx, logy = panel.xscale == "log", panel.yscale == "log"
    marks: list[tuple[float, float | None, Any]] = []  # (x, y, colour) of diverged curves
    for s in panel.series:
        gone = divergence(s.x, s.y)
        if s.diverged_at is not None:
            finite = [v for xv, v in zip(s.x, s.y, strict=False) if xv <= s.diverged_at]
            finite = [v for v in finite if v is not None and math.isfinite(v)]
            gone = (s.diverged_at, finite[-1] if finite else None)
        (line,) = ax.plot(
            _clean(s.x, logx),
            _clean(s.y, logy),
            label=s.label if gone is None else _diverged_label(s.label),
            color=s.color,
            linestyle=s.linestyle or "none",
            marker=s.marker,
            markersize=3.5,
            linewidth=s.linewidth,
            alpha=s.alpha,
        )
        if gone is not None and math.isfinite(gone[0]):
            y = gone[1] if gone[1] is None or not logy or gone[1] > 0 else None
            marks.append((gone[0], y, line.get_color()))
    for y, label in panel.hlines:
        ax.axhline(y, color="0.35", linestyle=":", linewidth=1.0, label=label or None)
    for x, label in panel.vlines:
        ax.axvline(x, color="0.35", linestyle=":", linewidth=1.0, label=label or None)
    ax.set_xscale(panel.xscale)
    ax.set_yscale(panel.yscale)
    _compact_ticks(ax, x=panel.xscale == "linear", y=panel.yscale == "linear")
    if panel.xlim is not None:
        ax.set_xlim(*panel.xlim)
    if panel.ylim is not None:
        ax.set_ylim(*panel.ylim)
    low, high = ax.get_ylim()
    for x, y, colour in marks:  # a mark outside the y range goes to the top of the panel
        _mark_divergence(ax, x, y if y is not None and low <= y <= high else None, colour)
    ax.set_ylim(low, high)
    labelled = [s for s in panel.series if s.label] or panel.hlines or panel.vlines
    if panel.legend and labelled:
        ax.legend(frameon=False)
    _note(ax, panel.note)


def _draw_histogram(ax: Axes, panel: HistogramPanel) -> None:
    if len(panel.edges) != len(panel.counts) + 1:
        raise InitlabError(
            f"histogram needs len(edges) == len(counts) + 1, got {len(panel.edges)} "
            f"edges and {len(panel.counts)} counts"
        )
    ax.stairs(panel.counts, panel.edges, fill=True, color=panel.color or "tab:blue", alpha=0.85)
    _compact_ticks(ax, x=False, y=True)
    _self_contained_ticks(ax.xaxis, 4)
    if panel.xlim is not None:
        ax.set_xlim(*panel.xlim)
    if panel.ylim is not None:
        ax.set_ylim(*panel.ylim)
    _note(ax, panel.note)


def _edges(centres: list[float]) -> list[float]:
    """Cell edges half-way between centres (the outer ones mirrored)."""
    if len(centres) == 1:
        return [centres[0] - 0.5, centres[0] + 0.5]
    mids = [(a + b) / 2 for a, b in itertools.pairwise(centres)]
    return [2 * centres[0] - mids[0], *mids, 2 * centres[-1] - mids[-1]]


def _draw_heatmap(fig: Figure, ax: Axes, panel: HeatmapPanel) -> None:
    if panel.x is not None and panel.y is not None:
        image = ax.pcolormesh(
            _edges(panel.x),
            _edges(panel.y),
            panel.matrix,
            cmap=panel.cmap,
            vmin=panel.vmin,
            vmax=panel.vmax,
            shading="flat",
        )
        xs, ys = _edges(panel.x), _edges(panel.y)
        for s in panel.curves:
            ax.plot(s.x, s.y, s.linestyle, color=s.color, linewidth=s.linewidth, label=s.label)
        for x, label in panel.vlines:
            ax.axvline(x, color="white", linestyle=":", linewidth=1.5, label=label or None)
        ax.set_xlim(xs[0], xs[-1])
        ax.set_ylim(ys[0], ys[-1])
        if any(s.label for s in panel.curves) or any(label for _, label in panel.vlines):
            ax.legend(loc="upper left", framealpha=0.7)
    else:
        image = ax.imshow(
            panel.matrix,
            aspect="auto",
            interpolation="nearest",
            cmap=panel.cmap,
            vmin=panel.vmin,
            vmax=panel.vmax,
        )
    ax.grid(False)
    fig.colorbar(image, ax=ax, label=panel.colorbar_label, shrink=0.9)
    _note(ax, panel.note)


def _draw_contour(ax: Axes, panel: ContourPanel) -> None:
    ax.contour(panel.x, panel.y, panel.z, levels=panel.levels, cmap="Greys_r", linewidths=0.8)
    for path in panel.paths:
        finite = [
            i
            for i, (px, py) in enumerate(zip(path.x, path.y, strict=False))
            if math.isfinite(px) and math.isfinite(py)
        ]
        gone = len(finite) < min(len(path.x), len(path.y))
        ax.plot(
            _clean(path.x, False),
            _clean(path.y, False),
            marker=path.marker,
            color=path.color,
            markersize=3,
            linewidth=1.2,
            label=_diverged_label(path.label) if gone else path.label,
        )
        if gone and finite:  # an x at its last finite point, kept inside the window
            px = min(max(path.x[finite[-1]], min(panel.x)), max(panel.x))
            py = min(max(path.y[finite[-1]], min(panel.y)), max(panel.y))
            _mark_divergence(ax, px, py, path.color)
    for x, y, label in panel.points:
        ax.plot([x], [y], marker="+", color="black", markersize=12, markeredgewidth=2)
        if label:
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlim(min(panel.x), max(panel.x))
    ax.set_ylim(min(panel.y), max(panel.y))
    # ticks at the window's edges would touch the next panel's labels: leave them out
    _self_contained_ticks(ax.xaxis, 5, prune="both")
    _self_contained_ticks(ax.yaxis, 5, prune="both")
    if panel.equal_aspect:
        ax.set_aspect("equal")
    ax.grid(False)
    _note(ax, panel.note)


def _draw_scatter(fig: Figure, ax: Axes, panel: ScatterPanel) -> None:
    logx, logy = panel.xscale == "log", panel.yscale == "log"
    x, y = _clean(panel.x, logx), _clean(panel.y, logy)
    points = ax.scatter(
        x,
        y,
        c=panel.c if panel.c is not None else "tab:blue",
        cmap=panel.cmap if panel.c is not None else None,
        vmin=panel.vmin,
        vmax=panel.vmax,
        s=18,
        edgecolors="0.3",
        linewidths=0.3,
    )
    for x0, x1, y0, y1, label in panel.boxes:
        xs, ys = [x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0]
        ax.plot(xs, ys, color="tab:red", linewidth=1.4, label=label or None)
    ax.set_xscale(panel.xscale)
    ax.set_yscale(panel.yscale)
    if panel.c is not None:
        fig.colorbar(points, ax=ax, label=panel.colorbar_label, shrink=0.9)
    if any(label for *_, label in panel.boxes):
        ax.legend(frameon=False, loc="lower left")
    _note(ax, panel.note)


def _draw_bars(ax: Axes, panel: BarPanel) -> None:
    positions = list(range(len(panel.labels)))[::-1]
    ax.barh(positions, panel.values, color=panel.color)
    ax.set_yticks(positions, panel.labels)
    ax.grid(axis="y", visible=False)
    _note(ax, panel.note)


def _draw(fig: Figure, ax: Axes, panel: Panel) -> None:
    if isinstance(panel, LinePanel):
        _draw_line(ax, panel)
    elif isinstance(panel, HistogramPanel):
        _draw_histogram(ax, panel)
    elif isinstance(panel, HeatmapPanel):
        _draw_heatmap(fig, ax, panel)
    elif isinstance(panel, ContourPanel):
        _draw_contour(ax, panel)
    elif isinstance(panel, ScatterPanel):
        _draw_scatter(fig, ax, panel)
    elif isinstance(panel, BarPanel):
        _draw_bars(ax, panel)
    else:
        raise InitlabError(f"cannot draw a panel of type {type(panel).__name__}")
    ax.set_title(panel.title)
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel)


def draw_figure(info: FigureInfo) -> Figure:
    """Build the matplotlib ``Figure`` for ``info`` (not saved)."""
    from matplotlib.figure import Figure

    rows, cols = info.shape
    if rows == 0 or cols == 0:
        raise InitlabError(f"figure {info.name!r} has no panels")
    width, height = info.panel_size
    fig = Figure(figsize=(cols * width + 0.6, rows * height + 0.7), layout="constrained")
    axes = fig.subplots(rows, cols, sharex=info.sharex, sharey=info.sharey, squeeze=False)
    for i in range(rows):
        for j in range(cols):
            row = info.panels[i]
            panel = row[j] if j < len(row) else None
            if panel is None:
                axes[i][j].set_visible(False)
                continue
            _draw(fig, axes[i][j], panel)
            if i < rows - 1 and info.sharex in (True, "col") and info.panels[i + 1][j]:
                axes[i][j].set_xlabel("")
            if j > 0 and info.sharey in (True, "row") and row[0] is not None:
                axes[i][j].set_ylabel("")
    for i, label in enumerate(info.row_labels or []):
        ax = axes[i][0]
        ax.set_ylabel(f"{label}\n{ax.get_ylabel()}".strip(), fontsize=9.5)
    for j, label in enumerate(info.col_labels or []):
        axes[0][j].annotate(
            label,
            xy=(0.5, 1),
            xycoords="axes fraction",
            xytext=(0, 18 if info.panels[0][j] and info.panels[0][j].title else 6),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=10,
            fontweight="bold",
        )
    fig.suptitle(info.title, fontsize=13, fontweight="bold")
    return fig


def fix_layout(fig: Figure) -> None:
    """Lay ``fig`` out once, at the PNG's dpi, and keep that layout for every format.

    ``savefig`` with a layout engine draws the figure twice per file (a pass that only
    lays it out, then the drawing), so PNG and SVG cost two constrained layouts and four
    draws; the layout (every axis's ticks and labels measured, twice) was most of a figure's
    time (2 of 4 s CPU for A2's 30 panels). Laid out here once and the engine removed, the
    files cost one drawing each. Positions are fractions of the figure, so the SVG (drawn
    at 72 dpi) gets the PNG's layout; the PNG is the same, pixel for pixel, as before.
    """
    engine = fig.get_layout_engine()
    if engine is None:
        return
    fig.set_dpi(PNG_DPI)
    engine.execute(fig)
    fig.set_layout_engine(None)  # rc figure.autolayout/constrained_layout.use are off


def render_figure(
    info: FigureInfo, out_dir: str | Path, *, fork_formats: bool = False
) -> dict[str, Path]:
    """Draw ``info`` and save it as ``out_dir/{name}.png`` and ``.svg``; return the paths.

    ``fork_formats`` (Linux): once the figure is laid out, a forked child saves the SVG
    while this process saves the PNG (B3's 16-panel grid: 0.23 and 0.20 s). A child that
    fails has its files saved again here, which raises its error here; an interrupt here
    kills it.
    """
    import matplotlib

    if not _NAME.match(info.name):
        raise InitlabError(
            f"figure name {info.name!r} is not a valid file stem; use letters, digits, - and _"
        )
    paths = figure_paths(info, out_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    formats = list(paths.items())
    with matplotlib.rc_context(_RC):
        fig = draw_figure(info)
        fix_layout(fig)
        if not (fork_formats and len(formats) > 1 and CAN_FORK):
            _save(fig, formats)
            return paths
        child = _fork(lambda: _save(fig, formats[1:]))
        try:
            _save(fig, formats[:1])
            failed = _exit_code(child) != 0
            child = 0
        finally:
            if child:  # an error or an interrupt here: stop the child
                _stop(child)
        if failed:
            _save(fig, formats[1:])
    return paths


def _save(fig: Figure, formats: list[tuple[str, Path]]) -> None:
    """Save the laid-out ``fig`` in each ``(format, path)``."""
    for fmt, path in formats:
        metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {"Software": None}
        # through a temporary file: a report (or another process drawing the same
        # experiment) never reads half a figure
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fig.savefig(tmp, format=fmt, dpi=PNG_DPI, metadata=metadata)
        os.replace(tmp, path)


def _fork(work: Callable[[], None]) -> int:
    """Run ``work`` in a forked child that dies with this process; the child's pid."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # nothing buffered is written twice
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: work, then leave without running the parent's exit code
        code = 1
        try:
            _die_with(parent)
            work()
            code = 0
        finally:
            os._exit(code)
    return pid


def figure_paths(info: FigureInfo, out_dir: str | Path) -> dict[str, Path]:
    """Where :func:`render_figure` saves ``info``: ``out_dir/{name}.{fmt}`` per format."""
    return {fmt: Path(out_dir) / f"{info.name}.{fmt}" for fmt in FORMATS}


def render_figures(
    infos: list[FigureInfo], out_dir: str | Path, workers: int = 1
) -> list[dict[str, Path]]:
    """Render every figure; file stems must be unique.

    ``workers > 1`` draws the figures in this process and ``workers - 1`` forked children
    at once (on Linux; elsewhere, or for a single figure, one after the other; see
    :func:`_render_forked`): the experiments train on one
    intra-op thread, so when the figures are drawn the other cores are idle, and a figure
    costs 0.5-3 s of matplotlib (A1's three 50-panel figures: 9 s in one process). The
    files are the same either way (each figure is drawn whole by one process).
    """
    names = [info.name for info in infos]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InitlabError(f"figure names must be unique, repeated: {', '.join(duplicates)}")
    workers = min(workers, len(infos))
    if workers <= 1 or not CAN_FORK:
        return [render_figure(info, out_dir) for info in infos]
    return _render_forked(infos, out_dir, workers)


def _import_drawing() -> None:
    """Import matplotlib's figure and its PNG and SVG backends (what a drawing needs)."""
    import matplotlib.backends.backend_agg
    import matplotlib.backends.backend_svg
    import matplotlib.figure  # noqa: F401


_WARM_UP = FigureInfo(
    "warm-up",
    "warm-up",
    [[LinePanel([Series([1.0, 2.0], [1.0, 3.0], label="a")], "t", "x", "y", yscale="log")]],
)


def _warm_up() -> None:
    """The imports of a drawing, and a small figure laid out and drawn (not saved): fonts
    found and loaded, text engines built (a 1-panel figure laid out first took 0.27 s,
    after another figure 0.11 s)."""
    _import_drawing()
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with matplotlib.rc_context(_RC):
        fig = draw_figure(_WARM_UP)
        fix_layout(fig)
        FigureCanvasAgg(fig).draw()


class DrawingProcess:
    """A process forked now that imports and warms up matplotlib while this one computes,
    then draws the figures it is sent (:meth:`render`), with ``workers`` processes.

    A fresh process spends ~0.45 s importing matplotlib's figure and backends and ~0.15 s
    on its first layout. An experiment trains on one intra-op thread, so with a second
    core that work is done meanwhile, in another process: in a thread of this one it took
    turns with the training loop on the interpreter lock (B1's loop 0.3-0.8 s slower,
    measured) and this process never imports matplotlib. Linux only (fork).

    The figure infos go through a pipe, pickled (this process's own objects, to its own
    child). A figure the process fails to draw, or a process that died, is drawn again
    here, which raises its error here. The process dies with this one; :meth:`close` ends
    it (at once after an error or an interrupt).
    """

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        requests_r, self._requests = os.pipe()
        self._replies, replies_w = os.pipe()
        self.pid: int | None = None
        try:
            self.pid = _fork(lambda: self._serve(requests_r, replies_w, workers))
        except OSError:  # no fork (memory, process limits): the figures are drawn here
            pass
        finally:
            os.close(requests_r)
            os.close(replies_w)

    def _serve(self, requests: int, replies: int, workers: int) -> None:
        """The drawing process: warm up, then draw each request until the requests end."""
        os.close(self._requests)  # this end is the parent's: the requests end when it closes
        os.close(self._replies)
        with contextlib.suppress(Exception):  # a request draws again and reports the error
            _warm_up()
        while (message := _receive(requests)) is not None:
            infos, out_dir = message
            try:
                render_figures(infos, out_dir, workers=workers)
                reply = "ok"
            except Exception:  # drawn again by the caller, which raises it there
                reply = "failed"
            _send(replies, reply)

    def render(self, infos: list[FigureInfo], out_dir: str | Path) -> list[dict[str, Path]]:
        """:func:`render_figures` of ``infos``, drawn in the process."""
        reply = None
        if self.pid is not None:
            try:
                _send(self._requests, (infos, os.path.abspath(out_dir)))
                reply = _receive(self._replies)
            except OSError:  # the process is gone (a broken pipe)
                reply = None
        if reply != "ok":
            return render_figures(infos, out_dir, workers=self.workers)
        return [figure_paths(info, out_dir) for info in infos]

    def close(self, kill: bool = False) -> None:
        """End the process: it finishes what it was sent and exits (``kill``: at once)."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        os.close(self._requests)  # end of requests: the process exits
        os.close(self._replies)
        if kill:
            _stop(pid)
        else:
            with contextlib.suppress(ChildProcessError):  # reaped already
                os.waitpid(pid, 0)

    def __enter__(self) -> DrawingProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.close(kill=kind is not None)


def _send(fd: int, value: Any) -> None:
    """Write ``value`` pickled, behind its length, to the pipe ``fd``."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(len(data).to_bytes(8, "little") + data)
    while view:
        view = view[os.write(fd, view) :]


def _receive(fd: int) -> Any:
    """One value written by :func:`_send` (a process's own parent or child: not a file
    from disk); None at the end of the pipe."""
    head = _read_exactly(fd, 8)
    if head is None:
        return None
    body = _read_exactly(fd, int.from_bytes(head, "little"))
    return None if body is None else pickle.loads(body)


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _render_forked(
    infos: list[FigureInfo], out_dir: str | Path, workers: int
) -> list[dict[str, Path]]:
    """:func:`render_figure` of each figure, the figures shared out by panel count among
    this process and ``workers - 1`` forked children.

    Each child draws its share and exits (``os._exit``), and dies with this process
    (``PR_SET_PDEATHSIG``), so no child outlives the run or keeps holding a lock it
    inherited. A child that fails has its figures drawn again here, so its error is raised
    here as it would be without the fork; on an interrupt (Ctrl-C) or any other error here
    the children are killed first.
    """
    _import_drawing()  # before the fork, so that every child inherits the modules
    shares = _shares(infos, workers)
    children: dict[int, list[int]] = {}
    try:
        for share in shares[1:]:
            pid = _fork(lambda share=share: _render_share(infos, share, out_dir))
            children[pid] = share
        # the largest share here, each figure's formats in two processes: one process
        # more than cores for a while, but the shares end at different times (B3's small
        # figure's process ends before the large figure is laid out)
        for i in shares[0]:
            render_figure(infos[i], out_dir, fork_formats=True)
        failed: list[int] = []
        for pid in list(children):
            if _exit_code(pid) != 0:
                failed += children[pid]
            del children[pid]
    finally:
        for pid in children:  # an error or an interrupt here: stop the children
            _stop(pid)
    for i in failed:
        render_figure(infos[i], out_dir)  # raises the child's error, here
    return [figure_paths(info, out_dir) for info in infos]


def _render_share(infos: list[FigureInfo], share: list[int], out_dir: str | Path) -> None:
    for i in share:
        render_figure(infos[i], out_dir)


def _shares(infos: list[FigureInfo], workers: int) -> list[list[int]]:
    """Figure indices for ``workers`` processes, balanced by panel count (largest first)."""
    sizes = [sum(map(len, info.panels)) for info in infos]
    shares: list[list[int]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for i in sorted(range(len(infos)), key=lambda i: -sizes[i]):
        j = loads.index(min(loads))
        shares[j].append(i)
        loads[j] += sizes[i]
    return shares


def _die_with(parent: int) -> None:
    """Have the kernel kill this (forked) process when its parent dies (Linux prctl)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # no prctl: the child still exits when its share is drawn
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _stop(pid: int) -> None:
    """Kill a child and reap it (one already gone is fine)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _exit_code(pid: int) -> int:
    """Wait for a child; its exit status (a signal's death counts as failure)."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
