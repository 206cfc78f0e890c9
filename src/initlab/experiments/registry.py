"""The experiment registry: every classic experiment by its CLI name.

Built-in experiments live one per module in a subpackage of :mod:`initlab.experiments` per
protocol group (``signal`` for A1-A4, ``mnist`` for B1-B6, ...); they register
themselves with the :func:`register` decorator when their module is imported, and
:data:`BUILTIN_EXPERIMENTS` maps each name to the module to import. Adding an experiment
is one module plus one line here. User code can register its own with the same decorator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from initlab.errors import InitlabError

if TYPE_CHECKING:
    from initlab.experiments.base import Experiment

BUILTIN_EXPERIMENTS: dict[str, str] = {
    "activation-histograms": "initlab.experiments.signal.activation_histograms",
    "symmetry": "initlab.experiments.signal.symmetry",
    "exploding-product": "initlab.experiments.signal.exploding_product",
    "depth-scan": "initlab.experiments.signal.depth_scan",
    "optimizer-paths": "initlab.experiments.signal.optimizer_paths",
    "init-compare": "initlab.experiments.mnist.init_compare",
    "optimizer-compare": "initlab.experiments.mnist.optimizer_compare",
    "batchnorm": "initlab.experiments.mnist.batchnorm",
    "overfit": "initlab.experiments.mnist.overfit",
    "ensemble": "initlab.experiments.mnist.ensemble",
    "lab-09": "initlab.experiments.mnist.lab09",
    "random-search": "initlab.experiments.search.random_search",
    "bayes-search": "initlab.experiments.search.bayes_search",
    "glorot-saturation": "initlab.experiments.glorot.saturation",
    "glorot-gradients": "initlab.experiments.glorot.gradients",
    "glorot-table": "initlab.experiments.glorot.table",
    "deep-signal": "initlab.experiments.deep.deep_signal",
    "trainability": "initlab.experiments.deep.trainability",
    "dbn": "initlab.experiments.pretrain.dbn",
    "lsuv": "initlab.experiments.pretrain.lsuv",
}
"""Each built-in experiment's name and the module that registers it, in the order ``initlab
list`` shows them: ``get_experiment(name)`` imports that one module only (importing all of
them, optuna and the rest, took ~0.5 s of every ``initlab run``)."""

BUILTIN_MODULES: tuple[str, ...] = tuple(BUILTIN_EXPERIMENTS.values())
"""The modules holding the built-in experiments, in their listed order."""

_REGISTRY: dict[str, type[Experiment]] = {}
_loaded = False


def register(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise InitlabError(f"experiment name {cls.name!r} is already taken by {existing}")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        _loaded = True


def _ordered() -> list[type[Experiment]]:
    """Registered classes: built-ins in :data:`BUILTIN_MODULES` order, then the others.

    Registration order alone would depend on which module a caller happened to import
    first (a test importing one experiment module directly moves it to the front).
    """
    _load_builtins()
    rank = {module: i for i, module in enumerate(BUILTIN_MODULES)}
    classes = list(_REGISTRY.values())
    return sorted(classes, key=lambda cls: rank.get(cls.__module__, len(rank)))


def list_experiments() -> list[Experiment]:
    """One instance of every registered experiment, built-ins first in their listed order."""
    return [cls() for cls in _ordered()]


def experiment_names() -> list[str]:
    """The names of every registered experiment, built-ins first in their listed order."""
    return [cls.name for cls in _ordered()]


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; an unknown name raises an error listing valid ones.

    A built-in name imports its own module only (a user's experiment registered under a
    built-in's name still meets that module's registration, and its error).
    """
    module = BUILTIN_EXPERIMENTS.get(name)
    if module is not None:
        importlib.import_module(module)
    if name not in _REGISTRY:
        _load_builtins()
    if name not in _REGISTRY:
        raise InitlabError(f"unknown experiment {name!r}; valid: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]()
