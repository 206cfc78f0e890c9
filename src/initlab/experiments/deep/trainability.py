"""E3 trainability: the phase diagram of Schoenholz et al. 2017, "Deep information propagation".

Vanilla tanh MLPs (``depth`` hidden layers of ``width`` units, no normalization, no skips)
with weights ``N(0, sigma_w^2 / fan_in)`` and biases ``N(0, sigma_b^2)`` are trained for a
fixed number of SGD steps on MNIST over a grid of ``sigma_w^2`` (fixed ``sigma_b^2``) and
depths; the heat map shows the training accuracy (on the first ``train_eval_size``
training examples) over ``(sigma_w^2, depth)``. Mean-field theory says information about
the input survives about ``xi_c`` layers, with (Schoenholz et al. 2017, eq. 9)
``xi_c^{-1} = -log chi_c`` and ``chi_c = sigma_w^2 E[phi'(u_1) phi'(u_2)]`` at the
correlation map's fixed point (:func:`initlab.init.meanfield.depth_scales`), and that
networks train up to about ``6 xi_c`` layers (their Figure 5): the trainable region is a
band around the critical ``sigma_w^2`` (:func:`~initlab.init.meanfield.critical_point`,
1.76 for ``sigma_b^2 = 0.05``) that narrows with depth. The curves ``c xi_c`` are drawn
over the heat map for the multiples in ``xi_multiples``, the critical ``sigma_w^2`` as a
vertical line.

All ``sigma_w^2`` members of one depth train together in the batched engine
(:func:`initlab.train.batched.fit_batched`: one architecture, per-member inits), on the
same minibatches (the run's base seed); a member's own seed draws its weights (scheme
``variance_scaling:scale=sigma_w^2``) and, offset by :data:`BIAS_SEED_OFFSET`, its biases.
``--set paper=true`` runs the paper's grid (16 values of sigma_w^2 in [1, 4], depths 10 to
300 in steps of 10, width 300, 1000 steps); its estimated cost is printed first.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from typing import Annotated, Any, ClassVar

import torch

from initlab.errors import InitlabError
from initlab.experiments.base import (
    ExperimentData,
    GroupExperiment,
    Progress,
    Recorder,
    RunOutcome,
    RunSpec,
    no_progress,
)
from initlab.experiments.common import check_positive, fmt
from initlab.experiments.mnist_task import (
    DATASET_HELP,
    DatasetChoice,
    check_dataset,
    dataset_title,
    load_split,
    train_group,
)
from initlab.experiments.registry import register
from initlab.report.figures import FigureInfo, HeatmapPanel, Series

BIAS_SEED_OFFSET = 0xB1A5  # a member's biases: seed + this (its weights: the seed itself)
TRAINED_ABOVE = 0.5  # "trainable": training accuracy above this (chance 0.1)
ENGINE_FLOPS = 3.0e10  # float32 FLOP/s the engine sustains here (1 thread, busy host)
PAPER_GRID: dict[str, Any] = {
    "sigma_w2s": tuple(round(1.0 + 0.2 * i, 4) for i in range(16)),
    "depths": tuple(range(10, 301, 10)),
    "width": 300,
    "steps": 1000,
}


@dataclass(frozen=True)
class TrainabilityConfig:
    dataset: Annotated[DatasetChoice, DATASET_HELP] = "mnist"
    sigma_w2s: Annotated[tuple[float, ...], "weight variances sigma_w^2 (times 1/fan_in)"] = (
        1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.5, 4.0,
    )  # fmt: skip
    sigma_b2: Annotated[float, "bias variance sigma_b^2"] = 0.05
    depths: Annotated[tuple[int, ...], "numbers of hidden layers"] = (10, 25, 50, 100, 150)
    width: Annotated[int, "units per hidden layer"] = 128
    lr: Annotated[float, "SGD learning rate"] = 0.005
    steps: Annotated[int, "SGD steps per network"] = 400
    batch_size: Annotated[int, "minibatch size (drawn with replacement)"] = 128
    train_eval_size: Annotated[int, "training examples the accuracy is measured on (0: all)"] = 2000
    xi_multiples: Annotated[tuple[float, ...], "draw c * xi_c for these c"] = (1.0, 6.0)
    paper: Annotated[
        bool, "the paper's grid: 16 sigma_w^2 in [1, 4], depths 10..300, width 300, 1000 steps"
    ] = False


def effective(config: TrainabilityConfig) -> TrainabilityConfig:
    """The config with the paper's grid applied when ``paper`` is set."""
    return replace(config, **PAPER_GRID) if config.paper else config


def estimated_seconds(config: TrainabilityConfig) -> float:
    """Rough cost: 6 FLOP per weight per example (forward + backward), all groups, at
    :data:`ENGINE_FLOPS`."""
    c = effective(config)
    weights = sum(784 * c.width + d * c.width * c.width for d in c.depths) * len(c.sigma_w2s)
    return 6.0 * weights * c.batch_size * c.steps / ENGINE_FLOPS


