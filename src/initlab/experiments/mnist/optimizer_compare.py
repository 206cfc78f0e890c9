"""B2 optimizer-compare: SGD, Momentum, AdaGrad, RMSProp and Adam on MNIST.

Source: Saito, "Deep Learning from Scratch" (2016), sec. 6.1.8, ``optimizer_compare_mnist.py``:
784-100-100-100-100-10 with ReLU and He init (N(0, 2/n), biases 0), minibatches of 128
drawn with replacement, 2000 iterations; SGD lr 0.01, Momentum lr 0.01 (momentum 0.9),
AdaGrad lr 0.01, Adam lr 0.001 (betas 0.9, 0.999); training-loss curves smoothed with the
book's ``smooth_curve``. The book's script leaves RMSProp out (its ``RMSprop`` class, lr
0.01 and decay 0.99, is in ``common/optimizer.py``): it is included here. The book's
optimizers add 1e-7 to the root of the squared-gradient average; so does this preset
(``eps``).

Execution: different optimizers cannot share one batched optimizer, so each optimizer is
one group, one :func:`~initlab.train.batched.fit_batched` over its seeds. Every run sees
the minibatch stream of the base seed and its seed's initial weights, so all optimizers at
one seed start from the same weights and see the same batches (as in the book, where all
networks get the same ``batch_mask``).

Cost (issue 13; full defaults, one thread, the AMD EPYC host): 44 s CPU against a floor of
14 s at a 67 GFLOP/s GEMM rate (3.1x; 3.6x when that rate measures 77), 37 s of it in the
training loops. Inherent at this size: each group is one 784-100x4-10 network at batch
128, whose 100 x 100 x 128 products MKL runs at ~40-50 GFLOP/s; the gather of 128 random
rows of the 188 MB training set costs 160 us a step (memory latency; 1.6 s in all); the
adaptive optimizers' element-wise updates run per parameter tensor (ten of them: torch's
CPU ``_foreach_*`` loops over the list) with MKL's sqrt. The loss after the update is one
``log_softmax`` pass, as the training loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from initlab.errors import InitlabError, check_choice
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
from initlab.experiments.common import check_activations, check_inits, color, ranking, run_seeds
from initlab.experiments.mnist_task import (
    DATASET_HELP,
    LN10,
    LOSS_CURVE_HELP,
    DatasetChoice,
    LossCurve,
    check_dataset,
    check_hidden,
    dataset_title,
    first_below,
    group_task,
    loss_caption,
    loss_label,
    loss_metric,
    smooth_curve,
    tail_mean,
    train_group,
)
from initlab.experiments.registry import register
from initlab.experiments.seeds import stream_seed
from initlab.experiments.signal.optimizer_paths import TITLES
from initlab.report.figures import FigureInfo, LinePanel, Series

BOOK_LR: dict[str, float] = {
    "sgd": 0.01,
    "momentum": 0.01,
    "nesterov": 0.01,
    "adagrad": 0.01,
    "rmsprop": 0.01,
    "adam": 0.001,
    "adamw": 0.001,
    "lars": 0.01,
}
"""The book's learning rates (and, for the optimizers it does not run, comparable ones)."""

LEVEL = 0.5  # "reaches": first iteration whose smoothed loss is below this


@dataclass(frozen=True)
class OptimizerCompareConfig:
    dataset: Annotated[DatasetChoice, DATASET_HELP] = "mnist"
    hidden: Annotated[tuple[int, ...], "hidden layer widths"] = (100, 100, 100, 100)
    activation: Annotated[str, "hidden activation"] = "relu"
    init: Annotated[str, "init scheme of every optimizer's network (biases 0)"] = "he_normal"
    optimizers: Annotated[tuple[str, ...], "optimizers (initlab.train.optim names)"] = (
        "sgd",
        "momentum",
        "adagrad",
        "rmsprop",
        "adam",
    )
    lr: Annotated[
        dict[str, float],
        "learning rate per optimizer, e.g. {adam = 0.01}; missing ones use the book's "
        "(SGD, Momentum, AdaGrad, RMSProp 0.01; Adam 0.001)",
    ] = field(default_factory=dict)
    momentum: Annotated[float, "momentum of Momentum and Nesterov"] = 0.9
    alpha: Annotated[float, "RMSProp's decay rate of the squared-gradient average"] = 0.99
    beta1: Annotated[float, "Adam's first-moment decay"] = 0.9
    beta2: Annotated[float, "Adam's second-moment decay"] = 0.999
    eps: Annotated[float, "AdaGrad / RMSProp / Adam denominator epsilon (the book's 1e-7)"] = 1e-7
    steps: Annotated[int, "iterations"] = 2000
    batch_size: Annotated[int, "minibatch size (drawn with replacement, as the book)"] = 128
    seeds: Annotated[int, "number of seeds per optimizer"] = 1
    smooth: Annotated[bool, "smooth the curves with the book's smooth_curve"] = True
    loss_curve: Annotated[LossCurve, LOSS_CURVE_HELP] = "after_update"


