"""What ``initlab list`` shows, read from the experiments' source without importing them.

Importing an experiment module imports PyTorch (more than a second), while the listing
needs four class attributes written as literals in each module: ``name``, ``description``,
``cost`` and ``quick_cost``. :func:`builtin_listing` reads them from the source of every
module in :data:`~initlab.experiments.registry.BUILTIN_MODULES` (the class decorated with
``@register``) with :mod:`ast`; when a module cannot be read that way (an attribute that is
not a literal), it returns None and the caller imports the registry as usual.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from initlab.experiments.registry import BUILTIN_MODULES

DEFAULT_QUICK_COST = "< 1 min"  # as Experiment.quick_cost
_FIELDS = ("name", "description", "cost", "quick_cost")


@dataclass(frozen=True)
class Listed:
    """One experiment as ``initlab list`` shows it."""

    name: str
    description: str
    cost: str
    quick_cost: str


def _module_file(module: str) -> Path:
    root = Path(__file__).resolve().parents[1]  # the initlab package
    return root.joinpath(*module.split(".")[1:]).with_suffix(".py")


def _registered_class(tree: ast.Module) -> ast.ClassDef | None:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
            isinstance(d, ast.Name) and d.id == "register" for d in node.decorator_list
        ):
            return node
    return None


def _literal_fields(cls: ast.ClassDef) -> dict[str, str]:
    found: dict[str, str] = {}
    for node in cls.body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and target.id in _FIELDS and value is not None:
            try:
                literal = ast.literal_eval(value)
            except ValueError:
                continue
            if isinstance(literal, str):
                found[target.id] = literal
    return found


def builtin_listing() -> list[Listed] | None:
    """The built-in experiments in their listed order, or None if one cannot be read."""
    listed = []
    for module in BUILTIN_MODULES:
        try:
            tree = ast.parse(_module_file(module).read_text("utf-8"))
        except (OSError, SyntaxError):
            return None
        cls = _registered_class(tree)
        fields = _literal_fields(cls) if cls is not None else {}
        if not {"name", "description", "cost"} <= set(fields):
            return None
        fields.setdefault("quick_cost", DEFAULT_QUICK_COST)
        listed.append(Listed(**fields))
    return listed
