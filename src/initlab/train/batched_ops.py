"""Hand-written forward and backward kernels for the batched engine (no autograd).

Every function writes into a caller-owned buffer (``out=``) so the training loop allocates
nothing per step. Activations use the same ATen kernels that autograd itself calls for
their backward pass (``threshold_backward``, ``tanh_backward`` ...), so a hand-written
backward gives autograd's gradients to the last bit where torch has such a kernel.

The derivatives, with z the pre-activation and a = f(z) the output:

==========  ==================================================================
relu        f'(z) = 1[a > 0]
leaky_relu  f'(z) = 1 if z > 0 else 0.01
sigmoid     f'(z) = a (1 - a)
tanh        f'(z) = 1 - a^2
elu         f'(z) = 1 if z > 0 else a + 1               (alpha = 1)
selu        f'(z) = s if z > 0 else a + s alpha          (Klambauer et al. 2017)
softsign    f'(z) = 1 / (1 + |z|)^2
gelu        f'(z) = Phi(z) + z phi(z)                    (Hendrycks & Gimpel 2016)
silu        f'(z) = sigma(z) (1 + z (1 - sigma(z)))      (Elfwing et al. 2018)
identity    f'(z) = 1
==========  ==================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from initlab.activations import activation_info

_aten = torch.ops.aten

_SELU_ALPHA = 1.6732632423543772848170429916717  # Klambauer et al. (2017), as torch.nn.SELU
_SELU_SCALE = 1.0507009873554804934193349852946
_LEAKY_SLOPE = 0.01  # torch.nn.LeakyReLU's default negative slope


def _softsign_forward(z: Tensor, out: Tensor) -> Tensor:
    torch.abs(z, out=out)
    out.add_(1.0)
    return torch.div(z, out, out=out)


def _softsign_backward(grad: Tensor, z: Tensor, a: Tensor, out: Tensor) -> Tensor:
    # 1 / (1 + |z|)^2 = (1 - |a|)^2 since |a| = |z| / (1 + |z|)
    torch.abs(z, out=out)
    out.add_(1.0).square_()
    return torch.div(grad, out, out=out)


@dataclass(frozen=True)
class ActivationKernels:
    """Forward ``(z, out) -> a`` and backward ``(grad_a, z, a, out) -> grad_z`` of one
    activation; both write their result into ``out``. ``output_only``: the backward reads
    only ``a``, so the forward may run in place (``out`` is ``z``) and save a buffer."""

    name: str
    forward: Callable[[Tensor, Tensor], Tensor]
    backward: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
    output_only: bool = False


_KERNELS: dict[str, ActivationKernels] = {
    "relu": ActivationKernels(
        "relu",
        lambda z, out: torch.clamp_min(z, 0.0, out=out),
        lambda g, z, a, out: _aten.threshold_backward.grad_input(g, a, 0.0, grad_input=out),
        output_only=True,
    ),
    "leaky_relu": ActivationKernels(
        "leaky_relu",
        lambda z, out: _aten.leaky_relu.out(z, _LEAKY_SLOPE, out=out),
        lambda g, z, a, out: _aten.leaky_relu_backward.grad_input(
            g, z, _LEAKY_SLOPE, False, grad_input=out
        ),
    ),
    "sigmoid": ActivationKernels(
        "sigmoid",
        lambda z, out: torch.sigmoid(z, out=out),
        lambda g, z, a, out: _aten.sigmoid_backward.grad_input(g, a, grad_input=out),
        output_only=True,
    ),
    "tanh": ActivationKernels(
        "tanh",
        lambda z, out: torch.tanh(z, out=out),
        lambda g, z, a, out: _aten.tanh_backward.grad_input(g, a, grad_input=out),
        output_only=True,
    ),
    "elu": ActivationKernels(
        "elu",
        lambda z, out: _aten.elu.out(z, 1.0, 1.0, 1.0, out=out),
        lambda g, z, a, out: _aten.elu_backward.grad_input(
            g, 1.0, 1.0, 1.0, False, z, grad_input=out
        ),
    ),
    "selu": ActivationKernels(
        "selu",
        lambda z, out: _aten.elu.out(z, _SELU_ALPHA, _SELU_SCALE, 1.0, out=out),
        lambda g, z, a, out: _aten.elu_backward.grad_input(
            g, _SELU_ALPHA, _SELU_SCALE, 1.0, False, z, grad_input=out
        ),
    ),
    "softsign": ActivationKernels("softsign", _softsign_forward, _softsign_backward),
    "gelu": ActivationKernels(
        "gelu",
        lambda z, out: _aten.gelu.out(z, approximate="none", out=out),
        lambda g, z, a, out: _aten.gelu_backward.grad_input(
            g, z, approximate="none", grad_input=out
        ),
    ),
    "silu": ActivationKernels(
        "silu",
        lambda z, out: _aten.silu.out(z, out=out),
        lambda g, z, a, out: _aten.silu_backward.grad_input(g, z, grad_input=out),
    ),
    "identity": ActivationKernels(
        "identity",
        lambda z, out: out if out is z else out.copy_(z),
        lambda g, z, a, out: out.copy_(g),
        output_only=True,
    ),
}


def activation_kernels(name: str) -> ActivationKernels:
    """The forward/backward kernels of a vocabulary activation (unknown names raise
    :class:`~initlab.errors.InitlabError` listing the valid ones)."""
    activation_info(name)
    return _KERNELS[name]


def softmax_cross_entropy_(
    logits: Tensor, target: Tensor, minus_one: Tensor, grad_out: Tensor
) -> Tensor:
    """Mean softmax cross-entropy of ``N`` stacked members and its gradient, in one pass.

    Args:
        logits: ``[N, C, B]`` (feature-major: classes on dim 1, samples on dim 2).
        target: ``[N, 1, B]`` int64 class labels (one label row expanded over members).
        minus_one: ``[N, 1, B]`` filled with -1 (subtracts the one-hot labels).
        grad_out: ``[N, C, B]`` buffer, receives dL/dlogits = (softmax(z) - onehot(y)) / B.

    Returns:
        ``[N]`` losses L_n = -mean_b log softmax(z[n, :, b])[y_b], the value of
        ``torch.nn.functional.cross_entropy`` (log-softmax, then the mean negative
        log-likelihood) for each member.
    """
    torch.log_softmax(logits, 1, out=grad_out)
    loss = grad_out.gather(1, target).mean((1, 2)).neg_()
    grad_out.exp_().scatter_add_(1, target, minus_one).mul_(1.0 / logits.shape[2])
    return loss
