"""initlab: weight initialization, signal-propagation probes and the classic experiments.

The curated public API. Sub-packages hold the rest: :mod:`initlab.init` (schemes),
:mod:`initlab.models`, :mod:`initlab.probes`, :mod:`initlab.data`, :mod:`initlab.train`,
:mod:`initlab.store`, :mod:`initlab.experiments` and :mod:`initlab.report`. The store
(SQLAlchemy), the experiments and the report (matplotlib) load on first use, so that
``import initlab`` stays as light as PyTorch allows.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from initlab.activations import ACTIVATION_NAMES
from initlab.data import (
    Dataset,
    fetch_mnist,
    gaussian_inputs,
    load_cifar10,
    load_mnist,
    make_shapeset,
    minibatches,
    shapeset_stream,
    train_valid_split,
)
from initlab.errors import InitlabError
from initlab.init import (
    InitSummary,
    critical_point,
    gain,
    get_scheme,
    initialize,
    list_schemes,
    parse_scheme,
    variance_scaling_,
)
from initlab.models import MLPSpec, cnn, deep_cnn, deep_mlp, mlp
from initlab.probes import Diagnosis, Probe, ProbeRecord, diagnose, every, logspaced, summarize
from initlab.train.batched import BatchedResult, evaluate_batched, fit_batched
from initlab.train.deep import fit_deep
from initlab.train.fit import fit
from initlab.train.optim import OPTIMIZER_NAMES, Optimizer, make_optimizer
from initlab.train.result import TrainResult

_LAZY = {
    "RunStore": "initlab.store",
    "save_result": "initlab.store",
    "export_tensorboard": "initlab.store",
    "Experiment": "initlab.experiments",
    "get_experiment": "initlab.experiments",
    "list_experiments": "initlab.experiments",
    "run_experiment": "initlab.experiments",
    "run_suite": "initlab.experiments",
    "build_report": "initlab.report",
}


def __getattr__(name: str) -> Any:
    """Load the store's, experiments' and report's names on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'initlab' has no attribute {name!r}")


__all__ = [
    "ACTIVATION_NAMES",
    "OPTIMIZER_NAMES",
    "BatchedResult",
    "Dataset",
    "Diagnosis",
    "Experiment",
    "InitSummary",
    "InitlabError",
    "MLPSpec",
    "Optimizer",
    "Probe",
    "ProbeRecord",
    "RunStore",
    "TrainResult",
    "__version__",
    "build_report",
    "cnn",
    "critical_point",
    "deep_cnn",
    "deep_mlp",
    "diagnose",
    "evaluate_batched",
    "every",
    "export_tensorboard",
    "fetch_mnist",
    "fit",
    "fit_batched",
    "fit_deep",
    "gain",
    "gaussian_inputs",
    "get_experiment",
    "get_scheme",
    "initialize",
    "list_experiments",
    "list_schemes",
    "load_cifar10",
    "load_mnist",
    "logspaced",
    "make_optimizer",
    "make_shapeset",
    "minibatches",
    "mlp",
    "parse_scheme",
    "run_experiment",
    "run_suite",
    "save_result",
    "shapeset_stream",
    "summarize",
    "train_valid_split",
    "variance_scaling_",
]
