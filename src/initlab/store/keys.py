"""Stable identities for runs: canonical JSON and the run key.

A run is identified inside its experiment by ``run_key(spec, seed)``::

    key = sha256(canonical_json({"spec": spec, "seed": seed})).hexdigest()

where canonical JSON sorts object keys, uses no whitespace, writes non-ASCII as escapes
and refuses NaN / infinity (they have no stable JSON spelling). Tuples are written as
lists, so ``(100, 100)`` and ``[100, 100]`` give the same key; ``1`` and ``1.0`` do not.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from initlab.errors import InitlabError


def _check_json_value(value: Any, where: str) -> None:
    """Raise an InitlabError naming the first value that canonical JSON cannot hold."""
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InitlabError(f"spec value at {where} is {value!r}; use a finite number")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InitlabError(f"spec key {k!r} at {where} is not a string; use str keys")
            _check_json_value(v, f"{where}.{k}")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_json_value(v, f"{where}[{i}]")
        return
    raise InitlabError(
        f"spec value at {where} has type {type(value).__name__}; "
        "valid: None, bool, int, float, str, list, tuple, dict"
    )


def canonical_json(value: Any) -> str:
    """Serialize ``value`` to canonical JSON (sorted keys, compact, ASCII, finite numbers).

    >>> canonical_json({"b": [1, 2.5], "a": (None, True)})
    '{"a":[null,true],"b":[1,2.5]}'
    """
    _check_json_value(value, "$")
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def run_key(spec: dict[str, Any], seed: int) -> str:
    """Return the run's stable key: sha256 hex of ``canonical_json({"spec": spec, "seed": seed})``.

    >>> run_key({"lr": 0.01}, 0) == run_key({"lr": 0.01}, 0) != run_key({"lr": 0.01}, 1)
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InitlabError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    text = canonical_json({"spec": spec, "seed": seed})
    return hashlib.sha256(text.encode("ascii")).hexdigest()
