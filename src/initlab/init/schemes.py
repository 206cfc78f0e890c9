"""The named initialization schemes: small in-place functions ``name_(tensor, ...) -> Tensor``.

Each takes a weight tensor (``Linear`` ``(out, in)`` or ``ConvNd`` ``(out, in, *kernel)``),
fills it without recording gradients and returns it. The random ones take a
``torch.Generator``; the same generator state gives the same values. Where a scheme is a
variance-scaling rule it is a one-line specialization of :func:`variance_scaling_`, so the
fan conventions (PyTorch's, see :mod:`initlab.init.fans`) are shared by all of them.

References: Glorot & Bengio 2010 (AISTATS), "Understanding the difficulty of training deep
feedforward neural networks"; He et al. 2015 (ICCV), "Delving Deep into Rectifiers";
LeCun et al. 1998, "Efficient BackProp"; Saxe et al. 2014 (ICLR), "Exact solutions to the
nonlinear dynamics of learning in deep linear neural networks"; Xiao et al. 2018 (ICML),
"Dynamical Isometry and a Mean Field Theory of CNNs"; Poole et al. 2016 (NeurIPS),
"Exponential expressivity in deep neural networks through transient chaos"; Schoenholz et
al. 2017 (ICLR), "Deep Information Propagation".
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch

from initlab.errors import InitlabError, check_choice
from initlab.init.fans import gain as activation_gain
from initlab.init.fans import resolve_gain
from initlab.init.meanfield import critical_point
from initlab.init.variance_scaling import sample_truncated_normal_, variance_scaling_

HeMode = Literal["fan_in", "fan_out"]
HE_MODES: tuple[str, ...] = get_args(HeMode)
HeNonlinearity = Literal["relu", "leaky_relu"]
HE_NONLINEARITIES: tuple[str, ...] = get_args(HeNonlinearity)


def _check_number(name: str, value: float, low: float | None = 0.0) -> float:
    if isinstance(value, bool) or not math.isfinite(value) or (low is not None and value < low):
        bound = "" if low is None else f" >= {low:g}"
        raise InitlabError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def _check_conv(tensor: torch.Tensor, scheme: str) -> None:
    if tensor.dim() not in (3, 4, 5):
        raise InitlabError(
            f"{scheme} needs a convolution weight (out, in, *kernel) with 3 to 5 dimensions, "
            f"got shape {list(tensor.shape)}"
        )


# --- constants -------------------------------------------------------------------------


def zeros_(tensor: torch.Tensor) -> torch.Tensor:
    """Fill with 0. Every unit of a layer then computes the same function and receives the
    same gradient, so they never become different: the symmetry problem (Glorot & Bengio
    2010; PROTOCOLS A2).

    >>> zeros_(torch.empty(2, 3)).abs().sum().item()
    0.0
    """
    with torch.no_grad():
        return tensor.zero_()


def constant_(tensor: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """Fill with one value ``w = value`` (symmetric like :func:`zeros_`).

    >>> constant_(torch.empty(2, 2), 0.5).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    _check_number("value", value, low=None)
    with torch.no_grad():
        return tensor.fill_(value)


# --- plain distributions -----------------------------------------------------------------


