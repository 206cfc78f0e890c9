"""What the Glorot & Bengio (2010) experiments share: network, inits, data, seeds, Jacobians.

Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural
networks", AISTATS 2010. Section 2.3: "five hidden layers of 1000 units" with a softmax
output and the negative log-likelihood, biases initialized to 0, stochastic gradient descent
on minibatches of 10, the learning rate chosen on validation error. The two initializations
(eq. 1 and eq. 16):

* "standard": ``W ~ U[-1/sqrt(n), 1/sqrt(n)]`` with ``n`` the fan-in (PyTorch's default),
  ``n Var(W) = 1/3``;
* "normalized": ``W ~ U[-sqrt(6)/sqrt(n_in + n_out), sqrt(6)/sqrt(n_in + n_out)]``
  (``xavier_uniform``), ``Var(W) = 2 / (n_in + n_out)``.

Every random stream of a run (its weights, the training set it draws, the minibatch order,
the fixed probe examples) has its own seed, derived in :func:`stream_seed` from the run's seed
and the stream's name, so no two streams ever share a generator state.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from initlab.data.dataset import Dataset
from initlab.errors import InitlabError, check_choice
from initlab.init.apply import initialize
from initlab.models.mlp import MLPSpec, mlp

SOURCE = (
    "Glorot & Bengio, Understanding the difficulty of training deep feedforward neural "
    "networks, AISTATS 2010"
)
GLOROT_INITS: tuple[str, ...] = ("standard", "xavier_uniform")
INIT_NAMES = {"standard": "standard", "xavier_uniform": "normalized"}
GLOROT_ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh", "softsign")
HIDDEN = (1000, 1000, 1000, 1000, 1000)
MINIBATCH = 10

GlorotDataset = Literal["shapeset", "mnist", "cifar10"]
GLOROT_DATASETS: tuple[str, ...] = get_args(GlorotDataset)
DATASET_HELP = "shapeset (Shapeset-3x2, generated), mnist, or cifar10 (its files on disk)"
DATASET_TITLES = {"shapeset": "Shapeset-3x2", "mnist": "MNIST", "cifar10": "CIFAR-10"}

Stream = Literal["weights", "train", "batches", "valid", "test", "probe", "jacobian"]


def stream_seed(seed: int, stream: Stream) -> int:
    """The seed of one random stream of a run: a hash of (run seed, stream name)."""
    digest = hashlib.sha256(f"glorot/{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def init_name(scheme: str) -> str:
    """The paper's name of a scheme: "standard", "normalized" (others as written)."""
    return INIT_NAMES.get(scheme, scheme)


def check_glorot(
    dataset: str, hidden: Sequence[int], activations: Sequence[str], inits: Sequence[str]
) -> None:
    """One-line errors for an unknown dataset, activation or scheme, or bad widths."""
    from initlab.experiments.common import check_activations, check_inits

    check_choice(dataset, GLOROT_DATASETS, "dataset")
    if not hidden or any(w < 1 for w in hidden):
        raise InitlabError(f"hidden must list positive widths, e.g. [1000, 1000], got {hidden}")
    check_activations(activations)
    check_inits(inits)


def check_dataset_present(dataset: str) -> None:
    """CIFAR-10 must be on disk to be trained on (the others are generated or fetched)."""
    if dataset == "cifar10" and not cifar10_available():
        from initlab.data.cifar10 import locate_cifar10

        locate_cifar10()  # raises the loader's one-line message with the download hint


def build_member(spec: MLPSpec, scheme: str, seed: int) -> nn.Module:
    """``mlp(**spec)`` with weights from ``scheme`` and biases 0 (the paper's setting), drawn
    from the run's weight stream; torch's global RNG is left alone."""
    with torch.random.fork_rng(devices=[]):
        model = mlp(**spec.to_dict())
    initialize(model, scheme, bias="zeros", seed=stream_seed(seed, "weights"))
    return model


@functools.lru_cache(maxsize=8)
def _shapeset(n: int, seed: int) -> Dataset:
    from initlab.data.shapeset import make_shapeset

    return make_shapeset(n, seed=seed)


def shapeset_split(n: int, seed: int, stream: Stream) -> Dataset:
    """``n`` Shapeset-3x2 images of one stream (train / valid / test / probe) of base seed
    ``seed``; generated once per process (the groups of one experiment share them)."""
    return _shapeset(n, stream_seed(seed, stream))


@functools.lru_cache(maxsize=4)
def _stored(dataset: str, split: str) -> Dataset:
    if dataset == "mnist":
        from initlab.data.mnist import load_mnist

        return load_mnist(split, progress=False)  # type: ignore[arg-type]
    from initlab.data.cifar10 import load_cifar10

    return load_cifar10(split, flatten=True)  # type: ignore[arg-type]


def cifar10_available() -> bool:
    """True when CIFAR-10's files are where :func:`initlab.data.load_cifar10` looks."""
    from initlab.data.cifar10 import locate_cifar10

    try:
        locate_cifar10()
    except InitlabError:
        return False
    return True


def glorot_splits(
    dataset: str, n_train: int, n_valid: int, n_test: int, seed: int
) -> tuple[Dataset, Dataset, Dataset]:
    """(train, valid, test) of a dataset, as the paper splits them.

    Shapeset-3x2: three sets generated from their own seeds (training is online: each
    training image is new, ``n_train`` of them). MNIST: the first 50,000 training images
    train and the last 10,000 validate (the paper's split), the test set tests; CIFAR-10:
    40,000 / 10,000 of the training batches, and the test batch. ``n_*`` keep the first
    so many of each (0: all).
    """
    if dataset == "shapeset":
        return (
            shapeset_split(n_train, seed, "train"),
            shapeset_split(n_valid, seed, "valid"),
            shapeset_split(n_test, seed, "test"),
        )
    full, test = _stored(dataset, "train"), _stored(dataset, "test")
    cut = len(full) - 10_000
    train = Dataset(full.x[:cut], full.y[:cut], f"{dataset}-train", full.classes)
    valid = Dataset(full.x[cut:], full.y[cut:], f"{dataset}-valid", full.classes)

    def head(data: Dataset, n: int) -> Dataset:
        data = Dataset(data.x.flatten(1), data.y, data.name, data.classes)
        return data.head(n) if 0 < n < len(data) else data

    return head(train, n_train), head(valid, n_valid), head(test, n_test)


def network_spec(train: Dataset, run_spec: Mapping[str, Any]) -> MLPSpec:
    """The run group's MLP: the data's input width, the run's hidden widths and activation,
    the data's classes."""
    widths = (train.num_features, *run_spec["hidden"], train.num_classes)
    return MLPSpec(widths, run_spec["activation"])


def probed_task(run_spec: Mapping[str, Any]) -> tuple[Dataset, Dataset, MLPSpec]:
    """(training set, fixed probe examples, MLP) of a saturation or gradients run group:
    ``steps * batch_size`` training images and ``probe_examples`` held-out ones."""
    n_train = run_spec["steps"] * run_spec["batch_size"]
    train, _, fixed = glorot_splits(
        run_spec["dataset"], n_train, 1, run_spec["probe_examples"], run_spec["data_seed"]
    )
    return train, fixed, network_spec(train, run_spec)


def flops_per_member_step(widths: Sequence[int], batch: int = MINIBATCH) -> float:
    """Matrix-product FLOPs of one SGD step of one member: ``B (6 sum(in*out) - 2 in1 out1)``
    (forward, weight gradients, and input gradients for every layer but the first)."""
    products = [a * b for a, b in itertools.pairwise(widths)]
    return float(batch * (6 * sum(products) - 2 * products[0]))


def forward_flops(widths: Sequence[int]) -> float:
    """FLOPs of one example's forward pass: ``2 sum(in*out)``."""
    return float(2 * sum(a * b for a, b in itertools.pairwise(widths)))


def jacobian_singular_values(
    weights: Sequence[Tensor], biases: Sequence[Tensor | None], x: Tensor, activation: str
) -> list[Tensor]:
    """Singular values of every layer-to-layer Jacobian ``dh_{i+1}/dh_i`` on inputs ``x``.

    For hidden layers ``h_{i+1} = f(W_{i+1} h_i + b_{i+1})`` the Jacobian at one example is
    ``J_i = diag(f'(z_{i+1})) W_{i+1}`` (Glorot & Bengio 2010, sec. 4.2.1, who average its
    singular values). Returned: one ``[examples, width]`` tensor per consecutive pair of
    hidden layers (``weights[0]`` maps the input to hidden layer 1 and has no such pair);
    the singular values are the square roots of the eigenvalues of ``J J^T``, in float64.
    """
    derivative = {
        "sigmoid": lambda z: torch.sigmoid(z) * (1 - torch.sigmoid(z)),
        "tanh": lambda z: 1 - torch.tanh(z).square(),
        "softsign": lambda z: 1 / (1 + z.abs()).square(),
    }
    if activation not in derivative:
        raise InitlabError(f"Jacobians need sigmoid, tanh or softsign, got {activation!r}")
    act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "softsign": nn.functional.softsign}
    h = x.double()
    out = []
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        z = h @ w.double().t() + (0 if b is None else b.double())
        if i > 0:
            d = derivative[activation](z)  # [examples, out]
            jac = d.unsqueeze(2) * w.double().unsqueeze(0)  # [examples, out, in]
            gram = jac @ jac.transpose(1, 2)
            out.append(torch.linalg.eigvalsh(gram).clamp_min(0.0).sqrt())
        h = act[activation](z)
    return out


def mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value; NaN when empty)."""
    vals = [float(v) for v in values]
    if not vals:
        return math.nan, math.nan
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
