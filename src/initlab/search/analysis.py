"""After a search: the top trials, the narrowed ranges, parameter importances.

Narrowing is the from-scratch book's step 3 of its search (sec. 6.5.2): look at the best
results and shrink the ranges to where they are, then search again.
Importances are Optuna's default PED-ANOVA (Watanabe et al., IJCAI 2023): the share of the
variance of the top trials' density explained by each parameter, on a log scale for log
parameters; computed from the stored trials in an in-memory study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from initlab.search.space import SearchSpace

NARROW_MARGIN = 0.1  # the narrowed range is widened by this fraction of the old one


def top_rows(rows: Sequence[Mapping[str, Any]], k: int) -> list[Mapping[str, Any]]:
    """The ``k`` best complete trials, best first."""
    done = [r for r in rows if r["state"] == "complete"]
    return sorted(done, key=lambda r: -float(r["value"]))[:k]


def narrowed(space: SearchSpace, top: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The space narrowed to the top trials' parameters (see :meth:`SearchSpace.narrow`)."""
    return space.narrow([r["params"] for r in top], NARROW_MARGIN)


def importances(space: SearchSpace, rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Parameter importances from the complete trials (empty with fewer than 4 or a
    one-parameter space)."""
    done = [r for r in rows if r["state"] == "complete"]
    if len(done) < 4 or len(space.params) < 2:
        return {}
    study = optuna.create_study(direction="maximize")
    dists = space.distributions()
    study.add_trials(
        [
            optuna.trial.create_trial(
                state=TrialState.COMPLETE,
                params=dict(r["params"]),
                distributions=dists,
                value=float(r["value"]),
            )
            for r in done
        ]
    )
    try:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        result = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}
    return {name: float(value) for name, value in result.items()}
