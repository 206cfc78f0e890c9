"""Fidelity to the sources (issue 13): seed streams, A1's ReLU verdict, A4's hand-written pass."""

import math
from pathlib import Path

import pytest
import torch

from initlab.experiments import run_experiment
from initlab.experiments.seeds import STREAMS, stream_seed
from initlab.experiments.signal import activation_histograms, depth_scan


def _max_row_correlation(weight: torch.Tensor, x: torch.Tensor) -> float:
    """Largest |corr| between a weight row and the input row of the same index."""
    rows = min(weight.shape[0], x.shape[0])
    w, v = weight[:rows].double(), x[:rows].double()
    w = (w - w.mean(1, keepdim=True)) / w.std(1, keepdim=True)
    v = (v - v.mean(1, keepdim=True)) / v.std(1, keepdim=True)
    return float((w * v).mean(1).abs().max())


def test_streams_are_distinct_and_reproducible() -> None:
    seeds = {stream: stream_seed(7, stream) for stream in STREAMS}
    assert seeds["weights"] == 7  # the run seed itself, as initialize(model, seed=7)
    assert len(set(seeds.values())) == len(STREAMS)
    assert seeds == {stream: stream_seed(7, stream) for stream in STREAMS}
    assert all(0 <= s < 2**31 for s in seeds.values())
    assert {stream_seed(s, "inputs") for s in range(100)}.isdisjoint(range(100))


@pytest.mark.parametrize("module", [activation_histograms, depth_scan])
def test_inputs_are_independent_of_the_first_layer_weights(module) -> None:  # type: ignore[no-untyped-def]
    # the bug: one seed for weights and inputs made x rows = rescaled W1 rows (corr 1.0)
    spec = {
        "activation": "relu",
        "init": "he_normal",
        "samples": 200,
        "width": 100,
        "layers": 2,
        "bias": False,
        "depth": 2,
        "dtype": "float32",
    }
    built = module.network_and_inputs(spec, 3)
    model, x = built[0], built[1]
    corr = _max_row_correlation(model.linear1.weight.detach(), x)
    # 100 pairs of 100 independent values: |corr| has std 0.1, max of 100 below 0.45
    assert corr < 0.45
    if module is depth_scan:  # the loss weighting r is a third independent stream
        assert _max_row_correlation(built[2], x) < 0.45


def test_a1_relu_first_layer_std_and_verdict_against_the_gain(tmp_path: Path) -> None:
    result = run_experiment(
        "activation-histograms",
        ["activations=[relu]", 'inits=["lecun_normal", "he_normal"]', "samples=400"],
        out_dir=tmp_path,
        progress=False,
    )
    lecun, he = result.summary["relu/lecun_normal"], result.summary["relu/he_normal"]
    # layer 1 of N(0, 1/n) weights on N(0, 1) inputs: relu of N(0, 1), std sqrt(1/2 - 1/2pi)
    assert lecun["std_first"] == pytest.approx(math.sqrt(0.5 - 0.5 / math.pi), rel=0.05)
    # (the old seeding gave 0.66: inputs equal to the weights push layer 1 up)
    # per layer the std is multiplied by std(W) sqrt(n) / gain = 1 / sqrt(2) with LeCun
    assert lecun["per_layer_ratio"] == pytest.approx(2**-0.5, rel=0.08)
    assert he["per_layer_ratio"] == pytest.approx(1.0, abs=0.08)
    (line,) = result.verdicts
    assert "√(1/n) LeCun: spread shrinks x0.69 per layer" in line
    assert "√(2/n) He: spread kept" in line


def test_a4_hand_written_pass_equals_autograd() -> None:
    depth = depth_scan.STATS_CHUNK + 6  # a chunk boundary inside
    for activation in ("tanh", "gelu"):
        spec = {"depth": depth, "width": 24, "samples": 16, "activation": activation,
                "init": "he_normal", "dtype": "float64"}  # fmt: skip
        model, x, r = depth_scan.network_and_inputs(spec, 0)
        act, grad = depth_scan.propagate(model, x, r, activation, depth)
        z, hs, zs = x.clone().requires_grad_(True), [], []
        for layer in range(1, depth + 1):
            h = getattr(model, f"linear{layer}")(z)
            h.retain_grad()
            z = getattr(model, f"act{layer}")(h)
            hs.append(h)
            zs.append(z)
        (getattr(model, f"linear{depth + 1}")(z) * r).sum().backward()
        for layer in range(depth):
            z_l, g_l = zs[layer].detach(), hs[layer].grad
            assert act[layer]["std"] == pytest.approx(float(z_l.std(correction=0)), 1e-10)
            assert act[layer]["mean"] == pytest.approx(float(z_l.mean()), 1e-8, abs=1e-12)
            assert grad[layer]["std"] == pytest.approx(float(g_l.std(correction=0)), 1e-10)
            assert act[layer]["nonfinite"] == grad[layer]["nonfinite"] == 0


