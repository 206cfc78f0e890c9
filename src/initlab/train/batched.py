"""The batched engine: N models of one MLP architecture trained together, in one computation.

:func:`fit_batched` is :func:`initlab.train.fit.fit` for an ensemble: every member has its
own initialization (a built model, or an ``(init scheme, seed)`` pair), its own optimizer
hyperparameters (learning rate, momentum, weight decay, betas ... one value per member) and
its own dropout rate, and all members see the same minibatches. It returns one
:class:`~initlab.train.result.TrainResult` per member, equal (to float rounding) to what
``fit`` returns for that member trained alone with the same settings and seed: the same
history rows, divergence handling, evaluation rows, probe records (with a ``"member"``
key) and final state. Dropout masks are drawn as ``fit`` draws them, so the equality holds
with dropout too.

Speed: the members' parameters are stacked and the forward and backward passes are written
out by hand (:mod:`initlab.train.batched_mlp`): the first layer, which reads the shared
minibatch, is one matrix product for all members, later layers one batched product each,
with no autograd and no allocation per step. The optimizers of
:mod:`initlab.train.optim` update all members at once with per-member hyperparameters;
SGD without momentum is fused into the weight-gradient products instead
(``W <- W - lr * dZ @ H^T`` in one ``baddbmm``; coupled L2 weight decay first scales
``W`` by ``1 - lr * weight_decay``, as ``W - lr * (dW + weight_decay * W)``), except on
probed steps, whose
records need the gradients, and from the step on which a member diverges or is stopped
(the frozen member must not be updated), after which every update goes through the
optimizer.

Equality with ``fit`` is to float rounding, and so is the independence of a member from
the rest of its group: a hyperparameter that all members share is applied as a Python
number (torch's own arithmetic, bit for bit ``fit``'s), one that differs as a float32
tensor, and fused SGD rounds differently from an optimizer step; these differ by an ulp,
which SGD's dynamics amplify over thousands of steps into differences of the order of
``fit``'s own sensitivity to a one-ulp change of the initial weights.

A member whose training loss becomes NaN or Inf is marked diverged at that step and frozen
(its parameters, optimizer state and batch-norm statistics no longer change, through the
optimizer's ``active`` mask); the others go on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import Tensor, nn

from initlab.data.batches import BatchMode, batches_per_epoch, minibatches
from initlab.data.dataset import Dataset
from initlab.errors import InitlabError
from initlab.init import initialize
from initlab.models.mlp import DropoutMode, MLPSpec, mlp
from initlab.probes.schedules import Schedule, every
from initlab.train.batched_dual import MAX_ELEMENTS, DualFirstLayer, dual_pays
from initlab.train.batched_layout import choose_layout
from initlab.train.batched_mlp import FusedDecay, StackedMLP, Tap, load_member
from initlab.train.batched_probes import MemberProbes
from initlab.train.checks import (
    as_dataset,
    check_classes,
    check_examples,
    check_features,
    check_positive,
)
from initlab.train.fit import DROPOUT_SEED_OFFSET, decay_mask_of, progress_bar
from initlab.train.optim import Optimizer, OptState, make_optimizer
from initlab.train.result import TrainResult

PerMember = float | Sequence[float] | Tensor
"""A hyperparameter: one value for every member, or one value per member."""

MemberInit = nn.Module | tuple[str, int]
"""A member: a built model (``mlp(**spec)``), or an ``(init scheme, seed)`` pair from which
the engine builds ``mlp(**spec)`` and calls ``initialize(model, scheme, seed=seed)``."""

BatchedCallback = Callable[[dict[str, Any]], bool | None]
"""Called with every history row (plus a ``"member"`` key) as it is logged; returning True
stops that member (status "done"), the others go on."""

_EVAL_ELEMENTS = 1 << 23  # largest [N, width, chunk] activation an evaluation pass allocates

FirstLayer = Literal["auto", "primal", "dual"]
"""How layer 1 is computed: from its weights (``primal``), in the dual form over the run's
inputs (``dual``, :mod:`~initlab.train.batched_dual`), or the dual form where it does less
arithmetic (``auto``)."""


@dataclass
class BatchedResult:
    """What :func:`fit_batched` returns: one :class:`TrainResult` per member, in order."""

    results: list[TrainResult]
    spec: MLPSpec
    wall_time: float = 0.0  # seconds in the training loop (all members together)
    config: dict[str, Any] = field(default_factory=dict)  # the shared settings

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, member: int) -> TrainResult:
        return self.results[member]

    def __iter__(self) -> Iterator[TrainResult]:
        return iter(self.results)

    @property
    def statuses(self) -> list[str]:
        """Each member's status ("done" or "diverged")."""
        return [r.status for r in self.results]

    def model(self, member: int) -> nn.Module:
        """A fresh ``mlp(**spec)``, with the member's own dropout rate, loaded with member
        ``member``'s final state."""
        result = self.results[member]
        rate = float(result.config.get("dropout", self.spec.dropout))
        return load_member(replace(self.spec, dropout=rate), result.final_state)


