"""Checks shared by the batched engine's tests: a batched member's run equals ``fit``'s.

Float32 results agree to atol 1e-5 / rtol 1e-4 by default (the engine sums in another
order than autograd); probe statistics to rtol 1e-4, their atol scaled by their size.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from initlab.train.result import TrainResult

ATOL, RTOL = 1e-5, 1e-4


def close(
    a: Any, b: Any, what: str, scale: float = 1.0, atol: float = ATOL, rtol: float = RTOL
) -> None:
    """``b == a`` within float32 tolerance (``atol * scale``, ``rtol``); ``scale``: the size
    of the numbers ``a`` was computed from (a mean of entries of size 1e3 is only good to
    about 1e3 * 1e-7)."""
    if isinstance(a, float) and not math.isfinite(a):
        assert not math.isfinite(b), what
        return
    torch.testing.assert_close(
        torch.as_tensor(b, dtype=torch.float64),
        torch.as_tensor(a, dtype=torch.float64),
        atol=atol * scale,
        rtol=rtol,
        msg=lambda m: f"{what}: {m}",
    )


def assert_same_run(single: TrainResult, member: TrainResult, probes: bool = False) -> None:
    """History, status and final state of a batched member equal those of ``fit``."""
    assert (member.status, member.steps_done, member.diverged_at) == (
        single.status,
        single.steps_done,
        single.diverged_at,
    )
    assert [sorted(r) for r in member.history] == [sorted(r) for r in single.history]
    for row_s, row_m in zip(single.history, member.history, strict=True):
        for key, value in row_s.items():
            close(value, row_m[key], f"history step {row_s['step']} {key}")
    assert member.final_state.keys() == single.final_state.keys()
    for key, value in single.final_state.items():
        close(value, member.final_state[key], f"final_state {key}")
    if probes:
        assert_same_records(single.probe_records, member.probe_records, member.member)


def assert_same_records(expected: list[dict], got: list[dict], member: int | None) -> None:
    """Probe records of a batched member equal those of ``fit`` (statistics to ``close``,
    histogram counts to within two values moved across a bin edge)."""
    assert len(got) == len(expected) > 0
    for r_s, r_m in zip(expected, got, strict=True):
        where = f"probe {r_s['step']} {r_s['layer']} {r_s['kind']}"
        assert (r_m["step"], r_m["layer"], r_m["kind"]) == (r_s["step"], r_s["layer"], r_s["kind"])
        assert r_m["member"] == member
        assert r_m["stats"].keys() == r_s["stats"].keys()
        stats = r_s["stats"]
        scale = max(1.0, *(abs(stats.get(k, 0.0)) for k in ("min", "max", "norm")))
        for key, value in stats.items():
            close(value, r_m["stats"][key], f"{where} {key}", scale)
        if r_s["histogram"] is None:
            assert r_m["histogram"] is None
            continue
        close(r_s["histogram"]["edges"], r_m["histogram"]["edges"], f"{where} edges")
        counts_s, counts_m = r_s["histogram"]["counts"], r_m["histogram"]["counts"]
        assert sum(counts_s) == sum(counts_m)
        # a value within rounding of a bin edge may land in the neighbouring bin
        assert sum(abs(a - b) for a, b in zip(counts_s, counts_m, strict=True)) <= 2