def test_a4_vanished_signals_skip_their_products_with_the_same_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ReLU with std 0.5/sqrt(n): the signal is flushed to exactly 0 within ~60 layers and
    # so is the gradient from the top; those products are skipped, the statistics unchanged
    depth = 2 * depth_scan.STATS_CHUNK
    spec = {"depth": depth, "width": 32, "samples": 16, "activation": "relu",
            "init": "variance_scaling:scale=0.25", "dtype": "float32"}  # fmt: skip
    model, x, r = depth_scan.network_and_inputs(spec, 0)
    products = []
    for name in ("mm", "addmm"):
        real = getattr(torch, name)
        monkeypatch.setattr(
            torch, name, lambda *a, _real=real, **k: products.append(1) or _real(*a, **k)
        )
    skipped = depth_scan.propagate(model, x, r, "relu", depth)
    fewer = len(products)
    monkeypatch.setattr(depth_scan, "_vanished", lambda signal, weight: False)
    products.clear()
    computed = depth_scan.propagate(model, x, r, "relu", depth)
    assert len(products) == 2 * depth  # every layer's forward and input gradient, + output
    assert fewer < depth  # more than half of them skipped
    assert skipped == computed
    assert skipped[0][-1]["std"] == 0.0 and skipped[1][0]["std"] == 0.0  # vanished both ways


def test_a4_a_vanished_signal_still_meets_a_broken_weight() -> None:
    # 0 * NaN is NaN: a zero signal skips the product only when the weights are finite
    depth = 8
    spec = {"depth": depth, "width": 8, "samples": 4, "activation": "relu",
            "init": "variance_scaling:scale=0.25", "dtype": "float32"}  # fmt: skip
    model, x, r = depth_scan.network_and_inputs(spec, 0)
    zero = torch.zeros(4, 8)
    assert depth_scan._vanished(zero, model.linear3.weight)
    model.linear3.weight[0, 0] = float("nan")
    assert not depth_scan._vanished(zero, model.linear3.weight)
    assert not depth_scan._vanished(torch.full((4, 8), float("nan")), model.linear2.weight)
    assert not depth_scan._vanished(torch.eye(4, 8), model.linear2.weight)
    model.linear2.weight.zero_()  # layer 2 makes the signal 0; layer 3 has the NaN
    act, _ = depth_scan.propagate(model, x, r, "relu", depth)
    assert act[1]["std"] == 0.0 and act[2]["nonfinite"] == 4  # NaN in row 0's unit 0


def test_a4_a_reused_network_gets_the_numbers_of_a_fresh_one() -> None:
    spec = {"depth": 5, "width": 12, "samples": 8, "activation": "tanh", "dtype": "float32"}
    first, _, _ = depth_scan.network_and_inputs({**spec, "init": "critical"}, 0)
    for init, dtype in (("orthogonal", "float32"), ("he_normal", "float64")):
        run = {**spec, "init": init, "dtype": dtype}
        reused, x, r = depth_scan.network_and_inputs(run, 1, reuse=first)
        fresh, x2, r2 = depth_scan.network_and_inputs(run, 1)
        assert reused is first  # initialized again, not rebuilt
        assert torch.equal(x, x2) and torch.equal(r, r2)
        state = fresh.state_dict()
        for name, value in reused.state_dict().items():
            assert value.dtype == state[name].dtype and torch.equal(value, state[name]), name
        first, _, _ = depth_scan.network_and_inputs({**spec, "init": "critical"}, 0)
    other, _, _ = depth_scan.network_and_inputs({**spec, "depth": 6, "init": "he_normal"}, 0, first)
    assert other is not first and len(other.spec.widths) == 8  # another shape: built anew