def build_members(spec: MLPSpec, members: Sequence[MemberInit]) -> list[nn.Module]:
    """The member models: given modules as they are, ``(scheme, seed)`` pairs built as
    ``initialize(mlp(**spec), scheme, seed=seed)``."""
    built: list[nn.Module] = []
    for i, item in enumerate(members):
        if isinstance(item, nn.Module):
            built.append(item)
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], int):
            with torch.random.fork_rng(devices=[]):  # leave the global RNG as it was
                model = mlp(**spec.to_dict())
            initialize(model, item[0], seed=item[1])
            built.append(model)
        else:
            raise InitlabError(
                f"member {i} must be an nn.Module or a (scheme, seed) pair such as "
                f"('he_normal', 0), got {item!r}"
            )
    return built


def member_values(name: str, value: PerMember, n: int) -> list[float]:
    """A per-member setting as ``n`` Python floats (one number is repeated)."""
    if isinstance(value, bool):
        raise InitlabError(f"{name} must be a number or one number per member, got {value!r}")
    if isinstance(value, int | float):
        return [float(value)] * n
    if isinstance(value, Tensor):
        values = [float(v) for v in value.detach().cpu().double().reshape(-1).tolist()]
    else:
        values = [float(v) for v in value]
    if len(values) != n:
        raise InitlabError(
            f"{name} has {len(values)} values for {n} members; give one per member or one"
        )
    return values


def per_member(
    name: str, value: PerMember, n: int, device: torch.device | str = "cpu"
) -> float | Tensor:
    """An optimizer hyperparameter: a float when all members agree (torch's own arithmetic,
    so a member equals ``fit`` bit for bit), else a float32 tensor ``[n]`` on ``device``."""
    values = member_values(name, value, n)
    if all(v == values[0] for v in values):
        return values[0]
    return torch.tensor(values, dtype=torch.float32, device=device)


