"""Training: :func:`fit` for any model, :func:`fit_batched` for N MLPs in one computation,
:func:`fit_deep` for very deep vanilla MLPs (activation checkpointing).

The optimizers (:mod:`initlab.train.optim`) are functional and take per-member
hyperparameters, so one implementation serves both engines.
"""

from initlab.train.batched import BatchedResult, evaluate_batched, fit_batched
from initlab.train.batched_mlp import StackedMLP
from initlab.train.deep import DeepResult, fit_deep
from initlab.train.fit import evaluate, fit
from initlab.train.optim import OPTIMIZER_NAMES, Optimizer, make_optimizer
from initlab.train.result import RunStatus, TrainResult

__all__ = [
    "OPTIMIZER_NAMES",
    "BatchedResult",
    "DeepResult",
    "Optimizer",
    "RunStatus",
    "StackedMLP",
    "TrainResult",
    "evaluate",
    "evaluate_batched",
    "fit",
    "fit_batched",
    "fit_deep",
    "make_optimizer",
]
