"""Layer 1 in the dual (kernel) form, for runs that only ever feed a fixed, small set of inputs.

Plain SGD with coupled L2 weight decay changes a weight matrix by ``W <- keep * W + G X_b``:
a decay ``keep = 1 - lr * wd`` and a rank-``B`` update whose right factor ``X_b`` is the
minibatch itself (``G = -lr * dL/dZ``, ``[out, B]``). For layer 1 that minibatch is a set of
rows of the training inputs, so when every input the run sends through layer 1 (training
minibatches, the training and validation sets it evaluates) is a row of one fixed matrix
``X`` (``[n, in]``), the weights never leave the form (every gradient step adds outer
products with the inputs: the observation behind the representer theorem, Schoelkopf,
Herbrich & Smola, COLT 2001)::

    W_t = s_t (W_0 - C_t X)          s_t = prod of the keeps so far, C_t [out, n]

and the layer's outputs on every row of ``X`` are, with the Gram matrix ``K = X X^T``::

    Z_t = X W_t^T = s_t (X W_0^T - K C_t^T) = s_t Y_t

One SGD step then costs, instead of the forward product ``X_b W^T`` (``B in out``
multiply-adds), the weight update (``B in out``) and, every epoch, the evaluation of the
``n`` rows (``n in out``)::

    s' = keep * s
    C'^T[b] = C^T[b] - (G / s')^T          (the minibatch's rows; a row drawn twice adds twice)
    Y'      = Y + K[:, b] (G / s')^T       (n B out multiply-adds)

and a forward pass over rows ``b`` is the gather ``s Y[b] + bias``. With ``n <= in`` this
is less than half the arithmetic; for the from-scratch book's hyperparameter search (C1:
``n = 500`` images of ``in = 784`` pixels, evaluated every epoch) layer 1's products shrink
about five times. The weights themselves are written back, ``W <- s (W_0 - C X)``, only
when something reads them (:meth:`DualFirstLayer.flush`); the weight-decay penalty
``||W||^2`` is computed without them::

    ||W_t||^2 = s_t^2 (||W_0||^2 - <C_t^T, X W_0^T + Y_t>)

(``<W_0, C X> = <C^T, X W_0^T>`` and ``||C X||^2 = <C^T, K C^T> = <C^T, X W_0^T - Y>``).
The arithmetic is that of the primal SGD step in another order: results agree to float
rounding. ``s`` is kept in float64 and folded into the weights (a flush) before it could
underflow.

Every tensor here is per member: the ``N`` members' layer-1 units are the ``N * out``
columns of ``Y`` and ``C^T`` (row-major ``[n, N * out]``: a minibatch's rows are contiguous
and the update is one product for all members), ``s`` is ``[N]``. On CUDA the
``index_add_`` into ``C^T`` adds a row drawn twice in one minibatch in no fixed order
(float rounding only).
"""

from __future__ import annotations

import torch
from torch import Tensor

from initlab.errors import InitlabError

RESCALE_BELOW = 1e-6
"""Fold ``s`` into the weights when a member's falls below this (``G / s`` stays finite)."""


