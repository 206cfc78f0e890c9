"""Every function of ``torch.nn.init``, with torch's signature and torch's values.

``from initlab import init`` can stand in for ``import torch.nn.init as init``: each name
here takes torch's positional and keyword arguments in torch's order, with torch's
defaults, and for the same generator state returns what torch returns, bit for bit
(the same sampler calls in the same order; ``trunc_normal_`` is torch's own sampler).
initlab's extra options are keyword-only. The deliberate differences, each said in the
function's docstring and tested in ``tests/init/test_nn_init_differences.py``:

- bad arguments raise :class:`~initlab.errors.InitlabError` (a ``ValueError``) with one
  line, where torch raises a ``RuntimeError`` or ``ZeroDivisionError`` from deep inside
  or silently fills garbage (negative std, ``a > b``, ``groups=0``, a negative sparsity);
- ``xavier_*`` warn "Initializing zero-element tensors is a no-op" on an empty tensor as
  torch's ``kaiming_*`` do (torch's ``xavier_*`` say nothing, or divide by zero);
- ``xavier_*`` and ``kaiming_*`` draw complex tensors as JAX does (uniform on a disk, so
  that ``E|w|^2`` is the intended variance; torch's uniform gives twice that);
  ``orthogonal_`` draws a Haar-random unitary matrix for complex tensors (torch fails);
- ``sparse_`` draws its zero positions from ``generator`` too (torch's draws them from
  the global generator even when given one); with ``generator=None`` it matches torch;
- ``gain`` arguments also take an activation name (``xavier_normal_(w, "tanh")``) and
  ``calculate_gain`` knows initlab's extra activations (see :func:`.fans.calculate_gain`).

As in torch, ``uniform_``, ``normal_``, ``constant_`` and ``kaiming_uniform_`` hand a tensor
subclass that overrides ``__torch_function__`` to its override. The deprecated
non-underscore names (``uniform``, ``normal``, ..., ``sparse``) warn with a
``FutureWarning`` as torch's do and then call the underscore function.

References: Glorot & Bengio 2010 (AISTATS); He et al. 2015 (ICCV), "Delving Deep into
Rectifiers"; Saxe et al. 2014 (ICLR), "Exact solutions to the nonlinear dynamics of
learning in deep linear neural networks"; Martens 2010 (ICML), "Deep learning via
Hessian-free optimization" (sparse init).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

from initlab.errors import InitlabError
from initlab.init.fans import calculate_gain, compute_fans, resolve_gain
from initlab.init.variance_scaling import draw_scaled_, warn_if_empty

TORCH_FAN_MODES: tuple[str, ...] = ("fan_in", "fan_out")


def finite_number(name: str, value: float, low: float | None = None) -> float:
    """``value`` as a float if it is a finite number (>= ``low``), else a one-line error.

    >>> finite_number("std", 2)
    2.0
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InitlabError(f"{name} must be a finite number, got {value!r}")
    if low is not None and value < low:
        raise InitlabError(f"{name} must be >= {low:g}, got {value!r}")
    return float(value)


# --- constants -------------------------------------------------------------------------


def zeros_(tensor: torch.Tensor) -> torch.Tensor:
    """Fill with 0 (``torch.nn.init.zeros_``). Every unit of a layer then computes the same
    function and gets the same gradient, so they never become different: the symmetry
    problem (Glorot & Bengio 2010; PROTOCOLS A2).

    >>> zeros_(torch.ones(2, 3)).abs().sum().item()
    0.0
    """
    with torch.no_grad():
        return tensor.zero_()


def ones_(tensor: torch.Tensor) -> torch.Tensor:
    """Fill with 1 (``torch.nn.init.ones_``); symmetric like :func:`zeros_`.

    >>> ones_(torch.empty(2)).tolist()
    [1.0, 1.0]
    """
    with torch.no_grad():
        return tensor.fill_(1.0)


def constant_(tensor: torch.Tensor, val: float) -> torch.Tensor:
    """Fill with one value ``w = val`` (``torch.nn.init.constant_``; symmetric like zeros).

    >>> constant_(torch.empty(2, 2), 0.5).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    if torch.overrides.has_torch_function_variadic(tensor):  # tensor subclasses, as torch
        return torch.overrides.handle_torch_function(constant_, (tensor,), tensor=tensor, val=val)
    with torch.no_grad():
        return tensor.fill_(val)


def eye_(tensor: torch.Tensor) -> torch.Tensor:
    """The identity matrix for a 2-D weight (``torch.nn.init.eye_``): ones on the main
    diagonal, so a ``Linear`` layer passes through as many inputs as it can. (For a scaled
    identity see :func:`initlab.init.identity_`.)

    >>> eye_(torch.empty(2, 3)).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    if tensor.dim() != 2:
        raise InitlabError(
            f"Only tensors with 2 dimensions are supported (eye_ got shape {list(tensor.shape)})"
        )
    with torch.no_grad():
        return tensor.copy_(torch.eye(*tensor.shape, dtype=tensor.dtype, device=tensor.device))


