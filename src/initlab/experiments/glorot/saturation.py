"""D2 glorot-saturation: activation values of each hidden layer over training.

Source: Glorot & Bengio (2010), section 3, Figures 2-4. Five hidden layers of 1000 units,
softmax output, biases 0, SGD on minibatches of 10, Shapeset-3x2 (online: every training
image is new). On 300 fixed held-out examples, every ``probe_every`` updates: the mean and
standard deviation of each hidden layer's activations (sigmoid, their Figure 2), or the 98th
percentile and the standard deviation (tanh and softsign, their Figure 3); and at the end
the normalized histogram of each layer's activations over those examples (their Figure 4).

What the paper sees, and the verdicts test on the stored numbers: with sigmoid and standard
init the top hidden layer's output is quickly pushed toward 0 (where the sigmoid saturates
and learning stalls), while the lower layers stay near 0.5; with tanh and standard init the
layers saturate one after the other, layer 1 first (98th percentile near 1). Learning rate
and budget are overridable; the saturation of tanh takes the paper many epochs, so the
verdict says how far the run got.

The runs of one activation are one group: its inits (and seeds) train together in the
batched engine on the same minibatches.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

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
from initlab.experiments.common import check_positive, color, fmt, run_seeds, single_thread
from initlab.experiments.glorot.common import (
    DATASET_HELP,
    DATASET_TITLES,
    GLOROT_ACTIVATIONS,
    GLOROT_INITS,
    HIDDEN,
    MINIBATCH,
    SOURCE,
    GlorotDataset,
    build_member,
    check_dataset_present,
    check_glorot,
    init_name,
    probed_task,
    stream_seed,
)
from initlab.experiments.mnist_task import group_progress
from initlab.experiments.registry import register
from initlab.report.figures import FigureInfo, HistogramPanel, LinePanel, Series

SATURATED = 0.95
"""A tanh/softsign layer counts as saturated once its 98th percentile reaches this."""
TOWARD_ZERO = 0.1
"""The sigmoid's top layer "moves toward 0" when its mean falls by at least this much."""
EARLY = 1 / 3
"""... within this fraction of training."""


@dataclass(frozen=True)
class GlorotSaturationConfig:
    dataset: Annotated[GlorotDataset, DATASET_HELP] = "shapeset"
    hidden: Annotated[tuple[int, ...], "hidden layer widths (the paper: 5 x 1000)"] = HIDDEN
    activations: Annotated[tuple[str, ...], "activations, one figure each"] = GLOROT_ACTIVATIONS
    inits: Annotated[
        tuple[str, ...], "standard U[-1/sqrt(n), 1/sqrt(n)] and normalized (xavier_uniform)"
    ] = GLOROT_INITS
    lr: Annotated[float, "SGD learning rate"] = 0.1
    steps: Annotated[int, "SGD updates (minibatches of new examples)"] = 2000
    batch_size: Annotated[int, "minibatch size (the paper: 10)"] = MINIBATCH
    probe_every: Annotated[int, "updates between two probes of the fixed examples"] = 100
    probe_examples: Annotated[int, "fixed held-out examples probed (the paper: 300)"] = 300
    seeds: Annotated[int, "number of seeds per activation and init"] = 1


def _layers(config: GlorotSaturationConfig) -> list[str]:
    return [f"act{i + 1}" for i in range(len(config.hidden))]


