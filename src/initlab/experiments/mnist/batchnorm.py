"""B3 batchnorm: batch normalization makes training insensitive to the initial weight scale.

Source: Saito, "Deep Learning from Scratch" (2016), sec. 6.3.2, ``batch_norm_test.py``:
the first 1000 MNIST training images, 784-100-100-100-100-100-10 with ReLU, SGD lr 0.01,
minibatches of 100 drawn with replacement, 20 epochs of 10 iterations; weights N(0, w^2)
(biases 0) for 16 scales w = logspace(0, -4, 16); training accuracy (on the 1000 images, in
inference mode) per epoch, with and without batch norm (Ioffe & Szegedy 2015: normalize
each hidden pre-activation over the minibatch, then scale by gamma = 1 and shift by
beta = 0 at the start), drawn as the book's 4x4 grid. Without batch norm, small scales make
the signal vanish and large ones make it explode: the net learns only near w = sqrt(2/n);
with batch norm every layer's input is renormalized, and it learns at almost every scale.

Batch norm here is PyTorch's ``BatchNorm1d`` (running statistics with momentum 0.1, as the
book's 0.9 decay; the running variance is the unbiased one, the book's the biased one) with
the book's ``eps = 10e-7 = 1e-6`` (torch's default is 1e-5): at the two smallest weight
scales the pre-activation variance is below 1e-5, and with torch's eps batch norm cannot
rescale it (the net stays at chance), with the book's it learns.

Precision: the book computes in float64 (NumPy); ``dtype = "float64"`` does the same here.
Without batch norm the two largest scales (std 1 and 0.541) blow up: the weights grow by
orders of magnitude per step, and the loss overflows to NaN/Inf within a few steps (steps 3
and 4 in float32, 5 and 6 in float64, measured on MNIST). The book's panels show about 0.1
there because NumPy's ``argmax`` of an all-NaN output is class 0; here those cells are
marked "diverged" in the figures and the summary, not drawn or counted as an accuracy.
Execution: the 16 scales (times the seeds) are one group for the batch-norm network and
one for the plain network, each trained in one batched computation on the same minibatches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

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
from initlab.experiments.common import check_activations, run_seeds
from initlab.experiments.mnist_task import (
    DATASET_HELP,
    DatasetChoice,
    check_dataset,
    check_hidden,
    dataset_title,
    group_task,
    train_group,
)
from initlab.experiments.registry import register
from initlab.experiments.seeds import stream_seed
from initlab.report.figures import FigureInfo, LinePanel, Series

BOOK_STDS: tuple[float, ...] = tuple(10.0 ** (-4.0 * i / 15) for i in range(16))
"""``np.logspace(0, -4, num=16)``: 1, 0.54, 0.29, ..., 1e-4."""

SMALL_STD = 0.01  # "small weight scales": std <= this
BN_COLOR, PLAIN_COLOR = "tab:blue", "tab:orange"


@dataclass(frozen=True)
class BatchnormConfig:
    dataset: Annotated[DatasetChoice, DATASET_HELP] = "mnist"
    train_size: Annotated[int, "training images (the first N of the training set)"] = 1000
    hidden: Annotated[tuple[int, ...], "hidden layer widths"] = (100, 100, 100, 100, 100)
    activation: Annotated[str, "hidden activation"] = "relu"
    stds: Annotated[
        tuple[float, ...], "weight standard deviations, one panel each (book: logspace(0, -4, 16))"
    ] = BOOK_STDS
    lr: Annotated[float, "SGD learning rate"] = 0.01
    epochs: Annotated[int, "epochs (train_size / batch_size iterations each)"] = 20
    batch_size: Annotated[int, "minibatch size (drawn with replacement, as the book)"] = 100
    seeds: Annotated[int, "number of seeds per scale"] = 1
    bn_eps: Annotated[float, "batch norm's eps (the book's 10e-7 = 1e-6; torch's is 1e-5)"] = 1e-6
    dtype: Annotated[
        Literal["float32", "float64"], "precision (float64: the book's NumPy, no overflow)"
    ] = "float32"


def _label(batchnorm: bool) -> str:
    return "batch norm" if batchnorm else "no batch norm"


@register
class Batchnorm(GroupExperiment):
    """Training accuracy with and without batch norm over 16 initial weight scales."""

    name = "batchnorm"
    description = "B3: training accuracy with/without batch norm over 16 weight scales (4x4)"
    cost = "~15 s"  # measured: benchmarks/suite.py, CPU seconds (README, Performance)
    source = "Saito, Deep Learning from Scratch (2016), sec. 6.3.2: batch_norm_test.py"
    Config = BatchnormConfig
    quick: ClassVar[dict[str, Any]] = {"epochs": 10}
    quick_cost = "~15 s"

    def validate(self, config: BatchnormConfig) -> None:
        super().validate(config)
        check_dataset(config.dataset, train_size=config.train_size)
        check_hidden(config.hidden)
        check_activations([config.activation])
        if not config.bn_eps > 0:
            raise InitlabError(f"bn_eps must be positive, got {config.bn_eps}")
        if not config.stds or not all(s > 0 and math.isfinite(s) for s in config.stds):
            raise InitlabError(f"stds must be positive numbers, got {list(config.stds)}")

    def flops(self, config: BatchnormConfig) -> float:
        train = fl.split_size(config.dataset, "train", config.train_size)
        per_epoch = fl.steps_per_epoch(train, config.batch_size)
        return fl.training_flops(
            [784, *config.hidden, 10],
            members=2 * len(config.stds) * config.seeds,
            steps=config.epochs * per_epoch,
            batch=config.batch_size,
            eval_examples=(config.epochs + 1) * train,
        )

    def plan(self, config: BatchnormConfig, seed: int = 0) -> list[RunSpec]:
        runs = []
        for batchnorm in (True, False):
            prefix = "bn" if batchnorm else "plain"
            for s in run_seeds(seed, config.seeds):
                for std in config.stds:
                    key = f"{prefix}/std={std:.3g}" + (f"/seed={s}" if config.seeds > 1 else "")
                    spec = {
                        "dataset": config.dataset,
                        "train_size": config.train_size,
                        "hidden": list(config.hidden),
                        "activation": config.activation,
                        "batchnorm": batchnorm,
                        "std": std,
                        "lr": config.lr,
                        "epochs": config.epochs,
                        "batch_size": config.batch_size,
                        "batch_seed": stream_seed(seed, "minibatches"),
                        "bn_eps": config.bn_eps,
                        "dtype": config.dtype,
                    }
                    runs.append(RunSpec(key, spec, s, group=prefix))
        return runs

    def execute_group(
        self,
        runs: list[RunSpec],
        config: BatchnormConfig,
        recorders: list[Recorder],
        progress: Progress = no_progress,
    ) -> list[RunOutcome]:
        first = runs[0].spec
        task = group_task(first, test=False)
        _, outcomes = train_group(
            runs,
            recorders,
            progress,
            members=[(f"normal:std={run.spec['std']!r}", run.seed) for run in runs],
            data=task.train,
            spec=task.spec,
            keep=("train_loss", "train_eval_acc"),
            lr=first["lr"],
            epochs=first["epochs"],
            batch_size=first["batch_size"],
            batch_seed=first["batch_seed"],
            eval_train=True,
            bn_eps=first.get("bn_eps", 1e-5),
            dtype=first.get("dtype", "float32"),
        )
        return outcomes

    # -- results ----------------------------------------------------------------------
    def _runs(self, data: ExperimentData, batchnorm: bool, std: float) -> list[Any]:
        return [
            r for r in data.finished() if r.spec["batchnorm"] == batchnorm and r.spec["std"] == std
        ]

    def _curve(self, data: ExperimentData, batchnorm: bool, std: float) -> tuple[list, list]:
        """Epochs and training accuracy of one cell, averaged over its seeds (a diverged
        seed's curve ends where it diverged, and so does the average)."""
        runs = self._runs(data, batchnorm, std)
        if not runs:
            return [], []
        curves = [r.series("train_eval_acc") for r in runs]
        length = min(len(c[1]) for c in curves)
        per_epoch = max(1, math.ceil(runs[0].spec["train_size"] / runs[0].spec["batch_size"]))
        epochs = [s / per_epoch for s in curves[0][0][:length]]
        mean = [sum(c[1][t] for c in curves) / len(curves) for t in range(length)]
        return epochs, mean

    def _final(self, data: ExperimentData, batchnorm: bool, std: float) -> float | None:
        """Final training accuracy, mean over the seeds that did not diverge (None: none)."""
        finals = [
            r.series("train_eval_acc")[1][-1]
            for r in self._runs(data, batchnorm, std)
            if r.status == "done" and r.series("train_eval_acc")[1]
        ]
        return sum(finals) / len(finals) if finals else None

    def _diverged_note(self, data: ExperimentData, std: float) -> str | None:
        """ "no BN: NaN at step 3" for the runs of this scale that diverged (None if none)."""
        lines = []
        for run in data.finished():
            if run.spec["std"] == std and run.status == "diverged":
                at = run.summary.get("diverged_at")
                lines.append(f"{'BN' if run.spec['batchnorm'] else 'no BN'}: NaN at step {at}")
        return "\n".join(dict.fromkeys(lines)) or None

    def figures(self, config: BatchnormConfig, data: ExperimentData) -> list[FigureInfo]:
        cells: list[LinePanel | None] = []
        finals: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        diverged: dict[bool, list[float]] = {True: [], False: []}
        for i, std in enumerate(config.stds):
            series = []
            for batchnorm in (True, False):
                epochs, acc = self._curve(data, batchnorm, std)
                if not epochs:
                    continue
                final = self._final(data, batchnorm, std)
                if final is None:
                    diverged[batchnorm].append(std)
                else:
                    finals[batchnorm].append((std, final))
                series.append(
                    Series(
                        epochs,
                        acc,
                        _label(batchnorm),
                        BN_COLOR if batchnorm else PLAIN_COLOR,
                        "-" if batchnorm else "--",
                    )
                )
            cells.append(
                LinePanel(
                    series,
                    title=f"W std = {std:.3g}",
                    xlabel="epoch",
                    ylabel="training accuracy",
                    ylim=(0.0, 1.0),
                    legend=i == 0,
                    note=self._diverged_note(data, std),
                )
            )
        if not any(c is not None and c.series for c in cells):
            return []
        cols = 4 if len(cells) > 4 else len(cells)
        grid = [cells[i : i + cols] for i in range(0, len(cells), cols)]
        grid[-1] = grid[-1] + [None] * (cols - len(grid[-1]))
        where = dataset_title(config.dataset)
        sweep = [
            LinePanel(
                [
                    Series(
                        [s for s, _ in finals[bn]],
                        [a for _, a in finals[bn]],
                        _label(bn),
                        BN_COLOR if bn else PLAIN_COLOR,
                        "-" if bn else "--",
                        marker="o",
                    )
                    for bn in (True, False)
                    if finals[bn]
                ],
                title=f"after {config.epochs} epochs",
                xlabel="weight std of the init (log scale)",
                ylabel="final training accuracy",
                xscale="log",
                ylim=(-0.04, 1.0),
                vlines=[
                    (std, "diverged (NaN/Inf): no accuracy" if k == 0 else "")
                    for k, std in enumerate(sorted(set(diverged[True] + diverged[False])))
                ],
                note=_diverged_cells(diverged),
            )
        ]
        return [
            FigureInfo(
                name="batchnorm-grid",
                title=f"Batch norm vs initial weight scale: {where}, first "
                f"{config.train_size or 'all'} images",
                panels=grid,  # type: ignore[arg-type]
                caption=(
                    "Training accuracy per epoch (measured on the training images in inference "
                    f"mode), one panel per weight std, {config.seeds} seed(s); solid: with "
                    "batch norm, dashed: without. Both networks of a panel start from the "
                    "same weights and see the same minibatches; a run whose loss became NaN/Inf "
                    "(diverged) stops there, as the panel's note says."
                ),
                sharex=True,
                sharey=True,
                panel_size=(2.6, 2.0),
            ),
            FigureInfo(
                name="batchnorm-sweep",
                title="Final training accuracy vs initial weight scale",
                panels=[sweep],  # type: ignore[list-item]
                caption=(
                    "The last point of every panel of the grid against the weight std (mean "
                    "over the seeds that did not diverge); a dotted vertical line marks a "
                    "scale where every seed of a network diverged (NaN/Inf, "
                    f"{config.dtype}): it has no accuracy and is not drawn as one."
                ),
                panel_size=(6.0, 3.8),
            ),
        ]

    def summary(self, config: BatchnormConfig, data: ExperimentData) -> dict[str, Any]:
        rows = {}
        for std in config.stds:
            cell: dict[str, Any] = {}
            for batchnorm in (True, False):
                runs = self._runs(data, batchnorm, std)
                key = "bn" if batchnorm else "plain"
                cell[f"{key}_final_acc"] = self._final(data, batchnorm, std)
                cell[f"{key}_runs"] = len(runs)
                cell[f"{key}_diverged"] = sum(r.status == "diverged" for r in runs)
                cell[f"{key}_status"] = _cell_status(len(runs), cell[f"{key}_diverged"])
            rows[f"{std:.3g}"] = cell
        return {
            "epochs": config.epochs,
            "train_size": config.train_size,
            "bn_eps": config.bn_eps,
            "dtype": config.dtype,
            "by_std": rows,
        }

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        rows = {
            float(k): r
            for k, r in summary.get("by_std", {}).items()
            if r["bn_runs"] and r["plain_runs"]
        }
        if not rows:
            return []

        both = {
            s: r
            for s, r in rows.items()
            if r["bn_final_acc"] is not None and r["plain_final_acc"] is not None
        }
        better = [s for s, r in both.items() if r["bn_final_acc"] > r["plain_final_acc"]]
        left_out = len(rows) - len(both)
        out = [
            f"Batch norm ends with the higher training accuracy at {len(better)} of {len(both)} "
            f"weight scales where both networks finished (after {summary['epochs']} epochs"
            + (f"; {left_out} scale(s) with a diverged network left out" if left_out else "")
            + ")."
        ]
        small = {s: r for s, r in both.items() if s <= SMALL_STD}
        if small:
            bn = sum(r["bn_final_acc"] for r in small.values()) / len(small)
            plain = sum(r["plain_final_acc"] for r in small.values()) / len(small)
            out.append(
                f"Small weights (std <= {SMALL_STD:g}, {len(small)} scales): {bn:.2f} with batch "
                f"norm vs {plain:.2f} without (mean final training accuracy)."
            )
        stalled = sorted(
            s
            for s, r in rows.items()
            if r["plain_final_acc"] is not None and r["plain_final_acc"] < 0.2
        )
        if stalled:
            out.append(
                f"Without batch norm the net stays near chance (< 0.2) at {len(stalled)} scales "
                f"(std {_scales(stalled)})."
            )
        for key, what in (("plain", "without"), ("bn", "with")):
            lost = sorted(s for s, r in rows.items() if r[f"{key}_diverged"])
            if lost:
                out.append(
                    f"Diverged (NaN/Inf, {summary.get('dtype', 'float32')}) {what} batch norm "
                    f"at std {_scales(lost)}: the signal explodes through the layers (the "
                    "book's panels read ~0.1 there: NumPy's argmax of NaN outputs is class 0)."
                )
        return out


def _diverged_cells(diverged: dict[bool, list[float]]) -> str | None:
    """The panel note naming the diverged cells, e.g. "diverged: no BN at 1, 0.541"."""
    parts = [
        f"{'BN' if bn else 'no BN'} at {', '.join(f'{s:.3g}' for s in stds)}"
        for bn, stds in diverged.items()
        if stds
    ]
    return "diverged: " + "; ".join(parts) if parts else None


def _cell_status(runs: int, diverged: int) -> str:
    """done, diverged (every seed) or "k of n diverged"; "missing" without runs."""
    if runs == 0:
        return "missing"
    if diverged == 0:
        return "done"
    return "diverged" if diverged == runs else f"{diverged} of {runs} diverged"


def _scales(stds: list[float]) -> str:
    """Weight scales as a short list: '0.0001 to 0.0464 (11 scales)' when long."""
    if len(stds) > 4:
        return f"{stds[0]:.3g} to {stds[-1]:.3g}"
    return ", ".join(f"{s:.3g}" for s in stds)
