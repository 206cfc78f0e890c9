"""A grid of example images with their class names, saved as a PNG (matplotlib, Agg).

Works for any :class:`~initlab.data.Dataset` of images: flat square grey inputs
(MNIST ``[N, 784]``, Shapeset ``[N, 1024]``), ``[N, 1, H, W]`` or RGB ``[N, 3, H, W]``
(CIFAR-10). matplotlib is imported only here, and only its Agg canvas is used, so the
caller's pyplot backend is left alone.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from initlab.data.dataset import Dataset
from initlab.errors import InitlabError


def _as_images(x: Tensor) -> Tensor:
    """[N, H, W] grey or [N, H, W, 3] RGB images in [0, 1] from a dataset's inputs."""
    if x.ndim == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise InitlabError(f"cannot draw flat inputs of width {x.shape[1]}: not a square")
        return x.reshape(-1, side, side)
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0]
    if x.ndim == 4 and x.shape[1] == 3:
        return x.permute(0, 2, 3, 1)
    if x.ndim == 3:
        return x
    raise InitlabError(f"cannot draw inputs of shape {list(x.shape)}: expected images")


def save_sample_grid(
    dataset: Dataset,
    path: str | Path,
    *,
    n: int = 36,
    ncols: int = 6,
    title: str | None = None,
) -> Path:
    """Draw the first ``n`` examples of ``dataset`` in a grid, each titled with its class,
    into the PNG file ``path`` (its folder is created; a folder or another suffix is
    refused, as are ``n`` or ``ncols`` below 1)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    if path.is_dir():
        raise InitlabError(
            f"{path} is a folder; give a PNG file name such as {path / 'samples.png'}"
        )
    if path.suffix.lower() != ".png":
        raise InitlabError(f"{path}: the file name must end in .png")
    for what, value in (("n", n), ("ncols", ncols)):
        if value < 1:
            raise InitlabError(f"{what} must be at least 1, got {value}")
    n = min(n, len(dataset))
    if n < 1:
        raise InitlabError(f"dataset {dataset.name!r} is empty: nothing to draw")
    images = _as_images(dataset.x[:n].detach().float().cpu()).clamp(0, 1)
    labels = dataset.y[:n].tolist()
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(1.6 * ncols, 1.75 * nrows + (0.4 if title else 0)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(images[i].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        name = dataset.classes[labels[i]] if dataset.classes else str(labels[i])
        ax.set_title(name, fontsize=7)
    fig.suptitle(title or f"{dataset.name}: first {n} examples", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
    return path


def class_grid(
    dataset: Dataset, per_class: int, generator: torch.Generator | None = None
) -> Dataset:
    """``per_class`` examples of every class (in class order), for a tidy preview grid."""
    picks = []
    for c in range(dataset.num_classes):
        idx = torch.nonzero(dataset.y == c).squeeze(1)
        if generator is not None and idx.numel():
            idx = idx[torch.randperm(idx.numel(), generator=generator)]
        picks.append(idx[:per_class])
    return dataset.subset(torch.cat(picks), f"{dataset.name} by class")
