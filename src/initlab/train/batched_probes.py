"""Per-member probe records inside the batched engine, equal to a hook-based ``Probe``'s.

:class:`~initlab.probes.probe.Probe` records, on a model trained by
:func:`~initlab.train.fit.fit`, the outputs of the watched modules (``preactivation`` for
Linear layers, ``activation`` for the others), the gradients of the loss w.r.t. those
outputs (``gradient``), and after each scheduled optimizer step the watched modules'
weights, weight gradients and relative update ||W_t - W_{t-1}|| / ||W_{t-1}||. Here the same
quantities come from the stacked ``[N, features, B]`` tensors of
:class:`~initlab.train.batched_mlp.StackedMLP`, one member at a time (transposed back to
torch's ``[B, features]`` layout), through the same statistics functions
(:func:`initlab.probes.stats.summary_tensor`, :func:`initlab.probes.stats.histogram_tensors`),
so the numbers agree with a Probe on the member trained alone. Each record carries a
``"member"`` key (contract (c)). Values stay tensors until :meth:`MemberProbes.records`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from initlab.activations import activation_name_of
from initlab.probes.probe import UPDATE_KEYS, select_layers
from initlab.probes.stats import SUMMARY_KEYS, histogram_tensors, summary_tensor
from initlab.train.batched_mlp import StackedMLP

_NORM_KEYS: tuple[str, ...] = (*SUMMARY_KEYS, "norm")


@dataclass
class _Pending:
    member: int
    step: int
    layer: str
    kind: str
    keys: tuple[str, ...]
    values: Tensor
    histogram: tuple[Tensor, Tensor] | None


class MemberProbes:
    """Collects probe records for every live member of a :class:`StackedMLP`.

    Args:
        stacked: the engine's stacked members.
        layers: module names or fnmatch patterns of ``mlp(**spec)`` (None: every Linear
            and activation module, as :class:`~initlab.probes.probe.Probe`).
        histograms: also record histograms; bins: their number of bins.
    """

    def __init__(
        self,
        stacked: StackedMLP,
        layers: Sequence[str] | None = None,
        histograms: bool = False,
        bins: int = 30,
    ) -> None:
        self.stacked = stacked
        modules = dict(stacked.reference.named_modules())
        self.layers = select_layers(stacked.reference, layers)
        self._activation = {name: activation_name_of(modules[name]) for name in self.layers}
        index = {name: i for i, name in enumerate(stacked.param_names)}
        self._weights = {
            name: index[f"{name}.weight"] for name in self.layers if f"{name}.weight" in index
        }
        self.histograms = histograms
        self.bins = bins
        self._pending: list[_Pending] = []
        self._snapshot: tuple[int, list[int], dict[str, Tensor]] | None = None
        self.step = 0
        self.members: list[int] = []

    # ------------------------------------------------------------------------- recording
    def begin(self, step: int, members: Sequence[int]) -> None:
        """Record the following taps under ``step`` for ``members`` (the live ones)."""
        self.step = step
        self.members = list(members)

    def tap(self, kind: str, layer: str, stacked: Tensor) -> None:
        """A :data:`~initlab.train.batched_mlp.Tap`: summarize one module's output or its
        gradient for every live member."""
        if layer not in self._activation:
            return
        act = self._activation[layer] if kind == "activation" else None
        members = self.members
        if layer.startswith("dropout"):  # a member with rate 0 has no dropout module
            members = [n for n in members if self.stacked.dropout[n] > 0]
        for n in members:
            self._add(n, layer, kind, stacked[n].t().contiguous(), act)

    def _add(
        self,
        member: int,
        layer: str,
        kind: str,
        x: Tensor,
        activation: str | None,
        norm: bool = False,
    ) -> None:
        values = summary_tensor(x, activation)
        keys = SUMMARY_KEYS
        if norm:
            keys = _NORM_KEYS
            values = torch.cat([values, x.norm().double().view(1)])
        hist = histogram_tensors(x, self.bins, activation=activation) if self.histograms else None
        self._pending.append(_Pending(member, self.step, layer, kind, keys, values, hist))

    def discard(self, step: int, members: Sequence[int], kinds: Sequence[str]) -> None:
        """Forget the ``kinds`` records of ``members`` at ``step`` (a member whose loss
        diverged at that step never ran its backward pass in ``fit``)."""
        gone = set(members)
        self._pending = [
            p
            for p in self._pending
            if not (p.step == step and p.member in gone and p.kind in kinds)
        ]

    def snapshot(self, step: int, members: Sequence[int]) -> None:
        """Copy the watched weights before the update of ``step`` (for ``update`` records)."""
        params = self.stacked.params
        weights = {name: params[i][list(members)].clone() for name, i in self._weights.items()}
        self._snapshot = (step, list(members), weights)

    def record_weights(self, step: int, members: Sequence[int]) -> None:
        """After the update of ``step``: ``weight``, ``weight_grad`` and ``update`` records."""
        params, grads = self.stacked.params, self.stacked.grads
        snap = self._snapshot if self._snapshot is not None and self._snapshot[0] == step else None
        self.step = step
        for n in members:
            for name, i in self._weights.items():
                w = params[i][n]
                self._add(n, name, "weight", w, None, norm=True)
                self._add(n, name, "weight_grad", grads[i][n], None, norm=True)
                if snap is not None and n in snap[1]:
                    before = snap[2][name][snap[1].index(n)]
                    delta = (w - before).norm().double()
                    span = torch.tensor(1.0, dtype=torch.float64, device=w.device)
                    values = torch.stack([delta / before.norm().double(), delta, span])
                    self._pending.append(
                        _Pending(n, step, name, "update", UPDATE_KEYS, values, None)
                    )
        self._snapshot = None

    # ---------------------------------------------------------------------------- output
    def records(self) -> dict[int, list[dict[str, Any]]]:
        """Contract (c) dicts per member, in recording order (one host transfer)."""
        out: dict[int, list[dict[str, Any]]] = {}
        if not self._pending:
            return out
        parts: list[Tensor] = []
        for p in self._pending:
            parts.append(p.values.double().cpu())
            if p.histogram is not None:
                parts.extend(t.double().cpu() for t in p.histogram)
        flat = torch.cat(parts).tolist()
        pos = 0
        for p in self._pending:
            stats = dict(zip(p.keys, flat[pos : pos + len(p.keys)], strict=True))
            pos += len(p.keys)
            hist = None
            if p.histogram is not None:
                n_edges, n_counts = (t.numel() for t in p.histogram)
                counts = [int(c) for c in flat[pos + n_edges : pos + n_edges + n_counts]]
                hist = {"edges": flat[pos : pos + n_edges], "counts": counts}
                pos += n_edges + n_counts
            record = {
                "step": p.step,
                "layer": p.layer,
                "kind": p.kind,
                "stats": stats,
                "histogram": hist,
                "member": p.member,
            }
            out.setdefault(p.member, []).append(record)
        return out
