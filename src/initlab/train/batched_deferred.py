"""Deferred low-rank SGD updates: a few steps' weight updates written into the weights at once.

In the small-minibatch regime (Glorot & Bengio 2010: minibatch ``B = 10``, 1000-unit layers)
every product of a training step does about ``2 B = 20`` FLOPs per weight it reads, so the
step waits on memory, not arithmetic. The fused SGD step of
:class:`~initlab.train.batched_mlp.StackedMLP` moves every weight matrix four times (read by
the forward product, read by the input-gradient product, read and written by the update
``W <- W + U V^T``, where ``U = -lr dZ`` is ``[out, B]`` and ``V = H`` is ``[in, B]``).

The update of step ``t`` has rank ``B``. Keeping the last ``c`` updates aside, as the
columns of ``U = [U_1 .. U_c]`` and ``V = [V_1 .. V_c]`` (rank ``r = c B``), the weights in
effect are ``W + U V^T``, and the products of the next steps use them exactly::

    Z  = (W + U V^T) H  = W H + U (V^T H)           forward
    dH = (W + U V^T)^T dZ = W^T dZ + V (U^T dZ)      input gradient

(two thin products each, ``2 r (in + out) B`` FLOPs against ``2 in out B``: 8% for
``r = 40``, ``in = out = 1000``). Every ``k`` steps the pending updates are written into
``W`` with one rank-``k B`` product ``W <- W + U V^T``, which reads and writes ``W`` once for
``k`` steps. A weight matrix is then moved ``2 + 2 / k`` times a step instead of 4; the
arithmetic is that of plain SGD, in another order (results agree to float rounding).

Layer 1 reads the minibatch that every member shares, so its ``V`` (the inputs) is shared
too: its corrections and its write-back are single GEMMs for all members.

:class:`DeferredUpdates` keeps ``U`` and ``V`` for every layer of a
:class:`~initlab.train.batched_mlp.StackedMLP`; the model writes them back before anything
reads its weights directly (an optimizer step, probes, ``member_state_dict``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class DeferredUpdates:
    """Pending rank-``B`` SGD updates of every affine layer, written back every ``steps``.

    Args:
        weights: each layer's weight, ``[N * out, in]`` (layer 1, flat) or ``[N, out, in]``.
        steps: updates kept before they are written into the weights.
        batch: the minibatch size of a step (the rank of one update).
    """

    def __init__(self, weights: Sequence[Tensor], steps: int, batch: int) -> None:
        self.weights = list(weights)
        self.steps = steps
        self.capacity = steps * batch  # columns of U and V: the rank of the pending updates
        self.used = 0
        w0 = self.weights[0]
        dtype, device = w0.dtype, w0.device
        # U columns: [N*out, R] (layer 1) / [N, out, R]; V rows: [R, in] (layer 1) / [N, R, in]
        self.u: list[Tensor] = []
        self.v: list[Tensor] = []
        for i, w in enumerate(self.weights):
            if i == 0:
                self.u.append(torch.zeros(w.shape[0], self.capacity, dtype=dtype, device=device))
                self.v.append(torch.zeros(self.capacity, w.shape[1], dtype=dtype, device=device))
            else:
                n, out, fan_in = w.shape
                self.u.append(torch.zeros(n, out, self.capacity, dtype=dtype, device=device))
                self.v.append(torch.zeros(n, self.capacity, fan_in, dtype=dtype, device=device))
        self._scratch: dict[tuple[int, int], Tensor] = {}

    @property
    def pending(self) -> bool:
        """True while some update is not yet in the weights."""
        return self.used > 0

    def fits(self, batch: int) -> bool:
        """Whether one more update of rank ``batch`` fits beside the pending ones."""
        return self.used + batch <= self.capacity

    def _tmp(self, i: int, columns: int) -> Tensor:
        """A ``[N, r, columns]`` (layer 1: ``[r, columns]``) buffer for ``V^T H``/``U^T dZ``."""
        key = (i, columns)
        buf = self._scratch.get(key)
        if buf is None or buf.shape[-2] < self.capacity:
            w = self.weights[i]
            shape = (self.capacity, columns) if i == 0 else (w.shape[0], self.capacity, columns)
            buf = torch.empty(shape, dtype=w.dtype, device=w.device)
            self._scratch[key] = buf
        return buf

    # ------------------------------------------------------------------- corrections
    def correct_forward(self, i: int, h: Tensor, z: Tensor) -> None:
        """``z += U (V^T h)`` for layer ``i + 1``: ``h`` is ``[B, in]`` (layer 1, the shared
        inputs) or ``[N, in, B]``; ``z`` ``[N*out, B]`` (layer 1, flat) or ``[N, out, B]``."""
        if not self.used:
            return
        r = self.used
        if i == 0:
            vh = self._tmp(i, h.shape[0])[:r]
            torch.mm(self.v[0][:r], h.t(), out=vh)  # [r, B]
            z.addmm_(self.u[0][:, :r], vh)
        else:
            vh = self._tmp(i, h.shape[2])[:, :r]
            torch.bmm(self.v[i][:, :r], h, out=vh)  # [N, r, B]
            z.baddbmm_(self.u[i][:, :, :r], vh)

    def correct_input_grad(self, i: int, gz: Tensor, gh: Tensor) -> None:
        """``gh += V (U^T gz)`` for layer ``i + 1 > 1``: ``gz`` ``[N, out, B]``, ``gh``
        ``[N, in, B]`` in any memory order."""
        if not self.used:
            return
        r = self.used
        ug = self._tmp(i, gz.shape[2])[:, :r]
        torch.bmm(self.u[i][:, :, :r].transpose(1, 2), gz, out=ug)  # [N, r, B]
        gh.baddbmm_(self.v[i][:, :r].transpose(1, 2), ug)

    # ----------------------------------------------------------------------- updates
    def add(self, i: int, scaled_gz: Tensor, h: Tensor, alpha: float) -> None:
        """Keep layer ``i + 1``'s update ``alpha * scaled_gz @ h^T`` (``h``: ``[B, in]`` for
        layer 1, else ``[N, in, B]``) in the next ``B`` columns; :meth:`step_done` then
        advances them."""
        r, batch = self.used, scaled_gz.shape[-1]
        if i == 0:
            torch.mul(scaled_gz, alpha, out=self.u[0][:, r : r + batch])
            self.v[0][r : r + batch].copy_(h)
        else:
            torch.mul(scaled_gz, alpha, out=self.u[i][:, :, r : r + batch])
            self.v[i][:, r : r + batch].copy_(h.transpose(1, 2))

    def step_done(self, batch: int) -> None:
        """One step's updates are all kept; write them back when the buffers are full."""
        self.used += batch
        if self.used >= self.capacity:
            self.flush()

    def flush(self) -> None:
        """``W <- W + U V^T`` for every layer (one product each); nothing stays pending."""
        if not self.used:
            return
        r = self.used
        for i, w in enumerate(self.weights):
            if i == 0:
                w.addmm_(self.u[0][:, :r], self.v[0][:r])
            else:
                w.baddbmm_(self.u[i][:, :, :r], self.v[i][:, :r])
        self.used = 0