def _member(spec: Any, sigma_w2: float, sigma_b2: float, seed: int) -> torch.nn.Module:
    """An MLP with weights N(0, sigma_w^2 / fan_in) (seed) and biases N(0, sigma_b^2)."""
    from initlab.init import initialize
    from initlab.models.mlp import mlp

    with torch.random.fork_rng(devices=[]):
        model = mlp(**spec.to_dict())
    initialize(model, f"variance_scaling:scale={sigma_w2!r}", seed=seed)
    gen = torch.Generator().manual_seed(seed + BIAS_SEED_OFFSET)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.normal_(0.0, math.sqrt(sigma_b2), generator=gen)
    return model


def xi_curve(sigma_b2: float, lo: float, hi: float, points: int = 41) -> tuple[list, list]:
    """``(sigma_w2s, xi_c)`` on a fine grid over ``[lo, hi]`` (mean field, tanh)."""
    from initlab.experiments.common import single_thread
    from initlab.init.meanfield import depth_scales

    xs = [lo + (hi - lo) * i / (points - 1) for i in range(points)]
    with single_thread():
        return xs, [depth_scales(x, sigma_b2).xi_c for x in xs]


@register
class Trainability(GroupExperiment):
    """Training accuracy over (sigma_w^2, depth) with the mean-field depth scale overlaid."""

    name = "trainability"
    description = "E3: trainability phase diagram of deep tanh MLPs over (sigma_w^2, depth)"
    cost = "~12 min (paper grid: --set paper=true, ~2 days here; the estimate is printed)"
    source = "Schoenholz et al. 2017, Deep information propagation (Figure 5)"
    Config = TrainabilityConfig
    quick: ClassVar[dict[str, Any]] = {
        "sigma_w2s": (1.0, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0),
        "depths": (10, 30, 60, 90),
        "width": 64,
        "steps": 250,
        "lr": 0.01,
        "train_eval_size": 1000,
    }
    quick_cost = "~2 min"

    def validate(self, config: TrainabilityConfig) -> None:
        super().validate(config)
        check_dataset(config.dataset, train_eval_size=config.train_eval_size)
        c = effective(config)
        check_positive(width=c.width)
        if not (math.isfinite(c.sigma_b2) and c.sigma_b2 >= 0):
            raise InitlabError(f"sigma_b2 must be a number >= 0, got {c.sigma_b2}")
        if not c.sigma_w2s or any(not w > 0 for w in c.sigma_w2s):
            raise InitlabError("sigma_w2s must list positive values, e.g. [1.0, 1.75, 3.0]")
        if not c.depths or any(d < 1 for d in c.depths):
            raise InitlabError("depths must list positive numbers of layers, e.g. [10, 50]")

    def plan(self, config: TrainabilityConfig, seed: int = 0) -> list[RunSpec]:
        c = effective(config)
        if config.paper:
            print(
                f"trainability: paper grid, {len(c.sigma_w2s)} x {len(c.depths)} networks, "
                f"estimated {estimated_seconds(config) / 3600:.1f} h on this CPU",
                file=sys.stderr,
            )
        runs = []
        for depth in c.depths:
            for i, w2 in enumerate(c.sigma_w2s):
                spec = {
                    "dataset": c.dataset,
                    "depth": depth,
                    "width": c.width,
                    "sigma_w2": w2,
                    "sigma_b2": c.sigma_b2,
                    "lr": c.lr,
                    "steps": c.steps,
                    "batch_size": c.batch_size,
                    "train_eval_size": c.train_eval_size,
                    "batch_seed": seed,
                }
                key = f"depth={depth}/sigma_w2={w2:g}"
                runs.append(RunSpec(key, spec, seed + i, group=f"depth={depth}"))
        return runs

    def execute_group(
        self,
        runs: list[RunSpec],
        config: TrainabilityConfig,
        recorders: list[Recorder],
        progress: Progress = no_progress,
    ) -> list[RunOutcome]:
        from initlab.models.mlp import MLPSpec

        first = runs[0].spec
        train = load_split(first["dataset"], "train")
        size = first["train_eval_size"]
        probe = train.head(size) if 0 < size < len(train) else train
        spec = MLPSpec((train.num_features, *[first["width"]] * first["depth"], 10), "tanh")
        members = [_member(spec, r.spec["sigma_w2"], r.spec["sigma_b2"], r.seed) for r in runs]
        _, outcomes = train_group(
            runs,
            recorders,
            progress,
            members=members,
            data=train,
            spec=spec,
            keep=("train_loss", "valid_loss", "valid_acc"),
            lr=first["lr"],
            steps=first["steps"],
            batch_size=first["batch_size"],
            batch_seed=first["batch_seed"],
            eval_data=probe,
            eval_every=first["steps"],
            log_every=10,
        )
        return outcomes

    # -- results ----------------------------------------------------------------------
    def _grid(self, config: TrainabilityConfig, data: ExperimentData) -> list[list[float]]:
        """Final training accuracy, rows = depths, columns = sigma_w2s (NaN: missing)."""
        c = effective(config)
        cells = {(r.spec["depth"], r.spec["sigma_w2"]): r for r in data.finished()}
        grid = []
        for depth in c.depths:
            row = []
            for w2 in c.sigma_w2s:
                run = cells.get((depth, w2))
                acc = run.summary.get("valid_acc") if run is not None else None
                row.append(float(acc) if isinstance(acc, float) else (0.0 if run else math.nan))
            grid.append(row)
        return grid

    def figures(self, config: TrainabilityConfig, data: ExperimentData) -> list[FigureInfo]:
        c = effective(config)
        if not data.finished():
            return []
        from initlab.init.meanfield import critical_point

        grid = self._grid(config, data)
        xs, xis = xi_curve(c.sigma_b2, min(c.sigma_w2s), max(c.sigma_w2s))
        top = max(c.depths) * 1.05
        curves = []
        for k, multiple in enumerate(c.xi_multiples):
            ys = [min(multiple * xi, 10 * top) for xi in xis]
            style = "--" if k % 2 else "-"
            curves.append(Series(xs, ys, f"{multiple:g} ξ_c", "white", linestyle=style))
        critical = critical_point(c.sigma_b2)[0]
        panel = HeatmapPanel(
            grid,
            title=f"{dataset_title(c.dataset)}: training accuracy after {c.steps} SGD steps",
            xlabel="σ_w² (weights N(0, σ_w²/n))",
            ylabel="depth (hidden layers)",
            cmap="magma",
            vmin=0.0,
            vmax=1.0,
            colorbar_label="training accuracy",
            x=list(c.sigma_w2s),
            y=[float(d) for d in c.depths],
            curves=curves,
            vlines=[(critical, f"critical σ_w² = {critical:.3g}")],
            note=f"σ_b² = {fmt(c.sigma_b2)}, width {c.width}",
        )
        return [
            FigureInfo(
                name="trainability",
                title="Trainability of vanilla tanh networks (Schoenholz et al. 2017)",
                panels=[[panel]],
                caption=(
                    "Each cell: one tanh MLP trained with SGD (lr "
                    f"{fmt(c.lr)}, batch {c.batch_size}); colour = accuracy on "
                    f"{c.train_eval_size} training examples (chance 0.1). White curves: "
                    "multiples of the mean-field correlation depth scale ξ_c; dotted: the "
                    "critical σ_w² (χ_1 = 1). Networks train where depth < ~6 ξ_c."
                ),
                panel_size=(6.4, 4.4),
            )
        ]

    def summary(self, config: TrainabilityConfig, data: ExperimentData) -> dict[str, Any]:
        from initlab.init.meanfield import critical_point, depth_scales

        c = effective(config)
        grid = self._grid(config, data)
        critical = critical_point(c.sigma_b2)[0]
        xi = {w2: depth_scales(w2, c.sigma_b2).xi_c for w2 in c.sigma_w2s}
        inside = outside = inside_ok = outside_ok = 0
        by_depth: dict[str, Any] = {}
        for depth, row in zip(c.depths, grid, strict=True):
            finite = [(w2, a) for w2, a in zip(c.sigma_w2s, row, strict=True) if math.isfinite(a)]
            if not finite:
                continue
            best = max(finite, key=lambda p: p[1])
            trained = [w2 for w2, a in finite if a > TRAINED_ABOVE]
            by_depth[str(depth)] = {
                "best_sigma_w2": best[0],
                "best_acc": best[1],
                "trained_sigma_w2": trained,
                "acc": {f"{w2:g}": a for w2, a in finite},
            }
            for w2, acc in finite:
                if depth <= 6 * xi[w2]:
                    inside += 1
                    inside_ok += acc > TRAINED_ABOVE
                else:
                    outside += 1
                    outside_ok += acc > TRAINED_ABOVE
        return {
            "critical_sigma_w2": critical,
            "sigma_b2": c.sigma_b2,
            "xi_c": {f"{w2:g}": v for w2, v in xi.items()},
            "by_depth": by_depth,
            "within_6xi": {"cells": inside, "trained": inside_ok},
            "beyond_6xi": {"cells": outside, "trained": outside_ok},
            "trained_above": TRAINED_ABOVE,
        }

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        out = []
        critical = summary["critical_sigma_w2"]
        for depth, row in summary["by_depth"].items():
            trained = row["trained_sigma_w2"]
            span = f"sigma_w^2 in [{min(trained):g}, {max(trained):g}]" if trained else "none"
            out.append(
                f"depth {depth}: trained (accuracy > {summary['trained_above']:g}): {span}; "
                f"best sigma_w^2 = {row['best_sigma_w2']:g} ({row['best_acc']:.3f}); "
                f"critical {critical:.3g}."
            )
        inside, beyond = summary["within_6xi"], summary["beyond_6xi"]
        if inside["cells"]:
            out.append(
                f"Within 6 xi_c: {inside['trained']} of {inside['cells']} networks trained; "
                f"beyond 6 xi_c: {beyond['trained']} of {beyond['cells']}."
            )
        return out
