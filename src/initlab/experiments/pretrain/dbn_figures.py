"""The dbn experiment's pictures: pretraining monitors, receptive fields, Gibbs chains."""

from __future__ import annotations

import math

import torch

from initlab.experiments.base import RunData
from initlab.experiments.common import color
from initlab.experiments.pretrain.pictures import image_grid
from initlab.report.figures import FigureInfo, HeatmapPanel, LinePanel, Series

GIBBS_SNAPSHOTS = (1, 10, 100, 1000)  # Gibbs steps at which the chains are pictured


def pretraining_figure(runs: list[RunData], widths: str, where: str) -> FigureInfo:
    recon, gap = [], []
    layer = 1
    while runs[0].series(f"rbm{layer}_recon_error")[1]:
        for j, run in enumerate(runs):
            text = f"RBM {layer}" if j == 0 else None
            x, y = run.series(f"rbm{layer}_recon_error")
            recon.append(Series(x, y, text, color(layer - 1), marker="o", alpha=0.8))
            x, y = run.series(f"rbm{layer}_free_energy_gap")
            gap.append(Series(x, y, text, color(layer - 1), marker="o", alpha=0.8))
        layer += 1
    return FigureInfo(
        name="dbn-pretraining",
        title=f"{where}, {widths}: greedy RBM pretraining (CD)",
        panels=[
            [
                LinePanel(recon, "reconstruction error", "epoch", "squared error per image"),
                LinePanel(
                    gap,
                    "free-energy gap (Hinton's overfitting monitor)",
                    "epoch",
                    "F(held-out) - F(train)",
                    hlines=[(0.0, "")],
                ),
            ]
        ],
        caption=(
            "Per RBM (bottom up), after every epoch: the mean-field reconstruction error, and "
            "the mean free energy of held-out images minus that of training images (it grows "
            "when an RBM starts to overfit). Epoch 0 is before training."
        ),
        panel_size=(4.6, 3.4),
    )


def picture_figures(params: dict[str, torch.Tensor], where: str) -> list[FigureInfo]:
    filters = params["filters"]
    side = math.isqrt(filters.shape[1])
    cols = math.isqrt(len(filters))
    chains = params["chains"]
    grey = {"cmap": "gray", "colorbar_label": ""}
    field_grid = image_grid(filters, cols, side, normalize=True)
    chain_rows = [chains[:, j] for j in range(chains.shape[1])]  # one row per snapshot
    recon_rows = [params["inputs"], params["recon_first"], params["recon_stack"]]
    return [
        FigureInfo(
            name="dbn-receptive-fields",
            title=f"{where}: first RBM's receptive fields",
            panels=[[HeatmapPanel(field_grid, f"first {len(filters)} hidden units", **grey)]],
            caption=(
                "Each tile is one hidden unit's incoming weights as an image (scaled per tile); "
                "pretraining on digits gives localized strokes and blobs, random init gives noise."
            ),
            panel_size=(5.5, 5.5),
        ),
        FigureInfo(
            name="dbn-samples",
            title=f"{where}: Gibbs chains and reconstructions of the first RBM",
            panels=[
                [
                    HeatmapPanel(
                        image_grid(torch.cat(chain_rows), len(chains), side),
                        "Gibbs chains from test images: rows after "
                        + ", ".join(str(s) for s in GIBBS_SNAPSHOTS)
                        + " steps",
                        vmin=0.0,
                        vmax=1.0,
                        **grey,
                    )
                ],
                [
                    HeatmapPanel(
                        image_grid(torch.cat(recon_rows), len(chains), side),
                        "test images; first-RBM reconstruction; reconstruction via the top",
                        vmin=0.0,
                        vmax=1.0,
                        **grey,
                    )
                ],
            ],
            caption=(
                "Top: chains started at test images, E[v | h] after 1, 10, 100 and 1000 Gibbs "
                "steps (the chains wander between digit-like states). Bottom: inputs, their "
                "reconstruction through the first RBM, and through the whole stack (up to the "
                "top layer and back down)."
            ),
            panel_size=(7.5, 3.4),
        ),
    ]