@register
class GlorotSaturation(GroupExperiment):
    """Per-layer activation statistics over training (Glorot & Bengio 2010, Figs. 2-4)."""

    name = "glorot-saturation"
    description = "D2: hidden-layer activations over training: sigmoid's top layer, tanh layers"
    cost = "~4 min (2-7 min by host and load)"
    source = f"{SOURCE}, section 3, Figures 2-4"
    Config = GlorotSaturationConfig
    quick: ClassVar[dict[str, Any]] = {"hidden": (200,) * 5, "steps": 1000, "probe_every": 100}
    quick_cost = "~30 s"

    def validate(self, config: GlorotSaturationConfig) -> None:
        super().validate(config)
        check_glorot(config.dataset, config.hidden, config.activations, config.inits)
        check_dataset_present(config.dataset)
        check_positive(probe_every=config.probe_every, probe_examples=config.probe_examples)

    def plan(self, config: GlorotSaturationConfig, seed: int = 0) -> list[RunSpec]:
        runs = []
        for activation in config.activations:
            for s in run_seeds(seed, config.seeds):
                for init in config.inits:
                    key = f"{activation}/{init_name(init)}"
                    key += f"/seed={s}" if config.seeds > 1 else ""
                    spec = {
                        "dataset": config.dataset,
                        "hidden": list(config.hidden),
                        "activation": activation,
                        "init": init,
                        "lr": config.lr,
                        "steps": config.steps,
                        "batch_size": config.batch_size,
                        "probe_every": config.probe_every,
                        "probe_examples": config.probe_examples,
                        "data_seed": seed,
                    }
                    runs.append(RunSpec(key, spec, s, group=activation))
        return runs

    def execute_group(
        self,
        runs: list[RunSpec],
        config: GlorotSaturationConfig,
        recorders: list[Recorder],
        progress: Progress = no_progress,
    ) -> list[RunOutcome]:
        from initlab.train.batched import fit_batched

        first = runs[0].spec
        steps, batch = first["steps"], first["batch_size"]
        train, probe_set, spec = probed_task(first)
        every = first["probe_every"]
        with single_thread():
            result = fit_batched(
                [build_member(spec, run.spec["init"], run.seed) for run in runs],
                train,
                spec=spec,
                lr=first["lr"],
                steps=steps,
                batch_size=batch,
                batch_mode="epoch",  # online: every example once (cycled past the set)
                seed=stream_seed(first["data_seed"], "batches"),
                probe=lambda t: t % every == 0 or t == steps - 1,
                probe_layers=[f"act{i + 1}" for i in range(len(first["hidden"]))],
                probe_data=probe_set,
                histograms=True,
                log_every=max(1, every // 10),
                callback=group_progress(progress, steps),
            )
        outcomes = []
        for member, recorder in zip(result.results, recorders, strict=True):
            records = [r for r in member.probe_records if r["kind"] == "activation"]
            last = max((r["step"] for r in records), default=0)
            for r in records:  # histograms of the final probe only (the paper's Figure 4)
                if r["step"] != last:
                    r["histogram"] = None
            recorder.log_probes(records)
            recorder.log_metrics(
                [{"step": row["step"], "train_loss": row["train_loss"]} for row in member.history]
            )
            loss = member.last("train_loss")
            summary = {"final_loss": loss if loss is None or math.isfinite(loss) else str(loss)}
            outcomes.append(RunOutcome(member.status, summary))
        progress(float(steps), float(steps))
        return outcomes

    # -- results ----------------------------------------------------------------------
    def figures(self, config: GlorotSaturationConfig, data: ExperimentData) -> list[FigureInfo]:
        out = []
        layers = _layers(config)
        for activation in config.activations:
            panels: list[LinePanel | HistogramPanel | None] = []
            for init in config.inits:
                run = _first_run(data, activation, init)
                if run is None:
                    continue
                panels.append(_curve_panel(run, activation, init, layers))
            if panels:
                stats = "mean (solid) and mean +- std" if activation == "sigmoid" else "98th pct"
                out.append(
                    FigureInfo(
                        name=f"saturation-{activation}",
                        title=f"{activation}: activations of each hidden layer during learning "
                        f"({DATASET_TITLES[config.dataset]}, lr {fmt(config.lr)})",
                        panels=[panels],
                        caption=(
                            f"On {config.probe_examples} fixed held-out examples: {stats}"
                            + (
                                " (markers) and standard deviation (solid line)"
                                if activation != "sigmoid"
                                else " (dotted)"
                            )
                            + " of each hidden layer's activations, against SGD updates "
                            "(the paper's Figures 2 and 3)."
                        ),
                        sharey=True,
                        panel_size=(5.2, 3.6),
                    )
                )
        hist_rows, labels = [], []
        for activation in config.activations:
            for init in config.inits:
                run = _first_run(data, activation, init)
                if run is None:
                    continue
                hist_rows.append(_histogram_row(run, layers))
                labels.append(f"{activation}, {init_name(init)}")
        if hist_rows:
            out.append(
                FigureInfo(
                    name="final-histograms",
                    title="Activation values at the end of learning, per hidden layer",
                    panels=hist_rows,  # type: ignore[arg-type]
                    caption=(
                        "Normalized histograms over the fixed examples and all units of a "
                        "layer, after the last update (the paper's Figure 4)."
                    ),
                    row_labels=labels,
                    col_labels=[f"layer {i + 1}" for i in range(len(layers))],
                    panel_size=(2.4, 1.9),
                )
            )
        return out

    def summary(self, config: GlorotSaturationConfig, data: ExperimentData) -> dict[str, Any]:
        rows: dict[str, Any] = {}
        layers = _layers(config)
        early = config.steps * EARLY
        for run in data.finished():
            curves = _curves(run, layers)
            if not curves["steps"]:
                continue
            top = curves["mean"][-1]
            early_idx = [i for i, s in enumerate(curves["steps"]) if s <= early] or [0]
            saturated_at = []
            for layer in range(len(layers)):
                hits = [
                    s
                    for s, v in zip(curves["steps"], curves["p98"][layer], strict=True)
                    if v >= SATURATED
                ]
                saturated_at.append(hits[0] if hits else None)
            rows[run.key] = {
                "activation": run.spec["activation"],
                "init": init_name(run.spec["init"]),
                "top_mean_init": top[0],
                "top_mean_early_min": min(top[i] for i in early_idx),
                "top_mean_final": top[-1],
                "other_means_final": [curves["mean"][i][-1] for i in range(len(layers) - 1)],
                "p98_final": [curves["p98"][i][-1] for i in range(len(layers))],
                "saturated_at": saturated_at,
                "final_loss": run.summary.get("final_loss"),
            }
        return {"steps": config.steps, "saturated_p98": SATURATED, "runs": rows}

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        out = []
        steps = summary.get("steps", 0)
        for key, row in summary.get("runs", {}).items():
            if row["activation"] == "sigmoid":
                drop = row["top_mean_init"] - row["top_mean_early_min"]
                others = row["other_means_final"]
                lowest = all(row["top_mean_final"] < m for m in others)
                moved = drop >= TOWARD_ZERO and lowest
                out.append(
                    f"{key}: the top hidden layer's mean activation went from "
                    f"{row['top_mean_init']:.2f} at init to {row['top_mean_early_min']:.2f} in "
                    f"the first {EARLY:.0%} of training and {row['top_mean_final']:.2f} at the "
                    f"end (lower layers end at {', '.join(f'{m:.2f}' for m in others)}): "
                    + (
                        "it moves toward 0 early, as in the paper's Figure 2."
                        if moved
                        else "it does not move toward 0 early here."
                    )
                )
            else:
                out.append(f"{key}: " + _saturation_sentence(row, steps))
        return out


def _saturation_sentence(row: dict[str, Any], steps: int) -> str:
    """Whether the layers saturated (98th percentile >= SATURATED), and in which order."""
    at = row["saturated_at"]
    hit = [(i + 1, s) for i, s in enumerate(at) if s is not None]
    finals = ", ".join(f"{v:.2f}" for v in row["p98_final"])
    if not hit:
        return (
            f"no layer saturated within {steps} updates (98th percentiles at the end, layer 1 "
            f"up: {finals}; the paper's saturation takes far longer: raise steps)."
        )
    layers = [layer for layer, _ in hit]
    times = [step for _, step in hit]
    prefix = layers == list(range(1, len(layers) + 1))  # layer 1 first, none skipped
    ordered = all(a <= b for a, b in itertools.pairwise(times))
    if len(hit) == 1:
        how = f"only layer {layers[0]}"
    elif len(set(times)) == 1:
        how = f"all {len(hit)} at once (update {times[0]}), not layer after layer"
    elif prefix and ordered:
        how = "layer after layer from layer 1 up"
    else:
        how = "not in bottom-up order"
    when = ", ".join(f"layer {layer} at update {step}" for layer, step in hit)
    return (
        f"layers reached a 98th percentile >= {SATURATED} ({when}): {how}; "
        f"98th percentiles at the end: {finals}."
    )


def _first_run(data: ExperimentData, activation: str, init: str) -> RunData | None:
    for run in data.finished():
        if run.spec["activation"] == activation and run.spec["init"] == init:
            return run
    return None


def _curves(run: RunData, layers: list[str]) -> dict[str, Any]:
    """Per layer (in order), the mean, std and p98 over the probed steps."""
    records = run.probe_records(kind="activation")
    steps = sorted({int(r["step"]) for r in records})
    at = {(r["layer"], int(r["step"])): r["stats"] for r in records}
    out: dict[str, Any] = {"steps": steps}
    for key in ("mean", "std", "p98"):
        out[key] = [[float(at[layer, s][key]) for s in steps] for layer in layers]
    return out


def _curve_panel(run: RunData, activation: str, init: str, layers: list[str]) -> LinePanel:
    curves = _curves(run, layers)
    steps, series = curves["steps"], []
    for i in range(len(layers)):
        c = color(i)
        std = curves["std"][i]
        if activation == "sigmoid":
            mean = curves["mean"][i]
            series.append(Series(steps, mean, f"layer {i + 1}", c, linewidth=1.8))
            for sign in (1, -1):
                band = [m + sign * s for m, s in zip(mean, std, strict=True)]
                series.append(Series(steps, band, None, c, linestyle=":", linewidth=0.8))
        else:
            p98 = curves["p98"][i]
            series.append(Series(steps, p98, f"layer {i + 1}", c, linestyle="", marker="o"))
            series.append(Series(steps, std, None, c, marker="x", linewidth=1.2))
    ylabel = "activation value" if activation == "sigmoid" else "98th pct (o), std (line)"
    return LinePanel(
        series,
        title=f"{activation}, {init_name(init)} init",
        xlabel="SGD updates",
        ylabel=ylabel,
        ylim=(0.0, 1.05),
    )


def _histogram_row(run: RunData, layers: list[str]) -> list[HistogramPanel | None]:
    row: list[HistogramPanel | None] = []
    records = [r for r in run.probe_records(kind="activation") if r.get("histogram")]
    for layer in layers:
        rec = next((r for r in records if r["layer"] == layer), None)
        if rec is None:
            row.append(None)
            continue
        hist = rec["histogram"]
        total = max(sum(hist["counts"]), 1)
        row.append(
            HistogramPanel(
                edges=hist["edges"],
                counts=[c / total for c in hist["counts"]],
                xlim=(hist["edges"][0], hist["edges"][-1]),
                note=f"std {rec['stats']['std']:.2f}",
            )
        )
    return row
