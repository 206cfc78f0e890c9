"""The named initialization schemes: small in-place functions ``name_(tensor, ...) -> Tensor``.

Each takes a weight tensor (``Linear`` ``(out, in)`` or ``ConvNd`` ``(out, in, *kernel)``),
fills it without recording gradients and returns it. The random ones take a
``torch.Generator``; the same generator state gives the same values. Where a scheme is a
variance-scaling rule it is a one-line specialization of :func:`variance_scaling_`, so the
fan conventions (PyTorch's, see :mod:`initlab.init.fans`) are shared by all of them. The
functions named as in ``torch.nn.init`` (``normal_``, ``xavier_uniform_``, ``kaiming_*``,
``orthogonal_``, ...) live in :mod:`initlab.init.nn_init` with torch's signatures; this
module holds initlab's own schemes and the JAX/Keras truncated-normal forms.

References: Glorot & Bengio 2010 (AISTATS), "Understanding the difficulty of training deep
feedforward neural networks"; He et al. 2015 (ICCV), "Delving Deep into Rectifiers";
LeCun et al. 1998, "Efficient BackProp"; Saxe et al. 2014 (ICLR), "Exact solutions to the
nonlinear dynamics of learning in deep linear neural networks"; Xiao et al. 2018 (ICML),
"Dynamical Isometry and a Mean Field Theory of CNNs"; Poole et al. 2016 (NeurIPS),
"Exponential expressivity in deep neural networks through transient chaos"; Schoenholz et
al. 2017 (ICLR), "Deep Information Propagation"; Klambauer et al. 2017 (NeurIPS),
"Self-Normalizing Neural Networks".
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch

from initlab.errors import InitlabError, check_choice
from initlab.init.fans import gain as activation_gain
from initlab.init.fans import resolve_gain
from initlab.init.meanfield import critical_point
from initlab.init.nn_init import kaiming_std, orthogonal_, xavier_normal_, xavier_uniform_
from initlab.init.variance_scaling import (
    draw_scaled_,
    sample_truncated_normal_,
    variance_scaling_,
    warn_if_empty,
)

HeMode = Literal["fan_in", "fan_out"]
HE_MODES: tuple[str, ...] = get_args(HeMode)
HeNonlinearity = Literal["relu", "leaky_relu"]
HE_NONLINEARITIES: tuple[str, ...] = get_args(HeNonlinearity)


def _check_number(name: str, value: float, low: float | None = 0.0) -> float:
    bad = isinstance(value, bool) or not isinstance(value, int | float)
    if bad or not math.isfinite(value) or (low is not None and value < low):
        bound = "" if low is None else f" >= {low:g}"
        raise InitlabError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def _check_conv(tensor: torch.Tensor, scheme: str) -> None:
    if tensor.dim() not in (3, 4, 5):
        raise InitlabError(
            f"{scheme} needs a convolution weight (out, in, *kernel) with 3 to 5 dimensions, "
            f"got shape {list(tensor.shape)}"
        )


# --- plain distributions -----------------------------------------------------------------


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
    ``std * truncated_normal_std(a, b)`` (0.8796 std for [-2, 2]). Sampled by inversion
    (one uniform per value). This is initlab's form; ``torch.nn.init.trunc_normal_(tensor,
    mean, std, a, b)`` takes absolute bounds and is :func:`initlab.init.trunc_normal_`.
    Complex tensors are refused (a cut at [a, b] has no complex meaning).

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


def _he_scale(negative_slope: float, mode: str, nonlinearity: str) -> float:
    """``2 / (1 + negative_slope^2)``, the He variance scale, with the arguments checked."""
    check_choice(mode, HE_MODES, "He mode")
    check_choice(nonlinearity, HE_NONLINEARITIES, "He nonlinearity")
    _check_number("negative_slope", negative_slope)
    if nonlinearity == "relu" and negative_slope != 0:
        raise InitlabError(
            f"negative_slope={negative_slope} needs nonlinearity='leaky_relu' (relu has slope 0)"
        )
    return activation_gain("leaky_relu", negative_slope) ** 2


def _he_std(tensor: torch.Tensor, negative_slope: float, mode: str, nonlinearity: str) -> float:
    _he_scale(negative_slope, mode, nonlinearity)
    return kaiming_std(tensor, negative_slope, mode, "leaky_relu")


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
    slope) or ``"relu"`` (slope must be 0). The same values as
    ``torch.nn.init.kaiming_normal_`` (and :func:`initlab.init.kaiming_normal_`), with its
    arguments checked: torch ignores a slope given with ``"relu"``, this refuses it.
    ``variance_scaling_(scale=2 / (1 + negative_slope^2), mode, distribution="normal")``.

    >>> g = torch.Generator().manual_seed(0)
    >>> round(he_normal_(torch.empty(400, 800), generator=g).std().item(), 3)
    0.05
    """
    std = _he_std(tensor, negative_slope, mode, nonlinearity)
    if warn_if_empty(tensor):
        return tensor
    return draw_scaled_(tensor, std, "normal", generator)


