"""The hook-based Probe: what it records, when, and that it always cleans up."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from initlab.errors import InitlabError
from initlab.models import cnn, mlp
from initlab.probes import Probe, ProbeRecord, every, stats


def _net() -> nn.Module:
    torch.manual_seed(0)
    return mlp([12, 16, 16, 3], "tanh")


def _no_hooks(model: nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks
        for m in model.modules()
    )


def _step(model: nn.Module, opt: torch.optim.Optimizer, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(32, 12, generator=gen), torch.randint(3, (32,), generator=gen)
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()


def test_records_activations_preactivations_and_gradients_with_reference_values() -> None:
    net = _net()
    x = torch.randn(32, 12)
    with Probe(net) as probe:
        out = net(x)
        out.pow(2).sum().backward()
    kinds = {(r.layer, r.kind) for r in probe.records}
    assert kinds == {
        (layer, kind)
        for layer in ("linear1", "linear2", "linear3")
        for kind in ("preactivation", "gradient")
    } | {(act, kind) for act in ("act1", "act2") for kind in ("activation", "gradient")}
    by = {(r.layer, r.kind): r.stats for r in probe.records}
    pre1 = net.linear1(x)
    assert by["linear1", "preactivation"]["std"] == pytest.approx(stats.std(pre1), rel=1e-6)
    act2 = net.act2(net.linear2(torch.tanh(pre1)))
    assert by["act2", "activation"]["p98"] == pytest.approx(
        stats.percentiles(act2)["p98"], rel=1e-6
    )
    # d/d(out) of sum(out^2) is 2 * out
    assert by["linear3", "gradient"]["mean"] == pytest.approx(stats.mean(2 * out), rel=1e-5)
    assert all(r.step == 0 for r in probe.records)


def test_hooks_are_removed_on_exit_and_on_exception() -> None:
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with Probe(net, optimizer=opt) as probe:
        assert not _no_hooks(net) and probe.attached
        _step(net, opt, 0)
    assert _no_hooks(net) and not probe.attached
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
    with pytest.raises(RuntimeError, match="boom"), Probe(net, optimizer=opt):
        net(torch.randn(4, 12))
        raise RuntimeError("boom")
    assert _no_hooks(net)
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks


def test_layer_patterns_and_unknown_layers() -> None:
    net = _net()
    with Probe(net, layers=["linear[12]", "act2"]) as probe:
        net(torch.randn(4, 12))
    assert [r.layer for r in probe.records] == ["linear1", "linear2", "act2"]
    with pytest.raises(InitlabError, match="'conv\\*' matches no module; modules: linear1"):
        Probe(net, layers=["conv*"])


def test_schedule_decides_the_recorded_steps_and_update_is_one_step() -> None:
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    with Probe(net, layers=["linear1"], schedule=every(3)) as probe:
        for t in range(7):
            before = net.linear1.weight.detach().clone()
            _step(net, opt, t)
            if t == 3:
                expected = ((net.linear1.weight - before).norm() / before.norm()).item()
            probe.step(t)
    rows = probe.table()
    assert sorted({r["step"] for r in rows}) == [0, 3, 6]
    kinds = {(r["step"], r["kind"]) for r in rows}
    assert {
        (3, k) for k in ("preactivation", "gradient", "weight", "weight_grad", "update")
    } <= kinds
    assert (0, "update") not in kinds  # no snapshot before the first step
    update = next(r for r in rows if r["step"] == 3 and r["kind"] == "update")
    assert update["steps"] == 1.0
    assert update["ratio"] == pytest.approx(expected, rel=1e-5)
    weight = next(r for r in rows if r["step"] == 6 and r["kind"] == "weight")
    assert weight["norm"] == pytest.approx(net.linear1.weight.norm().item(), rel=1e-6)


def test_optimizer_hooks_step_automatically_and_match_manual_update() -> None:
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    ratios = []
    with Probe(net, layers=["linear2"], schedule=every(2), optimizer=opt) as probe:
        for t in range(5):
            before = net.linear2.weight.detach().clone()
            _step(net, opt, t)
            ratios.append(((net.linear2.weight - before).norm() / before.norm()).item())
    assert probe.current_step == 5
    updates = [r for r in probe.records if r.kind == "update"]
    assert [u.step for u in updates] == [0, 2, 4]  # the pre-step snapshot covers step 0 too
    for u in updates:
        assert u.stats["ratio"] == pytest.approx(ratios[u.step], rel=1e-5)
        assert u.stats["steps"] == 1.0
    grad = next(r for r in probe.records if r.kind == "weight_grad" and r.step == 4)
    assert grad.stats["norm"] == pytest.approx(net.linear2.weight.grad.norm().item(), rel=1e-6)


def test_histograms_use_natural_range_for_activations() -> None:
    net = _net()
    with Probe(net, layers=["act1", "linear1"], histograms=True, bins=10) as probe:
        net(torch.randn(50, 12))
    act = next(r for r in probe.records if r.layer == "act1")
    pre = next(r for r in probe.records if r.layer == "linear1")
    assert act.histogram is not None and pre.histogram is not None
    assert act.histogram[0][0] == -1.0 and act.histogram[0][-1] == 1.0
    assert sum(act.histogram[1]) == 50 * 16 and sum(pre.histogram[1]) == 50 * 16
    assert pre.histogram[0][0] == pytest.approx(pre.stats["min"])


def test_records_round_trip_through_json() -> None:
    net = _net()
    with Probe(net, layers=["act1"], histograms=True, bins=5) as probe:
        net(torch.randn(8, 12))
    record = probe.records[0]
    data = json.loads(json.dumps(record.to_dict()))
    assert set(data) == {"step", "layer", "kind", "stats", "histogram"}
    assert set(data["histogram"]) == {"edges", "counts"}
    assert ProbeRecord.from_dict(data) == record


def test_conv_units_are_channels_and_nan_is_counted() -> None:
    net = cnn(in_channels=1, channels=(4,), image_size=8)
    with torch.no_grad():
        net.conv1.bias.fill_(-100.0)  # every channel of act1 is 0 everywhere: dead
    x = torch.randn(3, 1, 8, 8)
    with Probe(net, layers=["act1", "conv1"]) as probe:
        net(x)
        x[0, 0, 0, 0] = float("nan")
        probe.step()
        net(x)
    by = {(r.step, r.layer): r.stats for r in probe.records if r.kind != "weight"}
    assert by[0, "act1"]["dead"] == 1.0
    assert by[0, "conv1"]["nonfinite"] == 0.0
    assert by[1, "conv1"]["nonfinite"] == 4 * 4  # the NaN pixel reaches 2x2 positions x 4 maps
    assert by[1, "act1"]["dead"] == 0.0  # NaN is not 0: those channels are not dead
    assert [r.kind for r in probe.records if r.layer == "conv1"].count("weight") == 1
    recorded = len(probe.records)
    net(torch.randn(3, 1, 8, 8)).sum().backward()  # after exit nothing more is recorded
    assert len(probe.records) == recorded
