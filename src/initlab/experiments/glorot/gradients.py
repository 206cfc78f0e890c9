"""D3 glorot-gradients: activations, back-propagated gradients and Jacobians, tanh.

Source: Glorot & Bengio (2010), section 4, Figures 6-9. The tanh network of the paper
(five hidden layers of 1000 units, biases 0) at initialization and after training, with
standard ``U[-1/sqrt(n), 1/sqrt(n)]`` and normalized ``U[+-sqrt(6)/sqrt(n_in + n_out)]``
init. On 300 fixed held-out examples (one forward and backward pass of their mean loss):

* the normalized histograms, layer by layer, of the activations (their Figure 6), of the
  back-propagated gradients dL/dz w.r.t. the pre-activations (Figure 7) and of the weight
  gradients dL/dW (Figures 8-9);
* the variance of the back-propagated gradients per layer. Their analysis (eq. 6-7): with
  tanh near its linear regime, ``Var[dL/dz_i] ~ Var[dL/dz_d] prod_j (n_j Var[W_j])``; the
  standard init has ``n Var[W] = 1/3``, so the variance shrinks by about 3x per layer toward
  the input, while the normalized init has ``n Var[W] ~ 1`` and keeps it flat;
* the singular values of each layer-to-layer Jacobian ``J_i = dh_{i+1}/dh_i =
  diag(f'(z_{i+1})) W_{i+1}`` and their mean (section 4.2.1: nearer 1 with normalized init).
  Exact for every fixed example when the layers are at most ``EXACT_WIDTH`` wide; at 1000
  units, exact on ``jacobian_examples`` examples drawn at random from the fixed set (a
  Monte Carlo estimate of the mean over the set, with its standard error).

All inits train together in one batched group on the same minibatches.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import torch

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
    GLOROT_INITS,
    HIDDEN,
    MINIBATCH,
    SOURCE,
    GlorotDataset,
    build_member,
    check_dataset_present,
    check_glorot,
    init_name,
    jacobian_singular_values,
    mean_and_spread,
    probed_task,
    stream_seed,
)
from initlab.experiments.mnist_task import group_progress
from initlab.experiments.registry import register
from initlab.report.figures import FigureInfo, LinePanel, Series

EXACT_WIDTH = 128
"""Up to this width the Jacobians of every fixed example are computed; wider, a sample."""
SHRINKS = 0.5
"""Gradient variance "shrinks toward the input" when it falls by more than 2x per layer on
average from the top hidden layer to layer 1: (var_1 / var_top)^(1 / (layers - 1)) < SHRINKS
(the standard init's theory: 1/3 per layer)."""
FLAT = 0.7
"""... and "stays nearly flat" when that per-layer factor is within [FLAT, 1 / FLAT]."""
KINDS = {
    "activation": ("activations", "activation value"),
    "gradient": ("back-propagated gradients dL/dz", "gradient value"),
    "weight_grad": ("weight gradients dL/dW", "gradient value"),
}


@dataclass(frozen=True)
class GlorotGradientsConfig:
    dataset: Annotated[GlorotDataset, DATASET_HELP] = "shapeset"
    hidden: Annotated[tuple[int, ...], "hidden layer widths (the paper: 5 x 1000)"] = HIDDEN
    activation: Annotated[str, "hidden activation (the paper's figures: tanh)"] = "tanh"
    inits: Annotated[
        tuple[str, ...], "standard U[-1/sqrt(n), 1/sqrt(n)] and normalized (xavier_uniform)"
    ] = GLOROT_INITS
    lr: Annotated[float, "SGD learning rate"] = 0.1
    steps: Annotated[int, "SGD updates before the 'after training' analysis"] = 2000
    batch_size: Annotated[int, "minibatch size (the paper: 10)"] = MINIBATCH
    probe_examples: Annotated[int, "fixed held-out examples analysed (the paper: 300)"] = 300
    jacobian_examples: Annotated[
        int, f"examples whose Jacobians are computed when wider than {EXACT_WIDTH} units"
    ] = 5
    bins: Annotated[int, "histogram bins"] = 40
    seeds: Annotated[int, "number of seeds per init"] = 1


@register
class GlorotGradients(GroupExperiment):
    """Histograms, gradient variances and Jacobian singular values (Glorot & Bengio, sec. 4)."""

    name = "glorot-gradients"
    description = "D3: tanh activations, back-prop gradients, Jacobian singular values by init"
    cost = "~90 s (50 s-3 min by host and load)"
    source = f"{SOURCE}, section 4, Figures 6-9"
    Config = GlorotGradientsConfig
    quick: ClassVar[dict[str, Any]] = {"hidden": (200,) * 5, "steps": 500}
    quick_cost = "~20 s"

    def validate(self, config: GlorotGradientsConfig) -> None:
        super().validate(config)
        check_glorot(config.dataset, config.hidden, (config.activation,), config.inits)
        check_dataset_present(config.dataset)
        check_positive(
            probe_examples=config.probe_examples,
            jacobian_examples=config.jacobian_examples,
            bins=config.bins,
        )

    def plan(self, config: GlorotGradientsConfig, seed: int = 0) -> list[RunSpec]:
        runs = []
        for s in run_seeds(seed, config.seeds):
            for init in config.inits:
                key = init_name(init) + (f"/seed={s}" if config.seeds > 1 else "")
                spec = {
                    "dataset": config.dataset,
                    "hidden": list(config.hidden),
                    "activation": config.activation,
                    "init": init,
                    "lr": config.lr,
                    "steps": config.steps,
                    "batch_size": config.batch_size,
                    "probe_examples": config.probe_examples,
                    "jacobian_examples": config.jacobian_examples,
                    "bins": config.bins,
                    "data_seed": seed,
                }
                runs.append(RunSpec(key, spec, s, group=config.activation))
        return runs

    def execute_group(
        self,
        runs: list[RunSpec],
        config: GlorotGradientsConfig,
        recorders: list[Recorder],
        progress: Progress = no_progress,
    ) -> list[RunOutcome]:
        from initlab.train.batched import fit_batched
        from initlab.train.batched_mlp import StackedMLP

        first = runs[0].spec
        steps, batch = first["steps"], first["batch_size"]
        train, fixed, spec = probed_task(first)
        members = [build_member(spec, run.spec["init"], run.seed) for run in runs]
        total = steps + 2
        with single_thread():
            before = _analyse(StackedMLP(spec, members), runs, fixed, 0)
            progress(1.0, float(total))
            result = fit_batched(
                members,
                train,
                spec=spec,
                lr=first["lr"],
                steps=steps,
                batch_size=batch,
                batch_mode="epoch",
                seed=stream_seed(first["data_seed"], "batches"),
                log_every=10,
                callback=group_progress(lambda d, t: progress(d + 1, float(total)), steps),
            )
            trained = [result.model(n) for n in range(len(runs))]
            after = _analyse(StackedMLP(spec, trained), runs, fixed, steps)
        outcomes = []
        for n, (member, recorder) in enumerate(zip(result.results, recorders, strict=True)):
            recorder.log_probes(before[n][0] + after[n][0])
            losses = [{"step": r["step"], "train_loss": r["train_loss"]} for r in member.history]
            recorder.log_metrics([*losses, before[n][1], after[n][1]])
            outcomes.append(RunOutcome(member.status, {"final_loss": member.last("train_loss")}))
        progress(float(total), float(total))
        return outcomes

    # -- results ----------------------------------------------------------------------
    def figures(self, config: GlorotGradientsConfig, data: ExperimentData) -> list[FigureInfo]:
        runs = [_first(data, init) for init in config.inits]
        runs_found = [(init, r) for init, r in zip(config.inits, runs, strict=True) if r]
        if not runs_found:
            return []
        out = []
        times = [(0, "at initialization"), (config.steps, f"after {config.steps} updates")]
        title = f"{config.activation}, {DATASET_TITLES[config.dataset]}"
        for kind, (what, xlabel) in KINDS.items():
            grid = []
            for init, run in runs_found:
                row: list[LinePanel | None] = []
                for step, when in times:
                    label = f"{init_name(init)}, {when}"
                    row.append(_density_panel(run, kind, step, label, xlabel))
                grid.append(row)
            out.append(
                FigureInfo(
                    name=f"histograms-{kind.replace('_', '-')}",
                    title=f"Normalized histograms of the {what} per layer ({title})",
                    panels=grid,  # type: ignore[arg-type]
                    caption=(
                        f"On {config.probe_examples} fixed held-out examples, one curve per "
                        "layer (density over all units of the layer); rows: init, columns: "
                        "before and after training (the paper's Figures 6-9)."
                    ),
                    sharex="col" if kind == "activation" else False,
                    panel_size=(4.6, 3.0),
                )
            )
        layers = list(range(1, len(config.hidden) + 1))
        variance, jacobian = [], []
        for step, when in times:
            var_series, jac_series = [], []
            for i, (init, run) in enumerate(runs_found):
                var = _metric_row(run, step, "grad_var", layers)
                var_series.append(Series(layers, var, init_name(init), color(i), marker="o"))
                pairs = layers[:-1]
                jac = _metric_row(run, step, "jacobian_sv_mean", pairs)
                jac_series.append(Series(pairs, jac, init_name(init), color(i), marker="o"))
            variance.append(
                LinePanel(
                    var_series,
                    title=when,
                    xlabel="layer",
                    ylabel="Var[dL/dz]",
                    yscale="log",
                )
            )
            jacobian.append(
                LinePanel(
                    jac_series,
                    title=when,
                    xlabel="Jacobian of layer i+1 w.r.t. layer i (i)",
                    ylabel="mean singular value",
                    hlines=[(1.0, "1")],
                )
            )
        out.append(
            FigureInfo(
                name="gradient-variance",
                title=f"Variance of the back-propagated gradients per layer ({title})",
                panels=[variance],  # type: ignore[list-item]
                caption="Var[dL/dz] over the fixed examples and the units of each layer "
                "(layer 1 next to the input).",
                sharey=True,
                panel_size=(4.6, 3.2),
            )
        )
        out.append(
            FigureInfo(
                name="jacobian",
                title=f"Mean singular value of the layer-to-layer Jacobians ({title})",
                panels=[jacobian],  # type: ignore[list-item]
                caption="J_i = diag(f'(z_{i+1})) W_{i+1}; mean of its singular values over the "
                "fixed examples (a random sample of them for layers wider than "
                f"{EXACT_WIDTH} units).",
                sharey=True,
                panel_size=(4.6, 3.2),
            )
        )
        return out

    def summary(self, config: GlorotGradientsConfig, data: ExperimentData) -> dict[str, Any]:
        layers = list(range(1, len(config.hidden) + 1))
        rows: dict[str, Any] = {}
        for run in data.finished():
            row: dict[str, Any] = {"init": init_name(run.spec["init"])}
            for step, tag in ((0, "init"), (config.steps, "trained")):
                var = _metric_row(run, step, "grad_var", layers)
                jac = _metric_row(run, step, "jacobian_sv_mean", layers[:-1])
                row[f"grad_var_{tag}"] = var
                ratio = var[0] / var[-1] if var[-1] > 0 else math.nan
                row[f"grad_var_ratio_{tag}"] = ratio
                per_layer = ratio ** (1 / max(len(var) - 1, 1)) if ratio >= 0 else math.nan
                row[f"grad_var_factor_{tag}"] = per_layer
                row[f"jacobian_sv_mean_{tag}"] = jac
                row[f"jacobian_sv_mean_all_{tag}"] = mean_and_spread(jac)[0]
            row["final_loss"] = run.summary.get("final_loss")
            rows[run.key] = row
        return {"activation": config.activation, "steps": config.steps, "runs": rows}

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        out = []
        rows = summary.get("runs", {})
        act = summary.get("activation", "tanh")
        for key, row in rows.items():
            ratio, factor = row["grad_var_ratio_init"], row["grad_var_factor_init"]
            if factor < SHRINKS:
                shape = "shrinks toward the input layers"
            elif FLAT <= factor <= 1 / FLAT:
                shape = "stays nearly flat across layers"
            elif factor < 1:
                shape = "shrinks mildly toward the input layers"
            else:
                shape = "grows toward the input layers"
            out.append(
                f"{key} init, {act}, at initialization: the back-propagated gradient variance "
                f"{shape} (x{factor:.2f} per layer on average; layer 1 / top layer = "
                f"{fmt(ratio)})."
            )
        by_init: dict[str, list[float]] = {}
        for row in rows.values():
            by_init.setdefault(row["init"], []).append(row["jacobian_sv_mean_all_init"])
        if "standard" in by_init and "normalized" in by_init:
            std = mean_and_spread(by_init["standard"])[0]
            norm = mean_and_spread(by_init["normalized"])[0]
            nearer = abs(norm - 1) < abs(std - 1)
            out.append(
                f"Mean Jacobian singular value at initialization: standard {std:.2f}, "
                f"normalized {norm:.2f}: "
                + (
                    "nearer 1 with the normalized init, as in the paper (section 4.2.1)."
                    if nearer
                    else "not nearer 1 with the normalized init here."
                )
            )
        return out


def _analyse(
    stacked: Any, runs: Sequence[RunSpec], fixed: Any, step: int
) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    """Probe records (activations, dL/dz, dL/dW with histograms) and a metrics row (gradient
    variance and mean Jacobian singular value per layer) of every member at ``step``."""
    from initlab.train.batched_probes import MemberProbes

    depth = stacked.spec.depth
    hidden = [f"linear{i}" for i in range(1, depth)]
    acts = [f"act{i}" for i in range(1, depth)]
    probes = MemberProbes(stacked, [*hidden, *acts], histograms=True, bins=runs[0].spec["bins"])
    members = list(range(stacked.n))
    probes.begin(step, members)
    x, y = fixed.x.float().flatten(1), fixed.y
    stacked.eval_grad_step(x, y, probes.tap)
    probes.record_weights(step, members)
    records = probes.records()
    out = []
    for n, run in enumerate(runs):
        keep = [
            {**r, "step": step}
            for r in records.get(n, [])
            if (r["kind"] == "activation" and r["layer"] in acts)
            or (r["kind"] in ("gradient", "weight_grad") and r["layer"] in hidden)
        ]
        row: dict[str, Any] = {"step": step}
        for r in keep:
            if r["kind"] == "gradient":
                row[f"grad_var_{r['layer'].removeprefix('linear')}"] = r["stats"]["std"] ** 2
        state = stacked.member_state_dict(n)
        weights = [state[f"linear{i}.weight"] for i in range(1, depth)]
        biases = [state.get(f"linear{i}.bias") for i in range(1, depth)]
        sample = _jacobian_sample(x, run)
        values = jacobian_singular_values(weights, biases, sample, run.spec["activation"])
        for i, sv in enumerate(values):
            per_example = sv.mean(1)
            row[f"jacobian_sv_mean_{i + 1}"] = float(per_example.mean())
            sem = per_example.std() / math.sqrt(len(per_example)) if len(per_example) > 1 else 0.0
            row[f"jacobian_sv_sem_{i + 1}"] = float(sem)
        out.append((keep, row))
    return out


def _jacobian_sample(x: torch.Tensor, run: RunSpec) -> torch.Tensor:
    """Every fixed example for narrow layers, else a seeded random sample of them."""
    if max(run.spec["hidden"]) <= EXACT_WIDTH:
        return x
    count = min(run.spec["jacobian_examples"], x.shape[0])
    gen = torch.Generator().manual_seed(stream_seed(run.seed, "jacobian"))
    return x[torch.randperm(x.shape[0], generator=gen)[:count]]


def _first(data: ExperimentData, init: str) -> RunData | None:
    return next((r for r in data.finished() if r.spec["init"] == init), None)


def _metric_row(run: RunData, step: int, prefix: str, layers: Sequence[int]) -> list[float]:
    row = next((m for m in run.metrics if int(m["step"]) == step and f"{prefix}_1" in m), {})
    return [float(row.get(f"{prefix}_{i}", math.nan)) for i in layers]


def _density_panel(run: RunData, kind: str, step: int, title: str, xlabel: str) -> LinePanel:
    """One curve per layer: the histogram of ``kind`` at ``step`` as a density."""
    series = []
    records = [r for r in run.probe_records(kind=kind) if int(r["step"]) == step]
    records.sort(key=lambda r: int("".join(c for c in r["layer"] if c.isdigit())))
    for i, rec in enumerate(records):
        hist = rec.get("histogram")
        if not hist:
            continue
        edges, counts = hist["edges"], hist["counts"]
        total = max(sum(counts), 1)
        centers = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
        density = [
            c / (total * (b - a)) if b > a else 0.0
            for c, a, b in zip(counts, edges[:-1], edges[1:], strict=True)
        ]
        series.append(Series(centers, density, f"layer {i + 1}", color(i)))
    return LinePanel(series, title=title, xlabel=xlabel, ylabel="density")