def normal_(
    tensor: torch.Tensor,
    std: float = 1.0,
    mean: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``w ~ N(mean, std^2)``, whatever the layer's size (e.g. the "std=0.01" of PROTOCOLS B1).

    >>> g = torch.Generator().manual_seed(0)
    >>> round(normal_(torch.empty(500, 500), 0.01, generator=g).std().item(), 3)
    0.01
    """
    _check_number("std", std)
    _check_number("mean", mean, low=None)
    with torch.no_grad():
        return tensor.normal_(mean, std, generator=generator)


def uniform_(
    tensor: torch.Tensor, a: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``w ~ U(-a, a)``: variance ``a^2 / 3``.

    >>> g = torch.Generator().manual_seed(0)
    >>> bool(uniform_(torch.empty(100, 100), 0.1, generator=g).abs().max() <= 0.1)
    True
    """
    _check_number("a", a)
    with torch.no_grad():
        return tensor.uniform_(-a, a, generator=generator)


def truncated_normal_(
    tensor: torch.Tensor,
    std: float = 1.0,
    mean: float = 0.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``w = mean + std * x``, ``x ~ N(0, 1)`` conditioned on ``a <= x <= b``.

    ``a`` and ``b`` are in units of ``std`` (default: cut at 2 std). ``std`` is that of the
    parent normal; the drawn values have the smaller std
    ``std * truncated_normal_std(a, b)`` (0.8796 std for [-2, 2]).

    >>> g = torch.Generator().manual_seed(0)
    >>> w = truncated_normal_(torch.empty(100, 100), 0.1, generator=g)
    >>> bool(w.abs().max() <= 0.2)
    True
    """
    return sample_truncated_normal_(tensor, mean, std, a, b, generator)


def standard_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The "commonly used heuristic" of Glorot & Bengio 2010, eq. 1:
    ``w ~ U[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, i.e. variance ``1 / (3 fan_in)``.

    This is PyTorch's default for ``nn.Linear`` and ``nn.ConvNd`` weights
    (``kaiming_uniform_(a=sqrt(5))`` gives the same bound), so it is equal in distribution
    to a freshly constructed layer. ``variance_scaling_(scale=1/3, mode="fan_in",
    distribution="uniform")``.

    >>> g = torch.Generator().manual_seed(0)
    >>> bool(standard_(torch.empty(10, 400), generator=g).abs().max() <= 1 / 20)
    True
    """
    return variance_scaling_(tensor, 1.0 / 3.0, "fan_in", "uniform", generator)


# --- Glorot / He / LeCun -----------------------------------------------------------------


def xavier_normal_(
    tensor: torch.Tensor, gain: float | str = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Glorot & Bengio 2010 ("normalized" init, normal form):
    ``w ~ N(0, gain^2 * 2 / (fan_in + fan_out))``.

    ``gain`` is a number or an activation name (see :func:`initlab.init.fans.gain`).
    ``variance_scaling_(scale=gain^2, mode="fan_avg", distribution="normal")``.

    >>> g = torch.Generator().manual_seed(0)
    >>> round(xavier_normal_(torch.empty(300, 500), generator=g).std().item(), 3)
    0.05
    """
    return variance_scaling_(tensor, resolve_gain(gain) ** 2, "fan_avg", "normal", generator)


def xavier_uniform_(
    tensor: torch.Tensor, gain: float | str = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Glorot & Bengio 2010, eq. 16 ("normalized initialization"):
    ``w ~ U[-gain sqrt(6 / (fan_in + fan_out)), gain sqrt(6 / (fan_in + fan_out))]``.

    ``variance_scaling_(scale=gain^2, mode="fan_avg", distribution="uniform")``.

    >>> g = torch.Generator().manual_seed(0)
    >>> w = xavier_uniform_(torch.empty(300, 500), "tanh", generator=g)
    >>> bool(w.abs().max() <= 5 / 3 * (6 / 800) ** 0.5)
    True
    """
    return variance_scaling_(tensor, resolve_gain(gain) ** 2, "fan_avg", "uniform", generator)


def _he_scale(negative_slope: float, mode: str, nonlinearity: str) -> float:
    check_choice(mode, HE_MODES, "He mode")
    check_choice(nonlinearity, HE_NONLINEARITIES, "He nonlinearity")
    _check_number("negative_slope", negative_slope)
    if nonlinearity == "relu" and negative_slope != 0:
        raise InitlabError(
            f"negative_slope={negative_slope} needs nonlinearity='leaky_relu' (relu has slope 0)"
        )
    return activation_gain("leaky_relu", negative_slope) ** 2


def he_normal_(
    tensor: torch.Tensor,
    negative_slope: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """He et al. 2015, eq. 10: ``w ~ N(0, 2 / ((1 + negative_slope^2) fan))``.

    ``fan`` is ``fan_in`` (preserves forward variance) or ``fan_out`` (backward, eq. 14).
    ``negative_slope=0`` (default) is ReLU; ``nonlinearity`` is ``"leaky_relu"`` (honours the
    slope) or ``"relu"`` (slope must be 0), as in ``torch.nn.init.kaiming_normal_``.
    ``variance_scaling_(scale=2 / (1 + negative_slope^2), mode, distribution="normal")``.

    >>> g = torch.Generator().manual_seed(0)
    >>> round(he_normal_(torch.empty(400, 800), generator=g).std().item(), 3)
    0.05
    """
    scale = _he_scale(negative_slope, mode, nonlinearity)
    return variance_scaling_(tensor, scale, mode, "normal", generator)


def he_uniform_(
    tensor: torch.Tensor,
    negative_slope: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """He et al. 2015, uniform form: ``w ~ U[-b, b]``, ``b = sqrt(6 / ((1 + slope^2) fan))``.

    ``variance_scaling_(scale=2 / (1 + negative_slope^2), mode, distribution="uniform")``.

    >>> g = torch.Generator().manual_seed(0)
    >>> bool(he_uniform_(torch.empty(100, 600), generator=g).abs().max() <= 0.1)
    True
    """
    scale = _he_scale(negative_slope, mode, nonlinearity)
    return variance_scaling_(tensor, scale, mode, "uniform", generator)


def lecun_normal_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """LeCun et al. 1998, section 4.6: ``w ~ N(0, 1 / fan_in)`` (unit-variance outputs for a
    linear unit; the self-normalising init of SELU; the "Xavier" of many textbooks).

    ``variance_scaling_(scale=1, mode="fan_in", distribution="normal")``. (JAX's
    ``lecun_normal`` uses a truncated normal: ``variance_scaling:distribution=truncated_normal``.)

    >>> g = torch.Generator().manual_seed(0)
    >>> round(lecun_normal_(torch.empty(400, 100), generator=g).std().item(), 2)
    0.1
    """
    return variance_scaling_(tensor, 1.0, "fan_in", "normal", generator)


def lecun_uniform_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """LeCun et al. 1998, uniform form: ``w ~ U[-sqrt(3 / fan_in), sqrt(3 / fan_in)]``.

    ``variance_scaling_(scale=1, mode="fan_in", distribution="uniform")``.

    >>> g = torch.Generator().manual_seed(0)
    >>> bool(lecun_uniform_(torch.empty(10, 300), generator=g).abs().max() <= 0.1)
    True
    """
    return variance_scaling_(tensor, 1.0, "fan_in", "uniform", generator)


# --- orthogonal family -------------------------------------------------------------------


def orthogonal_(
    tensor: torch.Tensor, gain: float | str = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Saxe et al. 2014: a random (semi-)orthogonal matrix times ``gain``.

    The weight is viewed as ``W`` of shape ``(out, in * kernel)``; ``W W^T = gain^2 I`` when
    ``out <= in * kernel`` (rows orthonormal), else ``W^T W = gain^2 I``. Algorithm (Mezzadri
    2007, so that ``W`` is Haar-distributed): draw ``A`` with i.i.d. N(0, 1) entries, take
    ``A = QR``, multiply each column of ``Q`` by the sign of ``R``'s diagonal. The draw order
    is that of ``torch.nn.init.orthogonal_``.

    >>> g = torch.Generator().manual_seed(0)
    >>> w = orthogonal_(torch.empty(3, 5), 2.0, generator=g)
    >>> torch.allclose(w @ w.T, 4 * torch.eye(3), atol=1e-5)
    True
    """
    scale = resolve_gain(gain)
    if tensor.dim() < 2:
        raise InitlabError(f"orthogonal needs a weight with >= 2 dimensions, got {tensor.dim()}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.size(0)
    cols = tensor.numel() // rows
    work_dtype = tensor.dtype if tensor.dtype in (torch.float32, torch.float64) else torch.float32
    with torch.no_grad():
        # 1. Gaussian matrix, tall (transpose a wide one so QR gives orthonormal columns)
        flat = torch.empty((rows, cols), dtype=work_dtype, device=tensor.device)
        flat.normal_(0.0, 1.0, generator=generator)
        if rows < cols:
            flat.t_()
        # 2. QR, with the signs fixed so that Q is uniform over the orthogonal group
        q, r = torch.linalg.qr(flat)
        q *= torch.diagonal(r).sign()
        if rows < cols:
            q.t_()
        # 3. copy back and scale
        tensor.view_as(q).copy_(q)
        return tensor.mul_(scale)


def identity_(tensor: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """``W = gain * I`` for a 2-D weight (rectangular: ones on the main diagonal).

    With ``fan_in = fan_out`` a linear layer passes its input through unchanged (Le et al.
    2015 use it for ReLU recurrent nets).

    >>> identity_(torch.empty(2, 3)).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    if tensor.dim() != 2:
        raise InitlabError(
            f"identity needs a 2-D weight (a Linear layer); got shape {list(tensor.shape)} "
            "(use dirac for convolutions)"
        )
    value = _check_number("gain", gain)
    with torch.no_grad():
        eye = torch.eye(*tensor.shape, dtype=tensor.dtype, device=tensor.device)
        return tensor.copy_(eye).mul_(value)


def _centre(tensor: torch.Tensor) -> tuple[int, ...]:
    return tuple(k // 2 for k in tensor.shape[2:])


def dirac_(tensor: torch.Tensor, gain: float = 1.0, groups: int = 1) -> torch.Tensor:
    """The Dirac delta for convolutions: ``W[g*m + i, i, centre] = gain``, zero elsewhere.

    A convolution with this kernel (and 'same' padding) copies its first ``min(out, in)``
    input channels to its output (per group when ``groups > 1``); ``centre`` is
    ``k // 2`` in every spatial dimension, as in ``torch.nn.init.dirac_``.

    >>> w = dirac_(torch.empty(2, 2, 3))
    >>> w[:, :, 1].tolist(), w.sum().item()
    ([[1.0, 0.0], [0.0, 1.0]], 2.0)
    """
    _check_conv(tensor, "dirac")
    value = _check_number("gain", gain)
    if isinstance(groups, bool) or groups < 1 or tensor.size(0) % groups != 0:
        raise InitlabError(
            f"dirac groups must be a positive divisor of out_channels {tensor.size(0)}, "
            f"got {groups}"
        )
    per_group = tensor.size(0) // groups
    diagonal = torch.arange(min(per_group, tensor.size(1)), device=tensor.device)
    with torch.no_grad():
        tensor.zero_()
        for g in range(groups):
            tensor[(g * per_group + diagonal, diagonal, *_centre(tensor))] = value
    return tensor


def delta_orthogonal_(
    tensor: torch.Tensor, gain: float | str = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Xiao et al. 2018, Algorithm 2: ``W[:, :, centre] = gain * H``, zero elsewhere.

    ``H`` is an ``(out, in)`` random matrix with orthonormal columns (``H^T H = I``, drawn as
    in :func:`orthogonal_`), so the convolution is an isometry at initialization. Needs
    ``in_channels <= out_channels`` (``weight.shape[1] <= weight.shape[0]``).

    >>> g = torch.Generator().manual_seed(0)
    >>> w = delta_orthogonal_(torch.empty(4, 3, 3, 3), generator=g)
    >>> h = w[:, :, 1, 1]
    >>> torch.allclose(h.T @ h, torch.eye(3), atol=1e-5), w.abs().sum().item() > 0
    (True, True)
    """
    _check_conv(tensor, "delta_orthogonal")
    out_channels, in_channels = tensor.shape[:2]
    if in_channels > out_channels:
        raise InitlabError(
            f"delta_orthogonal needs in_channels <= out_channels, got weight shape "
            f"{list(tensor.shape)} (in={in_channels} > out={out_channels})"
        )
    with torch.no_grad():
        centre_matrix = orthogonal_(tensor.new_empty(out_channels, in_channels), gain, generator)
        tensor.zero_()
        tensor[(slice(None), slice(None), *_centre(tensor))] = centre_matrix
    return tensor


# --- edge of chaos -----------------------------------------------------------------------


def critical_(
    tensor: torch.Tensor,
    sigma_b2: float = 0.05,
    activation: str = "tanh",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Edge-of-chaos init (Poole et al. 2016; Schoenholz et al. 2017):
    ``w ~ N(0, sigma_w^2 / fan_in)`` with ``sigma_w^2`` on the critical line ``chi_1 = 1``
    for the bias variance ``sigma_b2`` (see :func:`initlab.init.meanfield.critical_point`).

    Biases go with it: ``b ~ N(0, sigma_b2)`` (the "critical" bias rule of
    :func:`initlab.init.initialize`). ``sigma_b2 = 0`` gives ``sigma_w^2 = 1`` (LeCun);
    the default 0.05 gives ``sigma_w^2 = 1.761``.
    ``variance_scaling_(scale=sigma_w^2, mode="fan_in", distribution="normal")``.

    >>> g = torch.Generator().manual_seed(0)
    >>> round(critical_(torch.empty(500, 500), generator=g).var().item() * 500, 1)
    1.8
    """
    sigma_w2, _ = critical_point(_check_number("sigma_b2", sigma_b2), activation)
    return variance_scaling_(tensor, sigma_w2, "fan_in", "normal", generator)


def critical_orthogonal_(
    tensor: torch.Tensor,
    sigma_b2: float = 0.05,
    activation: str = "tanh",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Orthogonal weights at the edge of chaos (Pennington et al. 2017; Xiao et al. 2018).

    ``W = sqrt(sigma_w^2) Q`` with ``Q`` Haar orthogonal (:func:`orthogonal_`) for a Linear
    weight, and the delta-orthogonal kernel (:func:`delta_orthogonal_`, Xiao et al. 2018,
    Algorithm 2) for a convolution, where ``sigma_w^2`` is on the critical line
    ``chi_1 = 1`` for ``sigma_b2`` (:func:`initlab.init.meanfield.critical_point`).
    Biases ``b ~ N(0, sigma_b2)`` (the "critical" bias rule). A square ``W`` has
    ``W W^T = sigma_w^2 I``: every singular value of the layer's Jacobian at init is
    ``sigma_w phi'``, which is what gives deep tanh networks *dynamical isometry* (the
    input-output Jacobian's singular values concentrate near 1) where Gaussian weights of
    the same variance do not.

    >>> g = torch.Generator().manual_seed(0)
    >>> w = critical_orthogonal_(torch.empty(4, 4), generator=g)
    >>> torch.allclose(w @ w.T, 1.7611 * torch.eye(4), atol=1e-3)
    True
    """
    sigma_w2, _ = critical_point(_check_number("sigma_b2", sigma_b2), activation)
    if tensor.dim() > 2:
        return delta_orthogonal_(tensor, math.sqrt(sigma_w2), generator)
    return orthogonal_(tensor, math.sqrt(sigma_w2), generator)


# Aliases: the same functions under their other common names.
glorot_normal_ = xavier_normal_
glorot_uniform_ = xavier_uniform_
kaiming_normal_ = he_normal_
kaiming_uniform_ = he_uniform_

__all__ = [
    "HE_MODES",
    "HE_NONLINEARITIES",
    "HeMode",
    "HeNonlinearity",
    "constant_",
    "critical_",
    "critical_orthogonal_",
    "delta_orthogonal_",
    "dirac_",
    "glorot_normal_",
    "glorot_uniform_",
    "he_normal_",
    "he_uniform_",
    "identity_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "lecun_normal_",
    "lecun_uniform_",
    "normal_",
    "orthogonal_",
    "standard_",
    "truncated_normal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]
