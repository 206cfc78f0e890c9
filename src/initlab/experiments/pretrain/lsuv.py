"""E2 lsuv: layer-sequential unit-variance init vs Gaussian schemes on deep plain networks.

Source: Mishkin & Matas (2016), "All you need is a good init" (ICLR): orthonormal
pre-init (Saxe et al. 2014), then layer by layer ``W_L /= sqrt(Var(B_L))`` on one
minibatch until ``|Var(B_L) - 1| < 0.1`` (at most 10 rescalings); they show it trains very
deep thin networks where Xavier and MSRA (He) starts stall. Here, on MNIST pixels / 255:

- ``mlp``: 784-100x24-10 ReLU (25 Linear layers), SGD with momentum 0.9, lr 0.01, batch
  128, 2000 steps; inits ``lsuv``, ``orthogonal`` (the pre-init alone), ``xavier_normal``,
  ``he_normal``; biases 0. Trained together in the batched engine.
- ``cnn``: ``deep_cnn``: 20 plain 3x3 convolutions of 16 channels, ReLU, global average
  pooling and a Linear classifier, on MNIST pooled to 14x14 (2x2 averages, to fit a CPU),
  same optimizer, batch 64, 600 steps; inits ``lsuv``, ``xavier_normal``, ``he_normal``.

LSUV sees ``lsuv_batch`` training images drawn from its own seed stream. Before training,
the output variance of every Linear / conv layer is measured on another batch of the same
size (a different stream), for every scheme: LSUV's is 1 by construction (on its own batch;
on this one within sampling error), Xavier's shrinks layer after layer for ReLU and He's
drifts. Test accuracy on 2000 test images every ``eval_every`` steps, over 3 seeds: deep
thin plain nets are fragile (measured here, 20-layer CNN: LSUV learned in 2 of 3 seeds, He
in 2, Xavier in none), so one seed says little.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args

import torch
from torch import nn
from torch.nn import functional as F

from initlab.data.dataset import Dataset
from initlab.errors import InitlabError
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
from initlab.experiments.common import check_activations, check_inits, color, init_label, run_seeds
from initlab.experiments.mnist_task import (
    DATASET_HELP,
    DatasetChoice,
    check_dataset,
    dataset_title,
    load_split,
    train_group,
)
from initlab.experiments.registry import register
from initlab.experiments.seeds import stream_seed
from initlab.models.mlp import MLPSpec
from initlab.report.figures import FigureInfo, LinePanel, Series

Part = Literal["mlp", "cnn"]
PARTS: tuple[str, ...] = get_args(Part)
BATCH_SEED_OFFSETS = {"lsuv": 0x15A7, "measure": 0x3EA5}  # LSUV's batch, the variance batch
STRUGGLE_MARGIN = 0.1  # a scheme "struggles" when it ends this far below LSUV's accuracy
LEARNED = 0.5  # a final test accuracy below this is "did not learn" (chance: 0.1)
REACH_LEVEL = 0.8  # speed: the first evaluation at or above this test accuracy
TEST_IMAGES = 2000


@dataclass(frozen=True)
class LSUVConfig:
    dataset: Annotated[DatasetChoice, DATASET_HELP] = "mnist"
    parts: Annotated[tuple[Part, ...], "mlp (deep plain MLP) and/or cnn (deep plain CNN)"] = PARTS  # type: ignore[assignment]
    train_size: Annotated[int, "training images (0: all 60000)"] = 0
    inits: Annotated[tuple[str, ...], "schemes of the MLP part"] = (
        "lsuv",
        "orthogonal",
        "xavier_normal",
        "he_normal",
    )
    cnn_inits: Annotated[tuple[str, ...], "schemes of the CNN part"] = (
        "lsuv",
        "xavier_normal",
        "he_normal",
    )
    activation: Annotated[str, "hidden activation of both parts"] = "relu"
    depth: Annotated[int, "hidden layers of the MLP"] = 24
    width: Annotated[int, "width of the MLP's hidden layers"] = 100
    cnn_depth: Annotated[int, "convolutions of the CNN"] = 20
    cnn_channels: Annotated[int, "channels of the CNN"] = 16
    cnn_pool: Annotated[int, "average-pool MNIST by this factor for the CNN (1: 28x28)"] = 2
    lsuv_batch: Annotated[int, "images LSUV measures on"] = 256
    tol: Annotated[float, "LSUV tolerance on |Var - 1| (the paper's 0.1)"] = 0.1
    max_iter: Annotated[int, "LSUV rescalings per layer at most (the paper's 10)"] = 10
    lr: Annotated[float, "SGD learning rate"] = 0.01
    momentum: Annotated[float, "SGD momentum"] = 0.9
    steps: Annotated[int, "MLP training steps"] = 2000
    batch_size: Annotated[int, "MLP minibatch size"] = 128
    cnn_steps: Annotated[int, "CNN training steps"] = 600
    cnn_batch_size: Annotated[int, "CNN minibatch size"] = 64
    eval_every: Annotated[int, "steps between test evaluations"] = 100
    seeds: Annotated[int, "seeds per scheme (deep thin nets are fragile: look at several)"] = 3


def _scheme_text(scheme: str, config: LSUVConfig) -> str:
    if scheme == "lsuv":
        return f"lsuv:tol={config.tol:g},max_iter={config.max_iter}"
    return scheme


def _batch(data: Dataset, size: int, seed: int) -> torch.Tensor:
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:size]
    return data.x[index]


def load_task(spec: dict[str, Any]) -> tuple[Dataset, Dataset]:
    """(train, test) of a run spec; for the CNN as ``[N, 1, 28 / pool, 28 / pool]`` images."""
    train = load_split(spec["dataset"], "train", spec["train_size"])
    test = load_split(spec["dataset"], "test", TEST_IMAGES)
    if spec["part"] == "cnn":
        train, test = (_images(d, spec["cnn_pool"]) for d in (train, test))
    return train, test


def _images(data: Dataset, pool: int) -> Dataset:
    side = math.isqrt(data.num_features)
    x = data.x.reshape(len(data), 1, side, side)
    if pool > 1:
        x = F.avg_pool2d(x, pool)
    return Dataset(x.contiguous(), data.y, f"{data.name}-{x.shape[-1]}px", data.classes)


def layer_variances(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Output variance of every Linear / conv layer (forward order) in one pass on ``x``."""
    from initlab.init import initializable_layers

    out: list[float] = []

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        out.append(float(output.detach().double().var()))

    handles = [m.register_forward_hook(hook) for _, m in initializable_layers(model)]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was)
        for handle in handles:
            handle.remove()
    return out


