"""B6 lab-09: the PyTorch lecture's MNIST labs on init, depth, dropout and batch norm.

Source: "Deep Learning Zero To All" season 2, PyTorch labs 09 and 10
(deeplearningzerotoall/PyTorch: lab-09 mnist_nn, mnist_nn_xavier, mnist_nn_deep,
mnist_nn_dropout; lab-10_1 mnist_batchnorm); PROTOCOLS.md groups them as B6 "lab-09". Data loaded
with ``ToTensor`` (pixels / 255) in shuffled epochs, ``drop_last=True``; Adam; cross
entropy; PyTorch's default biases U[-1/sqrt(n), 1/sqrt(n)] (the labs re-initialize only the
weights). Three parts:

- ``init``: 784-256-256-10 ReLU, Adam lr 0.001, 15 epochs, batch 100; weights N(0, 1)
  (``torch.nn.init.normal_``) vs ``xavier_uniform_`` (U[+-sqrt(6/(n_in + n_out))]);
- ``deep``: 784-512-512-512-512-10 with ``xavier_uniform_``, same training, without and
  with dropout p = 0.3 after every hidden ReLU (``keep_prob = 0.7``);
- ``batchnorm``: 784-32-32-10 with PyTorch's default init, Adam lr 0.01, 10 epochs, batch
  32, with and without ``BatchNorm1d``, placed as in the lab and in initlab's MLPs:
  Linear, BatchNorm1d, ReLU (before the activation, as Ioffe & Szegedy 2015).

Test accuracy is measured after every epoch on the test images scaled as in training (/255),
in eval mode. Two bugs of the lecture's code, fixed here, make its published numbers
different from these:

- every accuracy the labs print is computed on ``mnist_test.test_data.float()``, the raw
  0-255 pixels (a network trained on [0, 1] inputs sees inputs 255 times larger);
- the "deep" labs (mnist_nn_deep, mnist_nn_dropout) define five Linear layers
  (784-512-512-512-512-10) but their ``nn.Sequential`` leaves two of them out, so the
  network that ran had three layers; this preset trains the five-layer network the labs
  describe, so its "deep" numbers are not the lecture's.

The dropout verdict compares the difference of the two deep networks' final accuracies with
its spread over seeds (the standard error of the difference of the means over ``seeds``):
with one seed there is no spread to compare with, and a difference of a few hundredths of a
point is not a result.

Execution: each part's networks of one architecture are one group (the two inits; the two
dropout rates) trained in one batched computation; the batch-norm and plain networks differ
in architecture, so each is its own group. All see the minibatch stream of the base seed.
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
from initlab.experiments.common import check_inits, color, init_label, run_seeds
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
from initlab.report.figures import FigureInfo, LinePanel, Series

Part = Literal["init", "deep", "batchnorm"]
PARTS: tuple[str, ...] = get_args(Part)
PART_NAMES = {"init": "init", "deep": "deeper and wider", "batchnorm": "batch norm"}


@dataclass(frozen=True)
class Lab09Config:
    dataset: Annotated[DatasetChoice, DATASET_HELP] = "mnist"
    train_size: Annotated[int, "training images (0: all 60000)"] = 0
    parts: Annotated[
        tuple[Part, ...], "parts: init (normal vs xavier), deep (dropout), batchnorm"
    ] = PARTS  # type: ignore[assignment]
    hidden: Annotated[tuple[int, ...], "hidden widths of the init part"] = (256, 256)
    inits: Annotated[tuple[str, ...], "weight inits of the init part"] = (
        "normal:std=1",
        "xavier_uniform",
    )
    deep_hidden: Annotated[
        tuple[int, ...],
        "hidden widths of the deep part (the lab's intent; its Sequential ran only 3 layers)",
    ] = (512,) * 4
    deep_init: Annotated[str, "weight init of the deep part"] = "xavier_uniform"
    dropouts: Annotated[tuple[float, ...], "dropout rates of the deep part"] = (0.0, 0.3)
    lr: Annotated[float, "Adam learning rate of the init and deep parts"] = 0.001
    epochs: Annotated[int, "epochs of the init and deep parts"] = 15
    batch_size: Annotated[int, "minibatch size of the init and deep parts"] = 100
    bn_hidden: Annotated[tuple[int, ...], "hidden widths of the batchnorm part"] = (32, 32)
    bn_init: Annotated[str, "weight init of the batchnorm part (standard: PyTorch's)"] = "standard"
    bn_lr: Annotated[float, "Adam learning rate of the batchnorm part"] = 0.01
    bn_epochs: Annotated[int, "epochs of the batchnorm part"] = 10
    bn_batch_size: Annotated[int, "minibatch size of the batchnorm part"] = 32
    seeds: Annotated[int, "number of seeds per network"] = 1


def part_title(part: str, config: Lab09Config) -> str:
    """The part's name and its widths, e.g. ``"init: 784-256-256-10"``."""
    hidden = {"init": config.hidden, "deep": config.deep_hidden, "batchnorm": config.bn_hidden}
    widths = [784, *hidden[part], 10]
    return f"{PART_NAMES[part]}: {'-'.join(str(w) for w in widths)}"


