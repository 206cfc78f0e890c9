"""Images as one tiled matrix for a :class:`~initlab.report.figures.HeatmapPanel`."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def image_grid(images: Tensor, cols: int, side: int, normalize: bool = False) -> list[list[float]]:
    """Tile ``images`` (``[n, side * side]``) row by row, ``cols`` per row, 1-pixel NaN gaps.

    ``normalize`` rescales each tile to [0, 1] (min to max), as receptive fields are shown;
    the gaps are NaN, which the heatmap leaves blank.

    >>> grid = image_grid(torch.arange(8.0).reshape(2, 4), cols=2, side=2)
    >>> len(grid), len(grid[0]), grid[0][:3]
    (2, 5, [0.0, 1.0, nan])
    """
    n = len(images)
    rows = max(1, math.ceil(n / cols))
    canvas = torch.full((rows * (side + 1) - 1, cols * (side + 1) - 1), math.nan)
    for i, image in enumerate(images.detach().float().reshape(n, side, side)):
        if normalize:
            low, high = image.min(), image.max()
            image = (image - low) / (high - low) if high > low else torch.zeros_like(image)
        r, c = divmod(i, cols)
        canvas[r * (side + 1) : r * (side + 1) + side, c * (side + 1) : c * (side + 1) + side] = (
            image
        )
    return canvas.tolist()