@register
class LSUV(GroupExperiment):
    """Deep plain MLP and CNN from LSUV, orthogonal, Xavier and He: variances and training."""

    name = "lsuv"
    description = "E2: LSUV (Mishkin & Matas 2016) vs Xavier/He on deep plain MLP and CNN"
    cost = "~10 min"
    source = "Mishkin & Matas 2016, All you need is a good init (ICLR), Algorithm 1"
    Config = LSUVConfig
    quick: ClassVar[dict[str, Any]] = {
        "train_size": 4000,
        "steps": 150,
        "cnn_steps": 30,
        "cnn_depth": 8,
        "cnn_channels": 8,
        "eval_every": 50,
    }
    quick_cost = "~15 s"

    def validate(self, config: LSUVConfig) -> None:
        super().validate(config)
        check_dataset(config.dataset, train_size=config.train_size)
        check_activations([config.activation])
        check_inits([_scheme_text(s, config) for s in (*config.inits, *config.cnn_inits)])
        if not config.parts:
            raise InitlabError(f"parts is empty; valid: {', '.join(PARTS)}")
        for key in ("depth", "width", "cnn_depth", "cnn_channels", "cnn_pool", "cnn_steps"):
            if getattr(config, key) < 1:
                raise InitlabError(f"{key} must be at least 1, got {getattr(config, key)}")
        for key in ("lsuv_batch", "cnn_batch_size", "eval_every", "max_iter"):
            if getattr(config, key) < 2:
                raise InitlabError(f"{key} must be at least 2, got {getattr(config, key)}")
        if not config.tol > 0:
            raise InitlabError(f"tol must be positive, got {config.tol}")
        if 28 % config.cnn_pool:
            raise InitlabError(f"cnn_pool must divide 28, got {config.cnn_pool}")

    def plan(self, config: LSUVConfig, seed: int = 0) -> list[RunSpec]:
        common = {
            "dataset": config.dataset,
            "train_size": config.train_size,
            "activation": config.activation,
            "lsuv_batch": config.lsuv_batch,
            "lr": config.lr,
            "momentum": config.momentum,
            "eval_every": config.eval_every,
            "batch_seed": stream_seed(seed, "minibatches"),
        }
        parts = {
            "mlp": {
                "hidden": [config.width] * config.depth,
                "steps": config.steps,
                "batch_size": config.batch_size,
            },
            "cnn": {
                "depth": config.cnn_depth,
                "channels": config.cnn_channels,
                "cnn_pool": config.cnn_pool,
                "steps": config.cnn_steps,
                "batch_size": config.cnn_batch_size,
            },
        }
        runs = []
        for part in dict.fromkeys(config.parts):
            inits = config.inits if part == "mlp" else config.cnn_inits
            for s in run_seeds(seed, config.seeds):
                for scheme in dict.fromkeys(inits):
                    spec = {
                        **common,
                        **parts[part],
                        "part": part,
                        "init": _scheme_text(scheme, config),
                    }
                    group = "mlp" if part == "mlp" else None  # CNNs train one by one (fit)
                    runs.append(RunSpec(f"{part}/{scheme}/seed={s}", spec, s, group=group))
        return runs

    def execute_group(
        self,
        runs: Sequence[RunSpec],
        config: LSUVConfig,
        recorders: Sequence[Recorder],
        progress: Progress = no_progress,
    ) -> list[RunOutcome]:
        first = runs[0].spec
        train, test = load_task(first)
        models, reports = [], []
        for run in runs:
            model = _build(run.spec, train)
            reports.append(_initialize(model, run, train))
            models.append(model)
        if first["part"] == "mlp":
            widths = (train.num_features, *first["hidden"], train.num_classes)
            _, outcomes = train_group(
                list(runs),
                list(recorders),
                progress,
                members=models,
                data=train,
                spec=MLPSpec(widths, first["activation"]),
                keep=("train_loss", "valid_acc"),
                optimizer="momentum",
                lr=first["lr"],
                hparams={"momentum": first["momentum"]},
                steps=first["steps"],
                batch_size=first["batch_size"],
                batch_seed=first["batch_seed"],
                eval_data=test,
                eval_every=first["eval_every"],
                log_every=10,
            )
        else:
            outcomes = [
                _train_one(run, model, recorder, train, test, progress)
                for run, model, recorder in zip(runs, models, recorders, strict=True)
            ]
        for outcome, report in zip(outcomes, reports, strict=True):
            outcome.summary.update(report)
        return outcomes

    # -- results ----------------------------------------------------------------------
    def _cells(self, data: ExperimentData, part: str) -> dict[str, list[RunData]]:
        cells: dict[str, list[RunData]] = {}
        for run in data.finished():
            if run.spec["part"] == part:
                cells.setdefault(_label(run.spec["init"]), []).append(run)
        return cells

    def figures(self, config: LSUVConfig, data: ExperimentData) -> list[FigureInfo]:
        rows = []
        schemes = dict.fromkeys(_label(s) for s in (*config.inits, *config.cnn_inits))
        palette = {label: color(i) for i, label in enumerate(schemes)}  # one colour per scheme
        for part in dict.fromkeys(config.parts):
            cells = self._cells(data, part)
            if not cells:
                continue
            variances, accuracy, loss = [], [], []
            for label, runs in cells.items():
                c = palette.get(label, "black")
                for j, run in enumerate(runs):
                    text = label if j == 0 else None
                    var = run.summary.get("init_variances", [])
                    variances.append(Series(list(range(1, len(var) + 1)), var, text, c, marker="o"))
                    x, y = run.series("valid_acc")
                    accuracy.append(Series(x, y, text, c, marker="o"))
                    x, y = run.series("train_loss")
                    loss.append(Series(x, y, text, c, alpha=0.8))
            title = _part_title(part, config)
            rows.append(
                [
                    LinePanel(
                        variances,
                        title=f"{title}: output variance at init",
                        xlabel="layer (forward order)",
                        ylabel="Var(layer output)",
                        yscale="log",
                        hlines=[(1.0, "1")],
                    ),
                    LinePanel(
                        loss,
                        title="training loss",
                        xlabel="step",
                        ylabel="cross entropy",
                        yscale="log",
                    ),
                    LinePanel(
                        accuracy,
                        title="test accuracy",
                        xlabel="step",
                        ylabel="accuracy",
                        ylim=(0.0, 1.0),
                    ),
                ]
            )
        if not rows:
            return []
        return [
            FigureInfo(
                name="lsuv",
                title=f"LSUV vs Gaussian schemes, deep plain nets, {dataset_title(config.dataset)}",
                panels=rows,  # type: ignore[arg-type]
                caption=(
                    "Left: the variance of every Linear / conv layer's output at init, on a "
                    "batch LSUV did not see (LSUV: 1 within sampling error; Xavier shrinks with "
                    "depth for ReLU). Middle and right: the training loss and the test accuracy."
                ),
                panel_size=(4.2, 3.3),
            )
        ]

    def summary(self, config: LSUVConfig, data: ExperimentData) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for part in dict.fromkeys(config.parts):
            rows = {}
            for label, runs in self._cells(data, part).items():
                accs = [_final_acc(r) for r in runs]
                variances = [r.summary.get("init_variances", []) for r in runs]
                last = [v[-1] for v in variances if v]
                worst = [max(abs(x - 1) for x in v) for v in variances if v]
                rows[label] = {
                    "test_acc": _mean(accs),
                    "test_acc_seeds": accs,
                    "last_layer_variance": _mean(last),
                    "max_abs_variance_minus_1": _mean(worst),
                    "layers": len(variances[0]) if variances else 0,
                    "runs": len(runs),
                    "diverged": sum(r.status == "diverged" for r in runs),
                    "steps_to_level": _mean([_first_at(r, REACH_LEVEL) for r in runs]),
                    "learned_seeds": sum(_finite(a) >= LEARNED for a in accs),
                    "reached_seeds": sum(math.isfinite(_first_at(r, REACH_LEVEL)) for r in runs),
                }
                iters = [
                    r.summary["lsuv_iterations"] for r in runs if "lsuv_iterations" in r.summary
                ]
                if iters:
                    rows[label]["lsuv_iterations"] = iters[0]
                    rows[label]["lsuv_converged"] = all(r.summary["lsuv_converged"] for r in runs)
            if rows:
                out[part] = {"title": _part_title(part, config), "schemes": rows}
        return {"parts": out, "tol": config.tol}

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        out = []
        for part in summary.get("parts", {}).values():
            rows = part["schemes"]
            ranked = sorted(rows.items(), key=lambda kv: -_finite(kv[1]["test_acc"]))
            listing = ", ".join(
                f"{label} {row['test_acc']:.3f}"
                + (
                    f" (learned in {row['learned_seeds']}/{row['runs']})"
                    if row.get("runs", 1) > 1
                    else ""
                )
                for label, row in ranked
            )
            out.append(f"{part['title']}: final test accuracy {listing}.")
            lsuv = next((label for label in rows if label.startswith("lsuv")), None)
            if lsuv is None:
                continue
            converged = "all" if rows[lsuv].get("lsuv_converged") else "not all"
            variance = (
                f"LSUV's layer output variances at init are within "
                f"{rows[lsuv]['max_abs_variance_minus_1']:.3f} of 1 on a held-out batch "
                f"(tolerance {summary.get('tol', 0.1):g} on its own batch; {converged} layers "
                "converged)"
            )
            out.append(variance + ".")
            out.append(_claim(rows, lsuv))
        return out