def test_a4_layer_stats_skip_nonfinite_entries() -> None:
    stack = torch.randn(3, 40, 10, dtype=torch.float64)
    stack[1, 2, 3] = float("nan")
    stack[2] = float("inf")
    first, second, third = depth_scan.layer_stats(stack)
    assert first["std"] == pytest.approx(float(stack[0].std(correction=0)), 1e-12)
    finite = stack[1][torch.isfinite(stack[1])]
    assert second["mean"] == pytest.approx(float(finite.mean()), 1e-12)
    assert (second["nonfinite"], third["nonfinite"]) == (1, 400)
    assert math.isnan(third["std"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_a4_layer_stats_of_vanishing_exploding_and_broken_rows(dtype: torch.dtype) -> None:
    # rows whose squares under- or overflow the dtype are redone scaled; a NaN row is
    # counted over its finite entries; the reference is float64 on the finite entries
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(6, 50, 40, generator=gen, dtype=torch.float64) + 0.3
    tiny, huge = (1e-25, 1e25) if dtype == torch.float32 else (1e-200, 1e200)
    stack = base.clone()
    stack[1] *= tiny
    stack[2] *= huge
    stack[3, 0, :7] = float("nan")
    stack[4, 5, 5] = float("-inf")
    stack = stack.to(dtype)
    scratch = torch.full((6, 2000), 7.0, dtype=dtype)  # reused scratch: contents irrelevant
    for got, layer in zip(depth_scan.layer_stats(stack, scratch), stack.double(), strict=True):
        finite = layer[torch.isfinite(layer)]
        assert got["nonfinite"] == layer.numel() - finite.numel()
        assert got["mean"] == pytest.approx(float(finite.mean()), rel=1e-5)
        assert got["std"] == pytest.approx(float(finite.std(correction=0)), rel=1e-5)


def _figures(name: str, settings: list[str], out: Path):  # type: ignore[no-untyped-def]
    """The figure infos of a finished experiment, recomputed from its store."""
    from initlab.experiments.registry import get_experiment
    from initlab.experiments.runner import load_experiment_data, resolve_config
    from initlab.store import RunStore

    experiment = get_experiment(name)
    config = resolve_config(experiment, settings)
    with RunStore(out / "runs.db") as store:
        data = load_experiment_data(store, name, experiment.plan(config, 0))
    return experiment.figures(config, data)


def test_b1_records_the_books_loss_after_the_update(tmp_path: Path) -> None:
    settings = ["dataset=synthetic", "hidden=[16, 16]", "steps=40", 'inits=["he_normal"]']
    result = run_experiment("init-compare", settings, out_dir=tmp_path, progress=False)
    row = result.summary["by_activation"]["relu"]["he_normal"]
    assert result.summary["loss_curve"] == "after_update"
    from initlab.store import RunStore

    with RunStore(tmp_path / "runs.db") as store:
        (run,) = store.list_runs("init-compare")
        metrics = [m for m in store.metrics(run.id) if "train_loss" in m]
    after = [m["train_loss_after"] for m in metrics]
    before = [m["train_loss"] for m in metrics]
    assert len(after) == len(before) == 40
    assert row["final_loss"] == pytest.approx(sum(after) / 40)  # the book's quantity
    # SGD lowers the loss of the batch it stepped on: after < before at almost every step
    assert sum(a < b for a, b in zip(after, before, strict=True)) >= 36
    (figure,) = _figures("init-compare", settings, tmp_path)
    assert "after the update" in figure.panels[0][0].ylabel
    assert "after that step's update" in figure.caption


def test_b2_loss_curve_option_keeps_the_other_quantity(tmp_path: Path) -> None:
    settings = ["dataset=synthetic", "hidden=[16, 16]", "steps=30", "optimizers=[adam]"]
    after = run_experiment("optimizer-compare", settings, out_dir=tmp_path, progress=False)
    before = run_experiment(
        "optimizer-compare", [*settings, "loss_curve=before_update"], out_dir=tmp_path,
        progress=False,
    )  # fmt: skip
    assert before.executed == []  # the same runs, read back: both losses are stored
    a, b = after.summary["optimizers"]["adam"], before.summary["optimizers"]["adam"]
    assert a["final_loss"] < b["final_loss"]
    assert "after the update" in after.verdicts[0] and "before the update" in before.verdicts[0]


def test_b3_books_eps_and_diverged_cells_are_marked_not_zero(tmp_path: Path) -> None:
    settings = ["dataset=synthetic", "train_size=200", "stds=[1.0, 0.01]", "epochs=2"]
    result = run_experiment("batchnorm", settings, out_dir=tmp_path, progress=False)
    assert result.summary["bn_eps"] == 1e-6
    big = result.summary["by_std"]["1"]
    assert (big["plain_status"], big["plain_final_acc"]) == ("diverged", None)
    assert result.summary["by_std"]["0.01"]["plain_status"] == "done"
    assert not any("counts as 0" in v for v in result.verdicts)
    assert "of 1 weight scales where both networks finished" in result.verdicts[0]
    _, sweep = _figures("batchnorm", settings, tmp_path)
    (panel,) = sweep.panels[0]
    assert [x for x, _ in panel.vlines] == [1.0]  # the diverged scale: a marker, no accuracy
    curves = {s.label: s.x for s in panel.series}
    assert curves == {"batch norm": [1.0, 0.01], "no batch norm": [0.01]}
    assert panel.note == "diverged: no BN at 1"
    from initlab.experiments.registry import get_experiment
    from initlab.experiments.runner import resolve_config

    experiment = get_experiment("batchnorm")
    plan = experiment.plan(resolve_config(experiment, ["dtype=float64"]), 0)
    assert {r.spec["bn_eps"] for r in plan} == {1e-6} and plan[0].spec["dtype"] == "float64"


def test_b4_books_dropout_and_epochs_per_variant(tmp_path: Path) -> None:
    from initlab.experiments.registry import get_experiment
    from initlab.experiments.runner import resolve_config

    experiment = get_experiment("overfit")
    plan = {r.key: r for r in experiment.plan(resolve_config(experiment, []), 0)}
    assert {k: r.spec["epochs"] for k, r in plan.items()} == {
        "plain": 201,
        "weight_decay": 201,
        "dropout": 301,
    }
    assert plan["dropout"].spec["dropout_mode"] == "scale_at_test"
    assert plan["plain"].group != plan["dropout"].group
    settings = ["dataset=synthetic", "hidden=[16, 16]", "epochs=4", "dropout_epochs=6",
                "test_size=200"]  # fmt: skip
    result = run_experiment("overfit", settings, out_dir=tmp_path, progress=False)
    from initlab.store import RunStore

    with RunStore(tmp_path / "runs.db") as store:
        done = {r.spec["key"]: r.summary["steps_done"] for r in store.list_runs("overfit")}
    assert done == {"plain": 12, "weight_decay": 12, "dropout": 18}  # 3 batches an epoch
    assert "scale at test, 6 epochs" in result.summary["variants"]["dropout"]["setting"]


def test_lab09_dropout_verdict_states_the_margin_against_the_seed_spread() -> None:
    from initlab.experiments.mnist import lab09

    one = lab09.dropout_effect("dropout 0.3", [0.9807], [0.9800])
    assert one["spread"] is None
    assert "no winner is called" in lab09._dropout_sentence(one)
    close = lab09.dropout_effect("dropout 0.3", [0.981, 0.979, 0.983], [0.980, 0.982, 0.978])
    assert close["spread"] == pytest.approx(math.sqrt(0.002**2 / 3 + 0.002**2 / 3))
    assert "within the seed spread, no winner" in lab09._dropout_sentence(close)
    far = lab09.dropout_effect("dropout 0.3", [0.985, 0.986, 0.984], [0.975, 0.976, 0.974])
    assert "dropout helps beyond the seed spread" in lab09._dropout_sentence(far)
    assert "Sequential" in lab09.Lab09.source and "0-255" in lab09.Lab09.source


def test_a4_runs_of_one_scheme_share_the_drawn_weights_across_activations() -> None:
    spec = {"depth": 5, "width": 12, "samples": 8, "dtype": "float32", "init": "orthogonal"}
    tanh, _, _ = depth_scan.network_and_inputs({**spec, "activation": "tanh"}, 2)
    weights = {k: v.clone() for k, v in tanh.state_dict().items()}
    relu = {**spec, "activation": "relu"}
    key = depth_scan.weights_key(relu, 2)
    assert key == depth_scan.weights_key({**relu, "activation": "tanh"}, 2)
    shared, _, _ = depth_scan.network_and_inputs(relu, 2, reuse=tanh, drawn=True)
    fresh, _, _ = depth_scan.network_and_inputs(relu, 2)
    assert shared is tanh and shared.spec.activation == "relu"
    assert type(shared.act3) is type(fresh.act3) is torch.nn.ReLU
    for name, value in fresh.state_dict().items():  # the draw does not see the activation
        assert torch.equal(shared.state_dict()[name], value) and torch.equal(weights[name], value)
    x = torch.randn(4, 12)
    assert torch.equal(shared(x), fresh(x))
    # the plan puts a scheme's activations next to each other
    keys = [run.key for run in depth_scan.DepthScan().plan(depth_scan.DepthScanConfig())]
    assert keys[:3] == ["tanh/variance_scaling:scale=0.25", "relu/variance_scaling:scale=0.25",
                        "tanh/lecun_normal"]  # fmt: skip