def _variant_label(spec: dict[str, Any]) -> str:
    if spec["part"] == "init":
        return init_label(spec["init"]) if spec["init"] != "xavier_uniform" else "xavier_uniform"
    if spec["part"] == "deep":
        return f"dropout {spec['dropout']:g}" if spec["dropout"] else "no dropout"
    return "batch norm" if spec["batchnorm"] else "no batch norm"


@register
class Lab09(GroupExperiment):
    """Test accuracy per epoch: normal vs xavier init, dropout, batch norm (Adam, MNIST)."""

    name = "lab-09"
    description = "B6: PyTorch lecture lab 09: normal vs xavier init, dropout, batch norm"
    cost = "~7 min"  # measured: benchmarks/suite.py, CPU seconds (README, Performance)
    source = (
        "Deep Learning Zero To All (season 2), PyTorch lab 09 (deeplearningzerotoall/PyTorch); "
        "fixed: the lab evaluates on raw 0-255 test pixels (here pixels / 255, as in training) "
        "and its 'deep' Sequential omits two of its five Linear layers (here all five)"
    )
    Config = Lab09Config
    quick: ClassVar[dict[str, Any]] = {"train_size": 10000, "epochs": 4, "bn_epochs": 4}
    quick_cost = "~30 s"

    def validate(self, config: Lab09Config) -> None:
        super().validate(config)
        check_dataset(config.dataset, train_size=config.train_size)
        for key in ("hidden", "deep_hidden", "bn_hidden"):
            check_hidden(getattr(config, key), key)
        check_inits([*config.inits, config.deep_init, config.bn_init])
        if not config.parts:
            raise InitlabError(f"parts is empty; valid: {', '.join(PARTS)}")
        if not config.dropouts or not all(0.0 <= p < 1.0 for p in config.dropouts):
            raise InitlabError(f"dropouts must be rates in [0, 1), got {list(config.dropouts)}")
        for key in ("bn_lr", "bn_epochs", "bn_batch_size"):
            if not getattr(config, key) > 0:
                raise InitlabError(f"{key} must be positive, got {getattr(config, key)}")

    def flops(self, config: Lab09Config) -> float:
        train = fl.split_size(config.dataset, "train", config.train_size)
        test = fl.split_size(config.dataset, "test")
        parts = {
            "init": (config.hidden, len(config.inits), config.epochs, config.batch_size),
            "deep": (config.deep_hidden, len(config.dropouts), config.epochs, config.batch_size),
            "batchnorm": (config.bn_hidden, 2, config.bn_epochs, config.bn_batch_size),
        }
        total = 0.0
        for part in dict.fromkeys(config.parts):
            hidden, members, epochs, batch = parts[part]
            total += fl.training_flops(
                [784, *hidden, 10],
                members=members * config.seeds,
                steps=epochs * fl.steps_per_epoch(train, batch, drop_last=True),
                batch=batch,
                eval_examples=(epochs + 1) * test,
            )
        return total

    def plan(self, config: Lab09Config, seed: int = 0) -> list[RunSpec]:
        runs = []
        common = {
            "dataset": config.dataset,
            "train_size": config.train_size,
            "batch_seed": stream_seed(seed, "minibatches"),
        }
        adam = {"lr": config.lr, "epochs": config.epochs, "batch_size": config.batch_size}
        bn_adam = {
            "lr": config.bn_lr,
            "epochs": config.bn_epochs,
            "batch_size": config.bn_batch_size,
        }
        for part in dict.fromkeys(config.parts):
            for s in run_seeds(seed, config.seeds):
                suffix = f"/seed={s}" if config.seeds > 1 else ""
                cells: list[tuple[str, str, dict[str, Any]]] = []
                if part == "init":
                    for init in config.inits:
                        spec = {"hidden": list(config.hidden), "init": init, "dropout": 0.0}
                        cells.append((f"init/{init}", "init", {**spec, **adam}))
                elif part == "deep":
                    for rate in config.dropouts:
                        spec = {
                            "hidden": list(config.deep_hidden),
                            "init": config.deep_init,
                            "dropout": rate,
                        }
                        cells.append((f"deep/dropout={rate:g}", "deep", {**spec, **adam}))
                else:
                    for bn in (True, False):
                        spec = {
                            "hidden": list(config.bn_hidden),
                            "init": config.bn_init,
                            "dropout": 0.0,
                        }
                        name = "bn" if bn else "plain"
                        group = f"batchnorm/{name}"
                        cells.append((group, group, {**spec, **bn_adam, "batchnorm": bn}))
                for key, group, spec in cells:
                    full = {**common, "part": part, "batchnorm": False, **spec}
                    runs.append(RunSpec(key + suffix, full, s, group=group))
        return runs

    def execute_group(
        self,
        runs: list[RunSpec],
        config: Lab09Config,
        recorders: list[Recorder],
        progress: Progress = no_progress,
    ) -> list[RunOutcome]:
        from initlab.init import initialize
        from initlab.models.mlp import mlp

        first = runs[0].spec
        task = group_task(first)  # ReLU, as the labs
        members = []
        for run in runs:  # the labs re-initialize the weights only: biases stay PyTorch's
            model = mlp(**task.spec.to_dict())
            initialize(model, run.spec["init"], bias="standard", seed=run.seed)
            members.append(model)
        _, outcomes = train_group(
            runs,
            recorders,
            progress,
            members=members,
            data=task.train,
            spec=task.spec,
            keep=("train_loss", "valid_acc", "valid_loss"),
            optimizer="adam",
            lr=first["lr"],
            dropout=[run.spec["dropout"] for run in runs],
            epochs=first["epochs"],
            batch_size=first["batch_size"],
            batch_mode="epoch",
            drop_last=True,
            batch_seed=first["batch_seed"],
            eval_data=task.test,
            log_every=10,
        )
        return outcomes

    # -- results ----------------------------------------------------------------------
    def _cells(self, data: ExperimentData, part: str) -> dict[str, list[Any]]:
        """The finished runs of one part by variant label, in plan order."""
        cells: dict[str, list[Any]] = {}
        for run in data.finished():
            if run.spec["part"] == part:
                cells.setdefault(_variant_label(run.spec), []).append(run)
        return cells

    def figures(self, config: Lab09Config, data: ExperimentData) -> list[FigureInfo]:
        panels = []
        for part in dict.fromkeys(config.parts):
            cells = self._cells(data, part)
            if not cells:
                continue
            series = []
            for i, (label, runs) in enumerate(cells.items()):
                for j, run in enumerate(runs):
                    _, acc = run.series("valid_acc")  # one evaluation per epoch, from 0
                    epochs = list(range(len(acc)))
                    final = acc[-1] if acc else math.nan
                    text = f"{label} ({final:.4f})" if j == 0 else None
                    series.append(Series(epochs, acc, text, color(i), marker="o"))
            panels.append(
                LinePanel(
                    series,
                    title=part_title(part, config),
                    xlim=(0.0, float(config.bn_epochs if part == "batchnorm" else config.epochs)),
                    xlabel="epoch",
                    ylabel="test accuracy",
                )
            )
        if not panels:
            return []
        lows = [v for p in panels for s in p.series for v in s.y[1:] if math.isfinite(v)]
        low = max(0.0, min(lows, default=0.0) - 0.01)
        for panel in panels:
            panel.ylim = (low, 1.0)
        return [
            FigureInfo(
                name="lab-09",
                title=f"PyTorch lab 09 on {dataset_title(config.dataset)}: Adam, test accuracy",
                panels=[panels],  # type: ignore[list-item]
                caption=(
                    "Test accuracy after every epoch (epoch 0: at init, left out of the y "
                    "range), on test pixels scaled as in training (the lab's own evaluation "
                    "on raw 0-255 pixels is a bug); the legend gives the final accuracy. The "
                    "deep part trains all five layers (the lab's Sequential ran three)."
                ),
                sharey=True,
                panel_size=(4.2, 3.4),
            )
        ]

    def summary(self, config: Lab09Config, data: ExperimentData) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for part in dict.fromkeys(config.parts):
            rows = {}
            for label, runs in self._cells(data, part).items():
                finals = [tail_mean(r.series("valid_acc")[1], 1) for r in runs]
                rows[label] = {
                    "test_acc": sum(finals) / len(finals),
                    "test_accs": finals,
                    "runs": len(runs),
                    "diverged": sum(r.status == "diverged" for r in runs),
                }
            if rows:
                out[part] = rows
        titles = {part: part_title(part, config) for part in out}
        result: dict[str, Any] = {"parts": out, "titles": titles}
        deep = out.get("deep", {})
        plain = deep.get("no dropout")
        dropped = [(k, v) for k, v in deep.items() if k != "no dropout"]
        if plain is not None and dropped:
            label, row = dropped[-1]
            result["dropout_effect"] = dropout_effect(label, row["test_accs"], plain["test_accs"])
        return result

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        out = []
        for part, rows in summary.get("parts", {}).items():
            ranked = sorted(rows.items(), key=lambda kv: -_finite(kv[1]["test_acc"]))
            listing = " > ".join(f"{label} {row['test_acc']:.4f}" for label, row in ranked)
            title = summary.get("titles", {}).get(part, part)
            out.append(f"{title}: test accuracy {listing}.")
        effect = summary.get("dropout_effect")
        if effect is not None:
            out.append(_dropout_sentence(effect))
        if out:
            out.append(
                "Measured on test pixels scaled as in training, with all five layers of the "
                "deep network; the lab's own evaluation feeds raw 0-255 pixels (a bug) to a "
                "deep Sequential that omits two layers, and reports other numbers."
            )
        return out


