"""Figures and reports: figure infos -> matplotlib renderers (PNG, SVG) -> one HTML page."""

from initlab.report.figures import (
    BarPanel,
    ContourPanel,
    FigureInfo,
    HeatmapPanel,
    HistogramPanel,
    LinePanel,
    Path2D,
    ScatterPanel,
    Series,
)
from initlab.report.html import build_report, find_summaries
from initlab.report.render import draw_figure, render_figure, render_figures

__all__ = [
    "BarPanel",
    "ContourPanel",
    "FigureInfo",
    "HeatmapPanel",
    "HistogramPanel",
    "LinePanel",
    "Path2D",
    "ScatterPanel",
    "Series",
    "build_report",
    "draw_figure",
    "find_summaries",
    "render_figure",
    "render_figures",
]