def fit_batched(
    members: Sequence[MemberInit],
    data: Dataset,
    *,
    spec: MLPSpec | None = None,
    optimizer: str | Optimizer = "sgd",
    lr: PerMember | None = None,
    hparams: Mapping[str, PerMember] | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 128,
    batch_mode: BatchMode = "replacement",
    drop_last: bool = False,
    seed: int = 0,
    weight_decay: PerMember | None = None,
    decay_biases: bool = False,
    dropout: PerMember | None = None,
    dropout_seeds: Sequence[int] | None = None,
    eval_data: Dataset | None = None,
    eval_every: int | None = None,
    eval_train: bool = False,
    eval_batch_size: int = 1000,
    probe: Schedule | int | None = None,
    probe_layers: Sequence[str] | None = None,
    probe_data: Dataset | None = None,
    histograms: bool = False,
    log_every: int = 1,
    progress: bool = False,
    callback: BatchedCallback | None = None,
    loss: str = "cross_entropy",
    fuse_sgd: bool = True,
    loss_after_update: bool = False,
    bn_eps: float | None = None,
    dropout_mode: DropoutMode | None = None,
    dtype: torch.dtype = torch.float32,
    first_layer: FirstLayer = "auto",
) -> BatchedResult:
    """Train ``N`` MLPs of one architecture together; one :class:`TrainResult` per member.

    Every argument means what it means for :func:`initlab.train.fit.fit`; these differ:

    Args:
        members: ``N`` models built by ``mlp(**spec)`` (or with its parameter names and
            shapes), or ``(init scheme, seed)`` pairs such as ``("he_normal", 3)``.
        spec: the architecture; needed only when no member is an ``MLP`` (which carries it).
        lr, weight_decay, dropout, and the values of ``hparams``: a number for all members
            or a sequence / 1-D tensor with one value per member. ``dropout`` defaults to
            each member's own ``spec.dropout`` (``spec``'s for ``(scheme, seed)`` pairs).
        optimizer: a name, or an :class:`~initlab.train.optim.Optimizer` whose tensor
            hyperparameters have ``N`` values.
        seed: the minibatch stream shared by all members (as ``fit``'s ``seed``).
        dropout_seeds: seed of each member's dropout masks (default: ``seed`` for all, so
            that member ``n`` equals ``fit(..., seed=seed)``; members with equal rates then
            share their masks; give distinct seeds to decorrelate them).
        callback: called with each history row plus ``"member"``; returning True stops that
            member only.
        loss: only ``"cross_entropy"`` (the members output logits).
        fuse_sgd: apply SGD without momentum (with its coupled weight decay, if any)
            inside the backward pass (faster). Its rounding differs
            from an optimizer step by an ulp, which SGD's chaotic dynamics amplify over
            thousands of steps; False sends every update through the optimizer, the same
            arithmetic as ``fit``.
        loss_after_update, bn_eps: as for ``fit``.
        dropout_mode: ``"inverted"`` or ``"scale_at_test"`` (the book's); None: the spec's.
        dtype: the precision of the members' parameters and activations (float32, or
            float64 as the NumPy sources compute).
        first_layer: ``"dual"`` keeps layer 1 in the dual form over the training and
            evaluation inputs (:mod:`~initlab.train.batched_dual`: its products cost
            ``n B`` instead of about ``2 B in`` multiply-adds per unit and step, for ``n``
            such inputs of ``in`` features); it needs fused plain SGD. ``"auto"`` (the
            default) uses it under that condition where it does at most half the
            arithmetic of the weights' products and its buffers are small
            (:func:`~initlab.train.batched_dual.dual_pays`: small-data runs such as the
            book's hyperparameter search); ``"primal"`` never. The same results to float
            rounding either way.

    The given member modules are not changed (``fit`` trains its model in place); the
    trained members are in each result's ``final_state`` and in ``result.model(n)``.
    Members that diverge are frozen; the run ends when every member is diverged or stopped.
    """
    if loss != "cross_entropy":
        raise InitlabError(f"the batched engine trains with loss 'cross_entropy', got {loss!r}")
    spec = _resolve_spec(spec, members, bn_eps is None, dropout_mode is None)
    data = as_dataset(data)
    check_positive(batch_size=batch_size, steps=steps, epochs=epochs)
    check_examples(data)
    check_features(data, spec.widths[0])
    check_classes(data, spec.widths[-1])
    if eval_data is not None:
        eval_data = as_dataset(eval_data, "eval_data")
        check_examples(eval_data, "eval_data")
        check_features(eval_data, spec.widths[0], "eval_data")
        check_classes(eval_data, spec.widths[-1], "eval_data")
    if bn_eps is not None or dropout_mode is not None:
        spec = replace(
            spec,
            bn_eps=spec.bn_eps if bn_eps is None else _positive_eps(bn_eps),
            dropout_mode=spec.dropout_mode if dropout_mode is None else dropout_mode,
        )
    models = build_members(spec, members)
    n = len(models)
    own = [getattr(m, "spec", spec).dropout for m in models]
    rates = member_values("dropout", own if dropout is None else dropout, n)
    # the shared reference holds dropout modules whenever any member drops (for its probe
    # records); each member's own rate is in its result's config and in result.model(n)
    if all(0.0 <= p < 1.0 for p in rates):  # (StackedMLP reports bad rates per member)
        spec = replace(spec, dropout=max(rates))
    seeds = [seed] * n if dropout_seeds is None else list(dropout_seeds)
    stacked = StackedMLP(
        spec,
        models,
        dropout=rates,
        dropout_seeds=[s + DROPOUT_SEED_OFFSET for s in seeds],
        dtype=dtype,
    )
    opt, exact = _build_optimizer(optimizer, n, lr, hparams, weight_decay, stacked.device)
    settings = _Settings(
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        batch_mode=batch_mode,
        drop_last=drop_last,
        seed=seed,
        decay_biases=decay_biases,
        eval_data=eval_data,
        eval_every=eval_every,
        eval_train=eval_train,
        eval_batch_size=eval_batch_size,
        probe=every(probe) if isinstance(probe, int) else probe,
        probe_data=probe_data,
        log_every=log_every,
        progress=progress,
        callback=callback,
        fuse_sgd=fuse_sgd,
        loss_after_update=loss_after_update,
        first_layer=first_layer,
    )
    trainer = _Trainer(stacked, opt, exact, data, settings, probe_layers, histograms)
    return trainer.run()


