"""Figure infos: what a figure shows, as plain data, before anything is drawn.

Optuna's plots are built in two steps, "compute the info, then draw it"; initlab does the
same. An experiment's ``figures(...)`` returns :class:`FigureInfo` objects holding numbers,
labels and layout only (no matplotlib), so they are cheap to test; the renderers in
:mod:`initlab.report.render` turn them into PNG and SVG files.

A figure is a grid of panels (``None`` leaves a cell empty). Panel kinds:

- :class:`LinePanel`: curves (:class:`Series`), optional log axes, reference lines. A
  curve that reaches NaN/Inf (a diverged run) ends in an x at that step and its legend
  entry says "diverged"; so does a :class:`Path2D` that leaves the finite plane.
- :class:`HistogramPanel`: one histogram from its edges and counts.
- :class:`HeatmapPanel`: a matrix as an image with a colour bar.
- :class:`ContourPanel`: a function on a grid as contour lines, with paths drawn over it.
- :class:`ScatterPanel`: points coloured by a value, with rectangles drawn over them.
- :class:`BarPanel`: one horizontal bar per label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Scale = Literal["linear", "log", "symlog"]


@dataclass
class Series:
    """One curve of a :class:`LinePanel`."""

    x: list[float]
    y: list[float]
    label: str | None = None  # legend entry; None keeps it out of the legend
    color: str | None = None  # matplotlib colour; None picks the next of the cycle
    linestyle: str = "-"  # "-", "--", ":", "-." or "" for markers only
    marker: str | None = None  # matplotlib marker ("o", "x", ...) or None
    linewidth: float = 1.5
    alpha: float = 1.0
    diverged_at: float | None = None  # x where the run diverged (None: the first NaN/Inf y)


@dataclass
class LinePanel:
    """Curves on shared axes, e.g. a loss per step or a statistic per layer."""

    series: list[Series]
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    xscale: Scale = "linear"
    yscale: Scale = "linear"
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None
    hlines: list[tuple[float, str]] = field(default_factory=list)  # (y, label) reference lines
    vlines: list[tuple[float, str]] = field(default_factory=list)  # (x, label) reference lines
    legend: bool = True
    note: str | None = None  # short text in the panel's corner


@dataclass
class HistogramPanel:
    """A histogram drawn from ``edges`` (``len(counts) + 1`` values) and ``counts``."""

    edges: list[float]
    counts: list[float]
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    color: str | None = None
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None
    note: str | None = None  # short text in the panel's corner (e.g. "std 0.21")


@dataclass
class HeatmapPanel:
    """A matrix drawn as an image: ``matrix[i][j]`` is row i (top to bottom), column j.

    With ``x`` (one value per column) and ``y`` (one per row) the cells sit at those
    coordinates instead (row 0 at the bottom, cells spanning half-way to their
    neighbours), and ``curves`` and ``vlines`` are drawn over them in the same units.
    """

    matrix: list[list[float]]
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    cmap: str = "viridis"
    vmin: float | None = None
    vmax: float | None = None
    colorbar_label: str = ""
    note: str | None = None
    x: list[float] | None = None  # column coordinates (with y: cells placed on axes)
    y: list[float] | None = None  # row coordinates
    curves: list[Series] = field(default_factory=list)  # drawn over the cells (x/y units)
    vlines: list[tuple[float, str]] = field(default_factory=list)  # (x, label) marks


@dataclass
class Path2D:
    """A sequence of points drawn over a :class:`ContourPanel`."""

    x: list[float]
    y: list[float]
    label: str | None = None
    color: str = "tab:red"
    marker: str = "o"


@dataclass
class ContourPanel:
    """Contour lines of ``z[i][j] = f(x[j], y[i])`` with paths and marked points over them."""

    x: list[float]
    y: list[float]
    z: list[list[float]]
    levels: list[float]
    paths: list[Path2D] = field(default_factory=list)
    points: list[tuple[float, float, str]] = field(default_factory=list)  # (x, y, label) marks
    title: str = ""
    xlabel: str = "x"
    ylabel: str = "y"
    equal_aspect: bool = False
    note: str | None = None


@dataclass
class ScatterPanel:
    """Points ``(x[i], y[i])`` coloured by ``c[i]`` (a colour bar), boxes drawn over them."""

    x: list[float]
    y: list[float]
    c: list[float] | None = None  # None: one colour
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    xscale: Scale = "linear"
    yscale: Scale = "linear"
    cmap: str = "viridis"
    vmin: float | None = None
    vmax: float | None = None
    colorbar_label: str = ""
    boxes: list[tuple[float, float, float, float, str]] = field(default_factory=list)
    """Rectangles ``(x0, x1, y0, y1, label)``."""
    note: str | None = None


@dataclass
class BarPanel:
    """Horizontal bars: ``values[i]`` for ``labels[i]``, the first at the top."""

    labels: list[str]
    values: list[float]
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    color: str = "tab:blue"
    note: str | None = None


Panel = LinePanel | HistogramPanel | HeatmapPanel | ContourPanel | ScatterPanel | BarPanel


@dataclass
class FigureInfo:
    """A titled grid of panels, saved as ``{name}.png`` and ``{name}.svg``."""

    name: str  # file stem, unique within the experiment: letters, digits, "-" and "_"
    title: str
    panels: list[list[Panel | None]]  # rows of panels; None leaves a cell empty
    caption: str = ""  # one or two sentences for the report: what to look at
    sharex: bool | Literal["row", "col"] = False
    sharey: bool | Literal["row", "col"] = False
    panel_size: tuple[float, float] = (3.2, 2.6)  # inches per panel (width, height)
    row_labels: list[str] | None = None  # a label left of each row (e.g. "std = 0.01")
    col_labels: list[str] | None = None  # a label above each column (e.g. "layer 3")

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the panel grid."""
        return len(self.panels), max((len(row) for row in self.panels), default=0)
