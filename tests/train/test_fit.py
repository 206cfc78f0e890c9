"""The single-model trainer on tiny synthetic problems: learning, divergence, determinism,
weight decay, train/eval modes, probes, and equality with a hand-written torch.optim loop."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import Tensor, nn

from initlab.data.batches import minibatches
from initlab.data.dataset import Dataset
from initlab.errors import InitlabError
from initlab.models.mlp import mlp
from initlab.probes.schedules import every
from initlab.train.fit import decay_mask_of, evaluate, fit
from initlab.train.optim import make_optimizer
from initlab.train.result import TrainResult


def _blobs(n: int = 256, seed: int = 0, name: str = "blobs") -> Dataset:
    """Three Gaussian blobs in 8 dimensions: learnable to ~100% by a small MLP."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, 8, generator=torch.Generator().manual_seed(99)) * 2
    y = torch.randint(0, 3, (n,), generator=g)
    return Dataset(centers[y] + torch.randn(n, 8, generator=g), y, name)


def _net(seed: int = 0, **kwargs: object) -> nn.Module:
    torch.manual_seed(seed)
    return mlp([8, 16, 16, 3], **kwargs)  # type: ignore[arg-type]


def test_loss_decreases_and_model_learns() -> None:
    data, valid = _blobs(), _blobs(128, seed=1, name="valid")
    result = fit(_net(activation="tanh"), data, lr=0.1, steps=150, batch_size=32, eval_data=valid)
    losses = [v for _, v in result.metric("train_loss")]
    assert result.status == "done" and result.steps_done == 150
    assert sum(losses[-10:]) / 10 < 0.25 * sum(losses[:10]) / 10
    assert result.metric("valid_acc")[0][1] < 0.7  # at init
    assert result.final_valid_acc is not None and result.final_valid_acc > 0.95
    assert result.history[-1]["step"] == 150  # the final evaluation, after the last update


def test_huge_lr_diverges_without_raising() -> None:
    result = fit(_net(activation="relu"), _blobs(), lr=1e6, steps=50, batch_size=32)
    assert result.status == "diverged" and result.diverged
    assert result.diverged_at is not None and result.diverged_at < 50
    assert result.steps_done == result.diverged_at
    assert not math.isfinite(result.history[-1]["train_loss"])
    json.dumps(result.to_dict(), allow_nan=False)  # JSON-safe although the loss is NaN


