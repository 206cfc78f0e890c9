"""The experiment registry: every classic experiment by its CLI name.

Built-in experiments live one per module in a subpackage of :mod:`initlab.experiments` per
protocol group (``signal`` for A1-A4, ``mnist`` for B1-B6, ...); they register
themselves with the :func:`register` decorator when their module is imported, and
:data:`BUILTIN_MODULES` lists the modules to import. Adding an experiment is one module
plus one line here. User code can register its own with the same decorator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from initlab.errors import InitlabError

if TYPE_CHECKING:
    from initlab.experiments.base import Experiment

BUILTIN_MODULES: tuple[str, ...] = (
    "initlab.experiments.signal.activation_histograms",
    "initlab.experiments.signal.symmetry",
    "initlab.experiments.signal.exploding_product",
    "initlab.experiments.signal.depth_scan",
    "initlab.experiments.signal.optimizer_paths",
    "initlab.experiments.mnist.init_compare",
    "initlab.experiments.mnist.optimizer_compare",
    "initlab.experiments.mnist.batchnorm",
    "initlab.experiments.mnist.overfit",
    "initlab.experiments.mnist.ensemble",
    "initlab.experiments.mnist.lab09",
    "initlab.experiments.search.random_search",
    "initlab.experiments.search.bayes_search",
    "initlab.experiments.glorot.saturation",
    "initlab.experiments.glorot.gradients",
    "initlab.experiments.glorot.table",
    "initlab.experiments.deep.deep_signal",
    "initlab.experiments.deep.trainability",
    "initlab.experiments.pretrain.dbn",
    "initlab.experiments.pretrain.lsuv",
)
"""Modules holding the built-in experiments, in the order ``initlab run --list`` shows them."""

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
    """The experiment called ``name``; an unknown name raises an error listing valid ones."""
    _load_builtins()
    if name not in _REGISTRY:
        raise InitlabError(f"unknown experiment {name!r}; valid: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]()
