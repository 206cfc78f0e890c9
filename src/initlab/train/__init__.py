"""Training: :func:`fit` for any model, :func:`fit_batched` for N MLPs in one computation.

The optimizers (:mod:`initlab.train.optim`) are functional and take per-member
hyperparameters, so one implementation serves both engines.
"""

from initlab.train.batched import BatchedResult, evaluate_batched, fit_batched
from initlab.train.batched_mlp import StackedMLP
from initlab.train.fit import evaluate, fit
from initlab.train.optim import OPTIMIZER_NAMES, Optimizer, make_optimizer
from initlab.train.result import RunStatus, TrainResult

__all__ = [
    "OPTIMIZER_NAMES",
    "BatchedResult",
    "Optimizer",
    "RunStatus",
    "StackedMLP",
    "TrainResult",
    "evaluate",
    "evaluate_batched",
    "fit",
    "fit_batched",
    "make_optimizer",
]
