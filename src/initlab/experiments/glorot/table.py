"""D1 glorot-table: the test errors of Glorot & Bengio (2010), Table 1.

Source: Glorot & Bengio (2010), section 2.3 and Table 1. Five hidden layers of 1000 units,
softmax output, negative log-likelihood, biases 0, SGD on minibatches of 10, the learning
rate "optimized based on validation set error after a large number of updates (5
million)"; activations sigmoid, tanh and softsign, each from the standard init
``U[-1/sqrt(n), 1/sqrt(n)]`` and the normalized one (the rows marked "N"); datasets
Shapeset-3x2 (online), MNIST (50,000 / 10,000 / 10,000) and CIFAR-10 (40,000 / 10,000 /
10,000; here only when its files are on disk).

Protocol here: for every dataset x activation x init, each learning rate of a small log
grid (``lrs``) trains with ``seeds`` seeds; the rate with the lowest mean validation error
is chosen for that configuration, and its test error is reported as the mean and the
standard deviation over the seeds. The grid's members (inits x rates x seeds) of one
dataset and activation train together, as one group in the batched engine.

Budgets (``--set budget=...``; the cost model's estimate is printed before the runs start):

* ``default``: shortened for a 2-core laptop (at most 30 minutes for Shapeset-3x2 and
  MNIST together): ``DEFAULT_STEPS`` updates per member, 1,000 validation and 2,000 test
  examples. Far from converged: the table shows the ordering early in training.
* ``paper``: the paper's 5 million updates and full validation and test sets (a pool of
  ``SHAPESET_POOL`` Shapeset training images is cycled instead of fresh ones, to bound
  memory). Days of CPU time: its estimate says how many.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, get_args

from initlab.errors import InitlabError, check_choice
from initlab.experiments.base import (
    ExperimentData,
    GroupExperiment,
    Progress,
    Recorder,
    RunData,
    RunOutcome,
    RunSpec,
    no_progress,
)
from initlab.experiments.common import color, fmt, run_seeds, single_thread
from initlab.experiments.glorot.common import (
    DATASET_TITLES,
    GLOROT_ACTIVATIONS,
    GLOROT_INITS,
    HIDDEN,
    MINIBATCH,
    SOURCE,
    build_member,
    check_glorot,
    cifar10_available,
    flops_per_member_step,
    forward_flops,
    glorot_splits,
    init_name,
    mean_and_spread,
    network_spec,
    stream_seed,
)
from initlab.experiments.mnist_task import group_progress
from initlab.experiments.registry import register
from initlab.report.figures import FigureInfo, LinePanel, Series

Budget = Literal["default", "paper"]
BUDGETS: tuple[str, ...] = get_args(Budget)


class BudgetSizes(NamedTuple):
    steps: int  # SGD updates per member
    valid: int  # validation examples (0: the whole split)
    test: int  # test examples (0: the whole split)


DEFAULT_STEPS = 400
BUDGET_SIZES: dict[str, BudgetSizes] = {
    "default": BudgetSizes(DEFAULT_STEPS, 1000, 2000),
    "paper": BudgetSizes(5_000_000, 10_000, 10_000),
}
SHAPESET_POOL = 200_000  # training images generated at most (cycled beyond)
INPUTS = {"shapeset": (1024, 9), "mnist": (784, 10), "cifar10": (3072, 10)}
SPLIT_SIZES = {"shapeset": (None, None), "mnist": (10_000, 10_000), "cifar10": (10_000, 10_000)}

# The cost model: seconds = FLOPs / rate, one thread. The default budget (8.0 TFLOP of
# training) took 3 min 59 s on an idle 2-core AMD EPYC with AVX-512 (2026-12-07, oneDNN's
# thin products), 6 min 48 s on a 2-core Xeon VM shared by seven engineers at load 3
# (2026-12-02) and 23 min there at load 6-7.5: training FLOPs over the whole run's time,
# ~33, ~20 and ~6 GFLOP/s. 24 GFLOP/s (6.8 min) keeps the estimate within 2x of the first
# two (a host that busy takes 3-4x longer). Evaluation passes run at batches of 1000; their
# rate (30 GFLOP/s, 18% of the default estimate) is the busy host's, left as it was.
TRAIN_GFLOPS = 24.0
EVAL_GFLOPS = 30.0
SHAPESET_IMAGES_PER_S = 1500.0

# Glorot & Bengio (2010), Table 1: test error (%), as printed (ImageNet left out).
PAPER_TABLE: dict[str, dict[str, float]] = {
    "Softsign": {"Shapeset-3x2": 16.27, "MNIST": 1.64, "CIFAR-10": 55.78},
    "Softsign N": {"Shapeset-3x2": 16.06, "MNIST": 1.72, "CIFAR-10": 53.8},
    "Tanh": {"Shapeset-3x2": 27.15, "MNIST": 1.76, "CIFAR-10": 55.9},
    "Tanh N": {"Shapeset-3x2": 15.60, "MNIST": 1.64, "CIFAR-10": 52.92},
    "Sigmoid": {"Shapeset-3x2": 82.61, "MNIST": 2.21, "CIFAR-10": 57.28},
}
PAPER_ORDER = ("softsign", "tanh", "sigmoid")
TABLE_KEY = "Table 1: test error % (mean ± std over seeds)"
PAPER_KEY = "Glorot & Bengio (2010) Table 1: test error %, as printed"
LR_KEY = "learning rate chosen on validation"


@dataclass(frozen=True)
class GlorotTableConfig:
    datasets: Annotated[
        tuple[str, ...], "shapeset, mnist, cifar10 (cifar10 is left out when its files are absent)"
    ] = ("shapeset", "mnist", "cifar10")
    hidden: Annotated[tuple[int, ...], "hidden layer widths (the paper: 5 x 1000)"] = HIDDEN
    activations: Annotated[tuple[str, ...], "activations (table rows)"] = GLOROT_ACTIVATIONS
    inits: Annotated[
        tuple[str, ...], "standard U[-1/sqrt(n), 1/sqrt(n)] and normalized (rows marked N)"
    ] = GLOROT_INITS
    lrs: Annotated[tuple[float, ...], "learning-rate grid; the best on validation is kept"] = (
        0.01,
        0.03,
        0.1,
    )
    seeds: Annotated[int, "seeds per configuration and learning rate (mean and spread)"] = 2
    budget: Annotated[Budget, "default (<= 30 min here) or paper (5 million updates)"] = "default"
    steps: Annotated[int, "SGD updates per member; 0: the budget's"] = 0
    valid_size: Annotated[int, "validation examples; 0: the budget's"] = 0
    test_size: Annotated[int, "test examples; 0: the budget's"] = 0
    batch_size: Annotated[int, "minibatch size (the paper: 10)"] = MINIBATCH


def sizes(config: GlorotTableConfig) -> BudgetSizes:
    """The budget's sizes with the explicit overrides applied."""
    base = BUDGET_SIZES[config.budget]
    return BudgetSizes(
        config.steps or base.steps, config.valid_size or base.valid, config.test_size or base.test
    )


