"""The experiment registry: every classic experiment by its CLI name.

Built-in experiments live one per module in :mod:`initlab.experiments`; they register
themselves with the :func:`register` decorator when their module is imported, and
:data:`BUILTIN_MODULES` lists the modules to import. Adding an experiment is one module
plus one line here. User code can register its own with the same decorator.
"""

from __future__ import annotations

import importlib

from initlab.errors import InitlabError
from initlab.experiments.base import Experiment

BUILTIN_MODULES: tuple[str, ...] = (
    "initlab.experiments.activation_histograms",
    "initlab.experiments.symmetry",
    "initlab.experiments.exploding_product",
    "initlab.experiments.depth_scan",
    "initlab.experiments.optimizer_paths",
    "initlab.experiments.init_compare",
    "initlab.experiments.optimizer_compare",
    "initlab.experiments.batchnorm",
    "initlab.experiments.overfit",
    "initlab.experiments.ensemble",
    "initlab.experiments.lab09",
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


def list_experiments() -> list[Experiment]:
    """One instance of every registered experiment, built-ins first in their listed order."""
    _load_builtins()
    return [cls() for cls in _REGISTRY.values()]


def experiment_names() -> list[str]:
    """The names of every registered experiment."""
    _load_builtins()
    return list(_REGISTRY)


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; an unknown name raises an error listing valid ones."""
    _load_builtins()
    if name not in _REGISTRY:
        raise InitlabError(f"unknown experiment {name!r}; valid: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]()