def _claim(rows: dict[str, Any], lsuv: str) -> str:
    """The sentence on "LSUV trains where the other schemes struggle", from the numbers."""
    own = _finite(rows[lsuv]["test_acc"])
    others = {k: v for k, v in rows.items() if k != lsuv}
    struggling = [k for k, v in others.items() if _finite(v["test_acc"]) < own - STRUGGLE_MARGIN]
    keeping_up = [k for k in others if k not in struggling]
    speeds = ", ".join(f"{k} {_steps_text(v)}" for k, v in rows.items())
    speed = f"mean steps to {REACH_LEVEL:.0%} test accuracy: {speeds}"
    if own < LEARNED:
        return f"LSUV did not learn here (mean final accuracy {own:.3f}); {speed}."
    if not keeping_up:
        return (
            f"LSUV trains and every other scheme ends more than {STRUGGLE_MARGIN:g} below it "
            f"({', '.join(struggling)}): the claim holds here; {speed}."
        )
    lagging = (
        f"; {', '.join(struggling)} end more than {STRUGGLE_MARGIN:g} below" if struggling else ""
    )
    return (
        f"LSUV trains, but {', '.join(keeping_up)} keep up (within {STRUGGLE_MARGIN:g} or "
        f"above){lagging}: the claim holds only for the lagging ones; {speed}."
    )


