"""Run keys: sha256 of canonical JSON, stable under key order and tuple/list spelling."""

from __future__ import annotations

import hashlib
import math

import pytest

from initlab.errors import InitlabError
from initlab.store import RunStore, canonical_json, run_key


def test_run_key_is_sha256_of_canonical_json() -> None:
    spec = {"widths": [784, 100, 10], "lr": 0.01, "init": "he"}
    text = '{"seed":3,"spec":{"init":"he","lr":0.01,"widths":[784,100,10]}}'
    assert canonical_json({"spec": spec, "seed": 3}) == text
    assert run_key(spec, 3) == hashlib.sha256(text.encode()).hexdigest()
    assert RunStore.run_key(spec, 3) == run_key(spec, 3)


def test_run_key_ignores_key_order_and_tuple_spelling() -> None:
    a = {"lr": 0.01, "widths": (784, 100, 10), "opt": {"b": 1, "a": 2}}
    b = {"opt": {"a": 2, "b": 1}, "widths": [784, 100, 10], "lr": 0.01}
    assert run_key(a, 0) == run_key(b, 0)


def test_run_key_changes_with_seed_and_values() -> None:
    spec = {"lr": 0.01}
    keys = {run_key(spec, 0), run_key(spec, 1), run_key({"lr": 0.02}, 0), run_key({"lr": 1}, 0)}
    assert len(keys) == 4
    assert all(len(k) == 64 for k in keys)


@pytest.mark.parametrize(
    ("spec", "seed", "needle"),
    [
        ({"lr": math.nan}, 0, "$.spec.lr is nan"),
        ({"a": [1, math.inf]}, 0, "$.spec.a[1] is inf"),
        ({"path": object()}, 0, "type object"),
        ({1: "x"}, 0, "not a string"),
        ({"lr": 0.1}, 1.5, "seed must be an int"),
        ({"lr": 0.1}, True, "seed must be an int"),
    ],
)
def test_bad_specs_and_seeds_raise_one_line(spec: dict, seed: object, needle: str) -> None:
    with pytest.raises(InitlabError) as info:
        run_key(spec, seed)  # type: ignore[arg-type]
    assert needle in str(info.value)
    assert "\n" not in str(info.value)
