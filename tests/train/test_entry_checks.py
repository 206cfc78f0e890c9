"""Mistakes at the entry of initialize, fit and fit_batched: one line, before training."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from initlab import MLPSpec, fit, fit_batched, initialize, mlp
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
