"""Pure statistics of one tensor: the small quantities every probe reports.

All functions take a tensor of any shape, ignore non-finite entries (NaN, +-Inf) in their
statistics and never raise on them; :func:`nonfinite_count` counts those entries. "Units"
are the feature dimension, dim 1 in PyTorch's ``[N, C, ...]`` layout: the features of a
``[B, F]`` activation, the channels of a ``[B, C, H, W]`` one (a 1-D tensor is one sample
whose entries are the units). The quantities are those of Glorot & Bengio (2010),
"Understanding the difficulty of training deep feedforward neural networks": mean,
standard deviation and percentiles (their Fig. 2 plots the 98th), the fraction of
saturated units and histograms; plus the fraction of dead ReLU units.

Two vectorized implementations give the same numbers. On the CPU the tensor is viewed as a
numpy array (no copy): numpy's reductions are several times faster than torch's on the
small tensors probes see, and percentiles select only the order statistics they need
(``numpy.partition``). On an accelerator everything stays on the device with no host
synchronization, so probes inside a training step do not stall it; percentiles sort.
Percentiles use a flattened copy subsampled to at most :data:`MAX_SAMPLES` entries with a
fixed generator (``torch.quantile`` is slow, and size-limited, on large tensors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from initlab.activations import activation_info
from initlab.errors import InitlabError

PERCENTILES: tuple[float, ...] = (2.0, 50.0, 98.0)
"""Percentiles reported by :func:`summarize` (Glorot & Bengio plot the 98th)."""

MAX_SAMPLES = 65_536
"""Percentiles of larger tensors use this many entries drawn with a fixed seed; the rank
error of a percentile at p is then about sqrt(p (1 - p) / MAX_SAMPLES) <= 0.2%."""

SUMMARY_KEYS: tuple[str, ...] = (
    "mean",
    "std",
    "min",
    "max",
    *(f"p{q:g}" for q in PERCENTILES),
    "saturated",
    "dead",
    "nonfinite",
)
"""The keys of :func:`summarize`, in order (the same for every tensor and activation)."""

_SUBSAMPLE_SEED = 0


def _values(x: torch.Tensor) -> torch.Tensor:
    """``x`` detached as a floating tensor (half/bfloat16/integers are promoted to float32)."""
    x = x.detach()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return x


def _saturation_bounds(activation: str | None) -> tuple[float, float] | None:
    return activation_info(activation).saturation_bounds if activation is not None else None


def _subsample(n: int, max_samples: int) -> torch.Tensor | None:
    """Fixed-seed indices of ``max_samples`` of ``n`` entries (None when n is small enough)."""
    if n <= max_samples:
        return None
    gen = torch.Generator().manual_seed(_SUBSAMPLE_SEED)
    return torch.randint(n, (max_samples,), generator=gen)


def _unit_dims(ndim: int) -> tuple[int, ...]:
    """The dimensions a unit is reduced over: all but dim 1 (samples, positions)."""
    return tuple(d for d in range(ndim) if d != 1)


# -- CPU: numpy over a zero-copy view -----------------------------------------------------
def _np_finite(a: np.ndarray) -> np.ndarray:
    """The finite entries, flattened (no copy when all are finite)."""
    flat = a.reshape(-1)
    finite = np.isfinite(flat)
    return flat if finite.all() else flat[finite]


def _np_percentiles(
    vals: np.ndarray, q: Sequence[float], max_samples: int = MAX_SAMPLES
) -> np.ndarray:
    """Percentiles of finite ``vals``, numpy's 'linear' rule: v[k] + (v[k+1] - v[k]) * frac
    with k + frac = q / 100 * (n - 1), selecting only v[k] and v[k+1] by partitioning."""
    idx = _subsample(vals.size, max_samples)
    if idx is not None:
        vals = vals[idx.numpy()]
    n = vals.size
    if n == 0:
        return np.full(len(q), math.nan)
    pos = np.asarray(q, dtype=np.float64) / 100.0 * (n - 1)
    below = np.floor(pos).astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    part = np.partition(vals, np.unique(np.concatenate([below, above])))
    v_lo, v_hi = part[below].astype(np.float64), part[above].astype(np.float64)
    return v_lo + (v_hi - v_lo) * (pos - below)


def _np_dead(a: np.ndarray) -> float:
    if a.size == 0:
        return math.nan
    live = a.reshape(-1) != 0 if a.ndim < 2 else np.any(a != 0, axis=_unit_dims(a.ndim))
    return float(live.size - np.count_nonzero(live)) / live.size


def _np_summary(a: np.ndarray, activation: str | None) -> np.ndarray:
    vals = _np_finite(a)
    n = vals.size
    out = np.full(len(SUMMARY_KEYS), math.nan)
    if n:
        out[0] = vals.mean(dtype=np.float64)
        out[1] = vals.std(dtype=np.float64)
        out[2], out[3] = vals.min(), vals.max()
        out[4 : 4 + len(PERCENTILES)] = _np_percentiles(vals, PERCENTILES)
    bounds = _saturation_bounds(activation)
    if bounds is None:
        out[-3] = 0.0
    elif n:
        out[-3] = np.count_nonzero((vals <= bounds[0]) | (vals >= bounds[1])) / n
    out[-2] = _np_dead(a)
    out[-1] = a.size - n
    return out


# -- accelerators: torch, no host synchronization ------------------------------------------
def _nan_if_empty(value: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    return torch.where(n > 0, value, torch.full_like(value, math.nan))


def _torch_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(number of finite entries, mean, population std) over the finite entries."""
    finite = torch.isfinite(x)
    n = finite.sum().to(x.dtype)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    mean_ = torch.where(finite, x, zero).sum() / n
    var = torch.where(finite, (x - mean_) ** 2, zero).sum() / n
    return n, _nan_if_empty(mean_, n), _nan_if_empty(var.sqrt(), n)


