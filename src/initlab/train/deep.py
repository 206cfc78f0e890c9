"""Very deep vanilla MLPs trained with activation checkpointing: :func:`fit_deep`.

A tanh MLP of 1000 layers of width 256 keeps, for a batch of 128, 128 KiB of activations
per layer: the backward pass of a plain implementation needs all of them at once (131 MB
at depth 1000, 1.3 GB at depth 10,000, times the members trained together). With
*activation checkpointing* (Chen et al. 2016, "Training deep nets with sublinear memory
cost") the forward pass keeps only every ``k``-th layer's output; the backward pass, when
it reaches a segment of ``k`` layers, recomputes that segment's outputs from its stored
boundary and then back-propagates through it. Memory for activations is
``(L / k + k)`` layer outputs instead of ``L``, smallest at ``k = sqrt(L)``
(``2 sqrt(L)``), for one more forward pass of compute (4 matrix products per layer
instead of 3).

This is the batched engine's equivalent path for deep networks (the engine,
:func:`initlab.train.batched.fit_batched`, keeps every layer's buffers, which is what
makes it fast at the depths of B1-B6 and what it cannot afford at 1000 layers): ``N``
members of one architecture are stacked (``[N, out, in]`` weights) and trained together
on the same minibatches, each with its own init and learning rate, feature-major
(``[N, features, batch]``) so that every layer is one batched product. Forward and
backward are written out (no autograd graph), plain SGD is applied inside the backward
pass (``W <- W - lr dZ H^T`` as one ``baddbmm_`` right after ``dH = W^T dZ``), so no
weight gradient is ever stored, and every buffer is allocated once. Step by step, with
``a_0 = x^T`` and ``a_L`` the logits:

1. forward: ``z_i = W_i a_{i-1} + b_i``, ``a_i = phi(z_i)`` (in place); keep ``a_i`` for
   every ``i`` (plain) or for ``i % k == 0`` (checkpointed);
2. loss: mean softmax cross entropy of every member and ``dL/dz_L``;
3. backward, ``i = L .. 1``: ``a_{i-1}`` from the store, or recompute its segment from
   the boundary below it; ``dH = W_i^T dZ_i``; update ``W_i, b_i``;
   ``dZ_{i-1} = phi'(a_{i-1}) * dH``.

Only activations whose derivative is a function of their output are supported (tanh,
ReLU, sigmoid, identity: the recomputed segment then needs no pre-activations). Device
and dtype follow the training data (``data.x``): put the data on a CUDA device, or make it
float64, and the parameters, buffers and arithmetic follow; nothing on the step path
runs on the CPU: per step one boolean (are all losses finite?) is read back, and the
losses themselves on logged steps only. A member whose loss is NaN/Inf
is frozen (its updates are masked to zero) and marked diverged, as in ``fit_batched``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from initlab.data.batches import minibatches
from initlab.data.dataset import Dataset
from initlab.errors import InitlabError
from initlab.models.mlp import MLP, MLPSpec, mlp
from initlab.train.batched import MemberInit, build_members, member_values
from initlab.train.batched_ops import activation_kernels, softmax_cross_entropy_
from initlab.train.fit import progress_bar
from initlab.train.memory import PeakMemory
from initlab.train.result import TrainResult

DeepCallback = Callable[[dict[str, Any]], None]
"""Called with every logged history row (plus a ``"member"`` key)."""

_EVAL_ELEMENTS = 1 << 24  # largest [N, width, chunk] buffer an evaluation pass allocates


def segment_length(layers: int, checkpoint: bool | int) -> int:
    """Layers per checkpointed segment: ``round(sqrt(layers))`` for True, the number
    given, or ``layers + 1`` (no checkpointing) for False / 0."""
    if isinstance(checkpoint, bool):
        return max(1, round(math.sqrt(layers))) if checkpoint else layers + 1
    if not isinstance(checkpoint, int) or checkpoint < 0:
        raise InitlabError(
            f"checkpoint must be True, False or a segment length >= 1, got {checkpoint!r}"
        )
    return checkpoint if checkpoint > 0 else layers + 1


@dataclass
class DeepMemory:
    """What a :func:`fit_deep` run held: exact buffer sizes and the measured peak."""

    segment: int  # layers per checkpointed segment (hidden layers + 1: not checkpointed)
    stored_layers: int  # layer outputs held at once in the backward pass
    activation_bytes: int  # bytes of the activation buffers (exact)
    param_bytes: int  # bytes of the stacked weights and biases
    peak_bytes: int = 0  # peak memory of the training loop (PeakMemory)
    peak_scope: str = ""  # "block", "process" (lifetime ru_maxrss) or "cuda"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return dict(self.__dict__)


@dataclass
class DeepResult:
    """What :func:`fit_deep` returns: one :class:`TrainResult` per member, the memory."""

    results: list[TrainResult]
    spec: MLPSpec
    memory: DeepMemory
    wall_time: float = 0.0
    net: DeepNet | None = field(default=None, repr=False)  # the trained stack

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, member: int) -> TrainResult:
        return self.results[member]

    def __iter__(self) -> Iterator[TrainResult]:
        return iter(self.results)

    def model(self, member: int) -> MLP:
        """Member ``member`` as an ``MLP`` module (CPU, float32)."""
        if self.net is None:
            raise InitlabError("this result holds no trained parameters")
        return self.net.member_model(member)


class DeepNet:
    """``N`` stacked deep MLPs with a hand-written, optionally checkpointed, SGD step."""

    def __init__(
        self,
        spec: MLPSpec,
        models: Sequence[torch.nn.Module],
        device: torch.device,
        dtype: torch.dtype,
        checkpoint: bool | int = False,
    ) -> None:
        self.kernels = activation_kernels(spec.activation)
        if not self.kernels.output_only:
            raise InitlabError(
                f"fit_deep needs an activation whose derivative depends on its output only "
                f"(tanh, relu, sigmoid, identity), got {spec.activation!r}"
            )
        if spec.batchnorm or spec.dropout > 0:
            raise InitlabError("fit_deep trains vanilla MLPs: no batch norm, no dropout")
        self.spec, self.n, self.device, self.dtype = spec, len(models), device, dtype
        self.depth = spec.depth  # affine layers; hidden layers are 1 .. depth - 1
        self.segment = segment_length(self.depth - 1, checkpoint)
        self.w: list[Tensor] = []
        self.b: list[Tensor | None] = []
        with torch.no_grad():
            for i in range(1, self.depth + 1):
                layers = [getattr(m, f"linear{i}") for m in models]
                self.w.append(torch.stack([m.weight for m in layers]).to(device, dtype))
                bias = [m.bias for m in layers]
                self.b.append(
                    None if bias[0] is None else torch.stack(bias).to(device, dtype)  # type: ignore[misc]
                )
        self.frozen: Tensor | None = None  # [N] bool: members whose updates are masked
        self._buffers: dict[int, dict[str, Any]] = {}

    # ------------------------------------------------------------------------ buffers
    def _stored(self, i: int) -> bool:
        """Is hidden layer ``i``'s output kept by the forward pass?"""
        return i % self.segment == 0 or self.segment > self.depth - 1

    def stored_layers(self) -> int:
        """Layer outputs held at once during the backward pass."""
        hidden = self.depth - 1
        if self.segment > hidden:
            return hidden
        return hidden // self.segment + self.segment - 1

    def workspace(self, batch: int) -> dict[str, Any]:
        """Buffers for a training step at this batch size (allocated once)."""
        if batch in self._buffers:
            return self._buffers[batch]
        self._buffers.clear()  # a short last batch replaces the full one; keep one set
        widths, n = self.spec.widths, self.n
        new = {"dtype": self.dtype, "device": self.device}
        acts: dict[int, Tensor] = {
            i: torch.empty(n, widths[i], batch, **new)
            for i in range(1, self.depth)
            if self._stored(i)
        }
        flat = n * max(widths[1:]) * batch
        ws = {
            "batch": batch,
            "acts": acts,  # stored outputs a_i, by layer
            "segment": [torch.empty(flat, **new) for _ in range(self.segment - 1)]
            if self.segment <= self.depth - 1
            else [],
            "cached": {},  # layer -> its recomputed output (views into "segment")
            "gz": torch.empty(flat, **new),  # dL/dz of the current layer (flat storage)
            "gh": torch.empty(flat, **new),  # dL/da of the layer below
            "logits": torch.empty(n, widths[-1], batch, **new),
            "minus_one": torch.full((n, 1, batch), -1.0, **new),
            "gw": torch.empty(n * max(a * b for a, b in itertools.pairwise(widths)), **new),
        }
        self._buffers[batch] = ws
        return ws

    def activation_bytes(self, batch: int) -> int:
        """Bytes of the activation buffers of a step at this batch size."""
        ws = self.workspace(batch)
        tensors = [*ws["acts"].values(), *ws["segment"], ws["gz"], ws["gh"], ws["logits"], ws["gw"]]
        return sum(t.numel() * t.element_size() for t in tensors)

    def param_bytes(self) -> int:
        """Bytes of the stacked parameters."""
        tensors = [*self.w, *(b for b in self.b if b is not None)]
        return sum(t.numel() * t.element_size() for t in tensors)

    # ------------------------------------------------------------------------ forward
    def _affine(self, i: int, a_prev: Tensor, out: Tensor) -> Tensor:
        """``out = W_i a_prev + b_i``; ``a_prev`` is ``[B, in]`` (shared input) for i = 1."""
        w, b = self.w[i - 1], self.b[i - 1]
        if i == 1:  # one GEMM for all members: [N*out, in] @ [in, B]
            torch.mm(w.view(-1, w.shape[2]), a_prev.t(), out=out.view(-1, a_prev.shape[0]))
            if b is not None:
                out.add_(b.unsqueeze(2))
        elif b is None:
            torch.bmm(w, a_prev, out=out)
        else:
            torch.baddbmm(b.unsqueeze(2), w, a_prev, out=out)
        return out

    def _layer(self, i: int, a_prev: Tensor, out: Tensor) -> Tensor:
        """Hidden layer ``i``: ``phi(W_i a_prev + b_i)`` into ``out`` (in place)."""
        self._affine(i, a_prev, out)
        return self.kernels.forward(out, out)

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        """Logits ``[N, C, B]`` for inputs ``[B, in]`` (evaluation; two ping-pong buffers)."""
        batch, widths = x.shape[0], self.spec.widths
        new = {"dtype": self.dtype, "device": self.device}
        buffers = [torch.empty(self.n * max(widths[1:]) * batch, **new) for _ in range(2)]
        a: Tensor = x
        for i in range(1, self.depth):
            a = self._layer(i, a, _view(buffers[i % 2], self.n, widths[i], batch))
        out = torch.empty(self.n, widths[-1], batch, **new)
        return self._affine(self.depth, a, out)

    def _forward(self, x: Tensor, ws: dict[str, Any]) -> Tensor:
        acts, scratch = ws["acts"], (ws["gz"], ws["gh"])  # unstored outputs alternate
        ws["cached"] = {}
        a: Tensor = x
        for i in range(1, self.depth):
            if i in acts:
                out = acts[i]
            else:
                out = _view(scratch[i % 2], self.n, self.spec.widths[i], ws["batch"])
            a = self._layer(i, a, out)
        return self._affine(self.depth, a, ws["logits"])

    def _activation(self, i: int, x: Tensor, ws: dict[str, Any]) -> Tensor:
        """``a_i`` for the backward pass: stored, cached, or its segment recomputed."""
        if i == 0:
            return x
        if i in ws["acts"]:
            return ws["acts"][i]
        if i not in ws["cached"]:  # recompute the segment (base, base + k) from a_base
            base = (i // self.segment) * self.segment
            a = self._activation(base, x, ws)
            cached = {}
            last = min(base + self.segment, self.depth) - 1
            for j, buf in zip(range(base + 1, last + 1), ws["segment"], strict=False):
                a = self._layer(j, a, _view(buf, self.n, self.spec.widths[j], ws["batch"]))
                cached[j] = a
            ws["cached"] = cached
        return ws["cached"][i]

    # ----------------------------------------------------------------------- training
    @torch.no_grad()
    def train_step(
        self, x: Tensor, y: Tensor, lr: float | Tensor, probe: bool = False
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """One SGD step of every member on ``(x, y)``; returns (losses ``[N]``, logits,
        probe tensors). ``lr``: a number, or ``[N]`` per member. With ``probe``, per layer
        (from the input side) a ``[2, N]`` tensor: the Frobenius norm of ``dL/dW_i`` and the
        root mean square of ``dL/dz_i`` (before the update)."""
        batch, widths, n = x.shape[0], self.spec.widths, self.n
        ws = self.workspace(batch)
        logits = self._forward(x, ws)
        target = y.view(1, 1, -1).expand(n, 1, -1)
        gz = _view(ws["gz"], n, widths[-1], batch)
        loss = softmax_cross_entropy_(logits, target, ws["minus_one"], gz)
        # a member with a non-finite loss is frozen from this step on (its update masked)
        finite = torch.isfinite(loss)
        frozen = ~finite if self.frozen is None else self.frozen | ~finite
        mask = frozen.view(-1, 1, 1)
        per_member = isinstance(lr, Tensor)
        fused = not (probe or per_member or self.frozen is not None) and bool(finite.all())
        probes: list[Tensor] = []
        for i in range(self.depth, 0, -1):
            n_out, n_in = widths[i], widths[i - 1]
            gz = _view(ws["gz"], n, n_out, batch)
            a_prev = self._activation(i - 1, x, ws)
            w, b = self.w[i - 1], self.b[i - 1]
            if not fused:
                gz.masked_fill_(mask, 0.0)
            gh = None
            if i > 1:  # dL/da_{i-1} with W as it was before the update
                gh = torch.bmm(w.transpose(1, 2), gz, out=_view(ws["gh"], n, n_in, batch))
            if fused:
                if i == 1:
                    w.view(-1, n_in).addmm_(gz.view(-1, batch), x, alpha=-lr)
                else:
                    w.baddbmm_(gz, a_prev.transpose(1, 2), alpha=-lr)
                if b is not None:
                    b.sub_(gz.sum(2), alpha=lr)  # type: ignore[arg-type]
            else:
                gw = ws["gw"][: n * n_out * n_in].view(n, n_out, n_in)
                if i == 1:
                    torch.mm(gz.view(-1, batch), x, out=gw.view(-1, n_in))
                else:
                    torch.bmm(gz, a_prev.transpose(1, 2), out=gw)
                gw.masked_fill_(mask, 0.0)
                if probe:  # norms in float64: exploding gradients overflow float32 squares
                    wide = torch.float64 if gz.device.type != "mps" else torch.float32
                    rms = torch.linalg.vector_norm(gz, dim=(1, 2), dtype=wide) / math.sqrt(
                        n_out * batch
                    )
                    norm = torch.linalg.vector_norm(gw, dim=(1, 2), dtype=wide)
                    probes.append(torch.stack([norm, rms]))
                gb = gz.sum(2)
                if per_member:
                    rate = lr.view(-1, 1, 1)  # type: ignore[union-attr]
                    w.sub_(gw.mul_(rate))
                    if b is not None:
                        b.sub_(gb.mul_(rate.view(-1, 1)))
                else:
                    w.sub_(gw, alpha=lr)  # type: ignore[arg-type]
                    if b is not None:
                        b.sub_(gb, alpha=lr)  # type: ignore[arg-type]
            if gh is None:
                break
            # dL/dz_{i-1} = phi'(a_{i-1}) * dL/da_{i-1}, into the dL/dz buffer
            self.kernels.backward(gh, a_prev, a_prev, _view(ws["gz"], n, n_in, batch))
        return loss, logits, probes[::-1]

    def member_model(self, member: int) -> MLP:
        """Member ``member`` as an ``MLP`` module on the CPU (float32)."""
        with torch.random.fork_rng(devices=[]):
            model = mlp(**self.spec.to_dict())
        with torch.no_grad():
            for i in range(1, self.depth + 1):
                layer = getattr(model, f"linear{i}")
                layer.weight.copy_(self.w[i - 1][member])
                bias = self.b[i - 1]
                if bias is not None:
                    layer.bias.copy_(bias[member])
        return model


def _view(flat: Tensor, n: int, width: int, batch: int) -> Tensor:
    """The contiguous ``[n, width, batch]`` front of a flat buffer."""
    return flat[: n * width * batch].view(n, width, batch)


def evaluate_deep(net: DeepNet, data: Dataset, batch_size: int = 1000) -> tuple[Tensor, Tensor]:
    """Mean cross entropy and accuracy ``[N]`` of every member on ``data`` (float64)."""
    widest = max(net.spec.widths[1:]) * net.n
    chunk = max(1, min(batch_size, _EVAL_ELEMENTS // widest))
    x = data.x.reshape(len(data), -1).to(net.device, net.dtype)
    y = data.y.to(net.device)
    total = torch.zeros(net.n, dtype=torch.float64, device=net.device)
    correct = torch.zeros(net.n, dtype=torch.float64, device=net.device)
    for start in range(0, len(data), chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        logits = net.logits(xb)  # [N, C, B]
        logp = torch.log_softmax(logits.double(), 1)
        total -= logp.gather(1, yb.view(1, 1, -1).expand(net.n, 1, -1)).sum((1, 2))
        correct += (logits.argmax(1) == yb.view(1, -1)).sum(1)
    return total / len(data), correct / len(data)


def fit_deep(
    members: Sequence[MemberInit],
    data: Dataset,
    *,
    spec: MLPSpec | None = None,
    lr: float | Sequence[float] = 0.01,
    steps: int = 100,
    batch_size: int = 128,
    seed: int = 0,
    checkpoint: bool | int = False,
    eval_data: Dataset | None = None,
    eval_every: int | None = None,
    eval_batch_size: int = 1000,
    probe_steps: Sequence[int] = (),
    log_every: int = 1,
    progress: bool = False,
    callback: DeepCallback | None = None,
) -> DeepResult:
    """Train ``N`` deep vanilla MLPs of one architecture together with plain SGD.

    Args:
        members: models built by ``mlp`` / ``deep_mlp`` (or with their parameter names),
            or ``(init scheme, seed)`` pairs built from ``spec``.
        data: the training set; its ``x`` decides the device and dtype of everything.
        spec: the architecture (needed when no member is an ``MLP``).
        lr: SGD learning rate, one for all or one per member.
        steps, batch_size, seed: minibatches drawn with replacement from the stream of
            ``seed`` (as ``fit`` / ``fit_batched`` with ``batch_mode="replacement"``).
        checkpoint: False keeps every layer's output; True recomputes segments of
            ``round(sqrt(L))`` layers in the backward pass; an int sets the segment length.
        eval_data, eval_every: evaluate (``valid_loss``, ``valid_acc``) every
            ``eval_every`` steps and after the last one.
        probe_steps: steps at which per-layer gradient norms are recorded (probe records
            of kind ``"gradient"``, layer ``linear{i}``, stats ``weight_grad_norm`` and
            ``delta_rms``; the update of such a step is not fused).
        log_every: training loss and accuracy every this many steps (and on eval steps).
        callback: sees every logged row (with ``"member"``).

    Returns:
        A :class:`DeepResult`: one :class:`TrainResult` per member (history rows as
        ``fit``'s), the buffer sizes and the measured peak memory (``result.memory``).
    """
    if steps < 1 or batch_size < 1:
        raise InitlabError(f"steps and batch_size must be positive, got {steps}, {batch_size}")
    if eval_every is not None and eval_every < 1:
        raise InitlabError(f"eval_every must be positive, got {eval_every}")
    if not data.x.is_floating_point():
        raise InitlabError(f"training inputs must be floating point, got {data.x.dtype}")
    spec = _spec_of(spec, members)
    device, dtype = data.x.device, data.x.dtype
    net = DeepNet(spec, build_members(spec, members), device, dtype, checkpoint)
    n = net.n
    rates = member_values("lr", lr, n)
    rate: float | Tensor = rates[0]
    if any(r != rates[0] for r in rates):
        rate = torch.tensor(rates, dtype=dtype, device=device)
    x = data.x.reshape(len(data), -1)
    if x.shape[1] != spec.widths[0]:
        raise InitlabError(f"inputs have {x.shape[1]} features, the MLP takes {spec.widths[0]}")
    memory = DeepMemory(
        net.segment, net.stored_layers(), net.activation_bytes(batch_size), net.param_bytes()
    )
    history: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    probes: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    status = ["done"] * n
    diverged_at: list[int | None] = [None] * n
    probe_at = set(int(s) for s in probe_steps)
    gen = torch.Generator().manual_seed(seed)
    batches = minibatches(len(data), batch_size, steps=steps, mode="replacement", generator=gen)
    start = time.perf_counter()
    with PeakMemory(device) as peak, progress_bar(steps, progress) as bar:
        for t, idx in enumerate(batches):
            idx = idx.to(device)
            xb, yb = x.index_select(0, idx), data.y.index_select(0, idx)
            rows = [{"step": t} for _ in range(n)]
            if eval_data is not None and eval_every is not None and t % eval_every == 0:
                _add_eval(net, eval_data, eval_batch_size, rows)
            loss, logits, layer_stats = net.train_step(xb, yb, rate, probe=t in probe_at)
            logged = t % log_every == 0 or "valid_loss" in rows[0]
            if logged or t in probe_at or not bool(torch.isfinite(loss).all()):
                values = loss.tolist()
                acc = (logits.argmax(1) == yb.view(1, -1)).double().mean(1).tolist()
                for m in range(n):
                    if status[m] == "diverged":
                        continue
                    if not math.isfinite(values[m]):
                        status[m], diverged_at[m] = "diverged", t
                    if logged or status[m] == "diverged":
                        rows[m].update(train_loss=values[m], train_acc=acc[m])
                        history[m].append(rows[m])
                        if callback is not None:
                            callback({**rows[m], "member": m})
                net.frozen = torch.tensor([s == "diverged" for s in status], device=device)
                if not bool(net.frozen.any()):
                    net.frozen = None
            if layer_stats:
                _add_probes(t, layer_stats, probes, status)
            bar(t + 1, float(loss[0]) if logged else None)
            if all(s == "diverged" for s in status):
                break
        if eval_data is not None:
            rows = [{"step": steps} for _ in range(n)]
            _add_eval(net, eval_data, eval_batch_size, rows)
            for m in range(n):
                if status[m] != "diverged":
                    history[m].append(rows[m])
    wall = time.perf_counter() - start
    memory.peak_bytes, memory.peak_scope = peak.bytes, peak.scope
    config = {
        "optimizer": "sgd",
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "checkpoint_segment": net.segment,
        "memory": memory.as_dict(),
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
    }
    results = [
        TrainResult(
            status=status[m],  # type: ignore[arg-type]
            steps_done=steps if diverged_at[m] is None else diverged_at[m],
            history=history[m],
            probe_records=probes[m],
            diverged_at=diverged_at[m],
            wall_time=wall,
            member=m if n > 1 else None,
            config={**config, "lr": rates[m]},
        )
        for m in range(n)
    ]
    return DeepResult(results, spec, memory, wall, net)


def _spec_of(spec: MLPSpec | None, members: Sequence[MemberInit]) -> MLPSpec:
    if len(members) == 0:
        raise InitlabError("fit_deep needs at least one member")
    if spec is not None:
        return spec
    for member in members:
        if isinstance(member, MLP):
            return member.spec
    raise InitlabError("give spec= when no member is an MLP built by mlp() or deep_mlp()")


def _add_eval(net: DeepNet, data: Dataset, batch_size: int, rows: list[dict[str, Any]]) -> None:
    loss, acc = evaluate_deep(net, data, batch_size)
    for m, (lv, av) in enumerate(zip(loss.tolist(), acc.tolist(), strict=True)):
        rows[m].update(valid_loss=lv, valid_acc=av)


def _add_probes(
    t: int, layer_stats: list[Tensor], probes: list[list[dict[str, Any]]], status: list[str]
) -> None:
    table = torch.stack(layer_stats).cpu().tolist()  # [layers, 2, N]
    for m, records in enumerate(probes):
        if status[m] == "diverged" and t > 0:
            continue
        for i, (norms, rms) in enumerate(table, 1):
            value, delta = float(norms[m]), float(rms[m])
            finite = math.isfinite(value) and math.isfinite(delta)
            records.append(
                {
                    "step": t,
                    "layer": f"linear{i}",
                    "kind": "gradient",
                    "stats": {
                        "weight_grad_norm": value,
                        "delta_rms": delta,
                        "nonfinite": 0 if finite else 1,
                    },
                    "histogram": None,
                    "member": m,
                }
            )


__all__ = [
    "DeepCallback",
    "DeepMemory",
    "DeepNet",
    "DeepResult",
    "evaluate_deep",
    "fit_deep",
    "segment_length",
]