def datasets_present(config: GlorotTableConfig) -> list[str]:
    """The configured datasets, CIFAR-10 only when its files are on disk."""
    return [d for d in config.datasets if d != "cifar10" or cifar10_available()]


def estimate_seconds(config: GlorotTableConfig, datasets: list[str] | None = None) -> float:
    """The cost model: training FLOPs at TRAIN_GFLOPS, evaluation at EVAL_GFLOPS, Shapeset
    generation at SHAPESET_IMAGES_PER_S."""
    size = sizes(config)
    members = len(config.inits) * len(config.lrs) * config.seeds
    total = 0.0
    for dataset in datasets if datasets is not None else datasets_present(config):
        inputs, classes = INPUTS[dataset]
        widths = (inputs, *config.hidden, classes)
        valid, test = (
            (size.valid, size.test)
            if dataset == "shapeset"
            else (size.valid or SPLIT_SIZES[dataset][0], size.test or SPLIT_SIZES[dataset][1])
        )
        per_group = members * size.steps * flops_per_member_step(widths, config.batch_size)
        per_group /= TRAIN_GFLOPS * 1e9
        per_group += members * (valid + test) * forward_flops(widths) / (EVAL_GFLOPS * 1e9)
        total += len(config.activations) * per_group
        if dataset == "shapeset":
            images = min(size.steps * config.batch_size, SHAPESET_POOL) + valid + test
            total += images / SHAPESET_IMAGES_PER_S
    return total