def _resolve_spec(
    spec: MLPSpec | None,
    members: Sequence[MemberInit],
    keep_eps: bool = True,
    keep_mode: bool = True,
) -> MLPSpec:
    """``spec``, or the spec of the first member built by ``mlp``; every member built by
    ``mlp`` must agree with it on everything but the dropout rate (the engine sets it per
    member), because activations have no parameters to tell them apart. Batch norm's eps
    and the dropout mode must agree too unless ``fit_batched`` is given them (``keep_eps``
    / ``keep_mode`` False): a member's own setting is never replaced silently."""
    if len(members) == 0:
        raise InitlabError("fit_batched needs at least one member")
    specs = [
        (i, m.spec) for i, m in enumerate(members) if isinstance(getattr(m, "spec", None), MLPSpec)
    ]
    if spec is None:
        if not specs:
            raise InitlabError("give spec=MLPSpec(...) (or members built by initlab.models.mlp)")
        spec = specs[0][1]
    want = _architecture(spec)
    for i, other in specs:
        if _architecture(other) != want:
            raise InitlabError(
                f"member {i} is {other}, but the ensemble's architecture is {spec}; all members "
                "need the same widths, activation, batchnorm and bias"
            )
        for name, keep in (("bn_eps", keep_eps), ("dropout_mode", keep_mode)):
            if keep and getattr(other, name) != getattr(spec, name):
                raise InitlabError(
                    f"member {i} has {name}={getattr(other, name)!r} but the ensemble's spec "
                    f"has {getattr(spec, name)!r}; give fit_batched {name}=... to set it for "
                    "every member"
                )
    return spec


