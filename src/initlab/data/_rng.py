"""One rule for randomness in the data package: a seed or a ``torch.Generator``, never both."""

from __future__ import annotations

import torch

from initlab.errors import InitlabError


def make_generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    """The CPU generator to draw from.

    A given ``generator`` is used as is (and advanced); a ``seed`` makes a fresh generator
    seeded with it; with neither, torch's global generator is used (so ``torch.manual_seed``
    still makes a run repeatable).
    """
    if generator is not None and seed is not None:
        raise InitlabError("give either a seed or a generator, not both")
    if generator is not None:
        return generator
    if seed is None:
        return torch.default_generator
    return torch.Generator().manual_seed(int(seed))
