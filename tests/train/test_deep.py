"""Deep vanilla MLPs with activation checkpointing (fit_deep): equal to fit, checkpointed
equal to plain, per-layer gradient norms at depth 200, a 1000-layer run.

Tiny widths and few steps, so the file runs in a few seconds. Tolerance against ``fit``
(autograd, float32): 1e-5 relative on the losses (sums in another order).
"""

from __future__ import annotations

import copy

import pytest
import torch

from initlab.data.dataset import Dataset
from initlab.errors import InitlabError
from initlab.init import initialize
from initlab.models import deep_mlp
from initlab.models.mlp import MLPSpec
from initlab.train.deep import fit_deep, segment_length
from initlab.train.fit import fit


def _data(n: int = 256, features: int = 20, dtype: torch.dtype = torch.float32) -> Dataset:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(10, features, generator=torch.Generator().manual_seed(9))
    y = torch.randint(0, 10, (n,), generator=g)
    x = centres[y] + torch.randn(n, features, generator=g)
    return Dataset(x.to(dtype), y, "blobs")


def _model(scheme: str, seed: int, depth: int = 24, width: int = 16) -> torch.nn.Module:
    model = deep_mlp(depth, width, "tanh", in_features=20, out_features=10)
    initialize(model, scheme, seed=seed)
    return model


def _losses(result) -> list[float]:  # type: ignore[no-untyped-def]
    return [row["train_loss"] for row in result.history if "train_loss" in row]


def test_plain_and_checkpointed_equal_fit() -> None:
    data = _data()
    models = [_model("critical_orthogonal", 0), _model("xavier_normal", 1)]
    kwargs = {"lr": 0.05, "steps": 15, "batch_size": 32, "seed": 3}
    reference = [
        fit(copy.deepcopy(m), data, optimizer="sgd", batch_mode="replacement", **kwargs)
        for m in models
    ]
    plain = fit_deep(models, data, checkpoint=False, **kwargs)
    for segment in (True, 5, 1):
        checkpointed = fit_deep(models, data, checkpoint=segment, **kwargs)
        for m in range(2):  # recomputed segments give the same floats: equal, not close
            assert _losses(checkpointed[m]) == _losses(plain[m])
    for m in range(2):
        assert _losses(plain[m]) == pytest.approx(_losses(reference[m]), rel=1e-5)
    trained = plain.model(0).state_dict()
    assert set(trained) == set(models[0].state_dict())


def test_checkpointing_stores_about_two_sqrt_depth_layers() -> None:
    assert segment_length(1000, True) == 32 and segment_length(1000, False) == 1001
    spec = MLPSpec((20, *[8] * 100, 10), "tanh")
    plain = fit_deep([("critical", 0)], _data(), spec=spec, steps=1, batch_size=16)
    ck = fit_deep([("critical", 0)], _data(), spec=spec, steps=1, checkpoint=True, batch_size=16)
    assert plain.memory.stored_layers == 100
    assert ck.memory.stored_layers == 100 // 10 + 9  # boundaries + one recomputed segment
    assert ck.memory.activation_bytes < 0.3 * plain.memory.activation_bytes
    assert ck.memory.peak_bytes > 0 and _losses(ck[0]) == _losses(plain[0])


def test_per_member_rates_and_float64_follow_the_data() -> None:
    data = _data(dtype=torch.float64)
    models = [_model("critical_orthogonal", 0), _model("he_normal", 1)]
    together = fit_deep(models, data, lr=[0.05, 0.01], steps=10, batch_size=32, checkpoint=4)
    assert together.net is not None and together.net.w[0].dtype == torch.float64
    assert together[0].config["dtype"] == "float64"
    for m, rate in enumerate((0.05, 0.01)):
        ref = fit(copy.deepcopy(models[m]).double(), data, optimizer="sgd", lr=rate,
                  steps=10, batch_size=32, batch_mode="replacement")  # fmt: skip
        assert _losses(together[m]) == pytest.approx(_losses(ref), rel=1e-12)


def test_a_diverging_member_is_frozen_and_the_others_go_on() -> None:
    data = _data()
    models = [_model("critical_orthogonal", 0), _model("critical_orthogonal", 1)]
    result = fit_deep(models, data, lr=[0.05, 1e37], steps=12, batch_size=32)
    assert result[1].status == "diverged" and result[1].diverged_at is not None
    assert result[0].status == "done" and len(_losses(result[0])) == 12
    frozen = result.model(1).state_dict()
    assert all(torch.isfinite(t).all() for t in frozen.values())


def test_gradient_norms_at_depth_200_critical_orthogonal_vs_gaussian() -> None:
    """Critical orthogonal keeps dL/dz within a small factor over 200 layers; Gaussian
    Xavier's shrinks by more than an order of magnitude towards the input, He's grows by
    more than three (both i.i.d. Gaussian; Xavier's sigma_w^2 = 1 is the sigma_b^2 = 0
    critical point, whose q* = 0 is approached like 1/l, so its gradients decay like 1/l)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 128, generator=g), torch.randint(0, 10, (256,), generator=g)
    data = Dataset(x, y, "gaussian")
    spec = MLPSpec((128, *[128] * 200, 10), "tanh")
    members = [("critical_orthogonal", 0), ("xavier_normal", 0), ("he_normal", 0)]
    result = fit_deep(members, data, spec=spec, steps=1, batch_size=64, probe_steps=[0])
    ratios = []
    for member in result:
        hidden = [r["stats"] for r in member.probe_records if r["layer"] not in
                  ("linear1", "linear201")]  # fmt: skip
        delta = [s["delta_rms"] for s in hidden]
        weight = [s["weight_grad_norm"] for s in hidden]
        ratios.append((max(delta) / min(delta), delta[0] / delta[-1], max(weight) / min(weight)))
    assert ratios[0][0] < 3 and ratios[0][2] < 3  # critical orthogonal: within 3x
    assert ratios[1][1] < 0.1  # Xavier: the input side gets < 1/10 of the output side
    assert ratios[2][1] > 1e3 and ratios[2][2] > 1e3  # He (chaotic for tanh): explodes


def test_a_1000_layer_checkpointed_run_completes() -> None:
    spec = MLPSpec((20, *[8] * 1000, 10), "tanh")
    data = _data()
    result = fit_deep([("critical_orthogonal:sigma_b2=0.0001", 0)], data, spec=spec, lr=0.02,
                      steps=3, batch_size=16, checkpoint=True, eval_data=data)  # fmt: skip
    losses = _losses(result[0])
    assert len(losses) == 3 and all(0.5 < v < 10 for v in losses)
    assert result.memory.stored_layers == 1000 // 32 + 31
    assert 0.0 <= result[0].history[-1]["valid_acc"] <= 1.0


def test_errors() -> None:
    with pytest.raises(InitlabError, match="activation"):
        fit_deep([("he_normal", 0)], _data(), spec=MLPSpec((20, 8, 10), "gelu"))
    with pytest.raises(InitlabError, match="spec"):
        fit_deep([("he_normal", 0)], _data())
    with pytest.raises(InitlabError, match="checkpoint"):
        segment_length(10, -2)
    with pytest.raises(InitlabError, match="input layer takes 30"):
        fit_deep([("he_normal", 0)], _data(), spec=MLPSpec((30, 8, 10), "tanh"))