MARGIN_SPREADS = 2.0
"""A difference counts as a win when it exceeds this many standard errors of itself."""


def dropout_effect(label: str, with_dropout: list[float], without: list[float]) -> dict[str, Any]:
    """The dropout network's final test accuracy minus the plain one's, with its spread:
    the standard error ``sqrt(s1^2 / n1 + s2^2 / n2)`` of the difference of the means over
    seeds (sample standard deviations ``s``; None with a single seed on either side)."""

    def mean_var(values: list[float]) -> tuple[float, float | None]:
        n = len(values)
        mean = sum(values) / n
        var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else None
        return mean, var

    (m1, v1), (m2, v2) = mean_var(with_dropout), mean_var(without)
    spread = None
    if v1 is not None and v2 is not None:
        spread = math.sqrt(v1 / len(with_dropout) + v2 / len(without))
    return {
        "label": label,
        "difference": m1 - m2,
        "spread": spread,
        "seeds": min(len(with_dropout), len(without)),
    }


def _dropout_sentence(effect: dict[str, Any]) -> str:
    """The dropout verdict: a win or a loss only beyond MARGIN_SPREADS standard errors."""
    diff, spread = effect["difference"], effect["spread"]
    head = (
        f"Deep part, {effect['label']} minus no dropout: {100 * diff:+.2f} points of test accuracy"
    )
    if spread is None or not math.isfinite(diff):
        return (
            head + f" with {effect['seeds']} seed(s): no spread over seeds to compare it with, "
            "so no winner is called (set seeds = 3 or more)."
        )
    ratio = abs(diff) / spread if spread > 0 else math.inf
    margin = f"{ratio:.1f} standard errors over {effect['seeds']} seeds (±{100 * spread:.2f})"
    if ratio < MARGIN_SPREADS:
        return head + f", {margin}: within the seed spread, no winner."
    word = "helps" if diff > 0 else "hurts"
    return head + f", {margin}: dropout {word} beyond the seed spread."


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf
