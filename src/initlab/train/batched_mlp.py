"""N MLPs of one architecture as stacked tensors, with a hand-written forward and backward.

The members' parameters are stacked along a new leading dimension (``[N, out, in]`` for a
weight, ``[N, out]`` for a bias), in the order and under the names of
``mlp(**spec).named_parameters()``. Activations are kept feature-major, ``[N, features,
batch]``, so that every layer is one batched matrix product over contiguous memory:

1. Layer 1 reads the minibatch that all members share, so it is ONE matrix product for
   all members: ``Z1[N*H, B] = W1[N*H, in] @ x[B, in]^T + b1``; its weight gradient is
   again one product, ``dW1[N*H, in] = dZ1[N*H, B] @ x[B, in]`` (no input gradient).
2. Layer l > 1: ``Z_l = W_l @ H_{l-1} + b_l`` (``baddbmm`` over members),
   ``dW_l = dZ_l @ H_{l-1}^T``, ``db_l = sum_b dZ_l``, ``dH_{l-1} = W_l^T @ dZ_l``.
3. Hidden layers: ``U = BN(Z)`` (Ioffe & Szegedy 2015) or ``U = Z``; ``A = f(U)``;
   ``H = A * mask / (1 - p)`` with dropout (Srivastava et al. 2014) or ``H = A``.
4. Loss: the mean softmax cross-entropy of each member, dL/dZ_L = (softmax - onehot) / B.
5. Optionally, plain SGD is applied inside the weight-gradient products:
   ``W <- W - lr * dZ @ H^T`` is one ``baddbmm_`` with ``alpha = -lr``, so the gradients
   are never written and no separate optimizer pass reads them; coupled L2 weight decay
   (:class:`FusedDecay`) scales the weights by ``1 - lr * wd`` just before.
6. The layout of those products is chosen by shape, from a measurement
   (:mod:`initlab.train.batched_layout`): at small batches or with wide layers dL/dH is
   computed batch-major (``dZ^T @ W`` into ``[N, B, F]`` memory, seen through ``[N, F, B]``
   views), and on AMD CPUs with AVX-512 the thin products of small batches run on
   oneDNN's linear kernel rather than MKL's GEMM (``ProductLayout.kernel``). A
   layout may also run a step over chunks of members (each chunk a :class:`StackedMLP` of
   views of this one's tensors) or loop over members; measured slower here, neither is
   chosen by default.

Every intermediate lives in a preallocated buffer (one set per batch size and mode), so a
training step allocates next to nothing and runs no autograd.

Dropout masks are drawn as ``torch.nn.functional.dropout`` draws them on the CPU (a
``bernoulli_(1 - p)`` tensor of shape ``[B, H]`` per layer, divided by ``1 - p``), from one
generator per member; seeded like :func:`initlab.train.fit.fit` seeds its global RNG, a
member gets exactly the masks that ``fit`` would give it.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch
from torch import Tensor, nn

from initlab.errors import InitlabError
from initlab.models.mlp import MLPSpec, mlp
from initlab.train import batched_layout
from initlab.train.batched_deferred import DeferredUpdates
from initlab.train.batched_dual import DualFirstLayer
from initlab.train.batched_layout import ProductLayout, choose_layout
from initlab.train.batched_ops import activation_kernels, softmax_cross_entropy_

_MAX_WORKSPACES = 6  # cached buffer sets: training batch, short last batch, eval, probe data

Tap = Callable[[str, str, Tensor], None]
"""``tap(kind, layer, stacked)`` sees every intermediate as it is computed: ``kind`` is
"preactivation", "activation" or "gradient" (a Probe's kinds), ``layer`` the module name
in ``mlp(**spec)`` (``linear2``, ``act1`` ...), ``stacked`` the ``[N, features, B]`` tensor
(valid only during the call)."""


@dataclass
class Workspace:
    """Buffers of one forward (and backward) pass at one batch size, all ``[N, F, B]``.

    Index ``i`` is layer ``i + 1``: ``z`` the affine outputs (the last one the logits),
    ``u`` the activations' inputs (``z`` itself without batch norm), ``a`` the activations'
    outputs (``u`` itself, overwritten, when the derivative needs only the output: ReLU,
    sigmoid, tanh, identity), ``h`` the layer outputs after dropout (``a`` itself without
    dropout), ``gh`` the back-propagated gradients dL/dH, ``gz`` the gradients dL/dZ (the
    backward buffers are shared by all hidden layers of one width). Each value is valid
    only while its layer is being computed, as a :data:`Tap` sees it.
    """

    batch: int
    z: list[Tensor] = field(default_factory=list)
    xhat: list[Tensor] = field(default_factory=list)
    invstd: list[Tensor] = field(default_factory=list)
    u: list[Tensor] = field(default_factory=list)
    a: list[Tensor] = field(default_factory=list)
    mask: list[Tensor] = field(default_factory=list)
    h: list[Tensor] = field(default_factory=list)
    gh: list[Tensor] = field(default_factory=list)
    gu: list[Tensor] = field(default_factory=list)
    gz: list[Tensor] = field(default_factory=list)
    scratch: list[Tensor] = field(default_factory=list)
    ht: list[Tensor] = field(default_factory=list)  # h transposed, [N, B, F] views
    ghf: list[Tensor] = field(default_factory=list)  # dL/dH feature-major (see _backward)
    noise: Tensor | None = None  # flat buffer for one member's [B, H] dropout draw
    minus_one: Tensor | None = None  # [N, 1, B] of -1: subtracts the one-hot labels
    layout: ProductLayout = field(default_factory=ProductLayout)  # products of layers > 1


@dataclass
class _Affine:
    """Views of one affine layer's parameters and gradients, made once (the optimizer
    updates the stacked tensors in place, so the views stay valid)."""

    w: Tensor  # [N, out, in]; for layer 1 the flat [N * out, in] view
    wt: Tensor  # [N, in, out]
    b: Tensor | None  # [N, out, 1]; for layer 1 [N * out, 1]
    bias: Tensor | None  # the bias parameter itself, [N, out]
    gw: Tensor  # like w
    gb: Tensor | None  # [N, out]


@dataclass(frozen=True)
class FusedDecay:
    """Coupled L2 weight decay for the fused SGD step (torch's ``SGD(weight_decay=wd)``):

    ``p <- p - lr * (g + wd * p) = keep * p - lr * g`` with ``keep = 1 - lr * wd``.

    ``wd`` and ``keep`` are floats or ``[N]`` tensors (one per member); ``mask[i]`` says
    whether parameter ``i`` (in :attr:`StackedMLP.params` order) is decayed.
    """

    wd: float | Tensor
    keep: float | Tensor
    mask: tuple[bool, ...]

    @classmethod
    def of(cls, lr: float | Tensor, wd: float | Tensor, mask: Sequence[bool]) -> FusedDecay:
        """The decay of rate ``lr`` and coefficient ``wd``."""
        return cls(wd, 1.0 - lr * wd, tuple(mask))

    def members(self, start: int, stop: int) -> FusedDecay:
        """The decay of members ``start:stop``."""
        wd, keep = self.wd, self.keep
        return FusedDecay(
            wd[start:stop] if isinstance(wd, Tensor) else wd,
            keep[start:stop] if isinstance(keep, Tensor) else keep,
            self.mask,
        )

    def apply(self, params: Sequence[Tensor], index: int) -> None:
        """``params[index] *= keep`` when that parameter is decayed."""
        if not self.mask[index]:
            return
        p = params[index]
        if isinstance(self.keep, Tensor):
            p.mul_(self.keep.view(-1, *[1] * (p.ndim - 1)))
        elif self.keep != 1.0:
            p.mul_(self.keep)


class StepOutput(NamedTuple):
    """What :meth:`StackedMLP.train_step` returns."""

    loss: Tensor  # [N] mean cross-entropy of each member on the minibatch
    logits: Tensor  # [N, C, B], a workspace buffer
    updated: bool  # True when the SGD update was fused into the backward pass


def _stacked_buffer(values: Sequence[Tensor], dtype: torch.dtype) -> Tensor:
    """One buffer of every member, stacked; floating-point ones (batch norm's running
    statistics) in the members' precision, counters (``num_batches_tracked``) as they are."""
    stacked = torch.stack([v.detach().clone() for v in values]).contiguous()
    return stacked.to(dtype) if stacked.is_floating_point() else stacked


class StackedMLP:
    """``N`` members of one :class:`~initlab.models.MLPSpec`, trained by hand-written kernels.

    Args:
        spec: the shared architecture.
        members: ``N`` modules with the parameter names and shapes of ``mlp(**spec)``
            (normally built by it); their parameters and batch-norm buffers are copied.
        dropout: one dropout probability per member (default: ``spec.dropout`` for all).
        dropout_seeds: one seed per member for its dropout masks (default: 0 for all).
        layout: how layers > 1 compute their products (default: chosen per batch size by
            :func:`~initlab.train.batched_layout.choose_layout`, from a measurement); every
            layout gives the same numbers to float rounding.
        dtype: the parameters' and activations' precision (float32, or float64 for runs
            that must not overflow where the float64 sources do not).

    Dropout follows ``spec.dropout_mode``: ``inverted`` masks are ``bernoulli / (1 - p)``;
    ``scale_at_test`` masks are the plain ``bernoulli`` draws, and in eval mode every hidden
    output is multiplied by ``1 - p`` (the from-scratch book's ``Dropout``).
    """

    def __init__(
        self,
        spec: MLPSpec,
        members: Sequence[nn.Module],
        *,
        dropout: Sequence[float] | None = None,
        dropout_seeds: Sequence[int] | None = None,
        dtype: torch.dtype = torch.float32,
        layout: ProductLayout | None = None,
    ) -> None:
        if len(members) == 0:
            raise InitlabError("the batched engine needs at least one member model")
        self.spec = spec
        self.n = len(members)
        self.dtype = dtype
        self.act = activation_kernels(spec.activation)
        with torch.device("meta"):  # names and shapes only: no memory, no global RNG draw
            self.reference = mlp(**spec.to_dict())
        _check_members(self.reference, members)
        names = [name for name, _ in self.reference.named_parameters()]
        with torch.no_grad():
            per_member = [dict(m.named_parameters()) for m in members]
            self.params = [
                torch.stack([p[name].detach().to(dtype) for p in per_member]).contiguous()
                for name in names
            ]
            buffers = [dict(m.named_buffers()) for m in members]
            self.buffers: OrderedDict[str, Tensor] = OrderedDict(
                (name, _stacked_buffer([b[name] for b in buffers], dtype))
                for name, _ in self.reference.named_buffers()
            )
        self.device = self.params[0].device
        self.param_names = names
        self.grads = [torch.zeros_like(p) for p in self.params]
        index = {name: i for i, name in enumerate(names)}
        depth = spec.depth
        self.weight = [index[f"linear{i}.weight"] for i in range(1, depth + 1)]
        self.bias = [index.get(f"linear{i}.bias") for i in range(1, depth + 1)]
        self.gamma = [index.get(f"norm{i}.weight") for i in range(1, depth)]
        self.beta = [index.get(f"norm{i}.bias") for i in range(1, depth)]
        self.layers = [self._affine(i) for i in range(depth)]
        norm = next((m for m in self.reference.modules() if isinstance(m, nn.BatchNorm1d)), None)
        self.bn_eps = float(norm.eps) if norm is not None else 1e-5
        self.bn_momentum = float(norm.momentum or 0.1) if norm is not None else 0.1
        self._init_dropout(dropout, dropout_seeds)
        self._workspaces: OrderedDict[tuple[int, bool, bool], Workspace] = OrderedDict()
        #: bool ``[N]`` or None: members whose batch-norm running statistics stay put
        self.frozen: Tensor | None = None
        if layout is not None:
            batched_layout.check_kernel(layout, self.device, self.dtype)
        self.layout = layout
        self._deferred: DeferredUpdates | None = None  # fused updates not yet in the weights
        self._deferring = False  # the current pass keeps its updates in _deferred
        self.dual: DualFirstLayer | None = None  # layer 1 in the dual form (use_dual)
        self._rows: Tensor | None = None  # the current pass's rows of the dual basis

    def _affine(self, i: int) -> _Affine:
        w, gw = self.params[self.weight[i]], self.grads[self.weight[i]]
        bias = self.bias[i]
        b = bp = gb = None
        if bias is not None:
            bp, gb = self.params[bias], self.grads[bias]
            b = bp.unsqueeze(2)
        if i == 0:  # layer 1: one GEMM for all members
            flat = (-1, w.shape[2])
            b_flat = None if b is None else b.view(-1, 1)
            return _Affine(w.view(flat), w.transpose(1, 2), b_flat, bp, gw.view(flat), gb)
        return _Affine(w, w.transpose(1, 2), b, bp, gw, gb)

    def _init_dropout(self, dropout: Sequence[float] | None, seeds: Sequence[int] | None) -> None:
        rates = [float(self.spec.dropout)] * self.n if dropout is None else list(dropout)
        if len(rates) != self.n or not all(0.0 <= p < 1.0 for p in rates):
            raise InitlabError(
                f"dropout needs one probability in [0, 1) per member ({self.n}), got {rates}"
            )
        seeds = [0] * self.n if seeds is None else [int(s) for s in seeds]
        if len(seeds) != self.n:
            raise InitlabError(f"dropout_seeds needs one seed per member ({self.n}), got {seeds}")
        self.dropout = rates
        self.use_dropout = any(p > 0 for p in rates)
        self.inverted = self.spec.dropout_mode == "inverted"
        keep = torch.tensor([1.0 - p for p in rates], dtype=self.dtype)
        self._keep = keep.view(-1, 1, 1).to(self.device)  # eval-mode scale (scale_at_test)
        self._dropping = [n for n, p in enumerate(rates) if p > 0]
        self._generators = {n: torch.Generator().manual_seed(seeds[n]) for n in self._dropping}

    # ------------------------------------------------------------------ members in and out
    def sync_weights(self) -> None:
        """Write deferred SGD updates into the weights (:mod:`~initlab.train.batched_deferred`,
        :mod:`~initlab.train.batched_dual`), before :attr:`params` is read or changed from
        outside a fused training step."""
        if self._deferred is not None:
            self._deferred.flush()
        if self.dual is not None:
            self.dual.flush()

    def use_dual(self, basis: Tensor | None) -> None:
        """Compute layer 1 in the dual form over the inputs ``basis`` ``[n, in]``
        (:mod:`~initlab.train.batched_dual`) on passes given ``rows`` of it; None: back to
        the weights. Fused plain-SGD steps then update it without touching layer 1's
        weights, which are written back when read (:meth:`sync_weights`); any other update
        leaves the form until the next fused step restarts it. Not with member chunks or
        deferred updates (their passes use the weights)."""
        self.sync_weights()
        if basis is None:
            self.dual = None
            return
        self._deferred = None
        self.dual = DualFirstLayer(self.layers[0].w, self.n, basis.to(self.device, self.dtype))
        self.dual.reset()  # so that an evaluation before the first step uses it too

    def squared_norms(self, index: int) -> Tensor:
        """``||p_m||^2`` of parameter ``index`` for every member (float64 ``[N]``), as the
        weights stand after the pending updates (layer 1 in the dual form: from its
        factors, without writing them back)."""
        if self.dual is not None and self.dual.valid and index == self.weight[0]:
            return self.dual.squared_norms()
        if self._deferred is not None:
            self._deferred.flush()
        p = self.params[index]
        return torch.linalg.vector_norm(p.flatten(1), dim=1).double().square()

    def member_state_dict(self, member: int) -> dict[str, Tensor]:
        """Member ``member``'s ``state_dict`` (CPU copies), loadable into ``mlp(**spec)``."""
        self.sync_weights()
        state = {
            name: p[member].detach().to("cpu", copy=True)
            for name, p in zip(self.param_names, self.params, strict=True)
        }
        state.update({name: b[member].to("cpu", copy=True) for name, b in self.buffers.items()})
        return state

    # ------------------------------------------------------------------------- buffers
    def workspace(self, batch: int, train: bool, grad: bool) -> Workspace:
        """Buffers for a pass over ``batch`` samples (cached per size, mode and backward)."""
        key = (batch, train, grad)
        ws = self._workspaces.get(key)
        if ws is not None:
            self._workspaces.move_to_end(key)
            return ws
        ws = self._new_workspace(batch, train, grad)
        self._workspaces[key] = ws
        if len(self._workspaces) > _MAX_WORKSPACES:
            self._workspaces.popitem(last=False)
        return ws

    def _new_workspace(self, batch: int, train: bool, grad: bool) -> Workspace:
        n, widths, bn = self.n, self.spec.widths, self.spec.batchnorm
        ws = Workspace(batch)
        ws.layout = self.layout or batched_layout.usable_layout(
            choose_layout(batch, n, tuple(widths)), self.device, self.dtype
        )
        drop = self.use_dropout and (train or not self.inverted)

        def buf(width: int) -> Tensor:
            return torch.empty(n, width, batch, device=self.device, dtype=self.dtype)

        def activation_buf(width: int, layer: int) -> Tensor:
            """An activation buffer of layer ``layer + 1``, in the layout's memory order
            (layer 1's output stays feature-major: it is one [N*out, B] product)."""
            if layer > 0 and ws.layout.forward_major == "batch":
                memory = torch.empty(n, batch, width, device=self.device, dtype=self.dtype)
                return memory.transpose(1, 2)
            return buf(width)

        shared: dict[tuple[str, int], Tensor] = {}
        # dL/dH batch-major beside feature-major activations: see _backward
        mixed = ws.layout.grad_major == "batch" and ws.layout.forward_major == "feature"

        def scratch(role: str, width: int) -> Tensor:
            """One buffer per role and width, reused by every layer (backward passes touch
            one layer at a time, so a small working set stays in cache)."""
            if (role, width) not in shared:
                shared[role, width] = buf(width)
            return shared[role, width]

        ws.z = [activation_buf(w, i) for i, w in enumerate(widths[1:])]
        for i, width in enumerate(widths[1:-1]):
            ws.u.append(activation_buf(width, i) if bn else ws.z[i])
            ws.a.append(ws.u[i] if self.act.output_only else activation_buf(width, i))
            if bn:
                ws.xhat.append(activation_buf(width, i))
                ws.invstd.append(torch.empty(n, width, 1, device=self.device, dtype=self.dtype))
            ones = torch.ones(n, width, batch, device=self.device, dtype=self.dtype)
            ws.mask.append(ones if drop else ws.a[i])
            ws.h.append(activation_buf(width, i) if drop else ws.a[i])
            ws.ht.append(ws.h[i].transpose(1, 2))
            if grad:
                if ("gh", width) not in shared:  # in the layout's memory order
                    shared["gh", width] = batched_layout.grad_buffer(
                        ws.layout, n, width, batch, self.device, self.dtype
                    )
                ws.gh.append(shared["gh", width])
                if mixed:
                    ws.ghf.append(scratch("ghf", width))
                ws.gz.append(scratch("gz", width))
                ws.gu.append(scratch("gu", width) if bn else ws.gz[i])
                ws.scratch.append(scratch("tmp", width) if bn else ws.gz[i])
        if drop:  # drawn on the CPU, as fit's F.dropout draws from the CPU generator
            ws.noise = torch.empty(batch * max(widths[1:-1]))
        if grad:
            ws.gz.append(buf(widths[-1]))
            ws.minus_one = torch.full((n, 1, batch), -1.0, device=self.device, dtype=self.dtype)
        return ws

    # ------------------------------------------------------------------------- forward
    @torch.no_grad()
    def forward(
        self,
        x: Tensor,
        train: bool,
        ws: Workspace | None = None,
        tap: Tap | None = None,
        rows: Tensor | None = None,
    ) -> Tensor:
        """Logits ``[N, C, B]`` of every member for inputs ``x`` ``[B, in]`` (shared).

        ``train``: batch norm uses batch statistics (and updates the running ones) and
        dropout is on; otherwise batch norm uses its running statistics, dropout is off.
        ``rows``: with :meth:`use_dual`, ``x``'s rows in its basis (``x == basis[rows]``):
        layer 1 is then read from the dual form.
        """
        batch = x.shape[0]
        ws = ws if ws is not None else self.workspace(batch, train, False)
        depth = self.spec.depth
        h_prev = x
        dual = self.dual if rows is not None and self.dual is not None else None
        if dual is not None and not dual.valid:
            dual = None
        if dual is None and self.dual is not None:
            self.dual.flush()  # layer 1 from its weights: write them back first
        for i, layer in enumerate(self.layers):
            z = ws.z[i]
            deferred = self._deferred if self._deferred and self._deferred.pending else None
            if i == 0 and dual is not None:
                assert rows is not None
                dual.forward(rows, layer.b, z.view(-1, batch))
            elif i == 0:  # one GEMM for all members: [N*out, in] @ [in, B]
                batched_layout.first_forward(ws.layout, layer.w, layer.b, x, z.view(-1, batch))
                if deferred is not None:
                    deferred.correct_forward(0, x, z.view(-1, batch))
            else:
                batched_layout.affine_forward(ws.layout, layer.w, layer.b, h_prev, z)
                if deferred is not None:
                    deferred.correct_forward(i, h_prev, z)
            if tap is not None:
                tap("preactivation", f"linear{i + 1}", z)
            if i < depth - 1:
                h_prev = self._hidden_forward(i, ws, train, tap)
        return ws.z[-1]

    def _hidden_forward(self, i: int, ws: Workspace, train: bool, tap: Tap | None) -> Tensor:
        """Batch norm, activation and dropout of hidden layer ``i + 1``; returns H."""
        if self.spec.batchnorm:
            self._batchnorm_forward(i, ws, train)
            if tap is not None:
                tap("activation", f"norm{i + 1}", ws.u[i])
        self.act.forward(ws.u[i], ws.a[i])
        if tap is not None:
            tap("activation", f"act{i + 1}", ws.a[i])
        if train and self.use_dropout:
            self._draw_masks(ws.mask[i], ws)
            torch.mul(ws.a[i], ws.mask[i], out=ws.h[i])
        elif self.use_dropout and not self.inverted:  # scale_at_test: (1 - p) in eval mode
            torch.mul(ws.a[i], self._keep, out=ws.h[i])
        if tap is not None and self.spec.dropout > 0:
            tap("activation", f"dropout{i + 1}", ws.h[i])
        return ws.h[i]

    def _draw_masks(self, mask: Tensor, ws: Workspace) -> None:
        """mask[n] = bernoulli(1 - p_n) / (1 - p_n) (inverted; the bare draw for
        scale_at_test), drawn as F.dropout draws it ([B, H])."""
        assert ws.noise is not None
        noise = ws.noise[: ws.batch * mask.shape[1]].view(ws.batch, mask.shape[1])
        for n in self._dropping:
            keep = 1.0 - self.dropout[n]
            noise.bernoulli_(keep, generator=self._generators[n])
            if self.inverted:
                noise.div_(keep)
            mask[n].copy_(noise.t())

    def _batchnorm_forward(self, i: int, ws: Workspace, train: bool) -> None:
        """U = gamma * (Z - mean) / sqrt(var + eps) + beta, per member and feature."""
        z, xhat, invstd = ws.z[i], ws.xhat[i], ws.invstd[i]
        rm = self.buffers[f"norm{i + 1}.running_mean"]
        rv = self.buffers[f"norm{i + 1}.running_var"]
        if train:
            var, mean = torch.var_mean(z, 2, correction=0, keepdim=True)
            torch.rsqrt(var + self.bn_eps, out=invstd)
            self._update_running(i, mean.squeeze(2), var.squeeze(2), z.shape[2])
        else:
            mean = rm.unsqueeze(2)
            torch.rsqrt(rv.unsqueeze(2) + self.bn_eps, out=invstd)
        torch.sub(z, mean, out=xhat).mul_(invstd)
        gamma, beta = self._norm_params(i)
        torch.addcmul(beta.unsqueeze(2), xhat, gamma.unsqueeze(2), out=ws.u[i])

    def _norm_params(self, i: int) -> tuple[Tensor, Tensor]:
        """(gamma, beta) ``[N, H]`` of hidden layer ``i + 1``'s batch norm."""
        gamma, beta = self.gamma[i], self.beta[i]
        assert gamma is not None and beta is not None  # mlp() builds affine batch norms
        return self.params[gamma], self.params[beta]

    def _update_running(self, i: int, mean: Tensor, var: Tensor, batch: int) -> None:
        """torch's update r <- (1 - m) r + m * stat, with the unbiased batch variance;
        members marked in :attr:`frozen` keep their statistics."""
        m = self.bn_momentum
        rm = self.buffers[f"norm{i + 1}.running_mean"]
        rv = self.buffers[f"norm{i + 1}.running_var"]
        count = self.buffers[f"norm{i + 1}.num_batches_tracked"]
        new_mean = rm * (1.0 - m) + mean * m
        new_var = rv * (1.0 - m) + var * (batch / max(batch - 1, 1)) * m
        if self.frozen is None:
            rm.copy_(new_mean)
            rv.copy_(new_var)
            count.add_(1)
        else:
            torch.where(self.frozen.unsqueeze(1), rm, new_mean, out=rm)
            torch.where(self.frozen.unsqueeze(1), rv, new_var, out=rv)
            count.add_((~self.frozen).long())

    # ------------------------------------------------------------------------ backward
    @torch.no_grad()
    def train_step(
        self,
        x: Tensor,
        y: Tensor,
        tap: Tap | None = None,
        sgd_lr: float | Tensor | None = None,
        sgd_decay: FusedDecay | None = None,
        rows: Tensor | None = None,
    ) -> StepOutput:
        """Forward and backward on one minibatch in train mode; fills :attr:`grads`.

        Args:
            x: ``[B, in]`` inputs shared by all members; y: ``[B]`` int64 class labels.
            tap: sees every intermediate (for probes).
            sgd_lr: fuse SGD without momentum into the backward pass:
                ``W <- W - lr * dL/dW`` is computed by the weight-gradient products
                themselves (``baddbmm`` with ``alpha = -lr``), which saves writing the
                gradients and a separate optimizer pass. A float, or ``[N]`` per member.
                Only when every loss is finite; otherwise (and always without it) the
                gradients go to :attr:`grads` and ``updated`` is False.
            sgd_decay: with ``sgd_lr``, coupled L2 weight decay (torch's SGD
                ``weight_decay``) in the same fused step: ``W <- W - lr * (dL/dW + wd * W)``
                is computed as ``W <- keep * W - lr * dL/dW`` with ``keep = 1 - lr * wd``,
                for the parameters its mask selects.
            rows: with :meth:`use_dual`, ``x``'s rows in the dual basis; a fused step then
                updates layer 1 in the dual form (the first such step starts it).
        """
        self._rows = rows
        try:
            return self._pass(x, y, True, tap, sgd_lr, sgd_decay)
        finally:
            self._rows = None

    @torch.no_grad()
    def eval_grad_step(self, x: Tensor, y: Tensor, tap: Tap | None = None) -> Tensor:
        """Forward and backward in eval mode (running batch-norm statistics, no dropout),
        e.g. on a fixed probe set; fills :attr:`grads` and returns the losses ``[N]``."""
        return self._pass(x, y, False, tap, None, None).loss

    def _pass(
        self,
        x: Tensor,
        y: Tensor,
        train: bool,
        tap: Tap | None,
        sgd_lr: float | Tensor | None,
        decay: FusedDecay | None,
    ) -> StepOutput:
        ws = self.workspace(x.shape[0], train, True)
        chunked = tap is None and ws.layout.chunk is not None and ws.layout.chunk < self.n
        if self.dual is not None:
            if sgd_lr is None or chunked or self._rows is None:
                self.dual.invalidate()  # the weights change (or are read) outside the form
            elif not self.dual.valid:
                self.dual.reset()
        if chunked:
            self.sync_weights()
            return self._chunked_pass(x, y, train, ws, sgd_lr, decay)
        batch = x.shape[0]
        deferring = (
            sgd_lr is not None
            and decay is None
            and tap is None
            and ws.layout.defer > 1
            and self.dual is None
        )
        if not deferring:  # gradients and optimizer steps see the weights as they are
            if self._deferred is not None:  # (a dual layer 1 is in order already, above)
                self._deferred.flush()
        elif (
            self._deferred is None
            or self._deferred.steps != ws.layout.defer
            or batch > self._deferred.capacity
        ):
            self.sync_weights()
            weights = [layer.w for layer in self.layers]
            self._deferred = DeferredUpdates(weights, ws.layout.defer, batch)
        elif not self._deferred.fits(batch):
            self._deferred.flush()
        logits = self.forward(x, train, ws, tap, self._rows)
        assert ws.minus_one is not None
        target = y.view(1, 1, -1).expand(self.n, 1, -1)
        loss = softmax_cross_entropy_(logits, target, ws.minus_one, ws.gz[-1])
        if sgd_lr is not None and not all(math.isfinite(v) for v in loss.tolist()):
            sgd_lr = None  # a diverging member must not be updated: gradients instead
            deferring = False
            self.sync_weights()
            if self.dual is not None:
                self.dual.invalidate()  # the optimizer updates the weights
        self._deferring = deferring
        try:
            self._backward(x, ws, train, tap, sgd_lr, decay if sgd_lr is not None else None)
        finally:
            self._deferring = False
        if deferring:
            assert self._deferred is not None
            self._deferred.step_done(batch)
        return StepOutput(loss, logits, sgd_lr is not None)

    def _backward(
        self,
        x: Tensor,
        ws: Workspace,
        train: bool,
        tap: Tap | None,
        sgd_lr: float | Tensor | None,
        decay: FusedDecay | None,
    ) -> None:
        dropout = train and self.use_dropout
        neg_lr = None if not isinstance(sgd_lr, Tensor) else (-sgd_lr).view(-1, 1, 1)
        for i in range(self.spec.depth - 1, -1, -1):
            layer, gz = self.layers[i], ws.gz[i]
            if tap is not None:
                tap("gradient", f"linear{i + 1}", gz)
            j = i - 1  # the hidden layer below
            if i > 0:  # dL/dH below, with W as it was before any update
                batched_layout.input_grad(ws.layout, layer.w, gz, ws.gh[j])
                if self._deferred is not None and self._deferred.pending:
                    self._deferred.correct_input_grad(i, gz, ws.gh[j])
            if sgd_lr is None:
                self._weight_grads(i, gz, x, ws)
            else:
                self._sgd_update(i, gz, x, ws, sgd_lr, neg_lr, decay)
            if i == 0:
                return
            gh = ws.gh[j]
            if ws.ghf:  # batch-major dL/dH, feature-major masks and activations: element-wise
                # kernels over operands of two memory orders do not vectorize (ReLU's backward
                # on [2, 512, 100]: 480 us against 18 us; lab-09's deep part), so one
                # transposing copy (60 us) first; the same values
                gh = ws.ghf[j].copy_(gh)
            if tap is not None and dropout:
                tap("gradient", f"dropout{j + 1}", gh)
            scaled = not dropout and self.use_dropout and not self.inverted
            if tap is not None and scaled and self.spec.dropout > 0:
                # eval mode, scale_at_test: the dropout module's gradient is the one before
                # its (1 - p) scaling, as fit's hook on the module records it
                tap("gradient", f"dropout{j + 1}", gh)
            if dropout:
                gh.mul_(ws.mask[j])
            elif scaled:
                gh.mul_(self._keep)
            if tap is not None:
                tap("gradient", f"act{j + 1}", gh)
                if not dropout and not scaled and self.spec.dropout > 0:  # the same tensor
                    tap("gradient", f"dropout{j + 1}", gh)
            self.act.backward(gh, ws.u[j], ws.a[j], ws.gu[j])
            if self.spec.batchnorm:
                if tap is not None:
                    tap("gradient", f"norm{j + 1}", ws.gu[j])
                self._batchnorm_backward(j, ws, train)
                if sgd_lr is not None:
                    self._sgd_norm_update(j, sgd_lr, decay)

    # ----------------------------------------------------------------- member chunks
    def _chunked_pass(
        self,
        x: Tensor,
        y: Tensor,
        train: bool,
        ws: Workspace,
        sgd_lr: float | Tensor | None,
        decay: FusedDecay | None,
    ) -> StepOutput:
        """:meth:`_pass` over chunks of ``ws.layout.chunk`` members, one after the other
        (their weights stay in cache from the forward to the backward pass; see
        :mod:`~initlab.train.batched_layout`). Every tensor of a chunk is a view of this
        ensemble's, so gradients, updates and batch-norm statistics land in place.

        A chunk with a non-finite loss is not fused (its gradients are computed): its finite
        members then get the plain SGD step here, so that every live member is updated and
        the step reports ``updated`` as an unchunked fused step does.
        """
        assert ws.layout.chunk is not None
        losses = []
        for start, sub in self._chunks(ws.layout):
            sub.frozen = None if self.frozen is None else self.frozen[start : start + sub.n]
            lr = sgd_lr
            if isinstance(sgd_lr, Tensor):
                lr = sgd_lr[start : start + sub.n]
            part = None if decay is None else decay.members(start, start + sub.n)
            loss, logits, updated = sub._pass(x, y, train, None, lr, part)
            if lr is not None and not updated:
                sub._masked_sgd(loss, lr, part)
            ws.z[-1][start : start + sub.n].copy_(logits)
            losses.append(loss)
        return StepOutput(torch.cat(losses), ws.z[-1], sgd_lr is not None)

    def _masked_sgd(self, loss: Tensor, lr: float | Tensor, decay: FusedDecay | None) -> None:
        """p <- p - lr * (grad + wd * p) for the members with a finite ``loss`` (the others
        stay); ``wd * p`` only where ``decay`` applies."""
        keep = torch.isfinite(loss)
        rate = lr if isinstance(lr, Tensor) else torch.full_like(loss, float(lr))
        rate = torch.where(keep, rate, torch.zeros_like(rate))
        for index, (p, g) in enumerate(zip(self.params, self.grads, strict=True)):
            shape = (-1, *[1] * (p.ndim - 1))
            if decay is not None and decay.mask[index]:
                wd = decay.wd.view(shape) if isinstance(decay.wd, Tensor) else decay.wd
                g = g + wd * p
            p.sub_(torch.where(keep.view(shape), g, torch.zeros_like(g)) * rate.view(shape))

    def _chunks(self, layout: ProductLayout) -> list[tuple[int, StackedMLP]]:
        """``(first member, sub-ensemble)`` of at most ``layout.chunk`` members each, built
        once per layout: their parameters, gradients and buffers are views of this one's."""
        cached = getattr(self, "_chunk_cache", None)
        if cached is not None and cached[0] == layout:
            return cached[1]
        size, inner = layout.chunk or self.n, replace(layout, chunk=None)
        chunks = [(k, self._sub(k, min(k + size, self.n), inner)) for k in range(0, self.n, size)]
        self._chunk_cache = (layout, chunks)
        return chunks

    def _sub(self, start: int, stop: int, layout: ProductLayout) -> StackedMLP:
        """Members ``start:stop`` as a StackedMLP sharing this one's storage."""
        sub = copy.copy(self)
        sub.n = stop - start
        sub.params = [p[start:stop] for p in self.params]
        sub.grads = [g[start:stop] for g in self.grads]
        sub.buffers = OrderedDict((k, b[start:stop]) for k, b in self.buffers.items())
        sub.layers = [sub._affine(i) for i in range(self.spec.depth)]
        sub.dropout = self.dropout[start:stop]
        sub.use_dropout = any(p > 0 for p in sub.dropout)
        sub._dropping = [n - start for n in self._dropping if start <= n < stop]
        sub._generators = {n: self._generators[n + start] for n in sub._dropping}
        sub._workspaces = OrderedDict()
        sub._chunk_cache = None
        sub._deferred = None
        sub.dual = None
        sub._rows = None
        sub.layout = replace(layout, defer=1)  # chunks update their views at once
        return sub

    def _weight_grads(self, i: int, gz: Tensor, x: Tensor, ws: Workspace) -> None:
        """dL/dW = dZ @ H^T and dL/db = sum_b dZ of layer ``i + 1`` into :attr:`grads`."""
        layer = self.layers[i]
        if i == 0:  # one GEMM for all members: [N*out, B] @ [B, in]
            torch.mm(gz.view(-1, ws.batch), x, out=layer.gw)
        else:
            batched_layout.weight_grad(ws.layout, gz, ws.ht[i - 1], layer.gw)
        if layer.gb is not None:
            torch.sum(gz, 2, out=layer.gb)

    def _sgd_update(
        self,
        i: int,
        gz: Tensor,
        x: Tensor,
        ws: Workspace,
        lr: float | Tensor,
        neg_lr: Tensor | None,
        decay: FusedDecay | None,
    ) -> None:
        """W <- W - lr * dZ @ H^T and b <- b - lr * sum_b dZ, in the products themselves
        (per-member rates scale dZ first; dZ is not needed afterwards). With ``decay``,
        the decayed parameters are first scaled by ``keep = 1 - lr * wd``."""
        layer = self.layers[i]
        dual = self.dual if i == 0 and self.dual is not None and self.dual.valid else None
        if decay is not None:
            if dual is None:
                decay.apply(self.params, self.weight[i])
            elif decay.mask[self.weight[i]]:
                dual.decay(decay.keep)
            if self.bias[i] is not None:
                decay.apply(self.params, self.bias[i])
        alpha = 1.0
        if neg_lr is not None:
            gz.mul_(neg_lr)
        else:
            alpha = -float(lr)
        if dual is not None:
            assert self._rows is not None
            dual.update(self._rows, gz.view(-1, ws.batch), alpha)
        elif self._deferring:  # kept aside, written into W every ``defer`` steps
            assert self._deferred is not None
            h = x if i == 0 else ws.h[i - 1]
            self._deferred.add(i, gz.view(-1, ws.batch) if i == 0 else gz, h, alpha)
        elif i == 0:
            layer.w.addmm_(gz.view(-1, ws.batch), x, alpha=alpha)
        else:
            batched_layout.fused_update(ws.layout, layer.w, gz, ws.ht[i - 1], alpha)
        if layer.bias is not None and layer.gb is not None:
            torch.sum(gz, 2, out=layer.gb)
            layer.bias.add_(layer.gb, alpha=alpha)

    def _sgd_norm_update(self, j: int, lr: float | Tensor, decay: FusedDecay | None) -> None:
        """gamma, beta <- gamma, beta - lr * their gradients (fused-SGD steps; scaled by
        ``keep`` first where ``decay`` applies)."""
        for index in (self.gamma[j], self.beta[j]):
            assert index is not None
            if decay is not None:
                decay.apply(self.params, index)
            if isinstance(lr, Tensor):
                self.params[index].addcmul_(self.grads[index], lr.view(-1, 1), value=-1.0)
            else:
                self.params[index].add_(self.grads[index], alpha=-lr)

    def _batchnorm_backward(self, j: int, ws: Workspace, train: bool) -> None:
        """Ioffe & Szegedy (2015), with g = dL/dU and xhat the normalized input::

        dgamma = sum_b g * xhat;   dbeta = sum_b g
        dZ = gamma * invstd * (g - dbeta / B - xhat * dgamma / B)   (train mode)
        dZ = gamma * invstd * g                                      (eval mode)
        """
        gu, xhat, gz, batch = ws.gu[j], ws.xhat[j], ws.gz[j], ws.batch
        gamma_index, beta_index = self.gamma[j], self.beta[j]
        assert gamma_index is not None and beta_index is not None
        g_gamma, g_beta = self.grads[gamma_index], self.grads[beta_index]
        torch.sum(gu, 2, out=g_beta)
        torch.mul(gu, xhat, out=ws.scratch[j])
        torch.sum(ws.scratch[j], 2, out=g_gamma)
        if train:
            torch.addcmul(gu, xhat, g_gamma.unsqueeze(2), value=-1.0 / batch, out=gz)
            gz.sub_(g_beta.unsqueeze(2), alpha=1.0 / batch)
        else:
            gz.copy_(gu)
        gz.mul_(ws.invstd[j] * self.params[gamma_index].unsqueeze(2))


def load_member(spec: MLPSpec, state: dict[str, Tensor]) -> nn.Module:
    """``mlp(**spec)`` loaded with ``state``, built without touching torch's global RNG."""
    with torch.random.fork_rng(devices=[]):
        model = mlp(**spec.to_dict())
    model.load_state_dict(state)
    return model


def _check_members(reference: nn.Module, members: Sequence[nn.Module]) -> None:
    """Every member must have the parameter and buffer names and shapes of ``reference``."""
    want = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    for i, member in enumerate(members):
        got = {k: tuple(v.shape) for k, v in member.state_dict().items()}
        if got != want:
            raise InitlabError(
                f"member {i} does not match the architecture: expected the parameters of "
                f"mlp(**spec) {sorted(want)}, got {sorted(got)}"
            )
