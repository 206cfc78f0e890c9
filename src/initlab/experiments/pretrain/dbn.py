"""E1 dbn: greedy RBM pretraining (Hinton 2006) vs Xavier and He, fine-tuned with backprop.

Sources: Hinton, Osindero & Teh (2006), "A fast learning algorithm for deep belief nets";
Hinton & Salakhutdinov (2006), "Reducing the dimensionality of data with neural networks"
(Science; its MNIST classifier is 784-500-500-2000-10, pretrained, then fine-tuned with
backprop: 1.2% test error, vs 1.6% for backprop from random weights); Hinton, "A Practical
Guide to Training Restricted Boltzmann Machines" (UTML TR 2010-003) for the RBM settings.
The two-layer default is the lecture's 784-256-256-10.

Protocol (``architecture = lecture``, the default, a few minutes on a laptop CPU):

1. MNIST pixels / 255; the last ``valid_size`` training images are held out (the RBMs'
   free-energy monitor), the others train; test error on the 10000 test images.
2. ``dbn``: one Bernoulli RBM per hidden layer, bottom up, each on the hidden probabilities
   of the one below: CD-1, lr 0.1, batch 100, momentum 0.5 for 5 epochs then 0.9, weight
   decay 2e-4 (the settings of Hinton & Salakhutdinov's ``rbm.m``); the RBMs' weights and
   hidden biases start a sigmoid MLP whose output layer is ``N(0, 0.01^2)``.
3. Contenders, each ``scheme/activation``: the same sigmoid MLP from ``xavier_uniform``, and
   a ReLU MLP from ``he_normal`` (the modern baseline); biases zero.
4. All are fine-tuned with the same SGD with momentum, minibatches and epochs; test error
   after every epoch, over ``seeds`` seeds (each seed: its own init or RBM streams).

``architecture = hinton`` switches to 784-500-500-2000 with 50 RBM epochs per layer and 50
fine-tuning epochs (``rbm.m``'s ``maxepoch = 50``; the paper fine-tunes with conjugate
gradients for 200 epochs, here SGD with momentum): about an hour per seed on a 2-core CPU
(the estimate is printed when it starts). Pictures of the first seed's DBN: the first RBM's
receptive fields, Gibbs chains started at test images, and reconstructions through the
first RBM and through the whole stack.

Execution: the runs of one activation (DBN and Xavier share sigmoid) are one batched group
(:func:`~initlab.experiments.mnist_task.train_group`); the RBMs of a DBN run are trained
before its group trains.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Annotated, Any, ClassVar, Literal, get_args

import torch

from initlab.activations import ACTIVATION_NAMES
from initlab.data.batches import batches_per_epoch
from initlab.data.dataset import Dataset
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
from initlab.experiments.common import check_inits, color, run_seeds
from initlab.experiments.mnist_task import (
    DATASET_HELP,
    DatasetChoice,
    check_dataset,
    check_hidden,
    dataset_title,
    load_split,
    train_group,
)
from initlab.experiments.pretrain.dbn_figures import (
    GIBBS_SNAPSHOTS,
    picture_figures,
    pretraining_figure,
)
from initlab.experiments.registry import register
from initlab.experiments.seeds import stream_seed
from initlab.models.mlp import MLPSpec
from initlab.report.figures import FigureInfo, LinePanel, Series
from initlab.train.optim import OPTIMIZER_NAMES

Architecture = Literal["lecture", "hinton"]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)
PRESETS: dict[str, dict[str, Any]] = {
    "lecture": {"hidden": (256, 256), "rbm_epochs": 10, "epochs": 15},
    "hinton": {"hidden": (500, 500, 2000), "rbm_epochs": 50, "epochs": 50},
}
"""What ``architecture`` sets when ``hidden``, ``rbm_epochs`` or ``epochs`` are None."""


CHAINS = 10  # chains pictured (started at the first test images)
FILTERS = 64  # receptive fields pictured
GIBBS_SEED_OFFSET = 0x61BB5  # the pictures' Gibbs stream: seed + this
_MOMENTUM = ("momentum", "nesterov")  # the optimizers that take the momentum setting
CPU_FLOPS = 2.5e10  # float32 FLOP/s on one laptop core: a cautious rate (estimates run high)


@dataclass(frozen=True)
class DBNConfig:
    dataset: Annotated[DatasetChoice, DATASET_HELP] = "mnist"
    architecture: Annotated[
        Architecture,
        "lecture: 784-256-256-10 (minutes); hinton: 784-500-500-2000-10 (Hinton & "
        "Salakhutdinov 2006; about an hour per seed, cost printed at the start)",
    ] = "lecture"
    hidden: Annotated[tuple[int, ...] | None, "hidden widths (None: the architecture's)"] = None
    train_size: Annotated[int, "training images before the held-out split (0: all 60000)"] = 0
    valid_size: Annotated[int, "training images held out for the free-energy monitor"] = 10000
    contenders: Annotated[
        tuple[str, ...], "scheme/activation pairs fine-tuned (dbn: RBM pretraining)"
    ] = ("dbn/sigmoid", "xavier_uniform/sigmoid", "he_normal/relu")
    rbm_epochs: Annotated[int | None, "epochs per RBM (None: the architecture's)"] = None
    rbm_lr: Annotated[float, "RBM learning rate (rbm.m: 0.1)"] = 0.1
    rbm_k: Annotated[int, "Gibbs steps per RBM update (CD-k)"] = 1
    rbm_sampling: Annotated[Literal["cd", "pcd"], "cd, or persistent cd"] = "cd"
    rbm_batch_size: Annotated[int, "RBM minibatch size (rbm.m: 100)"] = 100
    rbm_weight_decay: Annotated[float, "RBM weight decay (rbm.m: 0.0002)"] = 2e-4
    optimizer: Annotated[str, "fine-tuning optimizer (an initlab optimizer name)"] = "momentum"
    lr: Annotated[float, "fine-tuning learning rate"] = 0.05
    momentum: Annotated[float, "fine-tuning momentum (momentum and nesterov optimizers)"] = 0.9
    epochs: Annotated[int | None, "fine-tuning epochs (None: the architecture's)"] = None
    batch_size: Annotated[int, "fine-tuning minibatch size"] = 100
    seeds: Annotated[int, "seeds per contender"] = 2


def settings(config: DBNConfig) -> dict[str, Any]:
    """``hidden``, ``rbm_epochs`` and ``epochs``, the architecture's preset filling Nones."""
    preset = PRESETS[config.architecture]
    return {
        "hidden": list(preset["hidden"] if config.hidden is None else config.hidden),
        "rbm_epochs": preset["rbm_epochs"] if config.rbm_epochs is None else config.rbm_epochs,
        "epochs": preset["epochs"] if config.epochs is None else config.epochs,
    }


