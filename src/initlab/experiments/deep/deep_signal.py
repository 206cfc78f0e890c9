"""E3 deep-signal: vanilla tanh MLPs of 10 to 1000 layers and CNNs trained on MNIST, per init.

Xiao et al. (2018, "Dynamical isometry and a mean field theory of CNNs") trained vanilla
tanh networks of 10,000 layers: no residual connections, no normalization, only the
initialization. Two things make it possible (Pennington et al. 2017):

1. the weight variance on the edge of chaos, ``chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2] = 1``
   (:func:`initlab.init.meanfield.critical_point`): gradients neither vanish nor explode
   on average, and the correlation depth scale ``xi_c`` diverges;
2. orthogonal weights there (scheme ``critical_orthogonal``), which make the input-output
   Jacobian ``J = prod_l D_l W_l`` an approximate isometry (*dynamical isometry*: its
   singular values stay near 1 at any depth when ``q*`` is small); Gaussian weights of the
   same variance give a spectrum that spreads as the depth grows.

Each depth is one group: the schemes in ``inits`` train together in
:func:`initlab.train.deep.fit_deep` (stacked members, plain SGD, the same minibatches),
with activation checkpointing from ``checkpoint_from`` layers on. Recorded per run: the
training loss, the test accuracy at the end, per-layer gradient norms (``dL/dW_l`` and
the root mean square of ``dL/dz_l``) at step 0 and at the last step, the singular values
of the hidden stack's Jacobian at init (:mod:`initlab.probes.jacobian`, float64, one
training example), the peak memory and the wall time. Depth 10,000 (``--set
depths=[10,100,1000,10000]``) is sized for a GPU (``--set device=cuda``); its cost on this
CPU is printed first.

The CNN half (``archs``, default both; :mod:`initlab.experiments.deep.cnn_part`): vanilla
tanh :func:`~initlab.models.cnn.deep_cnn` of ``cnn_depths`` 3x3 convolutions of
``cnn_channels`` maps on 28x28 MNIST (``cnn_pool`` average-pools it), the first with strides
``cnn_strides`` (1, 2, 2: to 7x7, Xiao et al.'s downsampling before the deep stack), then a
Linear classifier on the flattened maps (``cnn_readout``; why not the paper's global average
pooling: :mod:`~initlab.experiments.deep.cnn_part`), from delta-orthogonal kernels at the
edge of chaos (``critical_orthogonal``, Xiao et al. 2018, Algorithm 2) against Gaussian
Xavier and He, each trained alone with :func:`initlab.train.fit.fit` (plain SGD, the same
minibatches); recorded per run: the test accuracy and the rms of the activations and of
``dL/dz_l`` per convolution on one batch, at init and after training. The verdicts compare
the delta-orthogonal run's test accuracy with each other scheme's, per depth.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch

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
from initlab.experiments.common import check_inits, check_positive, color, fmt, init_label
from initlab.experiments.mnist_task import (
    DATASET_HELP,
    DatasetChoice,
    check_dataset,
    dataset_title,
    load_split,
)
from initlab.experiments.registry import register
from initlab.experiments.seeds import stream_seed
from initlab.models.cnn import DeepCNNReadout
from initlab.report.figures import FigureInfo, LinePanel, Series

CHANCE = 0.1
LEARNED_ABOVE = 0.5  # test accuracy above this: "trains"
STEP_FLOPS = 3.0e10  # float32 FLOP/s fit_deep sustains here (1 thread, busy host)
SV_BINS = 60  # bins of the log10 singular-value density

Arch = Literal["mlp", "cnn"]
ARCHS: tuple[Arch, ...] = ("mlp", "cnn")


@dataclass(frozen=True)
class DeepSignalConfig:
    dataset: Annotated[DatasetChoice, DATASET_HELP] = "mnist"
    depths: Annotated[tuple[int, ...], "numbers of hidden layers (10000: GPU-sized)"] = (
        10,
        100,
        1000,
    )
    width: Annotated[int, "units per hidden layer"] = 256
    inits: Annotated[
        tuple[str, ...],
        "schemes: orthogonal at the edge of chaos, Gaussian at the same point, Xavier, He",
    ] = (
        "critical_orthogonal:sigma_b2=1e-05",
        "critical:sigma_b2=1e-05",
        "xavier_normal",
        "he_normal",
    )
    lr: Annotated[float, "SGD learning rate (1000 layers: 0.01 oscillates, 1e-3 trains)"] = 0.002
    steps: Annotated[int, "SGD steps"] = 500
    batch_size: Annotated[int, "minibatch size (drawn with replacement)"] = 128
    test_size: Annotated[int, "test examples evaluated at the end (0: all)"] = 0
    checkpoint_from: Annotated[int, "activation checkpointing from this depth on (0: never)"] = 200
    jacobian: Annotated[bool, "singular values of the input-output Jacobian at init"] = True
    device: Annotated[str, "torch device of the data and the training (cpu, cuda)"] = "cpu"
    archs: Annotated[tuple[Arch, ...], "mlp (deep tanh MLPs) and/or cnn (deep tanh CNNs)"] = ARCHS  # type: ignore[assignment]
    cnn_depths: Annotated[tuple[int, ...], "convolutions of the CNNs (the strided ones too)"] = (
        10,
        50,
    )
    cnn_channels: Annotated[int, "channels of every convolution"] = 16
    cnn_pool: Annotated[int, "average-pool MNIST by this factor for the CNN (1: 28x28)"] = 1
    cnn_strides: Annotated[
        tuple[int, ...], "strides of the first convolutions (1,2,2: 28x28 -> 7x7; []: none)"
    ] = (1, 2, 2)
    cnn_readout: Annotated[
        DeepCNNReadout, "flatten (every position) or avgpool (global average) before the classifier"
    ] = "flatten"
    cnn_inits: Annotated[
        tuple[str, ...], "CNN schemes: delta-orthogonal at the edge of chaos, Xavier, He"
    ] = ("critical_orthogonal:sigma_b2=1e-05", "xavier_normal", "he_normal")
    cnn_lr: Annotated[float, "CNN SGD learning rate"] = 0.03
    cnn_steps: Annotated[int, "CNN SGD steps"] = 1000
    cnn_batch_size: Annotated[int, "CNN minibatch size (drawn with replacement)"] = 32


def estimated_seconds(config: DeepSignalConfig) -> float:
    """Rough cost: 6 FLOP per weight per example (8 with recomputed segments), all groups."""
    total = 0.0
    for depth in config.depths:
        per = 8.0 if config.checkpoint_from and depth >= config.checkpoint_from else 6.0
        weights = 784 * config.width + depth * config.width**2
        total += per * weights * config.batch_size * config.steps * len(config.inits)
    return total / STEP_FLOPS


@register
class DeepSignal(GroupExperiment):
    """Test accuracy against depth per init, gradients per layer, Jacobian spectra."""

    name = "deep-signal"
    description = (
        "E3: vanilla tanh MLPs (10-1000 layers) and CNNs on MNIST: critical orthogonal vs Gaussian"
    )
    cost = "~85 min (CNN half ~8 min; depth 10,000: GPU-sized, ~3 h here; the estimate is printed)"
    source = (
        "Xiao et al. 2018 (dynamical isometry, 10,000-layer vanilla nets); Pennington et al. "
        "2017 (resurrecting the sigmoid); Schoenholz et al. 2017"
    )
    Config = DeepSignalConfig
    quick: ClassVar[dict[str, Any]] = {
        "width": 96,
        "steps": 300,
        "batch_size": 64,
        "inits": ("critical_orthogonal:sigma_b2=1e-05", "xavier_normal", "he_normal"),
        "test_size": 2000,
        "cnn_steps": 400,
    }
    quick_cost = "~9 min"

    def validate(self, config: DeepSignalConfig) -> None:
        super().validate(config)
        check_dataset(config.dataset, test_size=config.test_size)
        check_inits(config.inits)
        check_positive(width=config.width)
        if not config.depths or any(d < 2 for d in config.depths):
            raise InitlabError(f"depths must be numbers of layers >= 2, got {config.depths}")
        if not config.archs or any(a not in ARCHS for a in config.archs):
            raise InitlabError(
                f"archs must be a non-empty list of {list(ARCHS)}, got {config.archs}"
            )
        if "cnn" in config.archs:
            check_inits(config.cnn_inits)
            check_positive(
                cnn_channels=config.cnn_channels,
                cnn_lr=config.cnn_lr,
                cnn_steps=config.cnn_steps,
                cnn_batch_size=config.cnn_batch_size,
                cnn_pool=config.cnn_pool,
            )
            if not config.cnn_depths or any(d < 2 for d in config.cnn_depths):
                raise InitlabError(
                    f"cnn_depths must be numbers of convolutions >= 2, got {config.cnn_depths}"
                )
            if 28 % config.cnn_pool:
                raise InitlabError(f"cnn_pool must divide 28, got {config.cnn_pool}")
            if any(s < 1 for s in config.cnn_strides):
                raise InitlabError(f"cnn_strides must be positive, got {list(config.cnn_strides)}")
            if len(config.cnn_strides) > min(config.cnn_depths):
                raise InitlabError(
                    f"cnn_strides has {len(config.cnn_strides)} entries, more than the "
                    f"shallowest CNN's {min(config.cnn_depths)} convolutions"
                )
        try:
            device = torch.device(config.device)
        except RuntimeError as exc:
            raise InitlabError(f"unknown device {config.device!r}: {exc}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InitlabError(
                f"device {config.device!r}: this machine has no CUDA device (torch "
                f"{torch.__version__}); use device=cpu"
            )

    def plan(self, config: DeepSignalConfig, seed: int = 0) -> list[RunSpec]:
        if max(config.depths) >= 5000:
            print(
                f"deep-signal: depths {list(config.depths)}, estimated "
                f"{estimated_seconds(config) / 3600:.1f} h at {STEP_FLOPS / 1e9:.0f} GFLOP/s "
                "(this CPU); a GPU does it in minutes",
                file=sys.stderr,
            )
        runs = []
        for depth in config.depths if "mlp" in config.archs else ():
            for i, init in enumerate(config.inits):
                spec = {
                    "dataset": config.dataset,
                    "depth": depth,
                    "width": config.width,
                    "init": init,
                    "lr": config.lr,
                    "steps": config.steps,
                    "batch_size": config.batch_size,
                    "test_size": config.test_size,
                    "checkpoint": bool(config.checkpoint_from and depth >= config.checkpoint_from),
                    "jacobian": config.jacobian,
                    "batch_seed": stream_seed(seed, "minibatches"),
                }
                runs.append(RunSpec(f"depth={depth}/{init}", spec, seed + i, f"depth={depth}"))
        for depth in config.cnn_depths if "cnn" in config.archs else ():
            for i, init in enumerate(config.cnn_inits):
                spec = {
                    "arch": "cnn",
                    "dataset": config.dataset,
                    "depth": depth,
                    "channels": config.cnn_channels,
                    "pool": config.cnn_pool,
                    "strides": list(config.cnn_strides),
                    "readout": config.cnn_readout,
                    "init": init,
                    "lr": config.cnn_lr,
                    "steps": config.cnn_steps,
                    "batch_size": config.cnn_batch_size,
                    "test_size": config.test_size,
                    "batch_seed": stream_seed(seed, "minibatches"),
                }
                runs.append(RunSpec(f"cnn/depth={depth}/{init}", spec, seed + i))  # fit, one by one
        return runs

    def execute_group(
        self,
        runs: list[RunSpec],
        config: DeepSignalConfig,
        recorders: list[Recorder],
        progress: Progress = no_progress,
    ) -> list[RunOutcome]:
        from initlab.data.dataset import Dataset
        from initlab.experiments.common import single_thread
        from initlab.models.mlp import MLPSpec
        from initlab.probes.jacobian import jacobian_singular_values
        from initlab.train.batched import build_members
        from initlab.train.deep import fit_deep

        first = runs[0].spec
        device = torch.device(config.device)
        train = load_split(first["dataset"], "train")
        test = load_split(first["dataset"], "test", first["test_size"])
        if _arch(first) == "cnn":
            from initlab.experiments.deep.cnn_part import images, train_cnn

            train, test = (images(d, first["pool"]) for d in (train, test))
            train, test = (
                Dataset(d.x.to(device), d.y.to(device), d.name, d.classes) for d in (train, test)
            )
            return [
                train_cnn(run, recorder, train, test, progress)
                for run, recorder in zip(runs, recorders, strict=True)
            ]
        train = Dataset(train.x.to(device), train.y.to(device), train.name)
        test = Dataset(test.x.to(device), test.y.to(device), test.name)
        depth, steps = first["depth"], first["steps"]
        spec = MLPSpec((train.num_features, *[first["width"]] * depth, 10), "tanh")
        models = build_members(spec, [(r.spec["init"], r.seed) for r in runs])
        spectra = []
        if first["jacobian"]:
            with single_thread():
                for model in models:
                    spectra.append(jacobian_singular_values(model.to(device), train.x[0]).cpu())
        last = max(1, steps // 100)

        def callback(row: dict[str, Any]) -> None:
            if row["member"] == 0:
                progress(float(row["step"]), float(steps))

        result = fit_deep(
            models,
            train,
            spec=spec,
            lr=first["lr"],
            steps=steps,
            batch_size=first["batch_size"],
            seed=first["batch_seed"],
            checkpoint=first["checkpoint"],
            eval_data=test,
            probe_steps=(0, steps - 1),
            log_every=last,
            callback=callback,
        )
        del models
        outcomes = []
        for m, recorder in enumerate(recorders):
            member = result[m]
            recorder.log_metrics(
                [{k: v for k, v in row.items() if k != "epoch"} for row in member.history]
            )
            recorder.log_probes([{k: v for k, v in r.items() if k != "member"}
                                 for r in member.probe_records])  # fmt: skip
            if spectra:
                recorder.save_params({"jacobian_sv": spectra[m]})
            acc = member.last("valid_acc")
            outcomes.append(
                RunOutcome(
                    member.status,
                    {
                        "test_acc": acc,
                        "final_loss": member.last("train_loss"),
                        "diverged_at": member.diverged_at,
                        "wall_time": result.wall_time,
                        "memory": result.memory.as_dict(),
                    },
                )
            )
        progress(float(steps), float(steps))
        return outcomes

    # -- results ----------------------------------------------------------------------
    @staticmethod
    def _profile(run: RunData, step: int, kind: str = "gradient") -> list[float]:
        stat = "delta_rms" if kind == "gradient" else "rms"
        pairs = sorted(
            (int(r["layer"].lstrip("abcdefghijklmnopqrstuvwxyz")), float(r["stats"][stat]))
            for r in run.probe_records(kind=kind)
            if int(r["step"]) == step
        )
        return [v for _, v in pairs]

    def figures(self, config: DeepSignalConfig, data: ExperimentData) -> list[FigureInfo]:
        done = data.finished()
        if not done:
            return []
        figures = [self._accuracy_figure(config, data)]
        grads = self._gradient_figure(config, data)
        if grads is not None:
            figures.append(grads)
        spectra = self._jacobian_figure(config, data)
        if spectra is not None:
            figures.append(spectra)
        return figures

    def _accuracy_figure(self, config: DeepSignalConfig, data: ExperimentData) -> FigureInfo:
        series = []
        parts = [("mlp", config.inits, "-", "MLP "), ("cnn", config.cnn_inits, "--", "CNN ")]
        both = len({_arch(r.spec) for r in data.finished()}) > 1
        for arch, inits, style, prefix in parts:
            for i, init in enumerate(inits):
                runs = [r for r in _runs(data, arch) if r.spec["init"] == init]
                if not runs:
                    continue
                xs = [r.spec["depth"] for r in runs]
                ys = [_acc(r) for r in runs]
                label = (prefix if both else "") + init_label(init)
                marker = "o" if arch == "mlp" else "s"
                series.append(Series(xs, ys, label, color(i), style, marker=marker))
        steps = [f"MLP {config.steps}" if "mlp" in config.archs else "",
                 f"CNN {config.cnn_steps}" if "cnn" in config.archs else ""]  # fmt: skip
        panel = LinePanel(
            series,
            title=f"{dataset_title(config.dataset)} test accuracy after "
            + " / ".join(x for x in steps if x)
            + " SGD steps",
            xlabel="depth (hidden tanh layers; convolutions for the CNN)",
            ylabel="test accuracy",
            xscale="log",
            ylim=(0.0, 1.0),
            hlines=[(CHANCE, "chance")],
        )
        side = 28 // config.cnn_pool
        return FigureInfo(
            name="deep-signal-accuracy",
            title="Vanilla tanh networks: accuracy against depth",
            panels=[[panel]],
            caption=(
                f"Each point: one network trained with plain SGD (MLP of width {config.width}: "
                f"lr {fmt(config.lr)}, batch {config.batch_size}; CNN of {config.cnn_channels} "
                f"channels on {side}x{side} images, strides {list(config.cnn_strides)}, "
                f"{config.cnn_readout} readout, dashed, squares: lr {fmt(config.cnn_lr)}, "
                f"batch {config.cnn_batch_size}); no skips, no normalization. A diverged run is "
                "drawn at chance."
            ),
            panel_size=(6.0, 4.0),
        )

    def _gradient_figure(self, config: DeepSignalConfig, data: ExperimentData) -> FigureInfo | None:
        row = []
        cells = [("mlp", d, config.inits) for d in config.depths]
        cells += [("cnn", d, config.cnn_inits) for d in config.cnn_depths]
        cells = [c for c in cells if any(r.spec["depth"] == c[1] for r in _runs(data, c[0]))]
        deepest = max((d for _, d, _ in cells), default=0)
        for arch, depth, inits in cells:
            runs = [r for r in _runs(data, arch) if r.spec["depth"] == depth]
            if not runs or depth < 10:
                continue
            series = []
            for run in runs:
                i = inits.index(run.spec["init"]) if run.spec["init"] in inits else 0
                init = self._profile(run, 0)
                end = self._profile(run, _end_step(run))
                xs = list(range(1, len(init) + 1))
                series.append(Series(xs, init, init_label(run.spec["init"]), color(i)))
                if end:
                    series.append(Series(list(range(1, len(end) + 1)), end, None, color(i),
                                         linestyle="--", linewidth=1.0))  # fmt: skip
            steps = runs[0].spec["steps"]
            series.append(Series([], [], f"after {steps} steps (dashed)", "0.3", "--"))
            row.append(
                LinePanel(
                    series,
                    title=f"{arch.upper()} depth {depth}",
                    xlabel="layer l (1: input side)",
                    ylabel="rms of dL/dz_l",
                    yscale="log",
                    legend=depth == deepest,
                )
            )
        if not row:
            return None
        return FigureInfo(
            name="deep-signal-gradients",
            title="Back-propagated gradients per layer at init (solid) and after training",
            panels=[row],  # type: ignore[list-item]
            caption=(
                "Root mean square of dL/dz_l over the minibatch, per layer, on the first "
                "minibatch (solid) and the last (dashed). Flat: gradients reach every layer."
            ),
            panel_size=(4.6, 3.4),
        )

    def _jacobian_figure(self, config: DeepSignalConfig, data: ExperimentData) -> FigureInfo | None:
        row = []
        for depth in config.depths:
            runs = [r for r in _runs(data, "mlp") if r.spec["depth"] == depth]
            spectra = [(r, _log_sv(r)) for r in runs]
            spectra = [(r, s) for r, s in spectra if s]
            if not spectra:
                continue
            lo = max(min(min(s) for _, s in spectra), -12.0)
            hi = min(max(max(s) for _, s in spectra), 12.0)
            if hi - lo < 0.2:
                lo, hi = lo - 0.1, hi + 0.1
            width = (hi - lo) / SV_BINS
            series = []
            for run, logs in spectra:
                i = config.inits.index(run.spec["init"]) if run.spec["init"] in config.inits else 0
                counts = [0] * SV_BINS
                for v in logs:
                    if lo <= v <= hi:
                        counts[min(int((v - lo) / width), SV_BINS - 1)] += 1
                xs = [lo + (k + 0.5) * width for k in range(SV_BINS)]
                density = [c / (len(logs) * width) for c in counts]
                series.append(Series(xs, density, init_label(run.spec["init"]), color(i)))
            row.append(
                LinePanel(
                    series,
                    title=f"depth {depth}",
                    xlabel="log10 singular value of J",
                    ylabel="density",
                    vlines=[(0.0, "")],
                    legend=depth == max(config.depths),
                )
            )
        if not row:
            return None
        return FigureInfo(
            name="deep-signal-jacobian",
            title="Dynamical isometry: singular values of the input-output Jacobian at init",
            panels=[row],  # type: ignore[list-item]
            caption=(
                "Density of log10 singular values of J = d a_L / d a_1 (hidden stack, float64, "
                "one MNIST example). Orthogonal weights at the edge of chaos stay concentrated "
                "near 1 (log 0); Gaussian weights spread as depth grows (Pennington et al. 2017)."
            ),
            panel_size=(4.6, 3.4),
        )

    def summary(self, config: DeepSignalConfig, data: ExperimentData) -> dict[str, Any]:
        rows: dict[str, Any] = {}
        for run in data.finished():
            init_profile = self._profile(run, 0)
            end_profile = self._profile(run, _end_step(run))
            logs = _log_sv(run)
            # the layers of one width (and, for the CNN, one resolution): from the second (the
            # CNN: the first after its strided start) to the last but one (the gradient)
            start = max(1, len(run.spec.get("strides", ())))
            row: dict[str, Any] = {
                "arch": _arch(run.spec),
                "depth": run.spec["depth"],
                "init": run.spec["init"],
                "status": run.status,
                "test_acc": _acc(run),
                "final_loss": run.summary.get("final_loss"),
                "grad_spread_init": _spread(init_profile[start:-1]),
                "grad_spread_end": _spread(end_profile[start:-1]),
                "wall_time": run.summary.get("wall_time"),
                "peak_memory_mb": (  # fit_deep's record (the CNN runs have none)
                    run.summary["memory"].get("peak_bytes", 0) / 2**20
                    if run.summary.get("memory")
                    else None
                ),
                "checkpoint": run.spec.get("checkpoint", False),
            }
            if row["arch"] == "cnn":  # activation rms a_l over the same convolutions, to L
                row["act_spread_init"] = _spread(self._profile(run, 0, "activation")[start:])
            if logs:
                ordered = sorted(logs)
                row["sv_log10_p5"] = ordered[int(0.05 * (len(ordered) - 1))]
                row["sv_log10_p95"] = ordered[int(0.95 * (len(ordered) - 1))]
            rows[run.key] = row
        return {
            "chance": CHANCE,
            "steps": config.steps,
            "width": config.width,
            "cnn_steps": config.cnn_steps,
            "cnn_channels": config.cnn_channels,
            "cnn_strides": list(config.cnn_strides),
            "cnn_readout": config.cnn_readout,
            "runs": rows,
        }

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        out = []
        cells: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for row in summary["runs"].values():
            cells.setdefault((row.get("arch", "mlp"), row["depth"]), []).append(row)
        for arch, depth in sorted(cells, key=lambda k: (k[0] != "mlp", k[1])):
            parts = []
            for row in cells[arch, depth]:
                acc = row["test_acc"]
                state = "trains" if acc > LEARNED_ABOVE else "fails"
                if row["status"] == "diverged":
                    state = "diverged"
                parts.append(f"{init_label(row['init'])} {state} (test accuracy {acc:.3f})")
            prefix = "" if arch == "mlp" else "CNN "
            out.append(f"{prefix}depth {depth}: " + "; ".join(parts) + ".")
        mlp = [d for a, d in cells if a == "mlp"]
        if mlp:
            deepest = max(mlp)
            spreads = [
                f"{init_label(r['init'])} x{10 ** (r['sv_log10_p95'] - r['sv_log10_p5']):.3g}"
                for r in cells["mlp", deepest]
                if "sv_log10_p5" in r
            ]
            if spreads:
                out.append(
                    f"Jacobian at init, depth {deepest}: 95th/5th percentile singular value "
                    "ratio " + ", ".join(spreads) + " (1: perfect isometry)."
                )
            grads = [
                f"{init_label(r['init'])} x{fmt(r['grad_spread_init'], 2)}"
                for r in cells["mlp", deepest]
            ]
            out.append(
                f"Gradients at init, depth {deepest}: max/min rms of dL/dz over hidden layers "
                + ", ".join(grads)
                + "."
            )
        cnn = [d for a, d in cells if a == "cnn"]
        for depth in sorted(cnn):
            line = _delta_orthogonal_comparison(cells["cnn", depth])
            if line:
                out.append(f"CNN depth {depth}: {line}.")
        if cnn:
            deepest = max(cnn)
            rows = cells["cnn", deepest]
            out.append(
                f"CNN at init, depth {deepest}: max/min rms over the deep stack's convolutions "
                "(one width and resolution) of dL/dz "
                + ", ".join(
                    f"{init_label(r['init'])} x{fmt(r['grad_spread_init'], 2)}" for r in rows
                )
                + "; of the activations "
                + ", ".join(
                    f"{init_label(r['init'])} x{fmt(r['act_spread_init'], 2)}" for r in rows
                )
                + "."
            )
        return out


def _delta_orthogonal_comparison(rows: list[dict[str, Any]]) -> str:
    """The delta-orthogonal (``critical_orthogonal``) run's test accuracy against each other
    scheme's of the same depth, e.g. "critical_orthogonal:sigma_b2=1e-05 0.932 vs Glorot
    0.922: at least as well (+0.010)"; empty without a delta-orthogonal run."""
    ortho = next((r for r in rows if r["init"].startswith("critical_orthogonal")), None)
    if ortho is None or len(rows) < 2:
        return ""
    parts = []
    for row in rows:
        if row is ortho:
            continue
        diff = ortho["test_acc"] - row["test_acc"]
        verdict = "at least as well" if diff >= 0 else "worse"
        parts.append(f"vs {init_label(row['init'])} {row['test_acc']:.3f}: {verdict} ({diff:+.3f})")
    return f"{init_label(ortho['init'])} {ortho['test_acc']:.3f} " + ", ".join(parts)


def _runs(data: ExperimentData, arch: str) -> list[RunData]:
    return [r for r in data.finished() if _arch(r.spec) == arch]


def _end_step(run: RunData) -> int:
    """The step of the probes after training (MLP: before the last update; CNN: after it)."""
    steps = int(run.spec["steps"])
    return steps if _arch(run.spec) == "cnn" else steps - 1


def _arch(spec: dict[str, Any]) -> str:
    """The run's architecture (runs stored before the CNN half have no "arch": MLPs)."""
    return str(spec.get("arch", "mlp"))


def _acc(run: RunData) -> float:
    value = run.summary.get("test_acc")
    return float(value) if isinstance(value, float) and math.isfinite(value) else CHANCE


def _log_sv(run: RunData) -> list[float]:
    params = run.params() or {}
    sv = params.get("jacobian_sv")
    if sv is None:
        return []
    return [math.log10(v) for v in sv.double().tolist() if v > 0 and math.isfinite(v)]


def _spread(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v) and v > 0]
    if len(finite) < 2:
        return math.nan
    return max(finite) / min(finite)
