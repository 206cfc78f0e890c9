"""Minibatch index streams: drawn with replacement (the reference code) or by epochs.

The from-scratch book draws every minibatch independently,
``batch_mask = np.random.choice(train_size, batch_size)``, i.e. uniformly *with*
replacement, and counts an "epoch" as ``train_size / batch_size`` such draws. Most other
code (PyTorch's ``DataLoader(shuffle=True)``) shuffles once per epoch and walks the
permutation, so every example is seen exactly once per epoch. :func:`minibatches` gives both,
as int64 index tensors into a :class:`~initlab.data.Dataset`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal, get_args

import torch
from torch import Tensor

from initlab.data._rng import make_generator
from initlab.errors import InitlabError, check_choice

BatchMode = Literal["replacement", "epoch"]
BATCH_MODES: tuple[str, ...] = get_args(BatchMode)


def batches_per_epoch(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Number of minibatches in one epoch: ``ceil(n / b)``, or ``floor(n / b)`` with drop_last.

    In ``"replacement"`` mode an epoch is ``ceil(n / b)`` independent draws, which matches
    the book's ``iter_per_epoch = max(train_size / batch_size, 1)`` whenever ``batch_size``
    divides ``train_size``.
    """
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def minibatches(
    n: int,
    batch_size: int,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    mode: BatchMode = "epoch",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    drop_last: bool = False,
) -> Iterator[Tensor]:
    """Yield int64 index tensors of minibatches over ``range(n)``.

    ``mode="epoch"``: a fresh random permutation each epoch, cut into consecutive batches of
    ``batch_size`` (the last one shorter unless ``drop_last``); every index appears exactly
    once per epoch. ``mode="replacement"``: each batch is ``batch_size`` indices drawn
    uniformly at random with replacement, independently of every other batch.

    The stream stops after ``steps`` batches or ``epochs`` epochs, whichever comes first;
    with neither it is infinite. A permutation stream continues across epoch boundaries when
    only ``steps`` is given. Randomness comes from ``generator`` or ``seed``.

    >>> [len(b) for b in minibatches(10, 4, epochs=1, seed=0)]
    [4, 4, 2]
    """
    check_choice(mode, BATCH_MODES, "batch mode")
    if n < 1:
        raise InitlabError(f"cannot draw minibatches from {n} examples; need at least 1")
    if batch_size < 1:
        raise InitlabError(f"batch_size must be a positive integer, got {batch_size}")
    if steps is not None and steps < 0:
        raise InitlabError(f"steps must be >= 0, got {steps}")
    if epochs is not None and epochs < 0:
        raise InitlabError(f"epochs must be >= 0, got {epochs}")
    if drop_last and mode == "epoch" and batch_size > n:
        raise InitlabError(
            f"batch_size {batch_size} > {n} examples with drop_last=True leaves no batch; "
            "lower batch_size or set drop_last=False"
        )
    gen = make_generator(seed, generator)
    # drop_last only matters for permutations: draws with replacement are always full.
    per_epoch = batches_per_epoch(n, batch_size, drop_last and mode == "epoch")
    total = math.inf if steps is None else steps
    if epochs is not None:
        total = min(total, epochs * per_epoch)
    if mode == "replacement":
        return _with_replacement(n, batch_size, total, gen)
    return _by_epochs(n, batch_size, total, per_epoch, gen)


def _with_replacement(
    n: int, batch_size: int, total: float, gen: torch.Generator
) -> Iterator[Tensor]:
    done = 0
    while done < total:
        yield torch.randint(0, n, (batch_size,), generator=gen, dtype=torch.int64)
        done += 1


def _by_epochs(
    n: int, batch_size: int, total: float, per_epoch: int, gen: torch.Generator
) -> Iterator[Tensor]:
    done = 0
    while done < total:
        perm = torch.randperm(n, generator=gen)
        for k in range(per_epoch):
            if done >= total:
                return
            yield perm[k * batch_size : (k + 1) * batch_size]
            done += 1