def _steps_text(row: dict[str, Any]) -> str:
    """Mean steps to the level over the seeds that reach it, and how many do."""
    steps = row["steps_to_level"]
    text = f"{steps:.0f}" if math.isfinite(steps) else "never"
    runs = row.get("runs", 1)
    return text + (
        f" ({row.get('reached_seeds', 0)}/{runs})" if runs > 1 and math.isfinite(steps) else ""
    )


def _first_at(run: RunData, level: float) -> float:
    steps, acc = run.series("valid_acc")
    return next((float(s) for s, a in zip(steps, acc, strict=True) if a >= level), math.nan)


def _label(init: str) -> str:
    return "lsuv" if init.startswith("lsuv") else init_label(init)


def _part_title(part: str, config: LSUVConfig) -> str:
    if part == "mlp":
        return f"MLP 784-{config.width}x{config.depth}-10 {config.activation}"
    side = 28 // config.cnn_pool
    return f"CNN {config.cnn_depth}x conv{config.cnn_channels} {config.activation}, {side}x{side}"


def _build(spec: dict[str, Any], train: Dataset) -> nn.Module:
    from initlab.models.cnn import deep_cnn
    from initlab.models.mlp import mlp

    if spec["part"] == "mlp":
        return mlp([train.num_features, *spec["hidden"], train.num_classes], spec["activation"])
    return deep_cnn(spec["depth"], spec["channels"], spec["activation"], 1, train.num_classes)