def he_uniform_(
    tensor: torch.Tensor,
    negative_slope: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """He et al. 2015, uniform form: ``w ~ U[-b, b]``, ``b = sqrt(6 / ((1 + slope^2) fan))``.

    The values of ``torch.nn.init.kaiming_uniform_``, arguments checked as in
    :func:`he_normal_`.
    ``variance_scaling_(scale=2 / (1 + negative_slope^2), mode, distribution="uniform")``.

    >>> g = torch.Generator().manual_seed(0)
    >>> bool(he_uniform_(torch.empty(100, 600), generator=g).abs().max() <= 0.1)
    True
    """
    std = _he_std(tensor, negative_slope, mode, nonlinearity)
    if warn_if_empty(tensor):
        return tensor
    return draw_scaled_(tensor, std, "uniform", generator)


def lecun_normal_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """LeCun et al. 1998, section 4.6: ``w ~ N(0, 1 / fan_in)`` (unit-variance outputs for a
    linear unit; the self-normalising init of SELU; the "Xavier" of many textbooks).

    ``variance_scaling_(scale=1, mode="fan_in", distribution="normal")``. (JAX's and Keras's
    ``lecun_normal`` is a truncated normal: :func:`lecun_truncated_normal_`.)

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


# --- JAX / Keras: the truncated-normal forms -----------------------------------------------


def glorot_truncated_normal_(
    tensor: torch.Tensor, gain: float | str = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Glorot & Bengio 2010 from a truncated normal, as JAX's ``glorot_normal`` and Keras's
    ``GlorotNormal`` draw it: ``w = s x``, ``x ~ N(0, 1)`` cut to [-2, 2],
    ``s = gain * sqrt(2 / (fan_in + fan_out)) / 0.87962566``, so that the drawn values have
    variance ``gain^2 * 2 / (fan_in + fan_out)`` (no value beyond 2.27 times that std).

    ``variance_scaling_(scale=gain^2, mode="fan_avg", distribution="truncated_normal")``.

    >>> g = torch.Generator().manual_seed(0)
    >>> w = glorot_truncated_normal_(torch.empty(300, 500), generator=g)
    >>> round(w.std().item(), 3), bool(w.abs().max() <= 2 * 0.05 / 0.87962566 + 1e-6)
    (0.05, True)
    """
    scale = resolve_gain(gain) ** 2
    return variance_scaling_(tensor, scale, "fan_avg", "truncated_normal", generator)


def he_truncated_normal_(
    tensor: torch.Tensor,
    negative_slope: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """He et al. 2015 from a truncated normal, as JAX's ``he_normal`` and Keras's
    ``HeNormal`` draw it: variance ``2 / ((1 + negative_slope^2) fan)`` after the cut at 2
    parent stds (parent std divided by 0.87962566). Arguments as in :func:`he_normal_`.

    ``variance_scaling_(scale=2 / (1 + slope^2), mode, distribution="truncated_normal")``.

    >>> g = torch.Generator().manual_seed(0)
    >>> round(he_truncated_normal_(torch.empty(400, 800), generator=g).std().item(), 3)
    0.05
    """
    scale = _he_scale(negative_slope, mode, nonlinearity)
    return variance_scaling_(tensor, scale, mode, "truncated_normal", generator)


def lecun_truncated_normal_(
    tensor: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """LeCun et al. 1998 from a truncated normal, as JAX's ``lecun_normal`` and Keras's
    ``LecunNormal`` draw it (the init of self-normalizing SELU networks, Klambauer et al.
    2017): variance ``1 / fan_in`` after the cut at 2 parent stds.

    ``variance_scaling_(scale=1, mode="fan_in", distribution="truncated_normal")``.

    >>> g = torch.Generator().manual_seed(0)
    >>> round(lecun_truncated_normal_(torch.empty(400, 100), generator=g).std().item(), 2)
    0.1
    """
    return variance_scaling_(tensor, 1.0, "fan_in", "truncated_normal", generator)


# --- orthogonal family -------------------------------------------------------------------


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


def same_padding_centre(kernel: tuple[int, ...] | torch.Size) -> tuple[int, ...]:
    """The kernel tap ``padding="same"`` aligns with the output position: ``(k - 1) // 2``.

    PyTorch's (and JAX's) 'same' padding puts ``(k - 1) // 2`` zeros before the input and
    the rest after, so output ``i`` sees input ``i`` through tap ``(k - 1) // 2``. For odd
    ``k`` that is ``k // 2`` (the middle); for even ``k`` it is one less.

    >>> same_padding_centre((1, 2, 3, 4, 5))
    (0, 0, 1, 1, 2)
    """
    return tuple((k - 1) // 2 for k in kernel)


def delta_orthogonal_(
    tensor: torch.Tensor, gain: float | str = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Xiao et al. 2018, Algorithm 2: ``W[:, :, c] = gain * H``, zero elsewhere.

    ``H`` is an ``(out, in)`` random matrix with orthonormal columns (``H^T H = I``, drawn as
    in :func:`orthogonal_`), so the convolution is an isometry at initialization. Needs
    ``in_channels <= out_channels`` (``weight.shape[1] <= weight.shape[0]``). The tap ``c``
    is ``(k - 1) // 2`` per dimension (:func:`same_padding_centre`, JAX's choice), so that a
    convolution with ``padding="same"`` preserves the norm for even kernel sizes too.

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
        tensor[(slice(None), slice(None), *same_padding_centre(tensor.shape[2:]))] = centre_matrix
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


# Aliases: the same functions under their other common names (PyTorch's Glorot forms; JAX's
# and Keras's glorot_normal is glorot_truncated_normal_).
glorot_normal_ = xavier_normal_
glorot_uniform_ = xavier_uniform_

__all__ = [
    "HE_MODES",
    "HE_NONLINEARITIES",
    "HeMode",
    "HeNonlinearity",
    "critical_",
    "critical_orthogonal_",
    "delta_orthogonal_",
    "glorot_normal_",
    "glorot_truncated_normal_",
    "glorot_uniform_",
    "he_normal_",
    "he_truncated_normal_",
    "he_uniform_",
    "identity_",
    "lecun_normal_",
    "lecun_truncated_normal_",
    "lecun_uniform_",
    "same_padding_centre",
    "standard_",
    "truncated_normal_",
]
