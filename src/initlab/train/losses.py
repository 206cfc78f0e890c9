"""Classification losses by name, and the L2 penalty of the from-scratch book.

``cross_entropy``: the model outputs logits; the loss is softmax followed by the negative
log-likelihood of the true class, ``-log softmax(z)_y`` (Glorot & Bengio 2010 train with this
"softmax output, negative log-likelihood" criterion). ``nll``: the model already outputs
log-probabilities (a ``LogSoftmax`` last layer), the loss is ``-z_y``. Both are averaged over
the batch (``reduction="mean"``) or summed (``"sum"``, for exact averages over many batches).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from initlab.errors import check_choice

LossName = Literal["cross_entropy", "nll"]
LOSS_NAMES: tuple[str, ...] = get_args(LossName)
Reduction = Literal["mean", "sum"]
LossFn = Callable[[Tensor, Tensor], Tensor]


def make_loss(name: str, reduction: Reduction = "mean") -> LossFn:
    """The loss ``(outputs, labels) -> scalar`` called ``name`` (one of :data:`LOSS_NAMES`)."""
    check_choice(name, LOSS_NAMES, "loss")
    check_choice(reduction, ("mean", "sum"), "loss reduction")
    if name == "cross_entropy":
        return lambda out, y: F.cross_entropy(out, y, reduction=reduction)
    return lambda out, y: F.nll_loss(out, y, reduction=reduction)


def l2_penalty(weights: Sequence[Tensor], weight_decay: float) -> Tensor:
    """The book's weight-decay term ``0.5 * lambda * sum_W ||W||^2`` (Frobenius norms).

    Added to the loss, its gradient is ``lambda * W`` for every ``W`` in ``weights``, which is
    what torch's (coupled) ``weight_decay`` adds to the gradient.
    """
    if not weights:
        return torch.zeros(())
    return 0.5 * weight_decay * sum(w.pow(2).sum() for w in weights)