def _torch_min_max(x: torch.Tensor, n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    finite = torch.isfinite(x)
    inf = torch.full((), math.inf, dtype=x.dtype, device=x.device)
    lo = torch.where(finite, x, inf).amin() if x.numel() else inf
    hi = torch.where(finite, x, -inf).amax() if x.numel() else -inf
    return _nan_if_empty(lo, n), _nan_if_empty(hi, n)


def _torch_percentiles(
    x: torch.Tensor, q: Sequence[float], max_samples: int = MAX_SAMPLES
) -> torch.Tensor:
    """Percentiles by sorting, with non-finite entries sent to +Inf so that the first n
    sorted entries are the n finite ones (n stays on the device)."""
    flat = x.reshape(-1)
    idx = _subsample(flat.numel(), max_samples)
    if idx is not None:
        flat = flat[idx.to(flat.device)]
    if flat.numel() == 0:
        return torch.full((len(q),), math.nan, dtype=flat.dtype, device=flat.device)
    finite = torch.isfinite(flat)
    sorted_ = torch.sort(torch.where(finite, flat, math.inf)).values
    n = finite.sum()
    qs = torch.tensor([float(v) / 100.0 for v in q], dtype=flat.dtype, device=flat.device)
    pos = qs * (n - 1).clamp(min=0).to(flat.dtype)
    below = pos.floor().long()
    above = (below + 1).clamp(max=(n - 1).clamp(min=0))
    v_lo, v_hi = sorted_[below], sorted_[above]
    return _nan_if_empty(v_lo + (v_hi - v_lo) * (pos - below.to(flat.dtype)), n)


def _torch_dead(x: torch.Tensor) -> torch.Tensor:
    if x.numel() == 0:
        return torch.full((), math.nan, dtype=x.dtype, device=x.device)
    live = x.reshape(-1) != 0 if x.dim() < 2 else (x != 0).any(dim=_unit_dims(x.dim()))
    return (~live).to(x.dtype).mean()


def _torch_summary(x: torch.Tensor, activation: str | None) -> torch.Tensor:
    n, m, s = _torch_moments(x)
    lo, hi = _torch_min_max(x, n)
    bounds = _saturation_bounds(activation)
    if bounds is None:
        saturated = torch.zeros((), dtype=x.dtype, device=x.device)
    else:
        flat = (x <= bounds[0]) | (x >= bounds[1])
        saturated = _nan_if_empty((flat & torch.isfinite(x)).sum().to(x.dtype) / n, n)
    parts = [
        m,
        s,
        lo,
        hi,
        *_torch_percentiles(x, PERCENTILES).unbind(),
        saturated,
        _torch_dead(x),
        x.numel() - n,
    ]
    return torch.stack([p.to(torch.float64) for p in parts])


# -- public ------------------------------------------------------------------------------
def summary_tensor(x: torch.Tensor, activation: str | None = None) -> torch.Tensor:
    """The values of :func:`summarize` as one float64 tensor on ``x``'s device, in the order
    of :data:`SUMMARY_KEYS`; off the CPU computed without a host synchronization (for hooks
    that defer the conversion to Python floats)."""
    x = _values(x)
    if x.device.type == "cpu":
        return torch.from_numpy(_np_summary(x.numpy(), activation))
    return _torch_summary(x, activation)


def summarize(x: torch.Tensor, activation: str | None = None) -> dict[str, float]:
    """All the statistics of one tensor, keyed by :data:`SUMMARY_KEYS`.

    ``mean``, ``std`` (population), ``min``, ``max``, ``p2``, ``p50``, ``p98`` are over the
    finite entries (NaN when there are none); ``saturated`` is :func:`saturated_fraction`
    for ``activation`` (0 without one); ``dead`` is :func:`dead_fraction`; ``nonfinite``
    counts NaN/Inf entries. Never raises on NaN or Inf.
    """
    values = summary_tensor(x, activation).tolist()
    return dict(zip(SUMMARY_KEYS, values, strict=True))


def mean(x: torch.Tensor) -> float:
    """Mean of the finite entries (NaN when there are none)."""
    x = _values(x)
    if x.device.type == "cpu":
        vals = _np_finite(x.numpy())
        return float(vals.mean(dtype=np.float64)) if vals.size else math.nan
    return float(_torch_moments(x)[1])


def std(x: torch.Tensor) -> float:
    """Population standard deviation sqrt(mean((x - mean(x))^2)) of the finite entries."""
    x = _values(x)
    if x.device.type == "cpu":
        vals = _np_finite(x.numpy())
        return float(vals.std(dtype=np.float64)) if vals.size else math.nan
    return float(_torch_moments(x)[2])


def percentiles(
    x: torch.Tensor, q: Sequence[float] = PERCENTILES, max_samples: int = MAX_SAMPLES
) -> dict[str, float]:
    """Percentiles of the finite entries, keyed ``"p2"``, ``"p50"``, ``"p98"`` ...

    Matches ``numpy.percentile`` (linear interpolation) on tensors of at most
    ``max_samples`` entries; larger tensors use a fixed-seed random subsample of that size.
    """
    x = _values(x)
    if x.device.type == "cpu":
        values = _np_percentiles(_np_finite(x.numpy()), q, max_samples).tolist()
    else:
        values = _torch_percentiles(x, q, max_samples).tolist()
    return {f"p{p:g}": float(v) for p, v in zip(q, values, strict=True)}


def saturated_fraction(x: torch.Tensor, activation: str | None) -> float:
    """Fraction of finite entries on a flat part of the activation's curve.

    An output y is saturated when y <= lo or y >= hi for the activation's
    ``saturation_bounds`` (sigmoid: 0.01 / 0.99, tanh: -0.99 / 0.99, softsign: -0.9 / 0.9;
    Glorot & Bengio 2010). Activations without bounds (ReLU, ...) and ``None`` give 0.
    """
    bounds = _saturation_bounds(activation)
    if bounds is None:
        return 0.0
    x = _values(x)
    finite = torch.isfinite(x)
    n = int(finite.sum())
    sat = ((x <= bounds[0]) | (x >= bounds[1])) & finite
    return int(sat.sum()) / n if n else math.nan


def dead_fraction(x: torch.Tensor) -> float:
    """Fraction of units (dim 1) that are exactly 0 for every sample and position.

    For ReLU outputs these are dead units: their pre-activation is negative for the whole
    batch, so no gradient reaches their weights. A NaN is not 0, so it keeps a unit alive.
    """
    x = _values(x)
    return _np_dead(x.numpy()) if x.device.type == "cpu" else float(_torch_dead(x))


def nonfinite_count(x: torch.Tensor) -> int:
    """Number of NaN and +-Inf entries."""
    return int((~torch.isfinite(_values(x))).sum())


def _range_tensors(x: torch.Tensor, activation: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) as float64 tensors: the activation's natural range, else the finite data's,
    widened by 0.5 each side when constant, (0, 1) when there is no finite entry."""
    natural = activation_info(activation).output_range if activation is not None else None
    if natural is not None:
        bounds = torch.tensor(natural, dtype=torch.float64, device=x.device)
        return bounds[0], bounds[1]
    n = torch.isfinite(x).sum()
    lo, hi = (v.to(torch.float64) for v in _torch_min_max(x, n))
    empty = torch.isnan(lo)
    lo, hi = torch.where(empty, 0.0, lo), torch.where(empty, 1.0, hi)
    constant = lo == hi
    return torch.where(constant, lo - 0.5, lo), torch.where(constant, hi + 0.5, hi)


def histogram_range(x: torch.Tensor, activation: str | None = None) -> tuple[float, float]:
    """The activation's natural output range when it has one (tanh (-1, 1), sigmoid (0, 1)),
    else the range of the finite data; a constant range widens by 0.5 each side (as
    ``numpy.histogram`` does) and a tensor without finite entries gets (0, 1)."""
    lo, hi = torch.stack(_range_tensors(_values(x), activation)).tolist()
    return (float(lo), float(hi))


def _torch_histogram(
    x: torch.Tensor, bins: int, lo: torch.Tensor, hi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """numpy's binning on the device: bin floor((x - lo) / width), x == hi in the last bin."""
    flat = x.reshape(-1).to(torch.float64)
    edges = lo + (hi - lo) * torch.arange(bins + 1, dtype=torch.float64, device=x.device) / bins
    idx = ((flat - lo) * (bins / (hi - lo))).nan_to_num(0.0).floor().clamp(0, bins - 1)
    outside = (flat < lo) | (flat > hi) | ~torch.isfinite(flat)
    idx = torch.where(outside, bins, idx).long()  # bin `bins` collects what is not counted
    # index_add_ rather than bincount, which synchronizes with the host on CUDA
    zeros = torch.zeros(bins + 1, dtype=torch.int64, device=x.device)
    return edges, zeros.index_add_(0, idx, torch.ones_like(idx))[:bins]


def histogram_tensors(
    x: torch.Tensor,
    bins: int = 30,
    range: tuple[float, float] | None = None,
    activation: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`histogram` as tensors on ``x``'s device (float64 edges, int64 counts); off the
    CPU computed without a host synchronization.

    Binning is ``numpy.histogram``'s: equal-width bins [e_i, e_i+1), the last one closed;
    entries outside the range and non-finite entries are not counted.
    """
    if bins < 1:
        raise InitlabError(f"histogram bins must be a positive integer, got {bins}")
    if range is not None and not float(range[1]) > float(range[0]):
        raise InitlabError(f"histogram range must have lo < hi, got {tuple(range)}")
    x = _values(x)
    if x.device.type == "cpu":
        vals = _np_finite(x.numpy())
        if range is None:
            natural = activation_info(activation).output_range if activation else None
            range = natural if natural is not None or vals.size else (0.0, 1.0)
        counts, edges = np.histogram(vals, bins=bins, range=range)
        return torch.from_numpy(edges.astype(np.float64)), torch.from_numpy(counts.astype(np.int64))
    if range is not None:
        bounds = torch.tensor(range, dtype=torch.float64, device=x.device)
        return _torch_histogram(x, bins, bounds[0], bounds[1])
    return _torch_histogram(x, bins, *_range_tensors(x, activation))


def histogram(
    x: torch.Tensor,
    bins: int = 30,
    range: tuple[float, float] | None = None,
    activation: str | None = None,
) -> tuple[list[float], list[int]]:
    """Histogram of the finite entries as ``(edges, counts)``: ``bins + 1`` edges, ``bins`` counts.

    ``range`` defaults to :func:`histogram_range` (the activation's natural range, else the
    data range). Counts equal ``numpy.histogram(x, bins, range)``: entries outside the range
    and NaN/Inf are not counted.
    """
    edges, counts = histogram_tensors(x, bins, range, activation)
    return [float(e) for e in edges.tolist()], [int(c) for c in counts.tolist()]
