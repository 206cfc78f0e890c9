"""Pruners: give up on bad trials early, from their intermediate validation accuracy.

The from-scratch book's advice for hyperparameter search (sec. 6.5.2): training takes
long, so stop a value early when its results are clearly bad. A trial reports its
validation accuracy after every epoch; the pruner compares it with the other trials at the
same epoch:

- ``median`` (Optuna's ``MedianPruner``, the rule of Google Vizier, Golovin et al., KDD
  2017): prune when the trial's best value so far is below the median of the other trials'
  values at that epoch, after ``startup`` finished trials and ``warmup`` epochs;
- ``halving`` (asynchronous successive halving, Li et al., MLSys 2020): rungs at epochs
  ``warmup * 3^k``; at each rung a trial goes on only if it is in the top third of the
  trials that reached the rung;
- ``none``: every trial runs all its epochs.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import optuna

from initlab.errors import check_choice

PrunerName = Literal["none", "median", "halving"]
PRUNERS: tuple[str, ...] = get_args(PrunerName)


def make_pruner(name: str, *, startup: int = 5, warmup: int = 5) -> Any:
    """The Optuna pruner called ``name`` (one of :data:`PRUNERS`)."""
    check_choice(name, PRUNERS, "pruner")
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=max(warmup, 1), reduction_factor=3
        )
    return optuna.pruners.NopPruner()
