"""initlab: weight initialization, signal-propagation probes and the classic experiments.

The curated public API. Sub-packages hold the rest: :mod:`initlab.init` (schemes),
:mod:`initlab.models`, :mod:`initlab.probes`, :mod:`initlab.data`, :mod:`initlab.train`,
:mod:`initlab.store`, :mod:`initlab.experiments` and :mod:`initlab.report`. Every name
below loads on first use (PyTorch, SQLAlchemy and matplotlib included), so that
``import initlab`` and the command line's ``--help`` cost almost nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # for type checkers; at run time every name loads on first use
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
    "ACTIVATION_NAMES": "initlab.activations",
    "Dataset": "initlab.data",
    "fetch_mnist": "initlab.data",
    "gaussian_inputs": "initlab.data",
    "load_cifar10": "initlab.data",
    "load_mnist": "initlab.data",
    "make_shapeset": "initlab.data",
    "minibatches": "initlab.data",
    "shapeset_stream": "initlab.data",
    "train_valid_split": "initlab.data",
    "InitlabError": "initlab.errors",
    "InitSummary": "initlab.init",
    "critical_point": "initlab.init",
    "gain": "initlab.init",
    "get_scheme": "initlab.init",
    "initialize": "initlab.init",
    "list_schemes": "initlab.init",
    "parse_scheme": "initlab.init",
    "variance_scaling_": "initlab.init",
    "MLPSpec": "initlab.models",
    "cnn": "initlab.models",
    "deep_cnn": "initlab.models",
    "deep_mlp": "initlab.models",
    "mlp": "initlab.models",
    "Diagnosis": "initlab.probes",
    "Probe": "initlab.probes",
    "ProbeRecord": "initlab.probes",
    "diagnose": "initlab.probes",
    "every": "initlab.probes",
    "logspaced": "initlab.probes",
    "summarize": "initlab.probes",
    "BatchedResult": "initlab.train.batched",
    "evaluate_batched": "initlab.train.batched",
    "fit_batched": "initlab.train.batched",
    "fit_deep": "initlab.train.deep",
    "fit": "initlab.train.fit",
    "OPTIMIZER_NAMES": "initlab.train.optim",
    "Optimizer": "initlab.train.optim",
    "make_optimizer": "initlab.train.optim",
    "TrainResult": "initlab.train.result",
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
    """Load every public name on first use (so that ``import initlab`` and the command
    line's help do not pay for importing torch)."""
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
