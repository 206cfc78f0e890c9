"""The input-output Jacobian of a deep MLP's hidden stack, and its singular values.

For hidden layers ``a_l = phi(W_l a_{l-1} + b_l)`` the Jacobian from the first hidden
layer's output to the last one's is the product (Pennington et al. 2017, "Resurrecting the
sigmoid in deep learning through dynamical isometry", eq. 2)::

    J = D_L W_L D_{L-1} W_{L-1} ... D_2 W_2,     D_l = diag(phi'(z_l))

A network has *dynamical isometry* when the singular values of ``J`` concentrate near 1:
then every direction of the input is passed on, and every direction of the gradient back.
For tanh at the edge of chaos, orthogonal weights with a small ``q*`` achieve it at any
depth; Gaussian weights do not: the spectrum spreads as the depth grows.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from initlab.errors import InitlabError
from initlab.train.batched_ops import activation_kernels


@torch.no_grad()
def hidden_jacobian(model: nn.Module, x: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """``J = d a_L / d a_1`` of an ``mlp`` / ``deep_mlp`` at one input ``x`` (``[in]``).

    Forward accumulation, layer by layer, in ``dtype`` (float64 by default: at depth 1000
    the product spans many orders of magnitude). The model needs ``linear{i}`` layers and
    an activation of the vocabulary (``model.spec.activation``); hidden layers 2..L must
    be square for the product to be a square matrix (``deep_mlp`` has this shape).
    """
    spec = getattr(model, "spec", None)
    if spec is None or spec.depth < 3:
        raise InitlabError("hidden_jacobian needs an MLP (mlp/deep_mlp) with >= 2 hidden layers")
    kernels = activation_kernels(spec.activation)
    device = next(model.parameters()).device
    first = model.linear1
    z = first(x.to(device, first.weight.dtype).reshape(1, -1)).to(dtype).reshape(-1)
    a = kernels.forward(z, z.clone())
    jac = torch.eye(a.shape[0], dtype=dtype, device=device)
    for i in range(2, spec.depth):
        layer = getattr(model, f"linear{i}")
        w = layer.weight.to(dtype)
        z = w @ a + (layer.bias.to(dtype) if layer.bias is not None else 0.0)
        a = kernels.forward(z, z.clone())
        slope = kernels.backward(torch.ones_like(z), z, a, torch.empty_like(z))
        jac = slope.unsqueeze(1) * (w @ jac)
    return jac


def jacobian_singular_values(model: nn.Module, x: Tensor) -> Tensor:
    """The singular values of :func:`hidden_jacobian` (float64, descending)."""
    return torch.linalg.svdvals(hidden_jacobian(model, x))


__all__ = ["hidden_jacobian", "jacobian_singular_values"]
