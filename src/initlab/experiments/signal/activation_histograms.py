"""A1 activation-histograms: per-layer activation histograms of a 5-layer net at init.

Source: Saito, "Deep Learning from Scratch" (ゼロから作るDeep Learning, 2016), section 6.2
("weight initial values"), ``weight_init_activation_histogram.py``: a 1000 x 100 standard
normal input goes through 5 fully connected layers of 100 units without bias,
``a_l = z_{l-1} W_l``, ``z_l = phi(a_l)``, with ``W ~ N(0, std^2)``; one 30-bin histogram
per layer. Expected: sigmoid with std 1 piles up at 0 and 1 (saturated: its gradient
``phi' = phi (1 - phi)`` vanishes there); std 0.01 collapses to 0.5 (sigmoid) or 0 (ReLU),
so all units say the same thing; sqrt(1/n) ("Xavier" in the book, LeCun in fact) keeps
sigmoid and tanh spread; ReLU needs sqrt(2/n) (He).

Fix of the source: the book draws every histogram on the range (0, 1), which hides the
negative half of tanh; here each histogram uses the activation's real range (tanh
(-1, 1), sigmoid (0, 1), ReLU [0, max of the layer]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import torch

from initlab.activations import activation_info
from initlab.experiments import flops as fl
from initlab.experiments.base import (
    Experiment,
    ExperimentData,
    Progress,
    Recorder,
    RunOutcome,
    RunSpec,
    no_progress,
)
from initlab.experiments.common import (
    check_activations,
    check_inits,
    check_positive,
    fmt,
    init_label,
    pct,
    run_seeds,
    single_thread,
)
from initlab.experiments.registry import register
from initlab.experiments.seeds import stream_seed
from initlab.init.fans import gain
from initlab.report.figures import FigureInfo, HistogramPanel

KEPT = (0.9, 1.1)
"""Per-layer std ratios of an unbounded activation in this range count as "spread kept"
(over 4 layer-to-layer steps: x0.66 to x1.46 in all); ReLU with sqrt(1/n) weights (x0.71
per layer) falls outside."""

EDGE = 0.05
"""An activation within this distance of an end of a bounded activation's range counts as
piled up at that end (the test of "most mass at 0 and 1")."""


@dataclass(frozen=True)
class ActivationHistogramsConfig:
    activations: Annotated[tuple[str, ...], "activation functions, one figure each"] = (
        "sigmoid",
        "tanh",
        "relu",
    )
    inits: Annotated[
        tuple[str, ...],
        "weight init schemes (rows): std 1, std 0.01, sqrt(1/n) (book's 'Xavier'), "
        "sqrt(2/n) (He), Glorot's sqrt(2/(n_in+n_out))",
    ] = ("normal:std=1", "normal:std=0.01", "lecun_normal", "he_normal", "xavier_normal")
    samples: Annotated[int, "number of input vectors (rows of the standard normal input)"] = 1000
    width: Annotated[int, "input size and units per layer (n)"] = 100
    layers: Annotated[int, "number of fully connected layers"] = 5
    bins: Annotated[int, "histogram bins per layer"] = 30
    bias: Annotated[bool, "give the layers a bias (the book has none)"] = False
    seeds: Annotated[int, "number of seeds; each is a separate run"] = 1


def network_and_inputs(spec: dict[str, Any], seed: int) -> tuple[torch.nn.Module, torch.Tensor]:
    """The run's network (``layers`` Linear(width, width) + activation; the last Linear of
    ``mlp`` is unused), initialized from the weights stream of ``seed``, and its input
    batch (``samples x width`` standard normal) from the inputs stream, so the two are
    independent (:mod:`initlab.experiments.seeds`)."""
    from initlab.data.gaussian import gaussian_inputs
    from initlab.init import initialize
    from initlab.models import mlp

    width = spec["width"]
    model = mlp([width] * (spec["layers"] + 2), spec["activation"], bias=spec["bias"])
    initialize(model, spec["init"], seed=stream_seed(seed, "weights"))
    input_seed = spec.get("input_seed", stream_seed(seed, "inputs"))
    return model, gaussian_inputs(spec["samples"], width, seed=input_seed)


@register
class ActivationHistograms(Experiment):
    """Histograms of every layer's activations at init, per activation and weight std."""

    name = "activation-histograms"
    description = "A1: per-layer activation histograms at init, per activation x weight scale"
    cost = "~10 s"  # measured: benchmarks/suite.py, CPU seconds (README, Performance)
    source = "Saito, Deep Learning from Scratch (2016), sec. 6.2: weight init histograms"
    Config = ActivationHistogramsConfig
    quick: ClassVar[dict[str, Any]] = {}  # the full preset is already a few seconds

    def validate(self, config: ActivationHistogramsConfig) -> None:
        super().validate(config)
        check_activations(config.activations)
        check_inits(config.inits)
        check_positive(
            samples=config.samples, width=config.width, layers=config.layers, bins=config.bins
        )

    def flops(self, config: ActivationHistogramsConfig) -> float:
        runs = config.seeds * len(config.activations) * len(config.inits)
        return runs * fl.forward_flops([config.width] * (config.layers + 1), config.samples)

    def plan(self, config: ActivationHistogramsConfig, seed: int = 0) -> list[RunSpec]:
        runs = []
        for s in run_seeds(seed, config.seeds):
            for activation in config.activations:
                for init in config.inits:
                    key = f"{activation}/{init}" + (f"/seed={s}" if config.seeds > 1 else "")
                    spec = {
                        "activation": activation,
                        "init": init,
                        "samples": config.samples,
                        "width": config.width,
                        "layers": config.layers,
                        "bins": config.bins,
                        "bias": config.bias,
                        "input_seed": stream_seed(s, "inputs"),
                    }
                    runs.append(RunSpec(key, spec, s))
        return runs

    def execute(
        self,
        run: RunSpec,
        config: ActivationHistogramsConfig,
        recorder: Recorder,
        progress: Progress = no_progress,
    ) -> RunOutcome:
        from initlab.probes.stats import histogram, summarize

        spec = run.spec
        activation, layers = spec["activation"], spec["layers"]
        info = activation_info(activation)
        model, x = network_and_inputs(spec, run.seed)
        records = []
        # one thread: small products and reductions; on a shared 2-core host two threads
        # wait on each other (A1 took 37 s in the suite benchmark under load, for 1.5 GFLOP)
        with torch.no_grad(), single_thread():
            z = x
            for layer in range(1, layers + 1):
                z = getattr(model, f"act{layer}")(getattr(model, f"linear{layer}")(z))
                stats = summarize(z, activation)
                stats["zero"] = float((z == 0).float().mean())
                if info.output_range is not None:
                    lo, hi = info.output_range
                    stats["near_ends"] = float(((z - lo < EDGE) | (hi - z < EDGE)).float().mean())
                edges, counts = histogram(z, bins=spec["bins"], activation=activation)
                records.append(
                    {
                        "step": 0,
                        "layer": f"act{layer}",
                        "kind": "activation",
                        "stats": stats,
                        "histogram": {"edges": edges, "counts": counts},
                    }
                )
                progress(layer, layers)
        recorder.log_probes(records)
        first, last = records[0]["stats"]["std"], records[-1]["stats"]["std"]
        weight = model.linear1.weight.detach()
        scale = float(weight.double().pow(2).mean().sqrt()) * math.sqrt(weight.shape[1])
        return RunOutcome("done", {"std_first": first, "std_last": last, "weight_scale": scale})

    # -- results ----------------------------------------------------------------------
    @staticmethod
    def _layer_records(data: ExperimentData, key: str) -> list[dict[str, Any]]:
        run = data.get(key)
        records = run.probe_records(kind="activation")
        return sorted(records, key=lambda r: int(r["layer"].removeprefix("act")))

    def figures(self, config: ActivationHistogramsConfig, data: ExperimentData) -> list[FigureInfo]:
        figures = []
        for activation in config.activations:
            runs = [r for r in data.finished() if r.spec["activation"] == activation]
            if not runs:
                continue
            info = activation_info(activation)
            clip_zero = info.can_die  # ReLU's spike at 0 would flatten every other bin
            grid: list[list[HistogramPanel | None]] = []
            peak = 0.0
            for run in runs:
                records = sorted(
                    run.probe_records(kind="activation"),
                    key=lambda r: int(r["layer"].removeprefix("act")),
                )
                row: list[HistogramPanel | None] = []
                for i, record in enumerate(records):
                    hist = record["histogram"]
                    total = max(sum(hist["counts"]), 1)
                    fractions = [c / total for c in hist["counts"]]
                    visible = fractions[1:] if clip_zero else fractions
                    peak = max(peak, max(visible, default=0.0))
                    stats = record["stats"]
                    note = f"std {fmt(stats['std'], 2)}"
                    if info.output_range is None:  # own x range: say where it ends
                        note += f"\nmax {fmt(hist['edges'][-1], 2)}"
                    if clip_zero:
                        note += f"\nat 0: {pct(stats['zero'])}"
                    row.append(
                        HistogramPanel(
                            edges=hist["edges"],
                            counts=fractions,
                            xlabel="activation value" if run is runs[-1] else "",
                            ylabel="fraction of values" if i == 0 else "",
                            xlim=(hist["edges"][0], hist["edges"][-1]),
                            note=note,
                            color="tab:blue" if not clip_zero else "tab:green",
                        )
                    )
                grid.append(row)
            for row in grid:
                # bounded activations share their real range; unbounded ones keep each
                # layer's own [0, max] (a shared row range leaves small layers empty), and
                # the note's std and max compare the layers
                for panel in (p for p in row if p is not None):
                    panel.ylim = (0.0, peak * 1.08 if peak > 0 else 1.0)
            seeds = " (per seed)" if config.seeds > 1 else ""
            clip = " The bar at 0 is cut off: its height is given as 'at 0'." if clip_zero else ""
            range_text = (
                f"x axis: the {activation} range {info.output_range}"
                if info.output_range is not None
                else "x axis: each layer's own range [0, its max] (30 bins; the corner note "
                "gives std and max, to compare layers)"
            )
            figures.append(
                FigureInfo(
                    name=f"histograms-{activation}",
                    title=f"{activation}: activations per layer at init, by weight init{seeds}",
                    panels=grid,
                    caption=(
                        f"Rows: weight init; columns: layers 1-{config.layers} of "
                        f"{config.width} units; input {config.samples} x {config.width} "
                        f"standard normal. {range_text}; y axis: fraction of the "
                        f"{config.samples * config.width} values per bin, shared.{clip}"
                    ),
                    sharey=True,
                    panel_size=(2.3, 1.7),
                    row_labels=[
                        init_label(r.spec["init"]) + (f" s{r.run.seed}" if config.seeds > 1 else "")
                        for r in runs
                    ],
                    col_labels=[f"layer {i}" for i in range(1, config.layers + 1)],
                )
            )
        return figures

    def summary(self, config: ActivationHistogramsConfig, data: ExperimentData) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for run in data.finished():
            records = self._layer_records(data, run.key)
            stds = [r["stats"]["std"] for r in records]
            row: dict[str, Any] = {
                "activation": run.spec["activation"],
                "init": run.spec["init"],
                "std_first": stds[0],
                "std_last": stds[-1],
                "std_ratio": stds[-1] / stds[0] if stds[0] > 0 else float("inf"),
                "std_per_layer": stds,
                "mean_last": records[-1]["stats"]["mean"],
                "per_layer_ratio": _per_layer(stds),
                "gain": gain(run.spec["activation"]),
            }
            if "weight_scale" in run.summary:
                row["weight_scale"] = run.summary["weight_scale"]
            if "near_ends" in records[0]["stats"]:
                ends = [r["stats"]["near_ends"] for r in records]
                row["near_ends_min"] = min(ends)
                row["near_ends_per_layer"] = ends
            if activation_info(run.spec["activation"]).can_die:
                row["zero_last"] = records[-1]["stats"]["zero"]
            out[run.key] = row
        return out

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        by_activation: dict[str, list[str]] = {}
        for row in summary.values():
            phrase = _describe(row)
            by_activation.setdefault(row["activation"], []).append(
                f"{init_label(row['init'])}: {phrase}"
            )
        return [f"{act}: " + "; ".join(parts) + "." for act, parts in by_activation.items()]