def dirac_(tensor: torch.Tensor, groups: int = 1, *, gain: float = 1.0) -> torch.Tensor:
    """The Dirac delta for convolutions (``torch.nn.init.dirac_``):
    ``W[g * m + i, i, k1 // 2, ..., kn // 2] = gain`` for ``i < min(m, in)``, ``m = out /
    groups``, zero elsewhere.

    A convolution with this kernel (odd kernel sizes, 'same' padding) copies its first
    ``min(m, in)`` input channels of each group to its output. The tap is ``k // 2`` in
    every dimension, torch's choice; for even ``k`` that is one past the tap ``padding=
    "same"`` centres on (``(k - 1) // 2``), so the copy is shifted by one position (see
    :func:`initlab.init.delta_orthogonal_`, which uses the 'same' centre). initlab extra:
    the keyword-only ``gain`` (torch's value is 1).

    >>> w = dirac_(torch.empty(2, 2, 3))
    >>> w[:, :, 1].tolist(), w.sum().item()
    ([[1.0, 0.0], [0.0, 1.0]], 2.0)
    """
    if tensor.dim() not in (3, 4, 5):
        raise InitlabError(
            "Only tensors with 3, 4, or 5 dimensions are supported (dirac_ got shape "
            f"{list(tensor.shape)})"
        )
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise InitlabError(f"dirac_ groups must be a positive int, got {groups!r}")
    if tensor.size(0) % groups != 0:
        raise InitlabError(
            f"dim 0 must be divisible by groups (dirac_ got {tensor.size(0)} output channels "
            f"and groups={groups})"
        )
    value = finite_number("gain", gain)
    per_group = tensor.size(0) // groups
    diagonal = torch.arange(min(per_group, tensor.size(1)), device=tensor.device)
    centre = tuple(k // 2 for k in tensor.shape[2:])
    with torch.no_grad():
        tensor.zero_()
        for g in range(groups):
            tensor[(g * per_group + diagonal, diagonal, *centre)] = value
    return tensor


# --- plain distributions -----------------------------------------------------------------


def uniform_(
    tensor: torch.Tensor,
    a: float = 0.0,
    b: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``w ~ U(a, b)`` (``torch.nn.init.uniform_``), whatever the layer's size.

    A complex tensor gets real and imaginary parts independently from ``U(a, b)``, as in
    torch. ``a > b`` or a non-finite bound is refused (torch raises a ``RuntimeError``).
    The registry's ``uniform:a=X`` scheme is the symmetric ``U(-X, X)``.

    >>> g = torch.Generator().manual_seed(0)
    >>> w = uniform_(torch.empty(100, 100), -0.1, 0.3, generator=g)
    >>> bool(w.min() >= -0.1), bool(w.max() <= 0.3)
    (True, True)
    """
    if torch.overrides.has_torch_function_variadic(tensor):  # tensor subclasses, as torch
        return torch.overrides.handle_torch_function(
            uniform_, (tensor,), tensor=tensor, a=a, b=b, generator=generator
        )
    low, high = finite_number("a", a), finite_number("b", b)
    if low > high:
        raise InitlabError(f"uniform_ needs a <= b, got a={a}, b={b}")
    with torch.no_grad():
        return tensor.uniform_(low, high, generator=generator)


def normal_(
    tensor: torch.Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``w ~ N(mean, std^2)`` (``torch.nn.init.normal_``), whatever the layer's size (e.g.
    the "std=0.01" of PROTOCOLS B1).

    A complex tensor gets a circular complex normal, ``E|w - mean|^2 = std^2`` (real and
    imaginary parts each of variance ``std^2 / 2``), as in torch and JAX. A negative or
    non-finite std or mean is refused (torch raises a ``RuntimeError`` for std < 0).

    >>> g = torch.Generator().manual_seed(0)
    >>> round(normal_(torch.empty(500, 500), 0.0, 0.01, generator=g).std().item(), 3)
    0.01
    """
    if torch.overrides.has_torch_function_variadic(tensor):  # tensor subclasses, as torch
        return torch.overrides.handle_torch_function(
            normal_, (tensor,), tensor=tensor, mean=mean, std=std, generator=generator
        )
    finite_number("mean", mean)
    finite_number("std", std, low=0.0)
    with torch.no_grad():
        return tensor.normal_(mean, std, generator=generator)


def trunc_normal_(
    tensor: torch.Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``w ~ N(mean, std^2)`` conditioned on ``a <= w <= b`` (``torch.nn.init.trunc_normal_``).

    ``a`` and ``b`` are absolute bounds (not in std units; for those see
    :func:`initlab.init.truncated_normal_`). The values are drawn by torch's own sampler
    (rejection), so they are torch's for the same generator state. ``std`` is the parent
    normal's: the drawn values have a smaller std (0.8796 std for the default [-2, 2] with
    ``mean=0, std=1``). Refused with a one-line error: ``std <= 0``, ``a >= b``, non-finite
    mean or std, and complex tensors (as in torch and JAX's ``truncated_normal``; for
    complex weights, ``variance_scaling_(..., distribution="truncated_normal")``).

    >>> g = torch.Generator().manual_seed(0)
    >>> w = trunc_normal_(torch.empty(100, 100), 0.0, 0.1, -0.2, 0.2, generator=g)
    >>> bool(w.abs().max() <= 0.2)
    True
    """
    finite_number("mean", mean)
    if finite_number("std", std) <= 0:
        raise InitlabError(f"trunc_normal_ needs std > 0, got {std!r}")
    if math.isnan(a) or math.isnan(b) or not a < b:
        raise InitlabError(f"trunc_normal_ needs bounds a < b, got a={a}, b={b}")
    if tensor.is_complex():
        raise InitlabError(
            f"trunc_normal_ needs a real tensor, got {tensor.dtype}; for complex weights use "
            "variance_scaling_(..., distribution='truncated_normal') (modulus cut, as JAX)"
        )
    return torch.nn.init.trunc_normal_(tensor, mean, std, a, b, generator=generator)


# --- Glorot / He -------------------------------------------------------------------------


def xavier_uniform_(
    tensor: torch.Tensor, gain: float | str = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Glorot & Bengio 2010, eq. 16 ("normalized initialization";
    ``torch.nn.init.xavier_uniform_``): ``w ~ U[-a, a]``,
    ``a = gain * sqrt(3) * sqrt(2 / (fan_in + fan_out))``.

    ``gain`` is a number or (initlab extra) an activation name (see
    :func:`initlab.init.calculate_gain`). Same as
    ``variance_scaling_(scale=gain^2, mode="fan_avg", distribution="uniform")``, with the
    bound computed as torch computes it. Complex tensors are drawn as JAX does (uniform on
    a disk, ``E|w|^2 = gain^2 * 2 / (fan_in + fan_out)``); a zero-element tensor is left as
    it is, with a warning.

    >>> g = torch.Generator().manual_seed(0)
    >>> w = xavier_uniform_(torch.empty(300, 500), "tanh", generator=g)
    >>> bool(w.abs().max() <= 5 / 3 * (6 / 800) ** 0.5)
    True
    """
    return _xavier(tensor, gain, "uniform", generator)


def xavier_normal_(
    tensor: torch.Tensor, gain: float | str = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Glorot & Bengio 2010 ("normalized" init, normal form; ``torch.nn.init.xavier_normal_``):
    ``w ~ N(0, std^2)``, ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Same as ``variance_scaling_(scale=gain^2, mode="fan_avg", distribution="normal")``. (JAX
    and Keras's ``glorot_normal`` is a truncated normal: :func:`glorot_truncated_normal_`.)

    >>> g = torch.Generator().manual_seed(0)
    >>> round(xavier_normal_(torch.empty(300, 500), generator=g).std().item(), 3)
    0.05
    """
    return _xavier(tensor, gain, "normal", generator)


def _xavier(
    tensor: torch.Tensor, gain: float | str, distribution: str, generator: torch.Generator | None
) -> torch.Tensor:
    scale = resolve_gain(gain)
    fan_in, fan_out = compute_fans(tensor)
    if warn_if_empty(tensor):
        return tensor
    std = scale * math.sqrt(2.0 / float(fan_in + fan_out))
    return draw_scaled_(tensor, std, distribution, generator)


def kaiming_std(tensor: torch.Tensor, a: float, mode: str, nonlinearity: str) -> float:
    """``gain / sqrt(fan)`` as ``torch.nn.init.kaiming_*`` compute it (``mode`` is fan_in or
    fan_out, case-insensitive; ``gain = calculate_gain(nonlinearity, a)``).

    >>> kaiming_std(torch.empty(10, 200), 0.0, "fan_in", "relu")
    0.1
    """
    lowered = mode.lower() if isinstance(mode, str) else mode
    if lowered not in TORCH_FAN_MODES:
        raise InitlabError(f"Mode {mode} not supported, please use one of {list(TORCH_FAN_MODES)}")
    fan_in, fan_out = compute_fans(tensor)
    fan = fan_in if lowered == "fan_in" else fan_out
    gain = calculate_gain(nonlinearity, a)
    return gain / math.sqrt(fan) if fan > 0 else 0.0


def kaiming_uniform_(
    tensor: torch.Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """He et al. 2015, uniform form (``torch.nn.init.kaiming_uniform_``): ``w ~ U[-b, b]``,
    ``b = sqrt(3) * gain / sqrt(fan)``, ``gain = calculate_gain(nonlinearity, a)``.

    ``a`` is the negative slope of the rectifier (used with ``leaky_relu`` only, as in
    torch); ``mode`` is ``fan_in`` (forward variance) or ``fan_out`` (backward, eq. 14);
    ``nonlinearity`` is any name :func:`initlab.init.calculate_gain` knows. PyTorch's default
    ``Linear``/``Conv`` init is ``kaiming_uniform_(w, a=math.sqrt(5))``. Complex tensors are
    drawn as JAX does; a zero-element tensor is left as it is, with torch's warning. (The
    initlab form with checked arguments is :func:`initlab.init.he_uniform_`.)

    >>> g = torch.Generator().manual_seed(0)
    >>> bool(kaiming_uniform_(torch.empty(100, 600), generator=g).abs().max() <= 0.1)
    True
    """
    if torch.overrides.has_torch_function_variadic(tensor):  # tensor subclasses, as torch
        return torch.overrides.handle_torch_function(
            kaiming_uniform_,
            (tensor,),
            tensor=tensor,
            a=a,
            mode=mode,
            nonlinearity=nonlinearity,
            generator=generator,
        )
    std = kaiming_std(tensor, a, mode, nonlinearity)
    if warn_if_empty(tensor):
        return tensor
    return draw_scaled_(tensor, std, "uniform", generator)


def kaiming_normal_(
    tensor: torch.Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """He et al. 2015, eq. 10 (``torch.nn.init.kaiming_normal_``): ``w ~ N(0, std^2)``,
    ``std = gain / sqrt(fan)``, ``gain = calculate_gain(nonlinearity, a)``.

    Arguments as in :func:`kaiming_uniform_`. (JAX and Keras's ``he_normal`` is a truncated
    normal: :func:`initlab.init.he_truncated_normal_`.)

    >>> g = torch.Generator().manual_seed(0)
    >>> round(kaiming_normal_(torch.empty(400, 800), generator=g).std().item(), 3)
    0.05
    """
    std = kaiming_std(tensor, a, mode, nonlinearity)
    if warn_if_empty(tensor):
        return tensor
    return draw_scaled_(tensor, std, "normal", generator)


# --- orthogonal and sparse -----------------------------------------------------------------


def orthogonal_(
    tensor: torch.Tensor, gain: float | str = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Saxe et al. 2014 (``torch.nn.init.orthogonal_``): a random (semi-)orthogonal matrix
    times ``gain``.

    The weight is viewed as ``W`` of shape ``(out, in * kernel)``; ``W W^T = gain^2 I`` when
    ``out <= in * kernel`` (rows orthonormal), else ``W^T W = gain^2 I``. Algorithm (Mezzadri
    2007, so that ``W`` is Haar-distributed): draw ``A`` with i.i.d. N(0, 1) entries, take
    ``A = QR``, multiply each column of ``Q`` by the sign of ``R``'s diagonal. The draw
    order is torch's. initlab extras: complex tensors get a Haar-random unitary
    (``W W^H = gain^2 I``; the phase of ``R``'s diagonal replaces the sign), and half
    precision weights are computed in float32 (torch's QR has no half kernel).

    >>> g = torch.Generator().manual_seed(0)
    >>> w = orthogonal_(torch.empty(3, 5), 2.0, generator=g)
    >>> torch.allclose(w @ w.T, 4 * torch.eye(3), atol=1e-5)
    True
    """
    scale = resolve_gain(gain)
    if tensor.dim() < 2:
        raise InitlabError(
            "Only tensors with 2 or more dimensions are supported (orthogonal_ got shape "
            f"{list(tensor.shape)})"
        )
    if tensor.numel() == 0:
        return tensor
    rows = tensor.size(0)
    cols = tensor.numel() // rows
    exact = (torch.float32, torch.float64, torch.complex64, torch.complex128)
    work_dtype = tensor.dtype if tensor.dtype in exact else torch.float32
    with torch.no_grad():
        # 1. Gaussian matrix, tall (transpose a wide one so QR gives orthonormal columns)
        flat = torch.empty((rows, cols), dtype=work_dtype, device=tensor.device)
        flat.normal_(0.0, 1.0, generator=generator)
        if rows < cols:
            flat.t_()
        # 2. QR, with the signs (phases) fixed so that Q is uniform over the group
        q, r = torch.linalg.qr(flat)
        q *= torch.diagonal(r).sgn()
        if rows < cols:
            q.t_()
        # 3. copy back and scale
        tensor.view_as(q).copy_(q)
        return tensor.mul_(scale)


def sparse_(
    tensor: torch.Tensor,
    sparsity: float,
    std: float = 0.01,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Martens 2010, section 5 ("sparse initialization"; ``torch.nn.init.sparse_``): in each
    column of a 2-D weight, ``ceil(sparsity * rows)`` entries at random positions are 0 and
    the others are drawn from ``N(0, std^2)``.

    Martens keeps a fixed number (15) of non-zero incoming weights per unit, so that the
    units are not saturated and still differ; torch (and so initlab) keeps a fraction per
    column instead (a column of an ``(out, in)`` weight is one input's outgoing weights).
    Draw order as in torch: the normal values, then one permutation per column. Difference:
    the permutations come from ``generator`` (torch draws them from the global generator
    even when a generator is given); with ``generator=None`` the values are torch's.
    ``sparsity`` must lie in [0, 1].

    >>> g = torch.Generator().manual_seed(0)
    >>> w = sparse_(torch.empty(10, 4), 0.3, generator=g)
    >>> (w == 0).sum(dim=0).tolist()
    [3, 3, 3, 3]
    """
    if tensor.dim() != 2:
        raise InitlabError(
            f"Only tensors with 2 dimensions are supported (sparse_ got shape {list(tensor.shape)})"
        )
    fraction = finite_number("sparsity", sparsity, low=0.0)
    if fraction > 1:
        raise InitlabError(f"sparsity is a fraction in [0, 1], got {sparsity!r}")
    finite_number("std", std, low=0.0)
    rows, cols = tensor.shape
    num_zeros = math.ceil(fraction * rows)
    device = generator.device if generator is not None else torch.device("cpu")
    with torch.no_grad():
        tensor.normal_(0, std, generator=generator)
        for col in range(cols):
            order = torch.randperm(rows, generator=generator, device=device)
            tensor[order[:num_zeros].to(tensor.device), col] = 0
    return tensor


# --- deprecated names ----------------------------------------------------------------------


def _deprecated(function: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """The non-underscore alias torch keeps for backward compatibility: warns, then calls."""
    new_name = function.__name__
    old_name = new_name[:-1]

    @functools.wraps(function)
    def alias(*args: Any, **kwargs: Any) -> torch.Tensor:
        warnings.warn(
            f"`initlab.init.{old_name}` is now deprecated in favor of "
            f"`initlab.init.{new_name}` (as `nn.init.{old_name}` is in torch).",
            FutureWarning,
            stacklevel=2,
        )
        return function(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old_name
    alias.__doc__ = f"Deprecated alias of :func:`{new_name}` (as in torch): warns, then calls it."
    return alias


uniform = _deprecated(uniform_)
normal = _deprecated(normal_)
constant = _deprecated(constant_)
eye = _deprecated(eye_)
dirac = _deprecated(dirac_)
xavier_uniform = _deprecated(xavier_uniform_)
xavier_normal = _deprecated(xavier_normal_)
kaiming_uniform = _deprecated(kaiming_uniform_)
kaiming_normal = _deprecated(kaiming_normal_)
orthogonal = _deprecated(orthogonal_)
sparse = _deprecated(sparse_)

TORCH_NAMES: tuple[str, ...] = tuple(torch.nn.init.__all__)
"""The public names of ``torch.nn.init``; each is defined here with torch's signature."""

__all__ = [
    "TORCH_FAN_MODES",
    "TORCH_NAMES",
    "calculate_gain",
    "constant",
    "constant_",
    "dirac",
    "dirac_",
    "eye",
    "eye_",
    "finite_number",
    "kaiming_normal",
    "kaiming_normal_",
    "kaiming_std",
    "kaiming_uniform",
    "kaiming_uniform_",
    "normal",
    "normal_",
    "ones_",
    "orthogonal",
    "orthogonal_",
    "sparse",
    "sparse_",
    "trunc_normal_",
    "uniform",
    "uniform_",
    "xavier_normal",
    "xavier_normal_",
    "xavier_uniform",
    "xavier_uniform_",
    "zeros_",
]
