"""What one trial trains: an MLP on a training split, judged on a validation split.

The from-scratch book's search (sec. 6.5.3, ``hyperparameter_optimization.py``): a network
trained on the training part of a split for a fixed number of epochs, its validation
accuracy after every epoch, and the last one the trial's value. The test set is never
seen by a trial; the search evaluates it once, for the best trial
(:func:`initlab.search.driver.evaluate_best`).

Trials that share an architecture (hidden widths and activation) are trained together in
one :func:`initlab.train.batched.fit_batched` call, each with its own learning rate,
weight decay, momentum, init and seed; they all see the minibatch stream of
``batch_seed``. :meth:`SearchTask.train_one` trains one trial with
:func:`initlab.train.fit.fit`, the reference that a batched trial equals to float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from initlab.data.dataset import Dataset
from initlab.errors import InitlabError
from initlab.models.mlp import MLPSpec

if TYPE_CHECKING:
    from torch import nn

    from initlab.train.batched import FirstLayer

TrialStatus = Literal["complete", "pruned", "diverged"]

Reporter = Callable[[int, int, float], bool]
"""``report(member, epoch, valid_acc) -> prune?``: called after every epoch of a member."""

PER_MEMBER = ("lr", "weight_decay", "momentum")
ARCHITECTURE = ("width", "depth", "activation")


@dataclass(frozen=True)
class TrialPlan:
    """One trial to train: its number in the study, its parameters and its init seed."""

    number: int
    params: dict[str, Any]
    seed: int


@dataclass
class TrialOutcome:
    """What a trial gave: the value (last validation accuracy) and its curves per epoch."""

    status: TrialStatus
    value: float  # validation accuracy after the last epoch trained (pruned: when stopped)
    valid_acc: list[float] = field(default_factory=list)  # after epochs 1, 2, ...
    train_acc: list[float] = field(default_factory=list)  # on the training split, per epoch

    @property
    def epochs(self) -> int:
        """Epochs trained."""
        return len(self.valid_acc)


@dataclass(frozen=True)
class SearchTask:
    """The fixed settings of every trial; the searched parameters override ``defaults``.

    ``hidden`` is the architecture unless the space has ``width`` / ``depth`` (every
    hidden layer ``width`` units, ``depth`` layers).
    """

    train: Dataset
    valid: Dataset
    hidden: tuple[int, ...] = (100,) * 6
    activation: str = "relu"
    init: str = "he_normal"
    optimizer: str = "sgd"
    epochs: int = 50
    batch_size: int = 100
    batch_seed: int = 0
    defaults: Mapping[str, float] = field(
        default_factory=lambda: {"lr": 0.01, "weight_decay": 0.0, "momentum": 0.0}
    )
    first_layer: FirstLayer = "auto"  # fit_batched's: layer 1 in the dual form where it pays

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise InitlabError("epochs and batch_size must be positive")

    @property
    def per_epoch(self) -> int:
        """Minibatches per epoch (drawn with replacement, as the book's Trainer)."""
        return max(1, math.ceil(len(self.train) / self.batch_size))

    def spec_of(self, params: Mapping[str, Any]) -> MLPSpec:
        """The architecture of a trial."""
        hidden = self.hidden
        if "width" in params or "depth" in params:
            width = int(params.get("width", hidden[0]))
            depth = int(params.get("depth", len(hidden)))
            hidden = (width,) * depth
        activation = str(params.get("activation", self.activation))
        widths = (self.train.num_features, *hidden, self.train.num_classes)
        return MLPSpec(widths, activation)

    def value(self, params: Mapping[str, Any], name: str) -> float:
        """A per-member optimizer setting of a trial (searched, else the default)."""
        return float(params.get(name, self.defaults.get(name, 0.0)))

    def _hparams(self, plans: Sequence[TrialPlan]) -> dict[str, list[float]]:
        """Momentum per member, when it is searched or set (else the optimizer's own)."""
        if any("momentum" in p.params for p in plans) or self.defaults.get("momentum", 0.0):
            return {"momentum": [self.value(p.params, "momentum") for p in plans]}
        return {}

    def train_batched(
        self, plans: Sequence[TrialPlan], report: Reporter | None = None
    ) -> list[TrialOutcome]:
        """Train ``plans`` together, one :func:`fit_batched` per architecture; one outcome
        per plan, in order. ``report`` says after every epoch whether to prune a member
        (it is then frozen and the others go on)."""
        from initlab.train.batched import fit_batched

        groups: dict[MLPSpec, list[int]] = {}
        for i, plan in enumerate(plans):
            groups.setdefault(self.spec_of(plan.params), []).append(i)
        outcomes: list[TrialOutcome | None] = [None] * len(plans)
        for spec, index in groups.items():
            group = [plans[i] for i in index]
            tracker = _Tracker(len(group), report, index)
            result = fit_batched(
                [(str(p.params.get("init", self.init)), p.seed) for p in group],
                self.train,
                spec=spec,
                optimizer=self.optimizer,
                lr=[self.value(p.params, "lr") for p in group],
                weight_decay=[self.value(p.params, "weight_decay") for p in group],
                hparams=self._hparams(group),
                epochs=self.epochs,
                batch_size=self.batch_size,
                seed=self.batch_seed,
                eval_data=self.valid,
                eval_every=self.per_epoch,
                eval_train=True,
                log_every=self.per_epoch,  # a trial keeps its per-epoch accuracies only
                callback=tracker,
                first_layer=self.first_layer,
            )
            for j, member in enumerate(result.results):
                outcomes[index[j]] = tracker.outcome(j, member.status == "diverged")
        return [o for o in outcomes if o is not None]

    def train_one(
        self, plan: TrialPlan, report: Reporter | None = None, model: nn.Module | None = None
    ) -> TrialOutcome:
        """Train one trial alone with :func:`initlab.train.fit.fit` (the reference).
        ``model``: its initial network (default: built and initialized as the plan says)."""
        return self._fit(plan, report, model)[0]

    def test_accuracy(self, params: Mapping[str, Any], seed: int, test: Dataset) -> float:
        """Train a trial again (alone, with ``fit``) and evaluate it once on ``test``."""
        from initlab.train.fit import evaluate

        _, model = self._fit(TrialPlan(-1, dict(params), seed), None)
        return evaluate(model, test.x, test.y)[1]

    def initial_model(self, plan: TrialPlan) -> nn.Module:
        """The trial's network as training starts: ``mlp(**spec)`` initialized by its
        scheme and seed."""
        from initlab.init import initialize
        from initlab.models.mlp import mlp

        model = mlp(**self.spec_of(plan.params).to_dict())
        initialize(model, str(plan.params.get("init", self.init)), seed=plan.seed)
        return model

    def _fit(
        self, plan: TrialPlan, report: Reporter | None, model: nn.Module | None = None
    ) -> tuple[TrialOutcome, Any]:
        from initlab.train.fit import fit

        model = self.initial_model(plan) if model is None else model
        tracker = _Tracker(1, report, [0])
        hparams = {k: v[0] for k, v in self._hparams([plan]).items()}
        result = fit(
            model,
            self.train,
            optimizer=self.optimizer,
            lr=self.value(plan.params, "lr"),
            weight_decay=self.value(plan.params, "weight_decay"),
            hparams=hparams,
            epochs=self.epochs,
            batch_size=self.batch_size,
            seed=self.batch_seed,
            eval_data=self.valid,
            eval_every=self.per_epoch,
            eval_train=True,
            log_every=self.per_epoch,
            callback=lambda row: tracker({**row, "member": 0}),
        )
        return tracker.outcome(0, result.status == "diverged"), model


class _Tracker:
    """The engine's callback: collects each member's per-epoch accuracies and asks the
    reporter whether to prune."""

    def __init__(self, n: int, report: Reporter | None, index: Sequence[int]) -> None:
        self.report = report
        self.index = list(index)
        self.valid: list[list[float]] = [[] for _ in range(n)]
        self.train: list[list[float]] = [[] for _ in range(n)]
        self.pruned = [False] * n

    def __call__(self, row: dict[str, Any]) -> bool:
        member = int(row["member"])
        if "valid_acc" not in row or int(row["step"]) == 0:
            return False
        self.valid[member].append(float(row["valid_acc"]))
        self.train[member].append(float(row.get("train_eval_acc", math.nan)))
        if self.report is None or self.pruned[member]:
            return False
        epoch = len(self.valid[member])
        if self.report(self.index[member], epoch, float(row["valid_acc"])):
            self.pruned[member] = True
            return True
        return False

    def outcome(self, member: int, diverged: bool) -> TrialOutcome:
        valid = self.valid[member]
        status: TrialStatus = (
            "diverged" if diverged else "pruned" if self.pruned[member] else "complete"
        )
        value = valid[-1] if valid else 0.0
        return TrialOutcome(status, value, list(valid), list(self.train[member]))
