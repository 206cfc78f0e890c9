"""The in-memory dataset every loader returns, and the seeded train / validation split.

A :class:`Dataset` is two aligned tensors: inputs ``x`` (float32, ``[N, ...]``) and integer
class labels ``y`` (int64, ``[N]``), plus a name for logs and stores. Loaders keep ``x`` in
the layout the classic experiments use (MNIST flat ``[N, 784]``, Shapeset flat ``[N, 1024]``,
CIFAR-10 ``[N, 3, 32, 32]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from initlab.data._rng import make_generator
from initlab.errors import InitlabError


@dataclass
class Dataset:
    """Inputs and labels of one split of one dataset, held in memory as tensors."""

    x: Tensor  # float32 inputs, [N, ...]
    y: Tensor  # int64 class labels, [N]
    name: str  # e.g. "mnist-train", "shapeset3x2-valid"
    classes: tuple[str, ...] = ()  # class names by label; empty: labels 0 .. max(y)

    def __post_init__(self) -> None:
        if self.y.ndim != 1:
            raise InitlabError(
                f"dataset {self.name!r}: labels must be 1-D, got {list(self.y.shape)}"
            )
        if self.x.shape[0] != self.y.shape[0]:
            raise InitlabError(
                f"dataset {self.name!r}: {self.x.shape[0]} inputs but {self.y.shape[0]} labels"
            )

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, x={list(self.x.shape)} {self.x.dtype}, "
            f"y={list(self.y.shape)}, num_classes={self.num_classes})"
        )

    @property
    def num_classes(self) -> int:
        """Number of classes: ``len(classes)`` when named, else ``max(y) + 1``."""
        if self.classes:
            return len(self.classes)
        return int(self.y.max().item()) + 1 if len(self) else 0

    @property
    def num_features(self) -> int:
        """Number of input values per example (the width of an MLP's input layer)."""
        return int(self.x[0].numel()) if len(self) else int(torch.Size(self.x.shape[1:]).numel())

    def subset(self, index: slice | Tensor | Sequence[int], name: str | None = None) -> Dataset:
        """The examples at ``index`` (a slice, an index tensor or a list of indices).

        ``mnist.subset(slice(0, 1000))`` gives the first 1000 examples, as in the batch-norm
        experiment of the from-scratch book.
        """
        if not isinstance(index, slice | Tensor):
            index = torch.as_tensor(list(index), dtype=torch.int64)
        return Dataset(self.x[index], self.y[index], name or self.name, self.classes)

    def head(self, n: int) -> Dataset:
        """The first ``n`` examples (the book's ``x_train[:300]``)."""
        if not 0 < n <= len(self):
            raise InitlabError(f"dataset {self.name!r} has {len(self)} examples, asked for {n}")
        return self.subset(slice(0, n), f"{self.name}[:{n}]")

    def to(self, device: torch.device | str) -> Dataset:
        """The same dataset with both tensors on ``device``."""
        return Dataset(self.x.to(device), self.y.to(device), self.name, self.classes)

    def class_counts(self) -> list[int]:
        """How many examples each class has, by label."""
        return torch.bincount(self.y, minlength=self.num_classes).tolist()


def train_valid_split(
    dataset: Dataset,
    valid_fraction: float,
    seed: int | None = None,
    *,
    generator: torch.Generator | None = None,
) -> tuple[Dataset, Dataset]:
    """Split ``dataset`` at random into (train, valid), holding out ``valid_fraction`` of it.

    The split is a seeded permutation: ``n_valid = round(valid_fraction * N)`` examples go to
    validation, the rest to training (as in the from-scratch book's hyperparameter search,
    which shuffles and holds out 20%). The same seed gives the same split; with neither a
    seed nor a generator, torch's global generator is used.
    """
    if not 0.0 < valid_fraction < 1.0:
        raise InitlabError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    n = len(dataset)
    n_valid = round(valid_fraction * n)
    if n_valid < 1 or n_valid >= n:
        raise InitlabError(
            f"valid_fraction {valid_fraction} of {n} examples leaves an empty split; "
            "use a fraction that keeps at least one example on each side"
        )
    gen = make_generator(seed, generator)
    perm = torch.randperm(n, generator=gen)
    valid = dataset.subset(perm[:n_valid], f"{dataset.name}-valid")
    train = dataset.subset(perm[n_valid:], f"{dataset.name}-train")
    return train, valid