def _per_layer(stds: list[float]) -> float:
    """The geometric-mean change of the std from one layer to the next."""
    if len(stds) < 2 or not stds[0] > 0 or not math.isfinite(stds[-1]):
        return 1.0 if len(stds) < 2 else math.nan
    return (stds[-1] / stds[0]) ** (1.0 / (len(stds) - 1)) if stds[-1] > 0 else 0.0


def _describe(row: dict[str, Any]) -> str:
    """One phrase for a run: saturated, collapsed, exploded, shrinking, growing or kept.

    Rules (stated so the verdicts can be checked): saturated when at least half of every
    layer's values lie within 0.05 of an end of a bounded activation's range; collapsed when
    the last layer's std is below 0.02 (bounded activations, whose range is 1 or 2 wide) or
    below 1/10 of the first layer's (unbounded); exploded when it grew more than 10x.
    Otherwise a bounded activation (sigmoid, tanh) keeps its spread; for an unbounded one
    (ReLU ...) the per-layer ratio ``r = (std_L / std_1)^(1 / (L - 1))`` decides: the spread
    is kept when ``KEPT[0] <= r <= KEPT[1]``, else it shrinks or grows by ``r`` per layer,
    and the phrase compares it with ``std(W) sqrt(n) / gain``, the ratio expected from the
    weights' scale and the activation's gain (:func:`initlab.init.fans.gain`: sqrt(2) for
    ReLU, He et al. 2015 eq. 10; exact for ReLU, whose variance halves in each layer). A
    ReLU net with sqrt(1/n) weights loses 1/sqrt(2) per layer (x0.25 over 5 layers): it
    shrinks, as the book says ("ReLU needs He").
    """
    last, ratio = row["std_last"], row["std_ratio"]
    bounded = "near_ends_min" in row
    overall = f"last-layer std {fmt(last, 2)}, x{fmt(ratio, 2)} of layer 1"
    if bounded and row["near_ends_min"] >= 0.5:
        return f"saturated ({pct(row['near_ends_min'])}+ of values within {EDGE} of the ends)"
    if (bounded and last < 0.02) or (not bounded and ratio < 0.1):
        return f"collapsed ({overall})"
    if ratio > 10:
        return f"exploded ({overall})"
    r = row.get("per_layer_ratio", math.nan)
    if bounded or not math.isfinite(r) or KEPT[0] <= r <= KEPT[1]:
        return f"spread kept ({overall})"
    text = f"spread {'shrinks' if r < KEPT[0] else 'grows'} x{fmt(r, 2)} per layer ({overall}"
    if "weight_scale" in row:
        expected = row["weight_scale"] / row["gain"]
        text += (
            f"; expected x{fmt(expected, 2)} from std·√n = {fmt(row['weight_scale'], 2)} and "
            f"the {row['activation']} gain {fmt(row['gain'], 3)}"
        )
    return text + ")"
