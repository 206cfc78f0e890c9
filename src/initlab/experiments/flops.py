"""The arithmetic floor of an experiment: the matrix-product FLOPs its runs need.

A fully connected layer of ``n_in -> n_out`` over ``B`` examples is a ``B x n_in`` by
``n_in x n_out`` product: ``2 B n_in n_out`` FLOPs. Training one MLP for one minibatch
needs its forward products, the weight-gradient products (as many) and the input-gradient
products of every layer but the first (the input needs no gradient)::

    step(B) = B * (6 * sum_l n_in n_out - 2 * n_0 n_1)         (63.9 MFLOP for B1 at B = 128)

and an evaluation pass (or the book's loss after the update) the forward products only,
``2 * examples * sum_l n_in n_out``. Everything else (activations, the loss, optimizers,
statistics) is linear in the number of values and left out: the floor is what a machine
running matrix products at its GEMM rate and nothing else would need.
``benchmarks/suite.py`` divides it by the float32 GEMM rate measured in the same run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

MNIST_SIZES = {"train": 60000, "test": 10000}
SYNTHETIC_SIZES = {"train": 2000, "test": 1000}


def affine_macs(widths: Sequence[int]) -> int:
    """Multiply-adds of one example through the affine maps: ``sum_l n_in n_out``."""
    return sum(a * b for a, b in itertools.pairwise(widths))


def forward_flops(widths: Sequence[int], examples: int) -> float:
    """Matrix-product FLOPs of a forward pass over ``examples``."""
    return 2.0 * examples * affine_macs(widths)


def train_step_flops(widths: Sequence[int], batch: int) -> float:
    """Matrix-product FLOPs of one training step (forward and backward) of one MLP."""
    return float(batch * (6 * affine_macs(widths) - 2 * widths[0] * widths[1]))


def training_flops(
    widths: Sequence[int],
    *,
    members: int,
    steps: int,
    batch: int,
    eval_examples: int = 0,
    after_update: bool = False,
) -> float:
    """``members`` MLPs trained for ``steps`` minibatches of ``batch``, evaluated on
    ``eval_examples`` examples in all (every evaluation pass added up), with the loss after
    the update (one more forward of the minibatch per step) when ``after_update``."""
    per_member = steps * train_step_flops(widths, batch) + forward_flops(widths, eval_examples)
    if after_update:
        per_member += steps * forward_flops(widths, batch)
    return members * per_member


def split_size(dataset: str, split: str, size: int = 0) -> int:
    """Examples in ``split`` of ``dataset`` ("mnist" or "synthetic"), ``size`` > 0 capping it."""
    full = (SYNTHETIC_SIZES if dataset == "synthetic" else MNIST_SIZES)[split]
    return min(size, full) if size > 0 else full


def steps_per_epoch(examples: int, batch: int, drop_last: bool = False) -> int:
    """Minibatches per epoch: ``ceil(N / B)`` (``floor`` when the last short one is dropped)."""
    return examples // batch if drop_last else math.ceil(examples / batch)


def dual_training_flops(
    widths: Sequence[int],
    *,
    members: int,
    steps: int,
    batch: int,
    eval_examples: int,
    rows: int,
) -> float:
    """:func:`training_flops` with layer 1 in the dual form over ``rows`` inputs
    (:mod:`initlab.train.batched_dual`): its forward, weight update and evaluation products
    (``2 (2 B steps + eval_examples) n_0 n_1``) give way to the update of its outputs on
    every input, ``2 rows B n_1`` a step, the start ``X W_0^T`` and the final write-back
    ``W = s (W_0 - C X)`` (``2 rows n_0 n_1`` each) and the Gram matrix ``X X^T`` (once for
    all members)."""
    primal = training_flops(
        widths, members=members, steps=steps, batch=batch, eval_examples=eval_examples
    )
    first = widths[0] * widths[1]
    primal_first = 2.0 * (2 * batch * steps + eval_examples) * first
    dual_first = 2.0 * rows * batch * widths[1] * steps + 4.0 * rows * first
    return primal + members * (dual_first - primal_first) + 2.0 * rows * rows * widths[0]
