"""A2 symmetry: constant (or zero) init keeps every hidden unit identical, forever.

If all hidden units of a layer start with the same incoming and outgoing weights, they
compute the same function, receive the same gradient and take the same update: gradient
descent can never tell them apart, so the layer behaves like a single unit (e.g. Goodfellow,
Bengio & Courville, "Deep Learning", 2016, sec. 8.4: initialization must "break symmetry";
Saito, "Deep Learning from Scratch", sec. 6.2.1 on zero initial weights). Random init breaks
the symmetry at the start; dropout breaks it during training because each unit is dropped
independently.

The experiment trains a one-hidden-layer MLP ``inputs -> hidden (sigmoid) -> classes`` with
:func:`initlab.train.fit_batched` (SGD, cross entropy; all inits and dropout rates of one
activation and seed train together, on the same minibatches) for a few hundred steps and
measures, after training, the largest pairwise Euclidean distance between the hidden units'
incoming weight vectors ``[W1[j, :], b1[j]]``, relative to their mean norm: 0 (to float
precision) means the units are identical.

Data: ``dataset = "auto"`` uses the first ``train_size`` MNIST training images when MNIST
is in the local cache (``initlab data fetch mnist``), otherwise a Shapeset-3x2 set generated
from the seed (Glorot & Bengio's synthetic task, available offline): the symmetry argument
does not depend on the data, only a real learning signal is needed. The run's spec records
which one was used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch

from initlab.errors import InitlabError
from initlab.experiments import flops as fl
from initlab.experiments.base import (
    ExperimentData,
    GroupExperiment,
    Progress,
    Recorder,
    RunOutcome,
    RunSpec,
    no_progress,
)
from initlab.experiments.common import check_activations, check_inits, check_positive, fmt
from initlab.experiments.mnist_task import train_group
from initlab.experiments.registry import register
from initlab.experiments.seeds import stream_seed
from initlab.models.mlp import MLPSpec
from initlab.report.figures import FigureInfo, HeatmapPanel, LinePanel, Series

DatasetChoice = Literal["auto", "mnist", "shapeset"]

IDENTICAL = 1e-5
"""Units count as identical when their largest pairwise distance is below this fraction of
their mean norm (float32 rounding is ~1e-7 relative)."""


@dataclass(frozen=True)
class SymmetryConfig:
    dataset: Annotated[
        DatasetChoice, "auto (cached MNIST, else Shapeset-3x2), mnist (may download) or shapeset"
    ] = "auto"
    train_size: Annotated[int, "training examples (the first N of MNIST's training set)"] = 2000
    hidden: Annotated[int, "hidden units"] = 32
    activations: Annotated[tuple[str, ...], "hidden activation(s)"] = ("sigmoid",)
    inits: Annotated[
        tuple[str, ...], "init schemes of both layers (biases 0): zero, constant, random"
    ] = ("zeros", "constant:value=0.01", "xavier_normal")
    dropouts: Annotated[tuple[float, ...], "dropout rates after the hidden layer"] = (0.0, 0.5)
    steps: Annotated[int, "SGD steps"] = 300
    batch_size: Annotated[int, "minibatch size"] = 100
    lr: Annotated[float, "SGD learning rate"] = 0.5
    seeds: Annotated[int, "number of seeds; each is a separate run"] = 1


def _resolve_dataset(choice: str) -> tuple[str, str]:
    """The dataset to use and why."""
    if choice != "auto":
        return choice, "chosen in the config"
    from initlab.data.mnist import mnist_cache_status

    status = mnist_cache_status()
    if status.ok:
        return "mnist", "MNIST is in the local cache"
    return "shapeset", "MNIST is not cached (initlab data fetch mnist); Shapeset-3x2 is offline"


def load_task(dataset: str, size: int, seed: int) -> Any:
    """The training set: the first ``size`` MNIST images, or ``size`` Shapeset images."""
    from initlab.data.dataset import Dataset

    if dataset == "mnist":
        from initlab.data.mnist import load_mnist

        full = load_mnist("train", progress=False)
        return Dataset(full.x[:size], full.y[:size], f"mnist-train[:{size}]", full.classes)
    from initlab.data.shapeset import make_shapeset

    return make_shapeset(size, seed=seed)


def unit_distances(w1: torch.Tensor, b1: torch.Tensor | None) -> torch.Tensor:
    """Pairwise Euclidean distances between hidden units' incoming weights ``[W1[j], b1[j]]``."""
    units = w1.double() if b1 is None else torch.cat([w1.double(), b1.double()[:, None]], 1)
    return torch.cdist(units, units)


