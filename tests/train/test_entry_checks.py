"""Mistakes at the entry of initialize, fit and fit_batched: one line, before training."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from initlab import MLPSpec, diagnose, fit, fit_batched, fit_deep, initialize, mlp
from initlab.data import Dataset
from initlab.errors import InitlabError

X = torch.randn(32, 10, generator=torch.Generator().manual_seed(0))
Y = torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(1))
SPEC = MLPSpec((10, 8, 3), "relu")


def _model() -> torch.nn.Module:
    return mlp([10, 8, 3], "relu")


CASES: list[tuple[str, Callable[[], Any], str]] = [
    ("initialize str first", lambda: initialize("he_normal", _model()), "needs a torch.nn.Module"),
    ("fit batch_size 0", lambda: fit(_model(), (X, Y), steps=2, batch_size=0), "batch_size"),
    ("fit steps 0", lambda: fit(_model(), (X, Y), steps=0), "steps must be a positive"),
    ("fit labels >= classes", lambda: fit(_model(), (X, Y + 3), steps=2), "labels up to 5"),
    ("fit float labels", lambda: fit(_model(), (X, Y.float()), steps=2), "integer class"),
    ("fit negative labels", lambda: fit(_model(), (X, Y - 5), steps=2), ">= 0"),
    ("fit wrong width", lambda: fit(_model(), (X[:, :7], Y), steps=2), "has 7 values"),
    ("fit one tensor", lambda: fit(_model(), [X], steps=2), "(x, y) pair of tensors"),
    ("fit int inputs", lambda: fit(_model(), (X.long(), Y), steps=2), "floating point"),
    ("fit x/y lengths", lambda: fit(_model(), (X, Y[:5]), steps=2), "labels [N]"),
    (
        "batched wrong width",
        lambda: fit_batched([("he_normal", 0)], (X[:, :7], Y), spec=SPEC, steps=2),
        "network's input layer takes 10",
    ),
    (
        "batched labels >= classes",
        lambda: fit_batched([("he_normal", 0)], (X, Y + 3), spec=SPEC, steps=2),
        "the model has 3 outputs",
    ),
    (
        "batched batch_size 0",
        lambda: fit_batched([("he_normal", 0)], (X, Y), spec=SPEC, steps=2, batch_size=0),
        "batch_size must be a positive",
    ),
    (
        "fit bn_eps text",
        lambda: fit(_model(), (X, Y), steps=2, bn_eps="1e-6"),
        "bn_eps must be a positive number",
    ),
    (
        "batched bn_eps text",
        lambda: fit_batched([("he_normal", 0)], (X, Y), spec=SPEC, steps=2, bn_eps="x"),
        "bn_eps must be a positive number",
    ),
    (
        "batched member's own dropout mode",
        lambda: fit_batched(
            [mlp([10, 8, 3], "relu", dropout=0.2, dropout_mode="scale_at_test")],
            (X, Y),
            spec=MLPSpec((10, 8, 3), "relu"),
            steps=2,
        ),
        "member 0 has dropout_mode='scale_at_test'",
    ),
    (
        "fit eval labels >= classes",
        lambda: fit(_model(), (X, Y), steps=2, eval_data=(X, Y + 3), eval_every=1),
        "eval_data has labels up to 5",
    ),
    (
        "fit eval wrong width",
        lambda: fit(_model(), (X, Y), steps=2, eval_data=(X[:, :7], Y), eval_every=1),
        "has 7 values",
    ),
    (
        "batched eval labels >= classes",
        lambda: fit_batched(
            [("he_normal", 0)], (X, Y), spec=SPEC, steps=2, eval_data=(X, Y + 3), eval_every=1
        ),
        "eval_data has labels up to 5",
    ),
    (
        "deep labels >= classes",
        lambda: fit_deep([("he_normal", 0)], (X, Y + 3), spec=SPEC, steps=2),
        "the model has 3 outputs",
    ),
    (
        "deep float labels",
        lambda: fit_deep([("he_normal", 0)], (X, Y.float()), spec=SPEC, steps=2),
        "integer class",
    ),
    (
        "deep wrong width",
        lambda: fit_deep([("he_normal", 0)], (X[:, :7], Y), spec=SPEC, steps=2),
        "takes 10",
    ),
    (
        "deep log_every 0",
        lambda: fit_deep([("he_normal", 0)], (X, Y), spec=SPEC, steps=2, log_every=0),
        "log_every must be a positive",
    ),
    (
        "diagnose deep chain that fails",
        lambda: diagnose(
            torch.nn.Sequential(*[torch.nn.Linear(5 if i == 60 else 4, 4) for i in range(120)]),
            torch.randn(8, 4),
        ),
        "the model failed on inputs of shape [8, 4]",
    ),
]


@pytest.mark.parametrize(("name", "call", "message"), CASES, ids=[c[0] for c in CASES])
def test_mistake_is_one_line(name: str, call: Callable[[], Any], message: str) -> None:
    with pytest.raises(InitlabError) as err:
        call()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_x_y_pair_trains_as_the_dataset_does() -> None:
    """(x, y) tensors are accepted and give exactly what the Dataset gives."""
    a, b = _model(), _model()
    b.load_state_dict(a.state_dict())
    ra = fit(a, (X, Y), steps=5, batch_size=8, seed=3)
    rb = fit(b, Dataset(X, Y, "blobs"), steps=5, batch_size=8, seed=3)
    assert ra.status == rb.status == "done"
    assert [r["train_loss"] for r in ra.history] == [r["train_loss"] for r in rb.history]


def test_float64_members_keep_float64_batch_norm_statistics() -> None:
    """Running statistics follow the members' precision (float32 rounding would undo the
    float64 run the book-faithful batch-norm sweep asks for)."""
    spec = MLPSpec((10, 8, 3), "relu", batchnorm=True)
    result = fit_batched(
        [("he_normal", 0)], (X.double(), Y), spec=spec, steps=3, dtype=torch.float64
    )
    state = result[0].final_state
    running = [v for k, v in state.items() if k.endswith(("running_mean", "running_var"))]
    assert running and all(v.dtype == torch.float64 for v in running)
