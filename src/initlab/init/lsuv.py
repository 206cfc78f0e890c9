"""Layer-sequential unit-variance (LSUV) initialization (Mishkin & Matas 2016).

"All you need is a good init" (ICLR 2016), Algorithm 1:

1. pre-initialize every layer with an orthonormal matrix (Saxe et al. 2014);
2. for each Linear / convolution layer ``L``, from the input up: forward a batch, measure
   the variance of the layer's output ``Var(B_L)`` (over every element of the batch), and
   rescale ``W_L <- W_L / sqrt(Var(B_L))`` until ``|Var(B_L) - 1| < tol`` or ``max_iter``
   rescalings were done (the paper's ``Tol_var = 0.1``, ``T_max = 10``).

With zero biases one rescaling suffices for the layer itself (the output is linear in
``W``); later layers change what earlier ones see only through the activations, which is why
the algorithm goes layer by layer. Layers are visited in the order the forward pass calls
them, found with forward hooks, so any model works (no ``nn.Sequential`` needed); a layer
the forward pass never calls keeps its orthonormal weights and is reported as not reached.
Each measurement stops the forward pass right after the measured layer.

Batch norm and activations are left alone: only Linear / convolution weights change, and
every buffer (batch norm's running statistics, ``num_batches_tracked``) is restored after
the measuring passes. Dropout modules are put in eval mode while measuring (a variance of
a random mask is not the layer's), then given back their mode.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from initlab.errors import InitlabError
from initlab.init.apply import InitSummary, initializable_layers, initialize
from initlab.init.rbm import check_data

TOL = 0.1  # the paper's Tol_var
MAX_ITER = 10  # the paper's T_max
_TINY = 1e-30  # a variance this small cannot be rescaled (a dead layer)


@dataclass(frozen=True)
class LSUVLayer:
    """What LSUV did to one layer."""

    name: str  # module name
    iterations: int  # rescalings done
    variance_start: float  # output variance after the orthonormal pre-init
    variance: float  # output variance at the end (NaN when the layer was not reached)
    converged: bool  # |variance - 1| < tol
    reached: bool = True  # the forward pass calls this layer


@dataclass(frozen=True)
class LSUVSummary(InitSummary):
    """:class:`InitSummary` rows (the orthonormal pre-init, final weight stds) plus a row
    per layer of the LSUV loop, in forward order."""

    steps: tuple[LSUVLayer, ...] = ()
    tol: float = TOL

    def table(self) -> str:
        """The init table, then per layer in forward order: iterations, variance start/end."""
        header = ("layer (forward order)", "iterations", "var start", "var end", "")
        rows = []
        for s in self.steps:
            if not s.reached:
                rows.append((s.name, "-", "-", "-", "not reached: orthonormal kept"))
                continue
            flag = "" if s.converged else f"not within {self.tol:g} of 1"
            rows.append(
                (s.name, str(s.iterations), f"{s.variance_start:.4g}", f"{s.variance:.4g}", flag)
            )
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]
        ]
        return "\n".join([super().table(), "", *lines])


class _StopForwardError(Exception):
    """Raised by a hook to end the forward pass after the measured layer."""


@contextmanager
def _measuring(model: nn.Module) -> Iterator[None]:
    """No gradients, dropout in eval mode, every buffer restored afterwards."""
    buffers = {name: buf.detach().clone() for name, buf in model.named_buffers()}
    drops = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    modes = [m.training for m in drops]
    try:
        for m in drops:
            m.eval()
        with torch.no_grad():
            yield
    finally:
        for m, mode in zip(drops, modes, strict=True):
            m.train(mode)
        with torch.no_grad():
            for name, buf in model.named_buffers():
                buf.copy_(buffers[name])


def _forward(model: nn.Module, data: Tensor) -> None:
    """Run the model on ``data``; a shape mismatch becomes a one-line error."""
    try:
        model(data)
    except _StopForwardError:
        raise
    except (RuntimeError, TypeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InitlabError(
            f"data of shape {list(data.shape)} does not fit {type(model).__name__}: {first}"
        ) from None


def forward_order(model: nn.Module, data: Tensor) -> list[str]:
    """Names of the Linear / conv layers in the order one forward pass first calls them."""
    names = {id(m): name for name, m in initializable_layers(model)}
    order: list[str] = []

    def record(module: nn.Module, _inputs: object, _output: object) -> None:
        name = names[id(module)]
        if name not in order:
            order.append(name)

    handles = [m.register_forward_hook(record) for _, m in initializable_layers(model)]
    try:
        with _measuring(model):
            _forward(model, data)
    finally:
        for handle in handles:
            handle.remove()
    return order


def output_variance(model: nn.Module, layer: nn.Module, data: Tensor) -> float:
    """Variance of ``layer``'s output (all elements, float64) when ``model`` runs on ``data``.

    The forward pass stops right after the layer's first call.
    """
    seen: list[float] = []

    def hook(_module: nn.Module, _inputs: object, output: Tensor) -> None:
        seen.append(float(output.detach().double().var()))
        raise _StopForwardError

    handle = layer.register_forward_hook(hook)
    try:
        _forward(model, data)
    except _StopForwardError:
        pass
    finally:
        handle.remove()
    return seen[0] if seen else math.nan


def lsuv_(
    model: nn.Module,
    data: Tensor,
    *,
    seed: int = 0,
    bias: str | float | None = None,
    tol: float = TOL,
    max_iter: int = MAX_ITER,
) -> LSUVSummary:
    """LSUV (Mishkin & Matas 2016): orthonormal init, then ``W_L /= sqrt(Var(B_L))`` per layer.

    ``initialize(model, "lsuv", data=x)``: pre-initialize with orthogonal weights (Saxe et
    al. 2014) and the bias rule (default zeros), then, layer by layer in forward order,
    forward the batch ``x`` and divide the layer's weights by the standard deviation of its
    output until ``|Var(B_L) - 1| < tol`` or ``max_iter`` rescalings (the paper's defaults,
    tol 0.1 and 10). Batch norm and activations are left alone. Returns a summary with a row
    per layer: iterations and the output variance before and after.
    """
    if not tol > 0 or not math.isfinite(tol):
        raise InitlabError(f"lsuv tol must be positive, got {tol}")
    if max_iter < 1:
        raise InitlabError(f"lsuv max_iter must be at least 1, got {max_iter}")
    data = check_data(data, "lsuv data")
    layers = dict(initializable_layers(model))
    if not layers:
        raise InitlabError(f"{type(model).__name__} has no Linear or Conv layer to initialize")
    param = next(iter(model.parameters()))
    data = data.to(device=param.device, dtype=param.dtype)
    # 1. orthonormal pre-init (Saxe et al. 2014)
    pre = initialize(model, "orthogonal", bias=bias, seed=seed)
    # 2. layer by layer from the input: rescale until the output variance is within tol of 1
    order = forward_order(model, data)
    steps = []
    with _measuring(model):
        for name in order:
            steps.append(_rescale(model, name, layers[name], data, tol, max_iter))
    missing = [name for name in layers if name not in order]
    steps += [LSUVLayer(name, 0, math.nan, math.nan, False, reached=False) for name in missing]
    rows = tuple(replace(row, scheme="lsuv", weight_std=_std(layers[row.name])) for row in pre)
    return LSUVSummary(rows, tuple(steps), tol)


def _rescale(
    model: nn.Module, name: str, layer: nn.Module, data: Tensor, tol: float, max_iter: int
) -> LSUVLayer:
    """The LSUV loop for one layer (Algorithm 1's inner while)."""
    variance = start = output_variance(model, layer, data)
    iterations = 0
    while abs(variance - 1.0) >= tol and iterations < max_iter:
        if not variance > _TINY or not math.isfinite(variance):
            break  # a dead or non-finite output cannot be rescaled to unit variance
        layer.weight.div_(math.sqrt(variance))
        iterations += 1
        variance = output_variance(model, layer, data)
    return LSUVLayer(name, iterations, start, variance, abs(variance - 1.0) < tol)


def _std(layer: nn.Module) -> float:
    return float(layer.weight.detach().double().std(correction=0))


__all__ = [
    "MAX_ITER",
    "TOL",
    "LSUVLayer",
    "LSUVSummary",
    "forward_order",
    "lsuv_",
    "output_variance",
]