def split(scheme_activation: str) -> tuple[str, str]:
    """``"he_normal/relu"`` -> ``("he_normal", "relu")``; a bad pair is a one-line error."""
    scheme, sep, activation = scheme_activation.partition("/")
    if not sep or not scheme or not activation:
        raise InitlabError(
            f"contender {scheme_activation!r} must be scheme/activation, e.g. he_normal/relu"
        )
    check_choice(activation, ACTIVATION_NAMES, "activation")
    return scheme, activation


def estimated_seconds(config: DBNConfig, n_train: int) -> dict[str, float]:
    """Rough cost on one laptop core: RBMs (5 products of batch x weights per update) and
    fine-tuning (6 per example per weight, over every contender)."""
    s = settings(config)
    widths = [784, *s["hidden"], 10]
    pairs = list(pairwise(widths))
    rbm_weights = sum(a * b for a, b in pairs[:-1])
    all_weights = sum(a * b for a, b in pairs)
    dbn_runs = sum(split(c)[0] == "dbn" for c in config.contenders) * config.seeds
    rbm = 10 * rbm_weights * n_train * s["rbm_epochs"] * dbn_runs / CPU_FLOPS
    tune = 6 * all_weights * n_train * s["epochs"] * len(config.contenders) * config.seeds
    return {"rbm": rbm, "fine_tuning": tune / CPU_FLOPS}


