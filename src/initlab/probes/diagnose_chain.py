"""The diagnosis of a deep chain (``nn.Sequential`` of Linear/Conv and activations), layer
by layer, in bounded memory.

:func:`initlab.probes.diagnose` on a network of thousands of layers through hooks and one
autograd graph keeps every layer's output, gradient and graph node alive at once, and the
graph of a 100 000-layer chain is too deep for autograd to free safely. A plain chain does
not need that graph: it is a composition ``f_L o ... o f_1`` of blocks ``f_l`` (a Linear or
Conv followed by its activation modules), so the chain rule can be applied one block at a
time:

1. forward, without a graph: ``x_{l+1} = f_l(x_l)``; measure each block's output and
   activations as they pass (the same numbers the hooks would see) and keep only the
   inputs ``x_l`` at every K-th block (checkpoints, K = ceil(sqrt(L)));
2. the loss and ``g_L = d loss / d x_L`` at the output;
3. backward, segment by segment from the last: recompute the segment's block inputs from
   its checkpoint, then for each block, last first, rebuild the block's small graph and
   take ``d loss / d z_l = g_{l+1} . d f_l / d z_l`` (the gradient of the layer output the
   verdict rules use) and ``g_l = d loss / d x_l``.

Memory: about (sqrt(L) + K) block inputs of ``batch x width`` numbers, instead of L of each
of them plus the graph (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost",
for the sqrt(L) checkpoints); time: two forward passes and one backward. The numbers are
the hook version's to float rounding (the tests compare them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initlab.activations import activation_name_of

_AFFINE = (nn.Linear, nn.modules.conv._ConvNd)
_PASSIVE = (nn.Identity, nn.Flatten)

ProgressFn = Callable[[float, float], None]


@dataclass
class Block:
    """One Linear/Conv of the chain with the modules after it, up to the next one."""

    name: str
    affine: nn.Module
    tail: list[nn.Module]
    act_index: int | None  # position in ``tail`` of the first activation module

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(layer output z, activations after its first activation module, block output)."""
        z = self.affine(x)
        y, acts = z, z
        for i, module in enumerate(self.tail):
            y = module(y)
            if i == self.act_index:
                acts = y
        return z, acts, y

    def tail_from(self, z: torch.Tensor) -> torch.Tensor:
        """The block's output from the layer output ``z``."""
        for module in self.tail:
            z = module(z)
        return z


def chain_blocks(model: nn.Module) -> list[Block] | None:
    """The blocks of a plain chain, or None when ``model`` is not one (then the hooks are
    used): an ``nn.Sequential`` whose children are Linear/Conv, activation modules of
    initlab's vocabulary, Identity or Flatten, starting with a Linear/Conv."""
    if type(model).forward is not nn.Sequential.forward:
        return None
    blocks: list[Block] = []
    for name, module in model.named_children():
        if isinstance(module, _AFFINE):
            blocks.append(Block(name, module, [], None))
        elif activation_name_of(module) is not None or isinstance(module, _PASSIVE):
            if not blocks:
                return None
            block = blocks[-1]
            if block.act_index is None and activation_name_of(module) is not None:
                block.act_index = len(block.tail)
            block.tail.append(module)
        else:
            return None
    return blocks or None


def diagnose_chain(
    blocks: Sequence[Block],
    inputs: torch.Tensor,
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    forward_numbers: Callable[..., dict[str, Any]],
    add_grad: Callable[[dict[str, Any], torch.Tensor | None], None],
    progress: ProgressFn | None = None,
) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """Every block's numbers (forward, then gradient) and the loss, in bounded memory.

    ``loss_of(output)`` gives the scalar loss; ``forward_numbers`` and ``add_grad`` are the
    measuring functions of :mod:`initlab.probes.diagnose`. ``progress(done, total)`` is
    called as blocks pass (total: two passes over the blocks).
    """
    n = len(blocks)
    every = max(1, math.ceil(math.sqrt(n)))
    total = 2.0 * n
    report = progress or (lambda done, total: None)
    checkpoints: dict[int, torch.Tensor] = {}
    numbers: list[dict[str, Any]] = []
    # 1. forward without a graph, measuring as the signal passes
    x = inputs
    with torch.no_grad():
        for b, block in enumerate(blocks):
            if b % every == 0:
                checkpoints[b] = x
            z, acts, x = block.run(x)
            act_name = None
            if block.act_index is not None:
                act_name = activation_name_of(block.tail[block.act_index])
            nxt = blocks[b + 1].affine if b + 1 < n else None
            numbers.append(forward_numbers(block.name, block.affine, act_name, acts, z, nxt))
            report(b + 1, total)
    # 2. the loss and its gradient at the output
    with torch.enable_grad():
        output = x.detach().requires_grad_(True)
        loss = loss_of(output)
        (grad,) = torch.autograd.grad(loss, output)
    # 3. backward, one checkpointed segment at a time, one block graph at a time
    done = n
    for start in reversed(range(0, n, every)):
        stop = min(start + every, n)
        segment = [checkpoints.pop(start)]
        with torch.no_grad():
            for b in range(start, stop - 1):
                segment.append(blocks[b].run(segment[-1])[2])
        for b in reversed(range(start, stop)):
            x_in = segment.pop().detach().requires_grad_(b > 0)
            with torch.enable_grad():
                z = blocks[b].affine(x_in)
                if not z.requires_grad:  # a frozen first layer: the gradient still starts here
                    z = z.detach().requires_grad_(True)
                wrt = [z, x_in] if b > 0 else [z]
                grads = torch.autograd.grad(blocks[b].tail_from(z), wrt, grad)
            grad_z = grads[0]
            if b > 0:
                grad = grads[1]
            add_grad(numbers[b], grad_z.detach())
            done += 1
            report(done, total)
    return numbers, loss.detach()
