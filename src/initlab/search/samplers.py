"""Samplers: random (the reference method), TPE (Bayesian) and grid, all Optuna's.

``random`` draws every parameter independently from its distribution, as the from-scratch
book's random search (sec. 6.5.3). Its draws are seeded per trial: trial ``n`` of a study
gets the values of ``RandomSampler(seed=hash(seed, n, name))``, so a study stopped and
resumed, run by several workers, or trained in batches of any size, draws the same values
for the same trial numbers (Optuna's own ``RandomSampler(seed)`` restarts its stream in
every process, so a resumed study would repeat its first draws).

``tpe`` is Bergstra et al.'s Tree-structured Parzen Estimator (NeurIPS 2011): after
``n_startup`` random trials, the finished trials are split at a quantile into good and
bad, each side is modelled by a Parzen density ``l(x)`` and ``g(x)``, and the candidate
maximizing ``l(x) / g(x)`` is tried next. With trials asked in batches (or by several
workers) running trials count as "bad" with the worst value so far (the constant liar),
so one batch does not pile onto one point.

``grid`` tries every combination of ``grid_points`` values per numeric parameter
(log-spaced on log ranges) and every choice of categorical ones.
"""

from __future__ import annotations

import zlib
from typing import Any, Literal, get_args

import optuna

from initlab.errors import check_choice
from initlab.search.space import SearchSpace

SamplerName = Literal["random", "tpe", "grid"]
SAMPLERS: tuple[str, ...] = get_args(SamplerName)
TPE_STARTUP = 10  # random trials before TPE models the results (Optuna's default)


def trial_seed(seed: int, number: int, name: str) -> int:
    """The seed of one random stream of a trial, derived in this one place: (study seed,
    trial number, stream name) -> 32 bits. Streams: each parameter's draw, ``"init"``."""
    return zlib.crc32(f"{seed}:{number}:{name}".encode())


def make_sampler(
    name: str, seed: int, space: SearchSpace, *, grid_points: int = 5, n_startup: int = TPE_STARTUP
) -> Any:
    """The Optuna sampler called ``name`` (one of :data:`SAMPLERS`), seeded with ``seed``."""
    check_choice(name, SAMPLERS, "sampler")
    if name == "random":
        return TrialSeededRandomSampler(seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=n_startup, constant_liar=True, multivariate=True
        )
    return AskTellGridSampler(space.grid(grid_points), seed=seed)


class AskTellGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its ``study.stop()`` once the grid is used up (which
    only works inside ``study.optimize``); the driver stops at the grid's size instead."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None


def grid_size(space: SearchSpace, grid_points: int) -> int:
    """How many points the grid of ``space`` has."""
    size = 1
    for values in space.grid(grid_points).values():
        size *= len(values)
    return size


class TrialSeededRandomSampler(optuna.samplers.BaseSampler):
    """Independent uniform draws, seeded by (seed, trial number, parameter name)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return {}

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Any, trial: Any, param_name: str, dist: Any) -> Any:
        return self.draw(trial.number, param_name, dist)

    def draw(self, number: int, param_name: str, dist: Any) -> Any:
        """The value of ``param_name`` in trial ``number``: a function of (seed, number, name)
        alone, so the driver can draw a batch's parameters without asking the study."""
        sampler = optuna.samplers.RandomSampler(seed=trial_seed(self.seed, number, param_name))
        return sampler.sample_independent(None, None, param_name, dist)  # type: ignore[arg-type]
