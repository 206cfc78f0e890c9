"""B4 overfit: a big network on 300 images memorizes them; weight decay and dropout fight it.

Source: Saito, "Deep Learning from Scratch" (2016), sec. 6.4, ``overfit_weight_decay.py``
and ``overfit_dropout.py``: the first 300 MNIST training images, 784-100x6-10 with ReLU and
He init (N(0, 2/n), biases 0), SGD lr 0.01, minibatches of 100 drawn with replacement, 201
epochs of 3 iterations; training and test accuracy (all 300 training and all 10000 test
images, inference mode) after every epoch. Three variants of the same network:

- plain: training accuracy reaches 1.0 while test accuracy stalls far below (overfitting);
- weight decay: the loss gets the L2 term ``0.5 * lambda * sum ||W||^2`` over the weight
  matrices (not the biases), lambda = 0.1, so every step also shrinks the weights by
  ``lr * lambda * W``: training accuracy stays lower and the gap shrinks;
- dropout: each hidden unit is zeroed with probability 0.2 in training (the book's
  ``dropout_ratio = 0.2``), as the book's ``Dropout`` layer does it: kept units are not
  rescaled in training and every unit is multiplied by 0.8 at test time
  (``dropout_mode = "scale_at_test"``, Srivastava et al. 2014). PyTorch's inverted dropout
  (``dropout_mode = "inverted"``: kept units scaled by 1/0.8 in training) is the same in
  expectation but not under SGD lr 0.01: the book's version has 0.8x smaller activations
  in every layer and learns much more slowly. The book's ``overfit_dropout.py`` trains for
  301 epochs (``dropout_epochs``), its weight-decay script for 201 (``epochs``).

Execution: the variants of one epoch count (times the seeds) are one group: one batched
computation with per-member weight decay and dropout; all variants see the same minibatch
stream (the dropout run's first 201 epochs are the others' minibatches) and, at each seed,
start from the same initial weights, so the variants differ only in the regularizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args

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
from initlab.experiments.common import check_activations, check_inits, color, run_seeds
from initlab.experiments.mnist_task import (
    DATASET_HELP,
    DatasetChoice,
    check_dataset,
    check_hidden,
    dataset_title,
    group_task,
    tail_mean,
    train_group,
)
from initlab.experiments.registry import register
from initlab.experiments.seeds import stream_seed
from initlab.models.mlp import DropoutMode
from initlab.report.figures import FigureInfo, LinePanel, Series

Variant = Literal["plain", "weight_decay", "dropout"]
VARIANTS: tuple[str, ...] = get_args(Variant)
TAIL = 10  # the gap is averaged over the last TAIL evaluations (one per epoch)
SAME_GAP = 0.01  # gaps closer than this count as "about the same"


@dataclass(frozen=True)
class OverfitConfig:
    dataset: Annotated[DatasetChoice, DATASET_HELP] = "mnist"
    train_size: Annotated[int, "training images (the first N of the training set)"] = 300
    test_size: Annotated[int, "test images evaluated every epoch (0: all 10000)"] = 0
    hidden: Annotated[tuple[int, ...], "hidden layer widths"] = (100,) * 6
    activation: Annotated[str, "hidden activation"] = "relu"
    init: Annotated[str, "init scheme (biases 0); the book's MultiLayerNet uses He"] = "he_normal"
    variants: Annotated[
        tuple[Variant, ...], "variants: plain, weight_decay (L2 in the loss), dropout"
    ] = VARIANTS  # type: ignore[assignment]
    weight_decay: Annotated[float, "L2 coefficient lambda of the weight_decay variant"] = 0.1
    dropout: Annotated[float, "dropout probability of the dropout variant"] = 0.2
    dropout_mode: Annotated[
        DropoutMode, "scale_at_test (the book's: x (1 - p) at test time) or inverted (PyTorch's)"
    ] = "scale_at_test"
    lr: Annotated[float, "SGD learning rate"] = 0.01
    epochs: Annotated[
        int, "epochs of plain and weight decay (train_size / batch_size iterations each)"
    ] = 201
    dropout_epochs: Annotated[int, "epochs of the dropout variant (the book's 301)"] = 301
    batch_size: Annotated[int, "minibatch size (drawn with replacement, as the book)"] = 100
    seeds: Annotated[int, "number of seeds per variant"] = 1


TITLES = {"plain": "plain", "weight_decay": "weight decay", "dropout": "dropout"}


def _title(variant: str, spec: dict[str, Any]) -> str:
    if variant == "weight_decay":
        return f"weight decay λ = {spec['weight_decay']:g}"
    if variant == "dropout":
        mode = spec.get("dropout_mode", "inverted").replace("_", " ")
        return f"dropout {spec['dropout']:g} ({mode}, {spec['epochs']} epochs)"
    return "no regularization"


@register
class Overfit(GroupExperiment):
    """Train and test accuracy per epoch on 300 images: plain, weight decay, dropout."""

    name = "overfit"
    description = "B4: 300 MNIST images: train/test accuracy, plain vs weight decay vs dropout"
    cost = "~40 s"  # measured: benchmarks/suite.py, CPU seconds (README, Performance)
    source = (
        "Saito, Deep Learning from Scratch (2016), sec. 6.4: overfit_weight_decay.py, "
        "overfit_dropout.py"
    )
    Config = OverfitConfig
    quick: ClassVar[dict[str, Any]] = {"epochs": 101, "dropout_epochs": 151, "test_size": 2000}
    quick_cost = "~10 s"

    def validate(self, config: OverfitConfig) -> None:
        super().validate(config)
        check_dataset(config.dataset, train_size=config.train_size, test_size=config.test_size)
        check_hidden(config.hidden)
        check_activations([config.activation])
        check_inits([config.init])
        if not config.variants:
            raise InitlabError(f"variants is empty; valid: {', '.join(VARIANTS)}")
        if not 0.0 < config.dropout < 1.0:
            raise InitlabError(f"dropout must be in (0, 1), got {config.dropout}")
        if config.dropout_epochs < 1:
            raise InitlabError(f"dropout_epochs must be positive, got {config.dropout_epochs}")
        if config.weight_decay < 0:
            raise InitlabError(f"weight_decay must be >= 0, got {config.weight_decay}")

    def flops(self, config: OverfitConfig) -> float:
        train = fl.split_size(config.dataset, "train", config.train_size)
        test = fl.split_size(config.dataset, "test", config.test_size)
        per_epoch = fl.steps_per_epoch(train, config.batch_size)
        total = 0.0
        for variant in dict.fromkeys(config.variants):
            epochs = config.dropout_epochs if variant == "dropout" else config.epochs
            total += fl.training_flops(
                [784, *config.hidden, 10],
                members=config.seeds,
                steps=epochs * per_epoch,
                batch=config.batch_size,
                eval_examples=(epochs + 1) * (train + test),
            )
        return total

    def plan(self, config: OverfitConfig, seed: int = 0) -> list[RunSpec]:
        runs = []
        for s in run_seeds(seed, config.seeds):
            for variant in dict.fromkeys(config.variants):
                key = variant + (f"/seed={s}" if config.seeds > 1 else "")
                spec = {
                    "dataset": config.dataset,
                    "train_size": config.train_size,
                    "test_size": config.test_size,
                    "hidden": list(config.hidden),
                    "activation": config.activation,
                    "init": config.init,
                    "variant": variant,
                    "weight_decay": config.weight_decay if variant == "weight_decay" else 0.0,
                    "dropout": config.dropout if variant == "dropout" else 0.0,
                    "lr": config.lr,
                    "epochs": config.dropout_epochs if variant == "dropout" else config.epochs,
                    "batch_size": config.batch_size,
                    "batch_seed": stream_seed(seed, "minibatches"),
                }
                if variant == "dropout":
                    spec["dropout_mode"] = config.dropout_mode
                runs.append(RunSpec(key, spec, s, group=f"overfit/epochs={spec['epochs']}"))
        return runs

    def execute_group(
        self,
        runs: list[RunSpec],
        config: OverfitConfig,
        recorders: list[Recorder],
        progress: Progress = no_progress,
    ) -> list[RunOutcome]:
        first = runs[0].spec
        task = group_task(first)
        _, outcomes = train_group(
            runs,
            recorders,
            progress,
            members=[(run.spec["init"], run.seed) for run in runs],
            data=task.train,
            spec=task.spec,
            keep=("train_eval_acc", "train_eval_loss", "valid_acc", "valid_loss"),
            lr=first["lr"],
            weight_decay=[run.spec["weight_decay"] for run in runs],
            dropout=[run.spec["dropout"] for run in runs],
            epochs=first["epochs"],
            batch_size=first["batch_size"],
            batch_seed=first["batch_seed"],
            eval_data=task.test,
            eval_train=True,
            dropout_mode=next(
                (r.spec["dropout_mode"] for r in runs if "dropout_mode" in r.spec), "inverted"
            ),
        )
        return outcomes

    # -- results ----------------------------------------------------------------------
    def _runs(self, data: ExperimentData, variant: str) -> list[Any]:
        return [r for r in data.finished() if r.spec["variant"] == variant]

    def figures(self, config: OverfitConfig, data: ExperimentData) -> list[FigureInfo]:
        panels: list[LinePanel] = []
        gaps = []
        for i, variant in enumerate(dict.fromkeys(config.variants)):
            runs = self._runs(data, variant)
            if not runs:
                continue
            per_epoch = max(1, math.ceil(runs[0].spec["train_size"] / config.batch_size))
            series = []
            gap_x: list[float] = []
            gap_y: list[float] = []
            for j, run in enumerate(runs):
                steps, train = run.series("train_eval_acc")
                _, test = run.series("valid_acc")
                epochs = [s / per_epoch for s in steps]
                labels = ("train", "test") if j == 0 else (None, None)
                series.append(Series(epochs, train, labels[0], "tab:blue", linewidth=1.2))
                series.append(Series(epochs, test, labels[1], "tab:red", "--", linewidth=1.2))
                if j == 0:
                    gap_x = epochs
                    gap_y = [a - b for a, b in zip(train, test, strict=False)]
            summary = self._row(runs)
            panels.append(
                LinePanel(
                    series,
                    title=_title(variant, runs[0].spec),
                    xlabel="epoch",
                    ylabel="accuracy",
                    ylim=(0.0, 1.0),
                    note=f"train {summary['train_acc']:.2f}, test {summary['test_acc']:.2f}\n"
                    f"gap {summary['gap']:.2f}",
                )
            )
            gaps.append(Series(gap_x, gap_y, TITLES[variant], color(i)))
        if not panels:
            return []
        gap_panel = LinePanel(
            gaps,
            title="train - test accuracy",
            xlabel="epoch",
            ylabel="accuracy gap",
            ylim=(-0.1, 1.0),
        )
        return [
            FigureInfo(
                name="overfit",
                title=f"Overfitting {config.train_size or 'all'} training images of "
                f"{dataset_title(config.dataset)}: {len(config.hidden)} hidden layers",
                panels=[[*panels, gap_panel]],  # type: ignore[list-item]
                caption=(
                    "Accuracy after every epoch on the training images (solid) and on "
                    f"{config.test_size or 'all'} test images (dashed), in inference mode; "
                    "right: their gap (first seed). Dropout is the "
                    f"{config.dropout_mode.replace('_', ' ')} kind, for {config.dropout_epochs} "
                    f"epochs (the others {config.epochs}, as the book's scripts). "
                    "The variants start from the same weights "
                    "and see the same minibatches."
                ),
                sharey=True,
                panel_size=(3.4, 3.0),
            )
        ]

    def _row(self, runs: list[Any]) -> dict[str, Any]:
        """Final accuracies and the gap (averaged over the last epochs and the seeds)."""
        train = [tail_mean(r.series("train_eval_acc")[1], TAIL) for r in runs]
        test = [tail_mean(r.series("valid_acc")[1], TAIL) for r in runs]
        mean_train, mean_test = sum(train) / len(train), sum(test) / len(test)
        return {
            "train_acc": mean_train,
            "test_acc": mean_test,
            "gap": mean_train - mean_test,
            "runs": len(runs),
            "diverged": sum(r.status == "diverged" for r in runs),
        }

    def summary(self, config: OverfitConfig, data: ExperimentData) -> dict[str, Any]:
        rows = {}
        for variant in dict.fromkeys(config.variants):
            runs = self._runs(data, variant)
            if runs:
                rows[variant] = {"setting": _title(variant, runs[0].spec), **self._row(runs)}
        return {
            "epochs": config.epochs,
            "dropout_epochs": config.dropout_epochs,
            "dropout_mode": config.dropout_mode,
            "averaged_over_last_epochs": TAIL,
            "variants": rows,
        }

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        rows = summary.get("variants", {})
        out = []
        for row in rows.values():
            out.append(
                f"{row['setting']}: train accuracy {row['train_acc']:.3f}, test "
                f"{row['test_acc']:.3f}, gap {row['gap']:.3f} (last {TAIL} epochs)."
            )
        plain = rows.get("plain")
        if plain is not None:
            for variant in ("weight_decay", "dropout"):
                row = rows.get(variant)
                if row is None or not math.isfinite(row["gap"]):
                    continue
                change = row["gap"] - plain["gap"]
                if change < -SAME_GAP:
                    word = "shrinks"
                elif change > SAME_GAP:
                    word = "widens"
                else:
                    word = "leaves about the same"
                out.append(
                    f"{row['setting']} {word} the train/test gap: {row['gap']:.3f} vs "
                    f"{plain['gap']:.3f} plain ({change:+.3f})."
                )
        return out