def _positive_eps(value: object) -> float:
    """Batch norm's eps as a float, or a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InitlabError(f"bn_eps must be a positive number, got {value!r}")
    return float(value)


def _architecture(spec: MLPSpec) -> MLPSpec:
    """What members must share: the spec without the settings the engine sets per run
    (dropout rate and mode, batch norm's eps)."""
    return replace(spec, dropout=0.0, bn_eps=1e-5, dropout_mode="inverted")


def _build_optimizer(
    optimizer: str | Optimizer,
    n: int,
    lr: PerMember | None,
    hparams: Mapping[str, PerMember] | None,
    weight_decay: PerMember | None,
    device: torch.device,
) -> tuple[Optimizer, dict[str, list[float]]]:
    """The optimizer, and each hyperparameter's exact value per member (for the configs)."""
    given: dict[str, PerMember] = {}
    if isinstance(optimizer, Optimizer):
        if lr is not None or hparams or weight_decay is not None:
            raise InitlabError(
                "lr, hparams and weight_decay go to make_optimizer when fit_batched is given "
                "an Optimizer instance; pass the optimizer's name instead to set them here"
            )
        if optimizer.members not in (None, n):
            raise InitlabError(
                f"the optimizer's hyperparameters have {optimizer.members} values for {n} members"
            )
        opt = optimizer
    else:
        given = dict(hparams or {})
        if lr is not None:
            given["lr"] = lr
        if weight_decay is not None:
            given["weight_decay"] = weight_decay
        values = {k: per_member(k, v, n, device) for k, v in given.items()}
        opt = make_optimizer(optimizer, **values)
    exact = {k: member_values(k, v, n) for k, v in opt.hparams.items()}
    exact.update({k: member_values(k, v, n) for k, v in given.items()})
    return opt, exact


def _plain_sgd_rate(opt: Optimizer) -> float | Tensor | None:
    """The learning rate when ``opt`` is SGD without momentum (with or without coupled L2
    weight decay), whose update the engine fuses into its backward pass; None for every
    other optimizer."""
    if opt.name not in ("sgd", "momentum"):
        return None
    momentum = opt.hparams["momentum"]
    if isinstance(momentum, Tensor) or momentum != 0.0:
        return None
    return opt.hparams["lr"]


def _fused_decay(opt: Optimizer, mask: Sequence[bool], device: torch.device) -> FusedDecay | None:
    """The coupled weight decay of a fused SGD step (None without weight decay)."""
    lr, wd = opt.hparams["lr"], opt.hparams["weight_decay"]
    if not isinstance(wd, Tensor) and wd == 0.0:
        return None
    if isinstance(lr, Tensor):
        lr = lr.to(device)
    if isinstance(wd, Tensor):
        wd = wd.to(device)
    return FusedDecay.of(lr, wd, mask)


@dataclass
class _Settings:
    """The loop settings of :func:`fit_batched` (see :func:`initlab.train.fit.fit`)."""

    steps: int | None
    epochs: int | None
    batch_size: int
    batch_mode: BatchMode
    drop_last: bool
    seed: int
    decay_biases: bool
    eval_data: Dataset | None
    eval_every: int | None
    eval_train: bool
    eval_batch_size: int
    probe: Schedule | None
    probe_data: Dataset | None
    log_every: int
    progress: bool
    callback: BatchedCallback | None
    fuse_sgd: bool
    loss_after_update: bool = False
    first_layer: FirstLayer = "auto"

    def check(self) -> None:
        if self.steps is None and self.epochs is None:
            raise InitlabError("give steps or epochs (or both) to say how long to train")
        for what, value in (
            ("log_every", self.log_every),
            ("eval_batch_size", self.eval_batch_size),
        ):
            if value < 1:
                raise InitlabError(f"{what} must be a positive integer, got {value}")
        if self.eval_every is not None and self.eval_every < 1:
            raise InitlabError(f"eval_every must be a positive integer, got {self.eval_every}")
        if self.first_layer not in ("auto", "primal", "dual"):
            raise InitlabError(
                f"first_layer must be 'auto', 'primal' or 'dual', got {self.first_layer!r}"
            )


class _Trainer:
    """One run of :func:`fit_batched`: the loop and the per-member bookkeeping."""

    def __init__(
        self,
        stacked: StackedMLP,
        opt: Optimizer,
        exact: dict[str, list[float]],
        data: Dataset,
        settings: _Settings,
        probe_layers: Sequence[str] | None,
        histograms: bool,
    ) -> None:
        settings.check()
        self.s = settings
        self.stacked = stacked
        self.n = stacked.n
        self.opt = opt
        self.exact = exact
        mask = decay_mask_of(stacked.reference, settings.decay_biases)
        self.state: OptState = opt.init_state(stacked.params, mask, members=self.n)
        self.penalized = [i for i, m in enumerate(mask) if m]
        wd = opt.hparams.get("weight_decay", 0.0)
        self.wd: float | Tensor = 0.0 if opt.name == "adamw" else wd
        self.data = data
        device = stacked.device
        self.x, self.y = data.x.to(device, stacked.dtype).flatten(1), data.y.to(device)
        self.eval_x: Tensor | None = None
        self.eval_y: Tensor | None = None
        if settings.eval_data is not None:
            self.eval_x = settings.eval_data.x.to(device, stacked.dtype).flatten(1)
            self.eval_y = settings.eval_data.y.to(device)
        self.per_epoch = batches_per_epoch(
            len(data), settings.batch_size, settings.drop_last and settings.batch_mode == "epoch"
        )
        epochs = settings.epochs
        limits = [settings.steps, None if epochs is None else epochs * self.per_epoch]
        self.total = min(s for s in limits if s is not None)
        evaluating = settings.eval_data is not None or settings.eval_train
        self.eval_period = (settings.eval_every or self.per_epoch) if evaluating else None
        self.sgd_lr = _plain_sgd_rate(opt) if settings.fuse_sgd else None
        if isinstance(self.sgd_lr, Tensor):
            self.sgd_lr = self.sgd_lr.to(device)
        self.sgd_decay = _fused_decay(opt, mask, device) if self.sgd_lr is not None else None
        # rows of the dual basis: the training set's, then the evaluation set's (None: primal)
        self.train_rows: Tensor | None = None
        self.eval_rows: Tensor | None = None
        self.dual_steps = 0  # fused steps made in the dual form (released ones counted here)
        self._use_dual()
        self.probes = None
        if settings.probe is not None:
            self.probes = MemberProbes(stacked, probe_layers, histograms)
        # per member: still training? and what TrainResult needs
        self.alive: list[int] = list(range(self.n))
        self.status = ["done"] * self.n
        self.diverged_at: list[int | None] = [None] * self.n
        self.stopped = [False] * self.n
        self.steps_done = [0] * self.n
        self.history: list[list[dict[str, Any]]] = [[] for _ in range(self.n)]

    def _use_dual(self) -> None:
        """Put layer 1 in the dual form over the training and evaluation inputs when
        ``first_layer`` asks for it (``auto``: where it pays, :func:`dual_pays`)."""
        s, stacked = self.s, self.stacked
        if s.first_layer == "primal":
            return
        if self.sgd_lr is None:
            if s.first_layer == "dual":
                raise InitlabError(
                    "first_layer='dual' needs plain SGD fused into the backward pass "
                    "(optimizer 'sgd' or 'momentum' with momentum 0, and fuse_sgd=True)"
                )
            return
        eval_data = s.eval_data
        same = eval_data is None or eval_data is self.data or eval_data.x is self.data.x
        basis = self.x if same or self.eval_x is None else torch.cat([self.x, self.eval_x])
        units = stacked.layers[0].w.shape[0]
        if DualFirstLayer.elements(len(basis), units) > MAX_ELEMENTS:
            if s.first_layer == "dual":
                raise InitlabError(
                    f"first_layer='dual' would need four [{len(basis)}, {units}] buffers "
                    f"({len(basis)} training and evaluation inputs, {units} layer-1 units), "
                    f"over its limit of {MAX_ELEMENTS} elements; use first_layer='primal'"
                )
            return
        if s.first_layer == "auto":
            if s.probe is not None:  # probed steps leave the form, the next one restarts it
                return
            widths = tuple(stacked.spec.widths)
            layout = stacked.layout or choose_layout(s.batch_size, self.n, widths)
            evaluated = len(self.x) if s.eval_train else 0  # rows evaluated each period
            evaluated += 0 if self.eval_x is None else len(self.eval_x)
            per_step = evaluated / self.eval_period if self.eval_period else 0.0
            pays = dual_pays(len(basis), stacked.spec.widths[0], units, s.batch_size, per_step)
            if not pays or layout.defer > 1:
                return
        stacked.use_dual(basis)
        self.train_rows = torch.arange(len(self.x), device=stacked.device)
        if self.eval_x is not None:
            start = 0 if same else len(self.x)
            stop = start + len(self.eval_x)
            self.eval_rows = torch.arange(start, stop, device=stacked.device)

    # ------------------------------------------------------------------------------ loop
    def run(self) -> BatchedResult:
        s = self.s
        batches = minibatches(
            len(self.data),
            s.batch_size,
            steps=s.steps,
            epochs=s.epochs,
            mode=s.batch_mode,
            generator=torch.Generator().manual_seed(s.seed),
            drop_last=s.drop_last,
        )
        start = time.perf_counter()
        with progress_bar(self.total, s.progress) as update_bar:
            for t, idx in enumerate(batches):
                self._step(t, idx.to(self.stacked.device))
                if not self.alive:
                    break
                update_bar(t + 1, None)
            self._final_eval()
        wall = time.perf_counter() - start
        return self._results(wall)

    def _step(self, t: int, idx: Tensor) -> None:
        """Step ``t`` of every live member, in fit's order: evaluate, probe, forward and
        backward, divergence check, log, update."""
        s, stacked = self.s, self.stacked
        evaluated = self.eval_period is not None and t % self.eval_period == 0
        rows = [{"step": t, "epoch": t // self.per_epoch} for _ in range(self.n)]
        if evaluated:
            self._add_eval(rows)
        probing = self.probes is not None and s.probe is not None and bool(s.probe(t))
        tap = self._begin_probes(t) if probing else None
        xb, yb = self.x.index_select(0, idx), self.y.index_select(0, idx)
        fuse = self.sgd_lr is not None and not probing and len(self.alive) == self.n
        logged = evaluated or t % s.log_every == 0
        penalty = self._penalty() if logged else None  # of the weights before the update
        basis_rows = idx if self.train_rows is not None else None
        loss, logits, updated = stacked.train_step(
            xb,
            yb,
            tap,
            self.sgd_lr if fuse else None,
            self.sgd_decay if fuse else None,
            rows=basis_rows,
        )
        values = loss.tolist()
        # 1. a NaN/Inf loss freezes its member before the update (frozen ones stay NaN)
        if not all(math.isfinite(values[m]) for m in self.alive):
            self._check_divergence(t, values, rows)
        if penalty is not None:
            self._add_train_metrics(rows, values, penalty, logits, yb)
        if not self.alive:
            return
        # 2. the update of the live members; the others keep params, state and BN statistics
        active = self._live_mask()
        if probing and t > 0 and self.probes is not None:
            self.probes.snapshot(t, self.alive)
        if updated:  # plain SGD ran inside the backward pass; count the step as step_ does
            self.state["step"] += 1
            if isinstance(self.state.get("member_step"), Tensor):
                self.state["member_step"].add_(1.0)
        else:
            self.opt.step_(stacked.params, stacked.grads, self.state, active)
        if probing and self.probes is not None:
            self.probes.record_weights(t, self.alive)
        if logged and s.loss_after_update:
            self._add_loss_after(rows, xb, yb, idx)
        if logged:
            self._log(t, rows)  # may stop members (callback): they freeze from the next step
        live = self._live_mask()
        stacked.frozen = None if live is None else ~live
        if live is not None and self.train_rows is not None:
            self._release_dual()  # no fused step from now on: layer 1 from its weights

    def _release_dual(self) -> None:
        """Leave the dual form for good: its updates written back, its buffers freed."""
        if self.stacked.dual is not None:
            self.dual_steps += self.stacked.dual.steps
        self.stacked.use_dual(None)
        self.train_rows = self.eval_rows = None

    def _live_mask(self) -> Tensor | None:
        """bool ``[N]``, True for the members still training; None while all are."""
        if len(self.alive) == self.n:
            return None
        live = torch.zeros(self.n, dtype=torch.bool)
        live[self.alive] = True
        return live.to(self.stacked.device)

    def _begin_probes(self, t: int) -> Tap | None:
        """Start step ``t``'s probe records; the tap for the training pass (None when a fixed
        probe set is probed instead, which happens here, in eval mode)."""
        assert self.probes is not None
        self.stacked.sync_weights()  # the probes read the weights
        self.probes.begin(t, self.alive)
        data = self.s.probe_data
        if data is None:
            return self.probes.tap
        device = self.stacked.device
        px = data.x.to(device, self.stacked.dtype).flatten(1)
        self.stacked.eval_grad_step(px, data.y.to(device), self.probes.tap)
        return None

    def _check_divergence(self, t: int, values: list[float], rows: list[dict[str, Any]]) -> None:
        diverged = [m for m in self.alive if not math.isfinite(values[m])]
        if not diverged:
            return
        for m in diverged:
            self.status[m], self.diverged_at[m], self.steps_done[m] = "diverged", t, t
            row = {**rows[m], "train_loss": values[m]}
            self.history[m].append(row)
            if self.s.callback is not None:
                self.s.callback({**row, "member": m})
        self.alive = [m for m in self.alive if m not in diverged]
        if self.probes is not None and self.s.probe_data is None:
            # fit never runs the backward pass of a diverged training step; a fixed probe
            # set's pass (probe_data) ran before it, in fit as here, and its records stay
            self.probes.discard(t, diverged, ("gradient",))

    def _add_train_metrics(
        self,
        rows: list[dict[str, Any]],
        values: list[float],
        penalty: list[float],
        logits: Tensor,
        y: Tensor,
    ) -> None:
        """train_loss (plus the book's 0.5 * lambda * ||W||^2 of the weights the step's
        loss was computed with, ``penalty``) and train_acc."""
        # torch.max gives the first maximal index, as argmax, and is much faster over dim 1
        correct = (torch.max(logits, 1).indices == y).sum(1).tolist()
        batch = y.shape[0]
        for m, row in enumerate(rows):
            row.update(train_loss=values[m] + penalty[m], train_acc=correct[m] / batch)

    def _add_loss_after(
        self, rows: list[dict[str, Any]], xb: Tensor, yb: Tensor, idx: Tensor
    ) -> None:
        """``train_loss_after``: the loss on the step's minibatch after the update, in eval
        mode, plus the L2 term (the from-scratch book's ``network.loss(x_batch, t_batch)``
        after ``optimizer.update``)."""
        logits = self.stacked.forward(xb, False, rows=idx if self.train_rows is not None else None)
        # as the training loss (batched_ops.softmax_cross_entropy_): one log_softmax kernel;
        # logsumexp is eight small ops, 0.15 ms a step of a 2000-step run (measured)
        picked = torch.log_softmax(logits, 1).gather(1, yb.view(1, 1, -1).expand(self.n, 1, -1))
        values = picked.mean((1, 2)).neg_().tolist()
        penalty = self._penalty()
        for m in self.alive:
            rows[m]["train_loss_after"] = values[m] + penalty[m]

    def _penalty(self) -> list[float]:
        """The book's ``0.5 * lambda * ||W||^2`` of every member (0 without weight decay)."""
        if not isinstance(self.wd, Tensor) and self.wd == 0.0:
            return [0.0] * self.n
        sq = torch.stack([self.stacked.squared_norms(i) for i in self.penalized]).sum(0)
        return (0.5 * self.wd * sq).tolist()

    def _log(self, t: int, rows: list[dict[str, Any]]) -> None:
        callback = self.s.callback
        stopping = []
        for m in self.alive:
            self.history[m].append(rows[m])
            if callback is not None and callback({**rows[m], "member": m}):
                stopping.append(m)
        for m in stopping:
            self.stopped[m], self.steps_done[m] = True, t + 1
        if stopping:
            self.alive = [m for m in self.alive if m not in stopping]

    # ------------------------------------------------------------------------ evaluation
    def _add_eval(self, rows: list[dict[str, Any]]) -> None:
        s = self.s
        if self.eval_x is not None and self.eval_y is not None:
            loss, acc = evaluate_batched(
                self.stacked, self.eval_x, self.eval_y, s.eval_batch_size, self.eval_rows
            )
            for m, (lv, av) in enumerate(zip(loss, acc, strict=True)):
                rows[m].update(valid_loss=lv, valid_acc=av)
        if s.eval_train:
            loss, acc = evaluate_batched(
                self.stacked, self.x, self.y, s.eval_batch_size, self.train_rows
            )
            for m, (lv, av) in enumerate(zip(loss, acc, strict=True)):
                rows[m].update(train_eval_loss=lv, train_eval_acc=av)

    def _final_eval(self) -> None:
        """fit's last row: an evaluation after the last update, for members that finished."""
        if self.eval_period is None or not self.alive:
            return
        done = self.total
        rows = [{"step": done, "epoch": done // self.per_epoch} for _ in range(self.n)]
        self._add_eval(rows)
        for m in self.alive:
            self.history[m].append(rows[m])
            if self.s.callback is not None:
                self.s.callback({**rows[m], "member": m})

    # --------------------------------------------------------------------------- results
    def _dual_steps(self) -> int:
        """Fused steps made with layer 1 in the dual form, all told."""
        dual = self.stacked.dual
        return self.dual_steps + (dual.steps if dual is not None else 0)

    def _results(self, wall: float) -> BatchedResult:
        s = self.s
        for m in self.alive:
            self.steps_done[m] = self.total
        records = self.probes.records() if self.probes is not None else {}
        shared = {
            "optimizer": self.opt.name,
            "steps": s.steps,
            "epochs": s.epochs,
            "batch_size": s.batch_size,
            "batch_mode": s.batch_mode,
            "seed": s.seed,
            "decay_biases": s.decay_biases,
            "loss": "cross_entropy",
            "data": self.data.name,
            "batched": True,
            "members": self.n,
            "dtype": str(self.stacked.dtype).removeprefix("torch."),
            "loss_after_update": s.loss_after_update,
            "first_layer": "dual" if self._dual_steps() > 0 else "primal",
        }
        results = []
        for m in range(self.n):
            hparams = {k: v[m] for k, v in self.exact.items()}
            config = {**shared, "hparams": hparams, "dropout": self.stacked.dropout[m]}
            results.append(
                TrainResult(
                    status=self.status[m],  # type: ignore[arg-type]
                    steps_done=self.steps_done[m],
                    history=self.history[m],
                    probe_records=records.get(m, []),
                    final_state=self.stacked.member_state_dict(m),
                    diverged_at=self.diverged_at[m],
                    wall_time=wall,
                    member=m,
                    config=config,
                )
            )
        return BatchedResult(results, self.stacked.spec, wall, shared)


@torch.no_grad()
def evaluate_batched(
    stacked: StackedMLP,
    x: Tensor,
    y: Tensor,
    batch_size: int = 1000,
    rows: Tensor | None = None,
) -> tuple[list[float], list[float]]:
    """Mean cross-entropy and accuracy of every member on ``(x, y)``, in eval mode.

    As :func:`initlab.train.fit.evaluate` per member: chunks of at most ``batch_size``
    examples (fewer when ``N`` members' activations would not fit in a small buffer),
    losses summed in float64. ``rows``: ``x``'s rows in the basis of the stacked model's
    dual layer 1 (:meth:`~initlab.train.batched_mlp.StackedMLP.use_dual`), if it has one.
    """
    n_examples = x.shape[0]
    width = max(stacked.spec.widths[1:])
    chunk = max(1, min(batch_size, _EVAL_ELEMENTS // (stacked.n * width)))
    total = torch.zeros(stacked.n, dtype=torch.float64, device=x.device)
    correct = torch.zeros(stacked.n, dtype=torch.int64, device=x.device)
    for start in range(0, n_examples, chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        part = None if rows is None else rows[start : start + chunk]
        logits = stacked.forward(xb, False, rows=part)  # [N, C, b]
        lse = torch.logsumexp(logits, 1)
        picked = logits.gather(1, yb.view(1, 1, -1).expand(stacked.n, 1, -1)).squeeze(1)
        total += (lse - picked).sum(1).double()
        correct += (torch.max(logits, 1).indices == yb).sum(1)
    denom = max(n_examples, 1)
    return (total / denom).tolist(), (correct.double() / denom).tolist()
