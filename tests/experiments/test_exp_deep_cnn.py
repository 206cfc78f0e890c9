"""E3 deep-signal, CNN half: delta-orthogonal kernels at the edge of chaos vs Gaussian."""

from pathlib import Path

import torch

from initlab.data.dataset import Dataset
from initlab.experiments import run_experiment
from initlab.experiments.deep.cnn_part import images, network, signal_profile
from initlab.experiments.deep.deep_signal import DeepSignalConfig
from initlab.experiments.mnist_task import synthetic_mnist
from initlab.init import initialize
from initlab.models.cnn import deep_cnn
from initlab.train.fit import fit

ORTHO = "critical_orthogonal:sigma_b2=1e-05"


def _spread(values: list[float]) -> float:
    return max(values) / min(values)


def test_delta_orthogonal_keeps_a_50_layer_tanh_cnn_s_signal() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)
    profiles = {}
    for init in ("critical_orthogonal:sigma_b2=1e-05", "xavier_normal"):
        model = deep_cnn(50, 16, "tanh")
        initialize(model, init, seed=0)
        profiles[init] = signal_profile(model, x, y)
    ortho, xavier = profiles.values()
    # activation rms over convolutions 2..50; gradient rms of dL/dz over 2..49 (measured
    # over seeds 0-2: delta-orthogonal 1.57-1.63 and 1.27, Xavier 11-16 and 14-24)
    assert _spread(ortho["activation_rms"][1:]) < 2.0
    assert _spread(ortho["gradient_rms"][1:-1]) < 1.6
    assert _spread(xavier["activation_rms"][1:]) > 6.0
    assert _spread(xavier["gradient_rms"][1:-1]) > 8.0
    # and Xavier's shrink: the signal towards the output, the gradient towards the input
    assert xavier["activation_rms"][-1] < xavier["activation_rms"][1] / 6
    assert xavier["gradient_rms"][1] < xavier["gradient_rms"][-2] / 6


def test_a_delta_orthogonal_stack_with_average_pooling_sees_only_the_pixel_histogram() -> None:
    # at init every kernel is zero off its centre: the stack is a 1x1 convolution, the same
    # map at every pixel, so a global average of its output cannot tell pixels apart
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 14, 14, generator=g)
    shuffled = x.flatten(2)[:, :, torch.randperm(196, generator=g)].reshape(x.shape)
    for readout, init, same in [
        ("avgpool", ORTHO, True),
        ("avgpool", "xavier_normal", False),  # Gaussian kernels mix neighbours from step 0
        ("flatten", ORTHO, False),  # a readout that keeps the position
    ]:
        model = deep_cnn(20, 8, "tanh", readout=readout, image_size=14)
        initialize(model, init, seed=0)
        with torch.no_grad():
            gap = (model(x) - model(shuffled)).abs().max().item()
        assert (gap < 1e-5) is same, (readout, init, gap)


def _accuracy(model: torch.nn.Module, data: Dataset) -> float:
    with torch.no_grad():
        return (model(data.x).argmax(1) == data.y).double().mean().item()


def test_the_experiment_s_cnn_trains_from_delta_orthogonal_kernels_where_the_old_one_did_not() -> (
    None
):
    # deep-signal's CNN (strided start, flattening readout, the default lr) of 16 layers
    # from critical delta-orthogonal kernels learns the 10 random ink prototypes of the
    # synthetic task in 80 SGD steps; the old network (no strides, global average pooling,
    # lr 0.1) stays at chance: the prototypes share a pixel histogram (measured over seeds
    # 0-2: 0.70-0.75 and 0.09-0.11; chance 0.1)
    config = DeepSignalConfig()
    settings = {
        "default": (config.cnn_pool, list(config.cnn_strides), config.cnn_readout, config.cnn_lr),
        "old": (2, [], "avgpool", 0.1),
    }
    accuracy = {}
    for name, (pool, strides, readout, lr) in settings.items():
        train = images(synthetic_mnist("train"), pool)
        test = images(synthetic_mnist("test", 500), pool)
        model = network({"depth": 16, "channels": 8, "strides": strides, "readout": readout}, train)
        initialize(model, ORTHO, seed=0)
        fit(model, train, optimizer="sgd", lr=lr, steps=80, batch_size=32, seed=0)
        accuracy[name] = _accuracy(model, test)
    assert accuracy["default"] > 0.6, accuracy
    assert accuracy["old"] < 0.2, accuracy


def test_the_cnn_part_runs_stores_and_resumes(tmp_path: Path) -> None:
    inits = ["critical_orthogonal:sigma_b2=1e-05", "xavier_normal"]
    config = {
        "dataset": "synthetic",
        "archs": ["cnn"],
        "cnn_depths": [3, 12],
        "cnn_channels": 8,
        "cnn_pool": 4,
        "cnn_inits": inits,
        "cnn_steps": 30,
        "cnn_batch_size": 32,
        "cnn_lr": 0.1,
        "test_size": 200,
    }
    result = run_experiment("deep-signal", config, out_dir=tmp_path, progress=False)
    keys = [f"cnn/depth={d}/{i}" for d in (3, 12) for i in inits]
    assert sorted(result.executed) == sorted(keys)
    rows = result.summary["runs"]
    assert set(rows) == set(keys)
    for key in keys:
        row = rows[key]
        assert row["arch"] == "cnn" and row["status"] == "done"
        assert 0.0 <= row["test_acc"] <= 1.0 and row["final_loss"] > 0
    # the stored probes at init: activation rms spread over convolutions 4-12, after the
    # strided start (measured over seeds 0-2: 1.02-1.05 and 19-53)
    assert rows[f"cnn/depth=12/{inits[0]}"]["act_spread_init"] < 1.5
    assert rows["cnn/depth=12/xavier_normal"]["act_spread_init"] > 2.5
    names = [f["png"].name for f in result.figures]
    assert names == ["deep-signal-accuracy.png", "deep-signal-gradients.png"]
    assert any(v.startswith("CNN depth 12:") for v in result.verdicts)
    assert any(v.startswith("CNN at init, depth 12:") for v in result.verdicts)
    ortho, xavier = (rows[f"cnn/depth=12/{i}"]["test_acc"] for i in inits)
    diff = ortho - xavier
    comparison = f"CNN depth 12: {inits[0]} {ortho:.3f} vs Glorot {xavier:.3f}: "
    comparison += f"{'at least as well' if diff >= 0 else 'worse'} ({diff:+.3f})."
    assert comparison in result.verdicts
    again = run_experiment("deep-signal", config, out_dir=tmp_path, progress=False)
    assert again.executed == [] and sorted(again.skipped) == sorted(keys)
    assert again.summary["runs"] == rows