def symmetry_stats(w1: torch.Tensor, b1: torch.Tensor | None) -> dict[str, float]:
    """Largest pairwise distance, mean unit norm, their ratio and the number of distinct units."""
    d = unit_distances(w1, b1)
    units = w1.double() if b1 is None else torch.cat([w1.double(), b1.double()[:, None]], 1)
    norm = float(units.norm(dim=1).mean())
    scale = max(norm, 1e-12)
    distinct, seen = 0, torch.zeros(d.shape[0], dtype=torch.bool)
    for j in range(d.shape[0]):  # greedy clusters of units closer than IDENTICAL * scale
        if not seen[j]:
            distinct += 1
            seen |= d[j] <= IDENTICAL * scale
    return {
        "max_distance": float(d.max()),
        "mean_norm": norm,
        "relative_distance": float(d.max()) / scale,
        "distinct_units": float(distinct),
    }


@register
class Symmetry(GroupExperiment):
    """Hidden units stay identical after training from a constant init; dropout breaks it."""

    name = "symmetry"
    description = (
        "A2: constant/zero init keeps hidden units identical; random init or dropout breaks it"
    )
    cost = "~6 s"  # measured: benchmarks/suite.py, CPU seconds (README, Performance)
    source = "Goodfellow, Bengio & Courville, Deep Learning (2016), sec. 8.4 (breaking symmetry)"
    Config = SymmetryConfig
    quick: ClassVar[dict[str, Any]] = {"steps": 150, "train_size": 1000}

    def validate(self, config: SymmetryConfig) -> None:
        super().validate(config)
        check_activations(config.activations)
        check_inits(config.inits)
        check_positive(
            train_size=config.train_size,
            hidden=config.hidden - 1,
            steps=config.steps,
            batch_size=config.batch_size,
            lr=config.lr,
        )
        for rate in config.dropouts:
            if not 0.0 <= rate < 1.0:
                raise InitlabError(f"dropout rates must be in [0, 1), got {rate}")

    def flops(self, config: SymmetryConfig) -> float:
        dataset, _ = _resolve_dataset(config.dataset)
        inputs, classes = (1024, 9) if dataset == "shapeset" else (784, 10)
        members = config.seeds * len(config.activations) * len(config.inits)
        return fl.training_flops(
            [inputs, config.hidden, classes],
            members=members * len(config.dropouts),
            steps=config.steps,
            batch=config.batch_size,
        )

    def plan(self, config: SymmetryConfig, seed: int = 0) -> list[RunSpec]:
        dataset, _ = _resolve_dataset(config.dataset)
        runs = []
        for s in range(seed, seed + config.seeds):
            for activation in config.activations:
                for init in config.inits:
                    for rate in config.dropouts:
                        key = f"{activation}/{init}/dropout={rate:g}"
                        key += f"/seed={s}" if config.seeds > 1 else ""
                        spec = {
                            "dataset": dataset,
                            "train_size": config.train_size,
                            "hidden": config.hidden,
                            "activation": activation,
                            "init": init,
                            "dropout": rate,
                            "steps": config.steps,
                            "batch_size": config.batch_size,
                            "lr": config.lr,
                            "data_seed": stream_seed(s, "data"),
                            "batch_seed": stream_seed(s, "minibatches"),
                        }
                        runs.append(RunSpec(key, spec, s, group=f"{activation}/seed={s}"))
        return runs

    def execute_group(
        self,
        runs: list[RunSpec],
        config: SymmetryConfig,
        recorders: list[Recorder],
        progress: Progress = no_progress,
    ) -> list[RunOutcome]:
        """All inits and dropout rates of one activation and seed train together in the
        batched engine, on the same minibatches (the seed's stream)."""
        from initlab.init import initialize
        from initlab.models import mlp

        first = runs[0].spec
        data = load_task(first["dataset"], first["train_size"], first["data_seed"])
        widths = [data.num_features, first["hidden"], data.num_classes]
        models = []
        for run in runs:
            model = mlp(widths, first["activation"], dropout=run.spec["dropout"])
            initialize(model, run.spec["init"], bias="zeros", seed=run.seed)
            models.append(model)
        before = [
            symmetry_stats(m.linear1.weight.detach(), m.linear1.bias.detach()) for m in models
        ]
        result, outcomes = train_group(
            runs,
            recorders,
            progress,
            members=models,
            data=data,
            spec=MLPSpec(tuple(widths), first["activation"]),
            keep=("train_loss", "train_acc"),
            lr=first["lr"],
            steps=first["steps"],
            batch_size=first["batch_size"],
            batch_seed=first["batch_seed"],
            dropout=[run.spec["dropout"] for run in runs],
        )
        for member, (recorder, outcome) in enumerate(zip(recorders, outcomes, strict=True)):
            state = result.results[member].final_state
            recorder.save_params(
                {k: state[k] for k in ("linear1.weight", "linear1.bias", "linear2.weight")}
            )
            after = symmetry_stats(state["linear1.weight"], state["linear1.bias"])
            final = outcome.summary.get("train_loss", math.nan)
            outcome.summary.update(
                {f"{k}_before": v for k, v in before[member].items()},
                **after,
                final_loss=final if isinstance(final, float) else math.nan,
                dataset=data.name,
            )
        return outcomes

    # -- results ----------------------------------------------------------------------
    def figures(self, config: SymmetryConfig, data: ExperimentData) -> list[FigureInfo]:
        loaded = [(r, r.params()) for r in data.finished()]
        pairs = [(r, p) for r, p in loaded if p is not None]
        if not pairs:
            return []
        runs = [r for r, _ in pairs]
        # one colour scale for every distance matrix: identical units read as black
        top = max(
            float(unit_distances(p["linear1.weight"], p["linear1.bias"]).max()) for _, p in pairs
        )
        weights, distances, curves = [], [], []
        for run, params in pairs:
            w1, b1 = params["linear1.weight"], params["linear1.bias"]
            stats = symmetry_stats(w1, b1)
            title = f"{run.spec['init']}\ndropout {run.spec['dropout']:g}"
            limit = float(w1.abs().max()) or 1.0
            weights.append(
                HeatmapPanel(
                    w1.double().tolist(),
                    title=title,
                    xlabel="input pixel",
                    ylabel="hidden unit" if not weights else "",
                    cmap="RdBu_r",
                    vmin=-limit,
                    vmax=limit,
                    colorbar_label="weight",
                )
            )
            dist = unit_distances(w1, b1)
            distances.append(
                HeatmapPanel(
                    dist.tolist(),
                    xlabel="hidden unit",
                    ylabel="hidden unit" if not distances else "",
                    cmap="magma",
                    vmin=0.0,
                    vmax=max(top, 1e-12),
                    colorbar_label="distance",
                    note=f"max {fmt(stats['max_distance'], 2)}\n"
                    f"{int(stats['distinct_units'])} distinct",
                )
            )
            steps, loss = run.series("train_loss")
            curves.append(
                LinePanel(
                    [Series(steps, loss, None, "tab:blue", linewidth=1.0)],
                    xlabel="SGD step",
                    ylabel="training loss (cross entropy)" if not curves else "",
                    legend=False,
                )
            )
        name = runs[0].spec["dataset"]
        return [
            FigureInfo(
                name="symmetry",
                title="Symmetry: hidden units after training, per init and dropout",
                panels=[weights, distances, curves],  # type: ignore[list-item]
                caption=(
                    f"One column per run ({name}, {config.hidden} {runs[0].spec['activation']} "
                    f"hidden units, {config.steps} SGD steps). Top: each hidden unit's incoming "
                    "weights after training (one row per unit; identical rows = identical "
                    "units). Middle: pairwise distances between units, one colour scale for "
                    "all runs (all black = one unit copied). Bottom: training loss."
                ),
                sharey="row",
                panel_size=(2.6, 2.3),
                row_labels=["incoming weights", "unit distances", "loss"],
            )
        ]

    def summary(self, config: SymmetryConfig, data: ExperimentData) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for run in data.finished():
            s = run.summary
            out[run.key] = {
                "init": run.spec["init"],
                "dropout": run.spec["dropout"],
                "status": run.status,
                "dataset": s.get("dataset", run.spec["dataset"]),
                "relative_distance_before": s.get("relative_distance_before"),
                "relative_distance": s.get("relative_distance"),
                "max_distance": s.get("max_distance"),
                "distinct_units": s.get("distinct_units"),
                "hidden": run.spec["hidden"],
                "final_loss": s.get("final_loss"),
            }
        return out

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        out = []
        for row in summary.values():
            distinct = int(row["distinct_units"] or 0)
            rel = row["relative_distance"]
            what = f"{row['init']}, dropout {row['dropout']:g}"
            if rel is not None and rel < IDENTICAL:
                out.append(
                    f"{what}: all {row['hidden']} hidden units identical after training "
                    f"(max pairwise distance {fmt(row['max_distance'], 2)}, "
                    f"{fmt(rel, 2)} of their norm; final loss {fmt(row['final_loss'], 3)})."
                )
            else:
                out.append(
                    f"{what}: symmetry broken, {distinct} distinct units of {row['hidden']} "
                    f"(max distance {fmt(rel, 2)} of their norm; final loss "
                    f"{fmt(row['final_loss'], 3)})."
                )
        return out
