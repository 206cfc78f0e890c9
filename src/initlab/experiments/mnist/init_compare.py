"""B1 init-compare: the weight scale decides whether a deep ReLU network learns at all.

Source: Saito, "Deep Learning from Scratch" (2016), sec. 6.2.4, ``weight_init_compare.py``:
MNIST, 784-100-100-100-100-10 with ReLU, biases 0, SGD lr 0.01, minibatches of 128 drawn
with replacement, 2000 iterations; weights N(0, std^2) with std = 0.01, sqrt(1/n) (the
book's "Xavier", which is LeCun's N(0, 1/fan_in): Glorot's is sqrt(2/(n_in + n_out))) and
sqrt(2/n) (He); training-loss curves smoothed with the book's ``smooth_curve``. With std
0.01 each layer shrinks the signal about 100-fold in variance (var ~ n * 0.01^2 / 2 = 0.005
per layer), the logits are ~0 and so are the gradients: the loss stays at ln 10 = 2.30.
He keeps the forward variance of a ReLU layer (var(W) = 2/n) and learns fastest.

The runs of one activation are one group: all inits (and seeds) train together in the
batched engine on the same minibatches. The test accuracy (whole test set) is measured at
the start and the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

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
from initlab.experiments.common import (
    check_activations,
    check_inits,
    color,
    fmt,
    init_label,
    run_seeds,
)
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
from initlab.report.figures import FigureInfo, LinePanel, Series

LEARNED_BELOW = 0.95 * LN10  # a final loss above this is "did not learn" (chance: ln 10)
FAST_LEVEL = 1.0  # "learns fastest": first iteration whose smoothed loss is below this


@dataclass(frozen=True)
class InitCompareConfig:
    dataset: Annotated[DatasetChoice, DATASET_HELP] = "mnist"
    hidden: Annotated[tuple[int, ...], "hidden layer widths"] = (100, 100, 100, 100)
    activations: Annotated[tuple[str, ...], "hidden activation(s), one panel each"] = ("relu",)
    inits: Annotated[
        tuple[str, ...],
        "init schemes (biases 0): std 0.01, sqrt(1/n) (the book's 'Xavier'), sqrt(2/n) (He)",
    ] = ("normal:std=0.01", "lecun_normal", "he_normal")
    lr: Annotated[float, "SGD learning rate"] = 0.01
    steps: Annotated[int, "SGD iterations"] = 2000
    batch_size: Annotated[int, "minibatch size (drawn with replacement, as the book)"] = 128
    seeds: Annotated[int, "number of seeds per init (each seed draws its own weights)"] = 1
    smooth: Annotated[bool, "smooth the curves with the book's smooth_curve"] = True
    loss_curve: Annotated[LossCurve, LOSS_CURVE_HELP] = "after_update"


def _final_loss(run: Any, metric: str = "train_loss_after") -> float:
    """Mean training loss of the last 100 iterations (or all, when fewer)."""
    _, loss = run.series(metric)
    return tail_mean(loss, min(100, len(loss)))


@register
class InitCompare(GroupExperiment):
    """Training loss of a 5-layer ReLU MLP on MNIST from std 0.01, sqrt(1/n) and He init."""

    name = "init-compare"
    description = "B1: MNIST loss curves from std 0.01, sqrt(1/n) and He init (deep ReLU MLP)"
    cost = "~15 s"  # measured: benchmarks/suite.py, CPU seconds (README, Performance)
    source = "Saito, Deep Learning from Scratch (2016), sec. 6.2.4: weight_init_compare.py"
    Config = InitCompareConfig
    quick: ClassVar[dict[str, Any]] = {"steps": 1000}
    quick_cost = "~10 s"

    def validate(self, config: InitCompareConfig) -> None:
        super().validate(config)
        check_dataset(config.dataset)
        check_hidden(config.hidden)
        check_activations(config.activations)
        check_inits(config.inits)

    def flops(self, config: InitCompareConfig) -> float:
        widths = [784, *config.hidden, 10]
        return fl.training_flops(
            widths,
            members=len(config.activations) * len(config.inits) * config.seeds,
            steps=config.steps,
            batch=config.batch_size,
            eval_examples=2 * fl.split_size(config.dataset, "test"),
            after_update=True,
        )

    def plan(self, config: InitCompareConfig, seed: int = 0) -> list[RunSpec]:
        runs = []
        for activation in config.activations:
            for s in run_seeds(seed, config.seeds):
                for init in config.inits:
                    key = f"{activation}/{init}" + (f"/seed={s}" if config.seeds > 1 else "")
                    spec = {
                        "dataset": config.dataset,
                        "hidden": list(config.hidden),
                        "activation": activation,
                        "init": init,
                        "optimizer": "sgd",
                        "lr": config.lr,
                        "steps": config.steps,
                        "batch_size": config.batch_size,
                        "batch_seed": stream_seed(seed, "minibatches"),
                        "loss_after_update": True,
                    }
                    runs.append(RunSpec(key, spec, s, group=activation))
        return runs

    def execute_group(
        self,
        runs: list[RunSpec],
        config: InitCompareConfig,
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
            keep=("train_loss", "train_loss_after", "valid_loss", "valid_acc"),
            lr=first["lr"],
            steps=first["steps"],
            batch_size=first["batch_size"],
            batch_seed=first["batch_seed"],
            eval_data=task.test,
            eval_every=first["steps"],
            loss_after_update=first.get("loss_after_update", False),
        )
        return outcomes

    # -- results ----------------------------------------------------------------------
    def figures(self, config: InitCompareConfig, data: ExperimentData) -> list[FigureInfo]:
        panels: list[LinePanel] = []
        top = 2.5  # the book's y range, widened when a curve starts higher
        for activation in config.activations:
            series = []
            for i, init in enumerate(config.inits):
                runs = [
                    r
                    for r in data.finished()
                    if r.spec["activation"] == activation and r.spec["init"] == init
                ]
                if not runs:
                    continue
                curves = [r.series(loss_metric(config.loss_curve)) for r in runs]
                steps = curves[0][0]
                length = min(len(c[1]) for c in curves)
                mean = [sum(c[1][t] for c in curves) / len(curves) for t in range(length)]
                shown = smooth_curve(mean) if config.smooth else mean
                finite = [v for v in shown if math.isfinite(v)]
                top = max(top, min(max(finite, default=0.0) * 1.05, 10.0))
                for steps_r, loss_r in curves:
                    series.append(Series(steps_r, loss_r, None, color(i), linewidth=0.5, alpha=0.2))
                accs = [r.summary.get("valid_acc") for r in runs]
                accs = [a for a in accs if isinstance(a, float)]
                label = init_label(init)
                if accs:
                    label += f" (test acc {sum(accs) / len(accs):.3f})"
                series.append(Series(steps[:length], shown, label, color(i), linewidth=1.8))
            panels.append(
                LinePanel(
                    series,
                    title=f"{activation}, {len(config.hidden)} hidden layers of "
                    f"{'/'.join(str(w) for w in sorted(set(config.hidden)))}",
                    xlabel="iteration (SGD step)",
                    ylabel=f"{loss_label(config.loss_curve)} (nats)",
                    ylim=(0.0, top),
                    hlines=[(LN10, "chance: ln 10 = 2.30")],
                )
            )
        if not panels or not any(p.series for p in panels):
            return []
        for panel in panels:
            panel.ylim = (0.0, top)
        how = "smoothed with the book's smooth_curve (faint: raw per-batch loss)"
        return [
            FigureInfo(
                name="init-compare",
                title=f"Weight init and training: {dataset_title(config.dataset)}, SGD lr "
                f"{fmt(config.lr)}, batch {config.batch_size}",
                panels=[panels],  # type: ignore[list-item]
                caption=(
                    f"Training loss per iteration, {how if config.smooth else 'raw'}: "
                    f"{loss_caption(config.loss_curve)}; "
                    f"{config.seeds} seed(s) per init, all inits on the same minibatches. "
                    "A curve that stays on the dotted chance line did not learn."
                ),
                sharey=True,
                panel_size=(6.0, 4.0),
            )
        ]

    def summary(self, config: InitCompareConfig, data: ExperimentData) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for activation in config.activations:
            rows: dict[str, Any] = {}
            for init in config.inits:
                runs = [
                    r
                    for r in data.finished()
                    if r.spec["activation"] == activation and r.spec["init"] == init
                ]
                if not runs:
                    continue
                finals = [_final_loss(r, loss_metric(config.loss_curve)) for r in runs]
                reached = []
                for r in runs:
                    steps, loss = r.series(loss_metric(config.loss_curve))
                    reached.append(first_below(steps, smooth_curve(loss), FAST_LEVEL))
                accs = [r.summary.get("valid_acc") for r in runs]
                accs = [a for a in accs if isinstance(a, float)]
                crossing = [s for s in reached if s is not None]
                rows[init] = {
                    "final_loss": sum(finals) / len(finals),
                    "steps_to_loss_1": max(crossing) if len(crossing) == len(runs) else None,
                    "test_acc": sum(accs) / len(accs) if accs else None,
                    "runs": len(runs),
                    "diverged": sum(r.status == "diverged" for r in runs),
                }
            out[activation] = rows
        return {
            "chance_loss": LN10,
            "steps": config.steps,
            "loss_curve": config.loss_curve,
            "by_activation": out,
        }

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        out = []
        for activation, rows in summary.get("by_activation", {}).items():
            learned = {}
            for init, row in rows.items():
                loss = row["final_loss"]
                acc = "" if row["test_acc"] is None else f", test accuracy {row['test_acc']:.3f}"
                if not math.isfinite(loss):
                    out.append(f"{init} with {activation}: diverged (NaN/Inf loss).")
                elif loss > LEARNED_BELOW:
                    out.append(
                        f"{init} with {activation}: did not learn (final loss {loss:.2f}, "
                        f"chance ln 10 = {LN10:.2f}{acc})."
                    )
                else:
                    learned[init] = row
                    out.append(f"{init} with {activation}: learned (final loss {loss:.3f}{acc}).")
            fast = {k: r for k, r in learned.items() if r["steps_to_loss_1"] is not None}
            if fast:
                best = min(fast, key=lambda k: (fast[k]["steps_to_loss_1"], fast[k]["final_loss"]))
                others = ", ".join(
                    f"{k}: {r['steps_to_loss_1']}" for k, r in fast.items() if k != best
                )
                out.append(
                    f"{best} learns fastest with {activation}: smoothed loss below "
                    f"{FAST_LEVEL:g} after {fast[best]['steps_to_loss_1']} iterations"
                    + (f" ({others})." if others else ".")
                )
            elif learned:
                best = min(learned, key=lambda k: learned[k]["final_loss"])
                out.append(f"{best} ends lowest with {activation}.")
        return out