class _PoisonAt(nn.Module):
    """Identity until its ``at``-th training call, then NaN (an injected divergence)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.calls += 1
            if self.calls > self.at:
                return x * float("nan")
        return x


def test_injected_nan_stops_at_that_step_and_skips_its_update() -> None:
    model = nn.Sequential(nn.Linear(8, 3), _PoisonAt(3))
    seen: list[dict] = []
    result = fit(model, _blobs(), lr=0.1, steps=10, batch_size=16, callback=seen.append)
    assert (result.status, result.diverged_at, result.steps_done) == ("diverged", 3, 3)
    assert [row["step"] for row in result.history] == [0, 1, 2, 3]
    assert math.isnan(seen[-1]["train_loss"])
    assert torch.isfinite(result.final_state["0.weight"]).all()  # no NaN update applied


def test_same_seed_same_numbers_other_seed_other_numbers() -> None:
    data = _blobs()

    def run(seed: int) -> TrainResult:
        return fit(
            _net(dropout=0.3),
            data,
            optimizer="adam",
            steps=30,
            batch_size=16,
            batch_mode="epoch",
            seed=seed,
        )

    a, b, c = run(5), run(5), run(6)
    assert a.history == b.history
    for key, tensor in a.final_state.items():
        assert torch.equal(tensor, b.final_state[key])
    assert a.metric("train_loss") != c.metric("train_loss")


def test_global_rng_is_left_alone() -> None:
    model, data = _net(dropout=0.5), _blobs()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(model, data, steps=5, batch_size=16)
    assert torch.equal(torch.rand(3), expected)


def test_same_minibatches_as_the_data_stream() -> None:
    """fit draws from minibatches(generator=Generator().manual_seed(seed)), as the engine."""
    data = _blobs(64)
    seen: list[Tensor] = []

    class Spy(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            if self.training:
                seen.append(x.clone())
            return x

    model = nn.Sequential(Spy(), nn.Linear(8, 3))
    fit(model, data, steps=7, batch_size=10, batch_mode="replacement", seed=11)
    stream = minibatches(
        64, 10, steps=7, mode="replacement", generator=torch.Generator().manual_seed(11)
    )
    for got, idx in zip(seen, stream, strict=True):
        assert torch.equal(got, data.x[idx])


def _weight_norm(state: dict[str, Tensor]) -> float:
    return math.sqrt(sum(float(v.pow(2).sum()) for k, v in state.items() if k.endswith("weight")))


def test_weight_decay_shrinks_weights_as_the_books_penalty() -> None:
    data = _blobs()
    plain = fit(_net(), data, lr=0.1, steps=60, batch_size=32)
    decayed = fit(_net(), data, lr=0.1, steps=60, batch_size=32, weight_decay=0.5)
    assert _weight_norm(decayed.final_state) < 0.8 * _weight_norm(plain.final_state)
    assert decay_mask_of(_net()) == [True, False, True, False, True, False]
    assert decay_mask_of(_net(), decay_biases=True) == [True] * 6
    # the logged loss includes the book's 0.5 * lambda * sum ||W||^2 (at step 0: same init)
    net = _net()
    penalty = 0.25 * sum(
        float(m.weight.detach().pow(2).sum()) for m in net if isinstance(m, nn.Linear)
    )
    delta = decayed.history[0]["train_loss"] - plain.history[0]["train_loss"]
    assert delta == pytest.approx(penalty, rel=1e-5)


class _ModeSpy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.modes: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        self.modes.append(self.training)
        return x


def test_dropout_on_in_training_passes_only() -> None:
    spy = _ModeSpy()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.5), spy, nn.Linear(32, 3))
    data = _blobs(64)
    model.eval()
    result = fit(
        model, data, steps=8, batch_size=16, eval_data=data, eval_every=4, eval_batch_size=64
    )
    assert spy.modes == [False, True, True, True, True, False, True, True, True, True, False]
    assert not model.training  # the caller's mode is restored
    # dropout really acts in train mode: the same batch gives different outputs
    model.train()
    assert not torch.equal(model(data.x[:16]), model(data.x[:16]))
    model.eval()
    assert torch.equal(model(data.x[:16]), model(data.x[:16]))
    assert [r["step"] for r in result.history if "valid_acc" in r] == [0, 4, 8]


def test_epochs_eval_and_log_every() -> None:
    data = _blobs(100)
    result = fit(
        _net(), data, epochs=2, batch_size=32, batch_mode="epoch", eval_train=True, log_every=3
    )
    assert result.steps_done == 8  # ceil(100 / 32) = 4 batches per epoch
    assert [r["step"] for r in result.history] == [0, 3, 4, 6, 8]
    assert [r["epoch"] for r in result.history] == [0, 0, 1, 1, 2]
    assert {"train_eval_loss", "train_eval_acc"} <= set(result.history[2])
    loss, acc = evaluate(_net(), data.x, data.y, batch_size=7)
    assert loss == pytest.approx(
        float(nn.functional.cross_entropy(_net()(data.x), data.y).detach()), rel=1e-5
    )
    assert 0.0 <= acc <= 1.0


def test_callback_can_stop_the_run() -> None:
    result = fit(_net(), _blobs(), steps=50, batch_size=16, callback=lambda row: row["step"] >= 4)
    assert (result.status, result.steps_done) == ("done", 5)


def test_probe_records_on_schedule() -> None:
    data = _blobs(64)
    result = fit(
        _net(), data, steps=12, batch_size=16, probe=every(5), eval_data=data, eval_every=2
    )
    records = result.probe_records
    assert records and {r["step"] for r in records} == {0, 5, 10}
    kinds = {(r["layer"], r["kind"]) for r in records if r["step"] == 5}
    assert ("act1", "activation") in kinds and ("linear1", "gradient") in kinds
    assert ("linear3", "weight") in kinds and ("linear2", "update") in kinds
    # one activation record per layer and step: evaluation passes are not probed
    acts = [(r["step"], r["layer"]) for r in records if r["kind"] == "activation"]
    assert len(acts) == len(set(acts)) == 6
    assert set(records[0]) >= {"step", "layer", "kind", "stats", "histogram"}
    assert records[0]["stats"]["nonfinite"] == 0.0


def test_probe_data_is_probed_instead_of_minibatches() -> None:
    data, fixed = _blobs(64), _blobs(30, seed=3, name="fixed")
    result = fit(
        _net(batchnorm=True),
        data,
        steps=6,
        batch_size=16,
        probe=3,
        probe_data=fixed,
        probe_layers=["act*"],
        histograms=True,
    )
    acts = [r for r in result.probe_records if r["kind"] == "activation"]
    assert sorted({r["step"] for r in acts}) == [0, 3]
    assert len(acts) == 4 and sum(acts[0]["histogram"]["counts"]) == 30 * 16


def _torch_loop(
    model: nn.Module, data: Dataset, make_opt, steps: int, bs: int, seed: int, wd: float
) -> list[float]:
    """The reference: torch.optim, loss + 0.5 * wd * sum ||W||^2 as in the from-scratch book."""
    opt = make_opt(model.parameters())
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    losses = []
    gen = torch.Generator().manual_seed(seed)
    for idx in minibatches(len(data), bs, steps=steps, mode="replacement", generator=gen):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(data.x[idx]), data.y[idx])
        loss = loss + 0.5 * wd * sum(w.pow(2).sum() for w in weights)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize(
    ("name", "hparams", "make_opt"),
    [
        ("momentum", {"lr": 0.05}, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
        ("adam", {"lr": 0.01}, lambda p: torch.optim.Adam(p, lr=0.01)),
        ("rmsprop", {"lr": 0.01}, lambda p: torch.optim.RMSprop(p, lr=0.01)),
    ],
)
def test_fit_matches_a_torch_optim_loop(name: str, hparams: dict, make_opt) -> None:
    data, wd = _blobs(), 0.01
    expected = _torch_loop(_net(activation="tanh"), data, make_opt, 40, 16, 7, wd)
    result = fit(
        _net(activation="tanh"),
        data,
        optimizer=name,
        lr=hparams["lr"],
        steps=40,
        batch_size=16,
        seed=7,
        weight_decay=wd,
    )
    got = [v for _, v in result.metric("train_loss")]
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), atol=1e-5, rtol=0)
    assert expected[-1] < 0.5 * expected[0]


def test_adamw_uses_its_own_decoupled_decay() -> None:
    data = _blobs()
    model = _net()
    ref = torch.optim.AdamW(
        [
            {"params": [m.weight for m in model if isinstance(m, nn.Linear)], "weight_decay": 0.1},
            {"params": [m.bias for m in model if isinstance(m, nn.Linear)], "weight_decay": 0.0},
        ],
        lr=0.01,
    )
    expected = _torch_loop(model, data, lambda p: ref, 20, 16, 0, 0.0)
    result = fit(
        _net(), data, optimizer="adamw", lr=0.01, weight_decay=0.1, steps=20, batch_size=16
    )
    got = [v for _, v in result.metric("train_loss")]  # no penalty in the loss for AdamW
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), atol=1e-5, rtol=0)


def test_optimizer_instance_and_bad_settings() -> None:
    data = _blobs(32)
    result = fit(_net(), data, optimizer=make_optimizer("nesterov", lr=0.05), steps=3, batch_size=8)
    assert result.config["optimizer"] == "nesterov" and result.config["hparams"]["lr"] == 0.05
    with pytest.raises(InitlabError, match="give steps or epochs"):
        fit(_net(), data)
    with pytest.raises(InitlabError, match="go to make_optimizer"):
        fit(_net(), data, optimizer=make_optimizer("sgd"), lr=0.1, steps=1)
    with pytest.raises(InitlabError, match="must be floats"):
        fit(_net(), data, optimizer=make_optimizer("sgd", lr=torch.ones(2)), steps=1)
    with pytest.raises(InitlabError, match="unknown loss 'hinge'; valid: cross_entropy, nll"):
        fit(_net(), data, steps=1, loss="hinge")
    with pytest.raises(InitlabError, match="unknown hyperparameter 'betas'"):
        fit(_net(), data, optimizer="adam", hparams={"betas": 0.9}, steps=1)


def test_result_round_trips_through_json() -> None:
    result = fit(_net(), _blobs(64), steps=4, batch_size=16, probe=2)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    back = TrainResult.from_dict(data)
    assert back.history == result.history and back.probe_records == result.probe_records
    assert back.final_loss == result.final_loss and back.best("train_loss", "min") is not None
    with pytest.raises(InitlabError, match="valid: done, diverged"):
        TrainResult(status="crashed", steps_done=0)  # type: ignore[arg-type]


def test_progress_bar_and_lars_run(capsys: pytest.CaptureFixture[str]) -> None:
    result = fit(
        _net(), _blobs(64), optimizer="lars", lr=2.0, steps=6, batch_size=16, progress=True
    )
    assert result.status == "done" and result.config["hparams"]["eta"] == 0.001
    assert "6/6" in capsys.readouterr().out