def _initialize(model: nn.Module, run: RunSpec, train: Dataset) -> dict[str, Any]:
    """Init ``model`` with the run's scheme; the per-layer variances (and LSUV's report)."""
    from initlab.init import LSUVSummary, initialize

    size = run.spec["lsuv_batch"]
    lsuv_x = _batch(train, size, run.seed + BATCH_SEED_OFFSETS["lsuv"])
    measure_x = _batch(train, size, run.seed + BATCH_SEED_OFFSETS["measure"])
    if run.spec["init"].startswith("lsuv"):
        summary = initialize(model, run.spec["init"], data=lsuv_x, seed=run.seed)
    else:
        summary = initialize(model, run.spec["init"], bias="zeros", seed=run.seed)
    report: dict[str, Any] = {"init_variances": layer_variances(model, measure_x)}
    if isinstance(summary, LSUVSummary):
        report["lsuv_iterations"] = [s.iterations for s in summary.steps]
        report["lsuv_converged"] = all(s.converged for s in summary.steps)
    return report


def _train_one(
    run: RunSpec,
    model: nn.Module,
    recorder: Recorder,
    train: Dataset,
    test: Dataset,
    progress: Progress,
) -> RunOutcome:
    from initlab.experiments.common import single_thread
    from initlab.train.fit import fit

    steps = run.spec["steps"]

    def on_row(row: dict[str, Any]) -> None:
        progress(float(row["step"]), float(steps))

    with single_thread():
        result = fit(
            model,
            train,
            optimizer="momentum",
            lr=run.spec["lr"],
            hparams={"momentum": run.spec["momentum"]},
            steps=steps,
            batch_size=run.spec["batch_size"],
            seed=run.spec["batch_seed"],
            eval_data=test,
            eval_every=run.spec["eval_every"],
            log_every=10,
            callback=on_row,
        )
    rows = [
        {"step": row["step"], **{k: row[k] for k in ("train_loss", "valid_acc") if k in row}}
        for row in result.history
    ]
    recorder.log_metrics([row for row in rows if len(row) > 1])
    last = result.history[-1] if result.history else {}
    return RunOutcome(
        result.status,
        {
            "steps_done": result.steps_done,
            "diverged_at": result.diverged_at,
            **{
                k: last[k]
                for k in ("train_loss", "valid_acc")
                if k in last and math.isfinite(last[k])
            },
        },
    )


def _final_acc(run: RunData) -> float:
    _, acc = run.series("valid_acc")
    return acc[-1] if acc and math.isfinite(acc[-1]) else math.nan


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf
