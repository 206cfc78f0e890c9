"""Data: MNIST (cached, checksummed), Shapeset-3x2, Gaussian inputs, CIFAR-10, splits, batches."""

from initlab.data.batches import BATCH_MODES, BatchMode, batches_per_epoch, minibatches
from initlab.data.cache import default_cache_dir, resolve_cache_dir
from initlab.data.cifar10 import CIFAR10_CLASSES, load_cifar10
from initlab.data.dataset import Dataset, train_valid_split
from initlab.data.gaussian import gaussian_inputs
from initlab.data.idx import read_idx, write_idx
from initlab.data.mnist import (
    MNIST_SOURCES,
    MNIST_SPLITS,
    MnistSplit,
    fetch_mnist,
    load_mnist,
    mnist_cache_status,
)
from initlab.data.preview import class_grid, save_sample_grid
from initlab.data.safe_pickle import RestrictedUnpickler, safe_unpickle
from initlab.data.shapeset import (
    SHAPESET_CLASSES,
    ShapesetBatch,
    ShapesetConfig,
    make_shapeset,
    shapeset_batch,
    shapeset_splits,
    shapeset_stream,
)

__all__ = [
    "BATCH_MODES",
    "CIFAR10_CLASSES",
    "MNIST_SOURCES",
    "MNIST_SPLITS",
    "SHAPESET_CLASSES",
    "BatchMode",
    "Dataset",
    "MnistSplit",
    "RestrictedUnpickler",
    "ShapesetBatch",
    "ShapesetConfig",
    "batches_per_epoch",
    "class_grid",
    "default_cache_dir",
    "fetch_mnist",
    "gaussian_inputs",
    "load_cifar10",
    "load_mnist",
    "make_shapeset",
    "minibatches",
    "mnist_cache_status",
    "read_idx",
    "resolve_cache_dir",
    "safe_unpickle",
    "save_sample_grid",
    "shapeset_batch",
    "shapeset_splits",
    "shapeset_stream",
    "train_valid_split",
    "write_idx",
]
