"""E3 deep-signal, CNN half: delta-orthogonal kernels at the edge of chaos vs Gaussian."""

from pathlib import Path

import torch

from initlab.experiments import run_experiment
from initlab.experiments.deep.cnn_part import signal_profile
from initlab.init import initialize
from initlab.models.cnn import deep_cnn


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
    # the stored probes at init: activation rms spread over 12 convolutions (measured 1.06, 4.1)
    assert rows[f"cnn/depth=12/{inits[0]}"]["act_spread_init"] < 1.5
    assert rows["cnn/depth=12/xavier_normal"]["act_spread_init"] > 2.5
    names = [f["png"].name for f in result.figures]
    assert names == ["deep-signal-accuracy.png", "deep-signal-gradients.png"]
    assert any(v.startswith("CNN depth 12:") for v in result.verdicts)
    assert any(v.startswith("CNN at init, depth 12:") for v in result.verdicts)
    again = run_experiment("deep-signal", config, out_dir=tmp_path, progress=False)
    assert again.executed == [] and sorted(again.skipped) == sorted(keys)
    assert again.summary["runs"] == rows
