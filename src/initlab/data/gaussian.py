"""Gaussian inputs for signal-propagation studies (no training, no data files).

The "weight initial value" chapter of the from-scratch book feeds ``x = randn(1000, 100)``
through a deep net and looks at the activation histograms; mean-field analyses (Poole et al.
2016, Schoenholz et al. 2017) assume i.i.d. Gaussian inputs of a given variance ``q0``. Both
are ``mean + std * N(0, 1)`` samples of shape ``[n, dim]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from initlab.data._rng import make_generator
from initlab.errors import InitlabError


def gaussian_inputs(
    n: int,
    dim: int,
    seed: int | None = None,
    *,
    generator: torch.Generator | None = None,
    mean: float = 0.0,
    std: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``[n, dim]`` i.i.d. samples of ``N(mean, std^2)``, from ``seed`` or ``generator``.

    >>> gaussian_inputs(1000, 100, seed=0).shape
    torch.Size([1000, 100])
    """
    if n < 1 or dim < 1:
        raise InitlabError(f"gaussian_inputs needs n >= 1 and dim >= 1, got n={n}, dim={dim}")
    if std < 0:
        raise InitlabError(f"std must be >= 0, got {std}")
    gen = make_generator(seed, generator)
    x = torch.randn(n, dim, generator=gen, dtype=dtype)
    return x.mul_(std).add_(mean)