class DualFirstLayer:
    """Layer 1 of ``N`` stacked members in the dual form over the inputs ``basis``.

    Args:
        weight: layer 1's stacked weights, ``[N * out, in]`` (written in place by
            :meth:`flush`, and read at :meth:`reset`).
        members: ``N``.
        basis: ``[n, in]``, every input the run will send through layer 1 (rows are
            addressed by index in :meth:`forward` and :meth:`update`).

    Until :meth:`reset` runs (it does so lazily, on the first use) or after
    :meth:`invalidate` (the weights were changed by someone else: an optimizer step), the
    layer is not :attr:`valid` and the caller computes layer 1 from the weights.
    """

    def __init__(self, weight: Tensor, members: int, basis: Tensor) -> None:
        if basis.ndim != 2 or basis.shape[1] != weight.shape[1]:
            raise InitlabError(
                f"the dual basis must be [rows, {weight.shape[1]}] (layer 1's inputs), "
                f"got {list(basis.shape)}"
            )
        self.weight = weight
        self.members = members
        self.basis = basis
        self.gram = basis @ basis.t()  # K = X X^T, [n, n]
        rows, units = basis.shape[0], weight.shape[0]
        like = {"dtype": weight.dtype, "device": weight.device}
        self.y = torch.empty(rows, units, **like)  # Y = X W_0^T - K C^T
        self.y0 = torch.empty(rows, units, **like)  # X W_0^T
        self.coef = torch.zeros(rows, units, **like)  # C^T
        self.scale = torch.ones(members, dtype=torch.float64, device=weight.device)  # s
        self.w0_sq = torch.zeros(members, dtype=torch.float64, device=weight.device)
        self._scratch = torch.empty(0, **like)  # alpha * grad / s, [N * out, B]
        self._picked = torch.empty(0, **like)  # Y[rows], [B, N * out]
        self._cross = torch.empty(0, **like)  # C^T * (X W_0^T + Y), for squared_norms
        self.valid = False
        self.pending = False  # C != 0 or s != 1: the weights are not up to date
        self.scaled = False  # s != 1 for some member
        self.steps = 0  # updates made in this form (all restarts together)
        self.resets = 0  # starts from the weights (reset)

    @staticmethod
    def elements(rows: int, units: int) -> int:
        """Elements of the buffers for ``rows`` inputs and ``units`` (``N * out``) columns."""
        return 4 * rows * units + rows * rows

    # --------------------------------------------------------------------------- state
    def reset(self) -> None:
        """Start from the current weights: ``W_0 = W``, ``C = 0``, ``s = 1`` (pending
        updates are written back first)."""
        self.flush()
        self.resets += 1
        torch.mm(self.basis, self.weight.t(), out=self.y0)
        self.y.copy_(self.y0)
        self._restart()

    def _restart(self) -> None:
        """``C = 0``, ``s = 1`` and ``||W_0||^2`` of the weights as they now are."""
        w = self.weight.view(self.members, -1)
        self.w0_sq = torch.linalg.vector_norm(w, dim=1).double().square()
        self.coef.zero_()
        self.scale.fill_(1.0)
        self.valid, self.pending, self.scaled = True, False, False

    def invalidate(self) -> None:
        """The weights are about to change outside this form (write pending work first)."""
        self.flush()
        self.valid = False

    def flush(self) -> None:
        """``W <- s (W_0 - C X)``; the form goes on from there (``W_0 = W``, ``Y = s Y``)."""
        if not self.pending:
            return
        self.weight.addmm_(self.coef.t(), self.basis, alpha=-1.0)
        if self.scaled:
            s = self.scale.to(self.weight.dtype)
            self.weight.view(self.members, -1).mul_(s.view(-1, 1))
            self.y.view(self.y.shape[0], self.members, -1).mul_(s.view(1, -1, 1))
        self.y0.copy_(self.y)
        self._restart()

    # ------------------------------------------------------------------------ the step
    def forward(self, rows: Tensor, bias: Tensor | None, out: Tensor) -> None:
        """Layer 1's outputs on ``basis[rows]``: ``out`` ``[N * out, B]`` (feature-major, as
        :func:`~initlab.train.batched_layout.first_forward` writes it) ``= s Y[rows]^T + b``,
        ``bias`` ``[N * out, 1]`` or None."""
        batch = rows.shape[0]
        if self._picked.shape[0] < batch:
            self._picked = self.y.new_empty(batch, self.y.shape[1])
        picked = torch.index_select(self.y, 0, rows, out=self._picked[:batch]).t()
        if self.scaled:
            shape = (self.members, -1, out.shape[1])
            s = self.scale.to(out.dtype).view(-1, 1, 1)
            if bias is None:
                torch.mul(picked.view(shape), s, out=out.view(shape))
            else:
                biases = bias.view(self.members, -1, 1)
                torch.addcmul(biases, picked.view(shape), s, out=out.view(shape))
        elif bias is None:
            out.copy_(picked)
        else:
            torch.add(bias, picked, out=out)

    def decay(self, keep: float | Tensor) -> None:
        """``W <- keep * W`` (coupled weight decay): ``s <- keep * s``; ``keep`` a float or
        ``[N]``."""
        if isinstance(keep, Tensor):
            self.scale.mul_(keep.to(self.scale))
        elif keep != 1.0:
            self.scale.mul_(keep)
        else:
            return
        self.scaled = self.pending = True

    def update(self, rows: Tensor, grad: Tensor, alpha: float) -> None:
        """``W <- W + alpha * grad @ basis[rows]`` (``grad`` ``[N * out, B]``, per-member
        rates already in it): ``C^T[rows] -= (alpha grad / s)^T``, ``Y += K[:, rows] (alpha
        grad / s)^T``. A member whose ``s`` has grown too small is folded in first."""
        if self.scaled and float(self.scale.abs().min()) < RESCALE_BELOW:
            self.flush()  # s -> 1 (keep = 0: lr * wd = 1 zeroes the weights, as the primal step)
        batch = grad.shape[1]
        if self._scratch.numel() < grad.numel():
            self._scratch = torch.empty(grad.numel(), dtype=grad.dtype, device=grad.device)
        step = self._scratch[: grad.numel()].view(grad.shape)
        if self.scaled:
            factor = (alpha / self.scale).to(grad.dtype).view(-1, 1, 1)
            shape = (self.members, -1, batch)
            torch.mul(grad.view(shape), factor, out=step.view(shape))
        else:
            torch.mul(grad, alpha, out=step)
        self.coef.index_add_(0, rows, step.t(), alpha=-1.0)
        # K[:, rows] = K[rows]^T (K is symmetric): a gather of contiguous rows
        self.y.addmm_(self.gram.index_select(0, rows).t(), step.t())
        self.pending = True
        self.steps += 1

    # ---------------------------------------------------------------------- penalties
    def squared_norms(self) -> Tensor:
        """``||W_m||^2`` of every member (float64 ``[N]``) without writing the weights."""
        if not self.pending:
            w = self.weight.view(self.members, -1)
            return torch.linalg.vector_norm(w, dim=1).double().square()
        rows = self.y.shape[0]
        if self._cross.shape != self.y.shape:
            self._cross = torch.empty_like(self.y)
        cross = torch.add(self.y0, self.y, out=self._cross).mul_(self.coef)
        # per (input, member) in the working precision, then over inputs in float64: a
        # reduction over dims (0, 2) at once is six times slower (strided)
        inner = cross.view(rows * self.members, -1).sum(1).view(rows, self.members)
        return self.scale.square() * (self.w0_sq - inner.double().sum(0))


DUAL_SHARE = 0.5
"""``auto`` uses the dual form where its products are at most this share of the primal's."""

MAX_ELEMENTS = 1 << 27
"""Largest total size of the dual form's buffers (512 MiB in float32)."""


def dual_pays(rows: int, in_features: int, units: int, batch: int, evaluated: float) -> bool:
    """Whether the dual form of layer 1 does at most :data:`DUAL_SHARE` of the arithmetic of
    the weights' products, within :data:`MAX_ELEMENTS`.

    Per unit and step the weights cost ``in * (2 B + E)`` multiply-adds (forward, update,
    and ``E`` rows evaluated per step on average); the dual form ``n B`` (the update of
    ``Y``) for ``n = rows`` inputs in its basis and ``units = N * out`` columns.
    """
    primal = in_features * (2 * batch + evaluated)
    fits = DualFirstLayer.elements(rows, units) <= MAX_ELEMENTS
    return rows * batch <= DUAL_SHARE * primal and fits