def optimizer_hparams(name: str, config: OptimizerCompareConfig) -> dict[str, float]:
    """The hyperparameters of optimizer ``name`` in this experiment (initlab.train.optim names)."""
    hp = {"lr": config.lr.get(name, BOOK_LR[name])}
    if name in ("momentum", "nesterov", "lars"):
        hp["momentum"] = config.momentum
    if name == "rmsprop":
        hp["alpha"] = config.alpha
    if name in ("adam", "adamw"):
        hp["beta1"], hp["beta2"] = config.beta1, config.beta2
    if name in ("adagrad", "rmsprop", "adam", "adamw"):
        hp["eps"] = config.eps
    return hp


@register
class OptimizerCompare(GroupExperiment):
    """Training loss of five optimizers on the same network, init and minibatches."""

    name = "optimizer-compare"
    description = "B2: MNIST loss curves of SGD, Momentum, AdaGrad, RMSProp and Adam (He init)"
    cost = "~25 s"  # measured: benchmarks/suite.py, CPU seconds (README, Performance)
    source = "Saito, Deep Learning from Scratch (2016), sec. 6.1.8: optimizer_compare_mnist.py"
    Config = OptimizerCompareConfig
    quick: ClassVar[dict[str, Any]] = {"steps": 600}
    quick_cost = "~10 s"

    def validate(self, config: OptimizerCompareConfig) -> None:
        super().validate(config)
        from initlab.train.optim import OPTIMIZER_NAMES

        check_dataset(config.dataset)
        check_hidden(config.hidden)
        check_activations([config.activation])
        check_inits([config.init])
        if not config.optimizers:
            raise InitlabError(f"optimizers is empty; valid: {', '.join(OPTIMIZER_NAMES)}")
        for name in [*config.optimizers, *config.lr]:
            check_choice(name, OPTIMIZER_NAMES, "optimizer")
        for name, lr in config.lr.items():
            if not lr > 0:
                raise InitlabError(f"lr of {name} must be positive, got {lr}")

    def flops(self, config: OptimizerCompareConfig) -> float:
        return fl.training_flops(
            [784, *config.hidden, 10],
            members=len(config.optimizers) * config.seeds,
            steps=config.steps,
            batch=config.batch_size,
            eval_examples=2 * fl.split_size(config.dataset, "test"),
            after_update=True,
        )

    def plan(self, config: OptimizerCompareConfig, seed: int = 0) -> list[RunSpec]:
        runs = []
        for name in config.optimizers:
            for s in run_seeds(seed, config.seeds):
                key = name + (f"/seed={s}" if config.seeds > 1 else "")
                spec = {
                    "dataset": config.dataset,
                    "hidden": list(config.hidden),
                    "activation": config.activation,
                    "init": config.init,
                    "optimizer": name,
                    "hparams": optimizer_hparams(name, config),
                    "steps": config.steps,
                    "batch_size": config.batch_size,
                    "batch_seed": stream_seed(seed, "minibatches"),
                    "loss_after_update": True,
                }
                runs.append(RunSpec(key, spec, s, group=name))
        return runs

    def execute_group(
        self,
        runs: list[RunSpec],
        config: OptimizerCompareConfig,
        recorders: list[Recorder],
        progress: Progress = no_progress,
    ) -> list[RunOutcome]:
        first = runs[0].spec
        task = group_task(first)
        hparams = dict(first["hparams"])
        lr = hparams.pop("lr")
        _, outcomes = train_group(
            runs,
            recorders,
            progress,
            members=[(run.spec["init"], run.seed) for run in runs],
            data=task.train,
            spec=task.spec,
            keep=("train_loss", "train_loss_after", "valid_loss", "valid_acc"),
            optimizer=first["optimizer"],
            lr=lr,
            hparams=hparams,
            steps=first["steps"],
            batch_size=first["batch_size"],
            batch_seed=first["batch_seed"],
            eval_data=task.test,
            eval_every=first["steps"],
            loss_after_update=first.get("loss_after_update", False),
        )
        return outcomes

    # -- results ----------------------------------------------------------------------
    def _curves(
        self, config: OptimizerCompareConfig, data: ExperimentData
    ) -> dict[str, tuple[list[int], list[float], list[Any]]]:
        """Per optimizer: steps, the loss averaged over its seeds (smoothed), its runs."""
        out = {}
        for name in config.optimizers:
            runs = [r for r in data.finished() if r.spec["optimizer"] == name]
            if not runs:
                continue
            curves = [r.series(loss_metric(config.loss_curve)) for r in runs]
            length = min(len(c[1]) for c in curves)
            mean = [sum(c[1][t] for c in curves) / len(curves) for t in range(length)]
            out[name] = (curves[0][0][:length], smooth_curve(mean) if config.smooth else mean, runs)
        return out

    def figures(self, config: OptimizerCompareConfig, data: ExperimentData) -> list[FigureInfo]:
        curves = self._curves(config, data)
        if not curves:
            return []
        series = []
        for i, (name, (steps, loss, runs)) in enumerate(curves.items()):
            accs = [r.summary.get("valid_acc") for r in runs]
            accs = [a for a in accs if isinstance(a, float)]
            label = f"{TITLES.get(name, name)} lr {runs[0].spec['hparams']['lr']:g}"
            if accs:
                label += f" (test acc {sum(accs) / len(accs):.3f})"
            series.append(Series(steps, loss, label, color(i), linewidth=1.6))
        how = "smoothed with the book's smooth_curve" if config.smooth else "raw"
        panels = [
            LinePanel(
                series,
                title="whole run (log scale)",
                xlabel="iteration",
                ylabel=f"{loss_label(config.loss_curve)} (nats)",
                yscale="log",
                hlines=[(LN10, "chance: ln 10")],
            ),
            LinePanel(
                series,
                title="the book's view (loss 0 to 1)",
                xlabel="iteration",
                ylabel=f"{loss_label(config.loss_curve)} (nats)",
                ylim=(0.0, 1.0),
                legend=False,
            ),
        ]
        return [
            FigureInfo(
                name="optimizer-compare",
                title=f"Optimizers on {dataset_title(config.dataset)}: "
                f"{config.init} init, batch {config.batch_size}",
                panels=[panels],  # type: ignore[list-item]
                caption=(
                    f"Training loss per iteration ({how}, mean over {config.seeds} seed(s)): "
                    f"{loss_caption(config.loss_curve)}; "
                    "every optimizer starts from the same weights and sees the same minibatches. "
                    "Left on a log scale (early spikes included), right on the book's y range."
                ),
                panel_size=(5.2, 3.9),
            )
        ]

    def summary(self, config: OptimizerCompareConfig, data: ExperimentData) -> dict[str, Any]:
        rows: dict[str, Any] = {}
        for name, (steps, loss, runs) in self._curves(config, data).items():
            finals = [tail_mean(r.series(loss_metric(config.loss_curve))[1], 100) for r in runs]
            accs = [r.summary.get("valid_acc") for r in runs]
            accs = [a for a in accs if isinstance(a, float)]
            rows[name] = {
                "lr": runs[0].spec["hparams"]["lr"],
                "final_loss": sum(finals) / len(finals),
                "steps_to_loss_0_5": first_below(steps, loss, LEVEL),
                "test_acc": sum(accs) / len(accs) if accs else None,
                "diverged": sum(r.status == "diverged" for r in runs),
            }
        return {"steps": config.steps, "loss_curve": config.loss_curve, "optimizers": rows}

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        rows = summary.get("optimizers", {})
        if not rows:
            return []

        def key(name: str) -> float:
            value = rows[name]["final_loss"]
            return value if math.isfinite(value) else math.inf

        ranked = sorted(rows, key=key)
        listing = ranking(
            {n: rows[n]["final_loss"] for n in ranked},
            label=lambda n: TITLES.get(n, n),
            diverged=[n for n in ranked if rows[n]["diverged"]],
            number=lambda v: f"{v:.3f}",
        )
        when = "after" if summary.get("loss_curve") == "after_update" else "before"
        out = [
            f"Final training loss ({when} the update, mean of the last 100 iterations): {listing}."
        ]
        reached = {n: r["steps_to_loss_0_5"] for n, r in rows.items()}
        fast = [n for n in ranked if reached[n] is not None]
        if fast:
            best = min(fast, key=lambda n: reached[n])
            never = [TITLES.get(n, n) for n in ranked if reached[n] is None]
            out.append(
                f"{TITLES.get(best, best)} is the first below loss {LEVEL:g} (iteration "
                f"{reached[best]})" + (f"; never below it: {', '.join(never)}." if never else ".")
            )
        if "sgd" in rows and len(rows) > 1 and math.isfinite(key("sgd")):
            beat = [TITLES.get(n, n) for n in ranked if n != "sgd" and key(n) < key("sgd")]
            out.append(
                f"{len(beat)} of {len(rows) - 1} optimizers end below plain SGD "
                f"({rows['sgd']['final_loss']:.3f})" + (f": {', '.join(beat)}." if beat else ".")
            )
        diverged = [TITLES.get(n, n) for n, r in rows.items() if r["diverged"]]
        if diverged:
            out.append(f"Diverged (NaN/Inf): {', '.join(diverged)}; lower their lr.")
        return out