def describe_seconds(seconds: float) -> str:
    """A duration as "12 s", "4.5 min", "3.2 h" or "41 days"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def row_label(activation: str, init: str) -> str:
    """The paper's row name: "Tanh", "Tanh N" (normalized); other schemes in brackets."""
    name = activation.capitalize()
    if init == "xavier_uniform":
        return f"{name} N"
    return name if init == "standard" else f"{name} ({init})"


@register
class GlorotTable(GroupExperiment):
    """Test error of sigmoid / tanh / softsign x standard / normalized init (Table 1)."""

    name = "glorot-table"
    description = "D1: Table 1, test error by activation x init, lr chosen on validation"
    cost = "~7 min (4-23 min by host and load; --set budget=paper: ~48 days)"
    source = f"{SOURCE}, Table 1"
    Config = GlorotTableConfig
    quick: ClassVar[dict[str, Any]] = {
        "hidden": (200,) * 5,
        "steps": 300,
        "valid_size": 500,
        "test_size": 1000,
    }
    quick_cost = "~1 min"

    def validate(self, config: GlorotTableConfig) -> None:
        # (not the base's check: steps, valid_size and test_size may be 0, "the budget's")
        for key in ("seeds", "batch_size"):
            if getattr(config, key) < 1:
                raise InitlabError(f"{key} must be positive, got {getattr(config, key)}")
        check_choice(config.budget, BUDGETS, "budget")
        if not config.datasets or not config.lrs:
            raise InitlabError("datasets and lrs must each list at least one value")
        for dataset in config.datasets:
            check_glorot(dataset, config.hidden, config.activations, config.inits)
        if any(not lr > 0 for lr in config.lrs):
            raise InitlabError(f"every learning rate must be positive, got {config.lrs}")
        for key in ("steps", "valid_size", "test_size"):
            if getattr(config, key) < 0:
                value = getattr(config, key)
                raise InitlabError(f"{key} must be >= 0 (0: the budget's), got {value}")

    def cost_estimate(self, config: GlorotTableConfig) -> str:
        present = datasets_present(config)
        size = sizes(config)
        left_out = [d for d in config.datasets if d not in present]
        members = len(config.activations) * len(config.inits) * len(config.lrs) * config.seeds
        line = (
            f"budget {config.budget}: {size.steps:,} updates x {members} members per dataset "
            f"({', '.join(DATASET_TITLES[d] for d in present)}); cost model: about "
            f"{describe_seconds(estimate_seconds(config, present))} on one thread (hosts measured: "
            "0.6-1x of that, up to 3.5x when busy)"
        )
        if left_out:
            line += f"; left out (files not found): {', '.join(left_out)}"
        return line

    def plan(self, config: GlorotTableConfig, seed: int = 0) -> list[RunSpec]:
        size = sizes(config)
        runs = []
        for dataset in datasets_present(config):
            for activation in config.activations:
                for init in config.inits:
                    for lr in config.lrs:
                        for s in run_seeds(seed, config.seeds):
                            key = f"{dataset}/{activation}/{init_name(init)}/lr={fmt(lr)}/seed={s}"
                            spec = {
                                "dataset": dataset,
                                "hidden": list(config.hidden),
                                "activation": activation,
                                "init": init,
                                "lr": lr,
                                "steps": size.steps,
                                "batch_size": config.batch_size,
                                "valid_size": size.valid,
                                "test_size": size.test,
                                "data_seed": seed,
                            }
                            runs.append(RunSpec(key, spec, s, group=f"{dataset}/{activation}"))
        return runs

    def execute_group(
        self,
        runs: list[RunSpec],
        config: GlorotTableConfig,
        recorders: list[Recorder],
        progress: Progress = no_progress,
    ) -> list[RunOutcome]:
        from initlab.train.batched import evaluate_batched, fit_batched
        from initlab.train.batched_mlp import StackedMLP

        first = runs[0].spec
        steps, batch = first["steps"], first["batch_size"]
        n_train = min(steps * batch, SHAPESET_POOL) if first["dataset"] == "shapeset" else 0
        train, valid, test = glorot_splits(
            first["dataset"], n_train, first["valid_size"], first["test_size"], first["data_seed"]
        )
        spec = network_spec(train, first)
        start = time.perf_counter()
        with single_thread():
            result = fit_batched(
                [build_member(spec, run.spec["init"], run.seed) for run in runs],
                train,
                spec=spec,
                lr=[run.spec["lr"] for run in runs],
                steps=steps,
                batch_size=batch,
                batch_mode="epoch",
                seed=stream_seed(first["data_seed"], "batches"),
                log_every=max(1, steps // 200),
                callback=group_progress(progress, steps),
            )
            trained = StackedMLP(spec, [result.model(n) for n in range(len(runs))])
            errors = {}
            for name, data in (("valid", valid), ("test", test)):
                _, acc = evaluate_batched(trained, data.x.float().flatten(1), data.y)
                errors[name] = [100.0 * (1.0 - a) for a in acc]
        wall = time.perf_counter() - start
        outcomes = []
        for n, (member, recorder) in enumerate(zip(result.results, recorders, strict=True)):
            rows = [{"step": r["step"], "train_loss": r["train_loss"]} for r in member.history]
            recorder.log_metrics(rows)
            ok = member.status == "done"
            summary = {
                "valid_error": errors["valid"][n] if ok else "nan",
                "test_error": errors["test"][n] if ok else "nan",
                "final_loss": member.last("train_loss") if ok else "nan",
                "group_wall_s": wall,
            }
            outcomes.append(RunOutcome(member.status, summary))
        progress(float(steps), float(steps))
        return outcomes

    # -- results ----------------------------------------------------------------------
    def _cells(self, config: GlorotTableConfig, data: ExperimentData) -> dict[tuple, Any]:
        """Per (dataset, activation, init): the chosen rate and its test errors over seeds."""
        groups: dict[tuple, dict[float, list[RunData]]] = {}
        for run in data.finished():
            s = run.spec
            key = (s["dataset"], s["activation"], s["init"])
            groups.setdefault(key, {}).setdefault(float(s["lr"]), []).append(run)
        cells = {}
        for key, by_lr in groups.items():
            scored = {}
            for lr, runs in by_lr.items():
                valid = [_number(r.summary.get("valid_error")) for r in runs]
                finite = [v for v in valid if math.isfinite(v)]
                if len(finite) == len(runs):  # a rate that diverged for any seed is out
                    scored[lr] = mean_and_spread(finite)[0]
            if not scored:
                cells[key] = {"lr": None, "test": [], "valid": math.nan, "diverged": True}
                continue
            best = min(scored, key=lambda lr: (scored[lr], lr))
            tests = [_number(r.summary.get("test_error")) for r in by_lr[best]]
            cells[key] = {"lr": best, "test": tests, "valid": scored[best], "diverged": False}
        return cells

    def _rows(self, config: GlorotTableConfig) -> list[tuple[str, str]]:
        order = sorted(
            config.activations,
            key=lambda a: PAPER_ORDER.index(a) if a in PAPER_ORDER else len(PAPER_ORDER),
        )
        return [(a, i) for a in order for i in config.inits]

    def summary(self, config: GlorotTableConfig, data: ExperimentData) -> dict[str, Any]:
        cells = self._cells(config, data)
        present = sorted({r.spec["dataset"] for r in data.runs}, key=config.datasets.index)
        table: dict[str, dict[str, Any]] = {}
        lrs: dict[str, dict[str, Any]] = {}
        numbers: dict[str, dict[str, Any]] = {}
        for activation, init in self._rows(config):
            label = row_label(activation, init)
            table[label], lrs[label] = {}, {}
            for dataset in present:
                title = DATASET_TITLES[dataset]
                cell = cells.get((dataset, activation, init))
                if cell is None or not cell["test"]:
                    table[label][title] = "diverged" if cell else "missing"
                    lrs[label][title] = None
                    continue
                mean, spread = mean_and_spread(cell["test"])
                table[label][title] = f"{mean:.2f} ± {spread:.2f}"
                lrs[label][title] = cell["lr"]
                numbers[f"{dataset}/{activation}/{init_name(init)}"] = {
                    "test_error": mean,
                    "test_error_std": spread,
                    "valid_error": cell["valid"],
                    "lr": cell["lr"],
                    "seeds": len(cell["test"]),
                }
        titles = [DATASET_TITLES[d] for d in present]
        paper = {
            row: {t: v for t, v in values.items() if t in titles}
            for row, values in PAPER_TABLE.items()
        }
        size = sizes(config)
        walls = {}
        for run in data.finished():
            group = f"{run.spec['dataset']}/{run.spec['activation']}"
            wall = run.summary.get("group_wall_s")
            if isinstance(wall, int | float):
                walls[group] = float(wall)
        return {
            "budget": config.budget,
            "steps": size.steps,
            "valid_size": size.valid,
            "test_size": size.test,
            "estimated_cost_s": round(estimate_seconds(config, present), 1),
            "measured_training_s": round(sum(walls.values()), 1),
            "left_out": [d for d in config.datasets if d not in present],
            TABLE_KEY: table,
            PAPER_KEY: paper,
            LR_KEY: lrs,
            "cells": numbers,
        }

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        out = []
        cells = summary.get("cells", {})
        datasets = sorted({key.split("/")[0] for key in cells})
        for dataset in datasets:
            title = DATASET_TITLES.get(dataset, dataset)
            errs = {
                k.split("/", 1)[1]: v["test_error"]
                for k, v in cells.items()
                if k.startswith(f"{dataset}/")
            }
            gains = []
            for act in ("tanh", "softsign", "sigmoid"):
                std, norm = errs.get(f"{act}/standard"), errs.get(f"{act}/normalized")
                if std is not None and norm is not None:
                    word = "lowers" if norm < std else "does not lower"
                    gains.append(f"{act} {std:.1f} -> {norm:.1f} ({word})")
            if gains:
                joined = "; ".join(gains)
                out.append(f"{title}: normalized init vs standard, test error %: {joined}.")
            std_rows = {k: v for k, v in errs.items() if k.endswith("/standard")}
            if len(std_rows) > 1:
                worst = max(std_rows, key=std_rows.__getitem__)
                out.append(
                    f"{title}: with standard init the worst activation is {worst.split('/')[0]} "
                    f"({std_rows[worst]:.1f}%)"
                    + (
                        ", as in the paper."
                        if worst.startswith("sigmoid")
                        else "; the paper's is sigmoid."
                    )
                )
        if summary.get("budget") == "default":
            out.append(
                f"Budget: {summary.get('steps')} updates per member (the paper: 5 million); "
                "errors are far from the paper's converged values; compare the orderings."
            )
        return out

    def figures(self, config: GlorotTableConfig, data: ExperimentData) -> list[FigureInfo]:
        cells = self._cells(config, data)
        panels = []
        planned = {r.spec["dataset"] for r in data.runs}
        for dataset in [d for d in config.datasets if d in planned]:
            series = []
            for i, (activation, init) in enumerate(self._rows(config)):
                cell = cells.get((dataset, activation, init))
                if not cell or cell["lr"] is None:
                    continue
                runs = [
                    r
                    for r in data.finished()
                    if (r.spec["dataset"], r.spec["activation"], r.spec["init"])
                    == (dataset, activation, init)
                    and float(r.spec["lr"]) == cell["lr"]
                ]
                for j, run in enumerate(runs):
                    steps, loss = run.series("train_loss")
                    label = f"{row_label(activation, init)} (lr {fmt(cell['lr'])})"
                    dashed = "--" if init == "xavier_uniform" else "-"
                    series.append(
                        Series(
                            steps,
                            _smooth(loss),
                            label if j == 0 else None,
                            color(i // 2),
                            dashed,
                            linewidth=1.2,
                        )
                    )
            panels.append(
                LinePanel(
                    series,
                    title=DATASET_TITLES[dataset],
                    xlabel="SGD updates",
                    ylabel="training loss (running mean)",
                )
            )
        if not panels:
            return []
        return [
            FigureInfo(
                name="training-curves",
                title="Training loss of each table cell at its chosen learning rate",
                panels=[panels],  # type: ignore[list-item]
                caption="Solid: standard init; dashed: normalized (N). One curve per seed; "
                "running mean over 20 logged minibatches.",
                panel_size=(5.2, 3.6),
            )
        ]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _smooth(values: list[float], window: int = 20) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out