def load_task(spec: dict[str, Any]) -> tuple[Dataset, Dataset, Dataset]:
    """(train, held-out, test) of a run spec: the held-out images are the last of training."""
    full = load_split(spec["dataset"], "train", spec["train_size"])
    valid_size = min(spec["valid_size"], len(full) // 5)
    n = len(full) - valid_size
    train = full.subset(slice(0, n), f"{full.name}[:{n}]")
    valid = full.subset(slice(n, len(full)), f"{full.name}[{n}:]")
    return train, valid, load_split(spec["dataset"], "test")


def _label(spec: dict[str, Any]) -> str:
    return f"{spec['scheme']}/{spec['activation']}"


@register
class DBN(GroupExperiment):
    """Test error of DBN-pretrained vs Xavier and He MLPs, fine-tuned with backprop."""

    name = "dbn"
    description = "E1: RBM/DBN greedy pretraining (Hinton 2006) vs Xavier and He, fine-tuned"
    cost = "~4 min (architecture=hinton: 1-2.5 h)"
    source = (
        "Hinton, Osindero & Teh 2006 (A fast learning algorithm for deep belief nets); Hinton & "
        "Salakhutdinov 2006 (Science); Hinton, UTML TR 2010-003 (practical guide to RBMs)"
    )
    Config = DBNConfig
    quick: ClassVar[dict[str, Any]] = {
        "train_size": 6000,
        "valid_size": 1000,
        "rbm_epochs": 2,
        "epochs": 2,
        "seeds": 1,
    }
    quick_cost = "~10 s"

    def validate(self, config: DBNConfig) -> None:
        super().validate(config)
        check_dataset(config.dataset, train_size=config.train_size, valid_size=config.valid_size)
        check_choice(config.architecture, ARCHITECTURES, "architecture")
        check_choice(config.optimizer, OPTIMIZER_NAMES, "optimizer")
        check_hidden(settings(config)["hidden"])
        if not config.contenders:
            raise InitlabError("contenders is empty; e.g. [dbn/sigmoid, he_normal/relu]")
        schemes = [split(c)[0] for c in config.contenders]
        check_inits([s for s in schemes if s != "dbn"] or ["zeros"])
        for key in ("rbm_epochs", "rbm_lr", "rbm_k", "rbm_batch_size"):
            value = getattr(config, key)
            if value is not None and not value > 0:
                raise InitlabError(f"{key} must be positive, got {value}")
        if not 0 <= config.momentum < 1:
            raise InitlabError(f"momentum must be in [0, 1), got {config.momentum}")

    def plan(self, config: DBNConfig, seed: int = 0) -> list[RunSpec]:
        s = settings(config)
        common = {
            "dataset": config.dataset,
            "train_size": config.train_size,
            "valid_size": config.valid_size,
            "hidden": s["hidden"],
            "optimizer": config.optimizer,
            "lr": config.lr,
            "momentum": config.momentum,
            "epochs": s["epochs"],
            "batch_size": config.batch_size,
            "batch_seed": stream_seed(seed, "minibatches"),
        }
        rbm = {
            "rbm_epochs": s["rbm_epochs"],
            "rbm_lr": config.rbm_lr,
            "rbm_k": config.rbm_k,
            "rbm_sampling": config.rbm_sampling,
            "rbm_batch_size": config.rbm_batch_size,
            "rbm_weight_decay": config.rbm_weight_decay,
        }
        runs = []
        for s_ in run_seeds(seed, config.seeds):
            for contender in dict.fromkeys(config.contenders):
                scheme, activation = split(contender)
                spec = {**common, "scheme": scheme, "activation": activation}
                if scheme == "dbn":
                    spec.update(rbm)
                runs.append(RunSpec(f"{contender}/seed={s_}", spec, s_, group=activation))
        return runs

    def execute_group(
        self,
        runs: Sequence[RunSpec],
        config: DBNConfig,
        recorders: Sequence[Recorder],
        progress: Progress = no_progress,
    ) -> list[RunOutcome]:
        from initlab.init import initialize, pretrain_dbn
        from initlab.init.rbm import RBMConfig
        from initlab.models.mlp import mlp

        first = runs[0].spec
        train, valid, test = load_task(first)
        widths = (train.num_features, *first["hidden"], train.num_classes)
        spec = MLPSpec(widths, first["activation"])
        if config.architecture == "hinton" and any(r.spec["scheme"] == "dbn" for r in runs):
            cost = estimated_seconds(config, len(train))
            print(
                f"dbn: {'-'.join(map(str, widths))} costs about {cost['rbm'] / 60:.0f} min of "
                f"RBM training and {cost['fine_tuning'] / 60:.0f} min of fine-tuning on one "
                "laptop core (all seeds and contenders; a cautious estimate: the lecture preset "
                "runs in about half of its own)",
                file=sys.stderr,
            )
        per_epoch = batches_per_epoch(len(train), first["batch_size"])
        pre_units = [  # progress: one RBM epoch counts as much as one fine-tuning epoch
            (len(widths) - 2) * run.spec["rbm_epochs"] * per_epoch
            if run.spec["scheme"] == "dbn"
            else 0
            for run in runs
        ]
        total = sum(pre_units) + first["epochs"] * per_epoch
        done = 0.0
        members = []
        for run, recorder, units in zip(runs, recorders, pre_units, strict=True):
            model = mlp(**spec.to_dict())
            if run.spec["scheme"] != "dbn":
                initialize(model, run.spec["scheme"], bias="zeros", seed=run.seed)
                members.append(model)
                continue
            rbm_config = RBMConfig(
                epochs=run.spec["rbm_epochs"],
                batch_size=run.spec["rbm_batch_size"],
                lr=run.spec["rbm_lr"],
                k=run.spec["rbm_k"],
                sampling=run.spec["rbm_sampling"],
                weight_decay=run.spec["rbm_weight_decay"],
            )
            start = done

            def on_epoch(
                layer: int,
                row: dict[str, float],
                start: float = start,
                epochs: int = rbm_config.epochs,
            ) -> None:
                progress(start + (layer * epochs + row["epoch"]) * per_epoch, total)

            summary = pretrain_dbn(
                model, train.x, rbm_config, held_out=valid.x, seed=run.seed, callback=on_epoch
            )
            done += units
            recorder.log_metrics(
                [
                    {"step": int(row["epoch"]), **_rbm_row(i, row)}
                    for i, layer in enumerate(summary.pretrained, 1)
                    for row in layer.history.rows
                ]
            )
            recorder.save_params(_pictures(summary, test, run.seed))
            members.append(model)

        def tuning(completed: float, _total: float) -> None:
            progress(done + completed, total)

        _, outcomes = train_group(
            list(runs),
            list(recorders),
            tuning,
            members=members,
            data=train,
            spec=spec,
            keep=("train_loss", "valid_acc", "valid_loss"),
            optimizer=first["optimizer"],
            lr=first["lr"],
            hparams={"momentum": first["momentum"]} if first["optimizer"] in _MOMENTUM else {},
            epochs=first["epochs"],
            batch_size=first["batch_size"],
            batch_mode="epoch",
            batch_seed=first["batch_seed"],
            eval_data=test,
            log_every=max(1, per_epoch // 10),
        )
        return outcomes

    # -- results ----------------------------------------------------------------------
    def _cells(self, data: ExperimentData) -> dict[str, list[RunData]]:
        cells: dict[str, list[RunData]] = {}
        for run in data.finished():
            cells.setdefault(_label(run.spec), []).append(run)
        return cells

    def figures(self, config: DBNConfig, data: ExperimentData) -> list[FigureInfo]:
        cells = self._cells(data)
        if not cells:
            return []
        widths = "-".join(map(str, [784, *settings(config)["hidden"], 10]))
        where = dataset_title(config.dataset)
        figures = [self._curves(cells, widths, where)]
        dbn_runs = [r for r in cells.get(_dbn_label(cells), []) if r.status == "done"]
        if dbn_runs:
            figures.append(pretraining_figure(dbn_runs, widths, where))
            params = dbn_runs[0].params()
            if params is not None:
                figures += picture_figures(params, where)
        return figures

    def _curves(self, cells: dict[str, list[RunData]], widths: str, where: str) -> FigureInfo:
        errors, losses = [], []
        for i, (label, runs) in enumerate(cells.items()):
            for j, run in enumerate(runs):
                _, acc = run.series("valid_acc")
                err = [100 * (1 - a) for a in acc]
                final = _mean([_final_error(r) for r in runs])
                text = f"{label} ({final:.2f}%)" if j == 0 else None
                errors.append(Series(list(range(len(err))), err, text, color(i), marker="o"))
                steps, loss = run.series("train_loss")
                losses.append(Series(steps, loss, label if j == 0 else None, color(i), alpha=0.8))
        top = max((max(s.y[1:], default=0) for s in errors), default=10.0)
        return FigureInfo(
            name="dbn-test-error",
            title=f"{where}, {widths}: fine-tuning from DBN, Xavier and He",
            panels=[
                [
                    LinePanel(
                        errors,
                        title="test error per epoch",
                        xlabel="fine-tuning epoch",
                        ylabel="test error (%)",
                        ylim=(0.0, min(100.0, 1.1 * top)),
                    ),
                    LinePanel(
                        losses,
                        title="training loss",
                        xlabel="step",
                        ylabel="cross entropy",
                        yscale="log",
                    ),
                ]
            ],
            caption=(
                "Test error after every fine-tuning epoch (epoch 0 at init, above the y range) "
                "and the minibatch training loss; one line per seed, the legend gives the mean "
                "final test error."
            ),
            panel_size=(4.6, 3.4),
        )

    def summary(self, config: DBNConfig, data: ExperimentData) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for label, runs in self._cells(data).items():
            finals = [_final_error(r) for r in runs]
            out[label] = {
                "test_error_pct": _mean(finals),
                "test_error_pct_seeds": finals,
                "spread_pct": (max(finals) - min(finals)) if finals else math.nan,
                "runs": len(runs),
                "diverged": sum(r.status == "diverged" for r in runs),
            }
        pretraining: dict[str, Any] = {}
        dbn_runs = [r for r in self._cells(data).get(_dbn_label(self._cells(data)), [])]
        if dbn_runs:
            run = dbn_runs[0]
            layer = 1
            while run.series(f"rbm{layer}_recon_error")[1]:
                recon = run.series(f"rbm{layer}_recon_error")[1]
                gap = run.series(f"rbm{layer}_free_energy_gap")[1]
                pretraining[f"rbm{layer}"] = {
                    "recon_error_start": recon[0],
                    "recon_error_end": recon[-1],
                    "free_energy_gap_start": gap[0] if gap else math.nan,
                    "free_energy_gap_end": gap[-1] if gap else math.nan,
                    "epochs": len(recon) - 1,
                }
                layer += 1
        s = settings(config)
        return {
            "contenders": out,
            "pretraining": pretraining,
            "architecture": config.architecture,
            "widths": [784, *s["hidden"], 10],
            "dataset": config.dataset,
            "epochs": s["epochs"],
            "rbm_epochs": s["rbm_epochs"],
        }

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        rows = summary.get("contenders", {})
        if not rows:
            return []
        widths = "-".join(map(str, summary.get("widths", [])))
        ranked = sorted(rows.items(), key=lambda kv: _order(kv[1]["test_error_pct"]))
        listing = " < ".join(
            f"{label} {row['test_error_pct']:.2f}% ({row['runs']} seed(s), spread "
            f"{row['spread_pct']:.2f})"
            for label, row in ranked
        )
        out = [f"{widths} after {summary.get('epochs')} fine-tuning epochs: test error {listing}."]
        dbn = next((label for label in rows if label.startswith("dbn/")), None)
        if dbn is not None:
            activation = dbn.split("/", 1)[1]
            for what, labels in (
                (
                    f"the same {activation} net from random init",
                    [k for k in rows if k != dbn and k.endswith(f"/{activation}")],
                ),
                ("the best random init", [k for k in rows if k != dbn]),
            ):
                if not labels:
                    continue
                best = min(labels, key=lambda k: _order(rows[k]["test_error_pct"]))
                diff = rows[dbn]["test_error_pct"] - rows[best]["test_error_pct"]
                word = "below" if diff < 0 else "above"
                if what.startswith("the same"):
                    tail = "pretraining helps" if diff < 0 else "pretraining does not help"
                else:
                    tail = f"{best} {'trails it' if diff < 0 else 'beats it'}"
                out.append(
                    f"DBN pretraining ends {abs(diff):.2f} points {word} {what} ({best}): "
                    f"{tail} at this size and budget."
                )
        for name, layer in summary.get("pretraining", {}).items():
            text = (
                f"{name}: reconstruction error {layer['recon_error_start']:.1f} -> "
                f"{layer['recon_error_end']:.1f} per image over {layer['epochs']} epochs"
            )
            if math.isfinite(layer["free_energy_gap_end"]):
                text += (
                    f"; free-energy gap (held-out minus training) "
                    f"{layer['free_energy_gap_start']:.2f} -> {layer['free_energy_gap_end']:.2f}"
                )
            out.append(text + ".")
        if summary.get("architecture") == "hinton" and dbn is not None:
            err = rows[dbn]["test_error_pct"]
            holds = "holds" if err < 2.0 else "does not hold"
            preset = PRESETS["hinton"]
            budget = (summary.get("rbm_epochs", 0), summary.get("epochs", 0))
            reduced = budget[0] < preset["rbm_epochs"] or budget[1] < preset["epochs"]
            note = (
                f" at a reduced budget ({budget[0]} RBM and {budget[1]} fine-tuning epochs; the "
                f"preset has {preset['rbm_epochs']} and {preset['epochs']})"
                if reduced
                else ""
            )
            out.append(
                f"Hinton & Salakhutdinov report 1.2% for the pretrained 784-500-500-2000 net; "
                f"here {err:.2f}%: 'well under 2%' {holds}{note}."
            )
        return out


def _rbm_row(layer: int, row: dict[str, float]) -> dict[str, float]:
    keys = ("recon_error", "free_energy_train", "free_energy_held_out", "free_energy_gap")
    return {f"rbm{layer}_{k}": row[k] for k in keys if k in row}


def _pictures(summary: Any, test: Dataset, seed: int) -> dict[str, torch.Tensor]:
    """Tensors for the pictures: filters, Gibbs chains from test images, reconstructions."""
    rbms = [layer.rbm for layer in summary.pretrained]
    first = rbms[0]
    gen = torch.Generator().manual_seed(seed + GIBBS_SEED_OFFSET)
    v = test.x[:CHAINS].reshape(CHAINS, -1).float().clone()  # not a view: saved alone
    snapshots, done, state = [], 0, v
    h = torch.bernoulli(first.hidden_probs(state), generator=gen)
    for target in GIBBS_SNAPSHOTS:
        while done < target:
            if done:
                state = first.sample_visible(h, gen)
                h = torch.bernoulli(first.hidden_probs(state), generator=gen)
            done += 1
        snapshots.append(first.visible_mean(h))
    up = v
    for rbm in rbms:
        up = rbm.hidden_probs(up)
    for rbm in reversed(rbms):
        up = rbm.visible_mean(up)
    return {
        "filters": first.weight[:FILTERS].clone(),
        "chains": torch.stack(snapshots, 1),  # [chains, snapshots, 784]
        "inputs": v,
        "recon_first": first.reconstruct(v),
        "recon_stack": up,
    }


def _dbn_label(cells: dict[str, list[RunData]]) -> str:
    return next((label for label in cells if label.startswith("dbn/")), "")


def _final_error(run: RunData) -> float:
    _, acc = run.series("valid_acc")
    return 100 * (1 - acc[-1]) if acc and math.isfinite(acc[-1]) else math.nan


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _order(value: float) -> float:
    return value if math.isfinite(value) else math.inf
