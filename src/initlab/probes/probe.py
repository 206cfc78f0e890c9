"""A hook-based probe: per-layer statistics of any ``nn.Module`` while it runs.

Following Cockpit (Schneider et al. 2021, "Cockpit: A Practical Debugging Tool for the
Training of Deep Neural Networks"), each quantity is a small computation over hooks and a
schedule closure decides when to compute it. The quantities are those of Glorot & Bengio
(2010): activations and back-propagated gradients per layer, and weights, weight gradients
and the relative update size ||W_t - W_{t-1}|| / ||W_{t-1}|| (Frobenius norms), whose
healthy value under SGD is often quoted as about 1e-3.

Usage::

    with Probe(model, schedule=every(10), histograms=True) as probe:
        for step, (x, y) in enumerate(batches):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            probe.step(step)   # or Probe(..., optimizer=opt) to step automatically
    rows = probe.table()

Statistics are kept as tensors while training runs (no host synchronization inside hooks)
and become :class:`ProbeRecord` objects of Python floats when :attr:`Probe.records` is read.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, get_args

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from initlab.activations import activation_name_of
from initlab.errors import InitlabError
from initlab.probes.schedules import Schedule, always
from initlab.probes.stats import SUMMARY_KEYS, histogram_tensors, summary_tensor

RecordKind = Literal["activation", "preactivation", "gradient", "weight", "weight_grad", "update"]
RECORD_KINDS: tuple[str, ...] = get_args(RecordKind)
UPDATE_KEYS: tuple[str, ...] = ("ratio", "norm", "steps")
"""Stats of an ``update`` record: ||dW|| / ||W_prev||, ||dW||, and the steps dW spans."""

_AFFINE = (nn.Linear, nn.modules.conv._ConvNd)


@dataclass(frozen=True)
class ProbeRecord:
    """One statistic snapshot: what was measured, where and when.

    ``kind`` is ``preactivation`` (output of a Linear/Conv), ``activation`` (output of an
    activation module, or of any other module selected by name), ``gradient`` (gradient of
    the loss w.r.t. that module's output), ``weight``, ``weight_grad`` (the ``weight``
    parameter and its ``.grad``) or ``update`` (relative weight change). ``stats`` has the
    keys of :data:`initlab.probes.stats.SUMMARY_KEYS` (``weight`` and ``weight_grad`` add
    ``norm``; ``update`` has :data:`UPDATE_KEYS`). ``histogram`` is ``(edges, counts)``.
    """

    step: int
    layer: str
    kind: RecordKind
    stats: dict[str, float]
    histogram: tuple[list[float], list[int]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-friendly dict (histogram as ``{"edges": [...], "counts": [...]}``)."""
        hist = None
        if self.histogram is not None:
            hist = {"edges": list(self.histogram[0]), "counts": list(self.histogram[1])}
        return {
            "step": self.step,
            "layer": self.layer,
            "kind": self.kind,
            "stats": dict(self.stats),
            "histogram": hist,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeRecord:
        """Inverse of :meth:`to_dict`."""
        hist = data.get("histogram")
        return cls(
            step=int(data["step"]),
            layer=str(data["layer"]),
            kind=data["kind"],
            stats={str(k): float(v) for k, v in data["stats"].items()},
            histogram=None if hist is None else (list(hist["edges"]), list(hist["counts"])),
        )


@dataclass
class _Pending:
    """A record whose numbers are still tensors (possibly on an accelerator)."""

    step: int
    layer: str
    kind: RecordKind
    keys: tuple[str, ...]
    values: torch.Tensor
    histogram: tuple[torch.Tensor, torch.Tensor] | None = None


def default_layers(model: nn.Module) -> list[str]:
    """Names of the modules a :class:`Probe` watches by default: every Linear/Conv and every
    activation module of the :mod:`initlab.activations` vocabulary, in definition order."""
    return [
        name
        for name, module in model.named_modules()
        if name and (isinstance(module, _AFFINE) or activation_name_of(module) is not None)
    ]


def select_layers(model: nn.Module, layers: Sequence[str] | None) -> list[str]:
    """Resolve module names and ``fnmatch`` patterns (``"linear*"``, ``"act[12]"``) to names.

    ``None`` gives :func:`default_layers`. A pattern that matches no module is an error.
    """
    if layers is None:
        return default_layers(model)
    if isinstance(layers, str):
        layers = [layers]
    names = [name for name, _ in model.named_modules() if name]
    chosen: list[str] = []
    for pattern in layers:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            raise InitlabError(f"layer {pattern!r} matches no module; modules: {shown}")
        chosen.extend(h for h in hits if h not in chosen)
    return [n for n in names if n in chosen]  # model order


@dataclass
class _Snapshot:
    step: int
    weights: dict[str, torch.Tensor] = field(default_factory=dict)


class Probe:
    """Attach statistics hooks to ``model`` for the duration of a ``with`` block.

    Args:
        model: any module; layers are addressed by their ``named_modules`` names.
        layers: module names or fnmatch patterns; ``None`` watches every Linear/Conv (their
            outputs are recorded as ``preactivation``) and every activation module
            (``activation``). Any other selected module's output counts as ``activation``.
        schedule: ``step -> bool`` (see :func:`every`, :func:`logspaced`); ``None``: every step.
        histograms: also record a histogram per record (activations over the activation's
            natural range, everything else over its data range).
        bins: number of histogram bins.
        optimizer: if given, weights are recorded automatically after each
            ``optimizer.step()`` (step-post hook; do not call :meth:`step` yourself then)
            and snapshotted just before it, so ``update`` is exactly one optimizer step.

    A forward hook records each watched module's output and, when it requires grad, puts a
    tensor hook on it that records the gradient of the loss w.r.t. that output during
    backward (a full backward hook's ``grad_output``, without its warning for a first layer
    whose input needs no grad, and unaffected by a following in-place op). Records are
    labelled with :attr:`current_step` at the forward pass. :meth:`step` records the
    weights (``weight``, ``weight_grad``, ``update``) of watched modules that have a
    ``weight`` parameter and advances the step. Without an optimizer, call ``step(t)`` once
    per optimizer step: weights are snapshotted when the next step is scheduled, so
    ``update`` spans one step. All hooks are removed on exit, also on an exception; a
    gradient arriving after exit (from a graph built inside the block) is ignored.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str] | None = None,
        schedule: Schedule | None = None,
        histograms: bool = False,
        bins: int = 30,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        if bins < 1:
            raise InitlabError(f"histogram bins must be a positive integer, got {bins}")
        self.model = model
        self.layers = select_layers(model, layers)
        self.schedule: Schedule = schedule if schedule is not None else always
        self.histograms = histograms
        self.bins = bins
        self.optimizer = optimizer
        self._modules = dict(model.named_modules())
        self._handles: list[RemovableHandle] = []
        self._pending: list[_Pending] = []
        self._records: list[ProbeRecord] = []
        self._step = 0
        self._snapshot: _Snapshot | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> Probe:
        self.attach()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.detach()

    def attach(self) -> None:
        """Register the hooks (``with Probe(...)`` does this for you)."""
        if self._handles:
            return
        try:
            for name in self.layers:
                module = self._modules[name]
                self._handles.append(module.register_forward_hook(self._forward_hook(name)))
            if self.optimizer is not None:
                self._handles.append(self.optimizer.register_step_pre_hook(self._pre_step))
                self._handles.append(self.optimizer.register_step_post_hook(self._post_step))
        except BaseException:
            self.detach()
            raise

    def detach(self) -> None:
        """Remove every hook this probe registered; safe to call twice."""
        while self._handles:
            self._handles.pop().remove()
        self._snapshot = None

    @property
    def attached(self) -> bool:
        """True while hooks are registered."""
        return bool(self._handles)

    # -- steps ---------------------------------------------------------------------------
    @property
    def current_step(self) -> int:
        """The step that forward and backward passes are recorded under now."""
        return self._step

    def due(self, step: int | None = None) -> bool:
        """Whether the schedule records at ``step`` (default: the current step)."""
        return bool(self.schedule(self._step if step is None else step))

    def step(self, step: int | None = None) -> None:
        """Mark the end of optimizer step ``step`` (default: the current step).

        If the schedule records at ``step``, record the watched modules' weights, weight
        gradients and update size; then the current step becomes ``step + 1``.
        """
        t = self._step if step is None else int(step)
        if self.due(t):
            self._record_weights(t)
        self._step = t + 1
        if self.optimizer is None:
            self._snapshot = self._take_snapshot(t) if self.due(self._step) else None

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._snapshot = self._take_snapshot(self._step - 1) if self.due() else None

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.step()

    # -- hooks ---------------------------------------------------------------------------
    def _forward_hook(self, name: str) -> Any:
        module = self._modules[name]
        act = activation_name_of(module)
        kind: RecordKind = "preactivation" if isinstance(module, _AFFINE) else "activation"

        def hook(mod: nn.Module, inputs: Any, output: Any) -> None:
            if not (isinstance(output, torch.Tensor) and self.due()):
                return
            step = self._step
            self._add(step, name, kind, output, act, histogram_activation=act)
            if output.requires_grad:
                output.register_hook(self._gradient_hook(step, name))

        return hook

    def _gradient_hook(self, step: int, name: str) -> Any:
        def hook(grad: torch.Tensor) -> None:
            if self.attached:
                self._add(step, name, "gradient", grad)

        return hook

    def _add(
        self,
        step: int,
        layer: str,
        kind: RecordKind,
        x: torch.Tensor,
        activation: str | None = None,
        histogram_activation: str | None = None,
        extra: dict[str, torch.Tensor] | None = None,
    ) -> None:
        with torch.no_grad():
            x = x.detach()
            values = summary_tensor(x, activation)
            keys = SUMMARY_KEYS
            if extra:
                keys = (*keys, *extra)
                values = torch.cat([values, torch.stack([v.double() for v in extra.values()])])
            hist = None
            if self.histograms:
                hist = histogram_tensors(x, self.bins, activation=histogram_activation)
        self._pending.append(_Pending(step, layer, kind, keys, values, hist))

    def _weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name in self.layers:
            weight = getattr(self._modules[name], "weight", None)
            if isinstance(weight, torch.Tensor):
                yield name, weight

    def _take_snapshot(self, step: int) -> _Snapshot:
        with torch.no_grad():
            return _Snapshot(step, {n: w.detach().clone() for n, w in self._weights()})

    def _record_weights(self, t: int) -> None:
        snap = self._snapshot
        for name, weight in self._weights():
            w = weight.detach()
            self._add(t, name, "weight", w, extra={"norm": w.norm()})
            if weight.grad is not None:
                g = weight.grad.detach()
                self._add(t, name, "weight_grad", g, extra={"norm": g.norm()})
            before = snap.weights.get(name) if snap is not None else None
            if snap is not None and before is not None and before.shape == w.shape:
                delta = (w - before).norm().double()
                span = torch.tensor(float(t - snap.step), dtype=torch.float64, device=w.device)
                values = torch.stack([delta / before.norm().double(), delta, span])
                self._pending.append(_Pending(t, name, "update", UPDATE_KEYS, values))

    # -- results -------------------------------------------------------------------------
    def _flush(self) -> None:
        """Turn pending tensors into records with one device-to-host copy."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        device = pending[0].values.device
        parts: list[torch.Tensor] = []
        for p in pending:
            parts.append(p.values.to(device))
            if p.histogram is not None:
                parts.extend(t.to(device=device, dtype=torch.float64) for t in p.histogram)
        flat = torch.cat(parts).tolist()
        pos = 0
        for p in pending:
            n = len(p.keys)
            stats = dict(zip(p.keys, flat[pos : pos + n], strict=True))
            pos += n
            hist = None
            if p.histogram is not None:
                n_edges, n_counts = (t.numel() for t in p.histogram)
                edges = flat[pos : pos + n_edges]
                counts = [int(c) for c in flat[pos + n_edges : pos + n_edges + n_counts]]
                hist = (edges, counts)
                pos += n_edges + n_counts
            self._records.append(ProbeRecord(p.step, p.layer, p.kind, stats, hist))

    @property
    def records(self) -> list[ProbeRecord]:
        """Everything recorded so far, in the order it was recorded."""
        self._flush()
        return list(self._records)

    def clear(self) -> None:
        """Forget the records (e.g. after a store has persisted them)."""
        self._pending.clear()
        self._records.clear()

    def table(self) -> list[dict[str, Any]]:
        """One flat dict per record: ``step``, ``layer``, ``kind`` and the stats as columns
        (histograms are left out; use ``[r.to_dict() for r in probe.records]`` for them)."""
        return [{"step": r.step, "layer": r.layer, "kind": r.kind, **r.stats} for r in self.records]
