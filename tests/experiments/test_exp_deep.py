"""E3 (deep-signal, trainability) on small synthetic data: the lessons, in miniature."""

from pathlib import Path

import pytest
import torch

from initlab.errors import InitlabError
from initlab.experiments import run_experiment
from initlab.experiments.deep.deep_signal import DeepSignalConfig, estimated_seconds
from initlab.experiments.deep.trainability import TrainabilityConfig, effective
from initlab.init.meanfield import critical_point


def test_trainability_phase_diagram_in_miniature(tmp_path: Path) -> None:
    result = run_experiment(
        "trainability",
        {
            "dataset": "synthetic",
            "sigma_w2s": [1.0, 1.75, 4.0],
            "depths": [3, 25],
            "width": 24,
            "steps": 200,
            "lr": 0.05,
            "batch_size": 64,
            "train_eval_size": 400,
        },
        out_dir=tmp_path,
        progress=False,
    )
    summary = result.summary
    assert summary["critical_sigma_w2"] == pytest.approx(critical_point(0.05)[0])
    shallow, deep = summary["by_depth"]["3"]["acc"], summary["by_depth"]["25"]["acc"]
    assert min(shallow.values()) > 0.5  # 3 layers train from every sigma_w^2
    # 25 layers: deeper than 6 xi_c (22) at sigma_w^2 = 1 (ordered) and 4 (chaotic, 42 but
    # gradients grow 1.34x per layer): chance; the critical point trains (measured 0.74)
    assert max(deep["1"], deep["4"]) < 0.3 < 0.6 < deep["1.75"]
    assert summary["xi_c"]["1.75"] > 6 * summary["xi_c"]["1"]
    assert [f["png"].name for f in result.figures] == ["trainability.png"]
    assert any("Within 6 xi_c" in v for v in result.verdicts)


def test_deep_signal_in_miniature(tmp_path: Path) -> None:
    inits = ["critical_orthogonal:sigma_b2=1e-05", "he_normal"]
    result = run_experiment(
        "deep-signal",
        {
            "dataset": "synthetic",
            "archs": ["mlp"],
            "depths": [4, 60],
            "width": 24,
            "steps": 80,
            "lr": 0.02,
            "batch_size": 64,
            "inits": inits,
            "test_size": 500,
            "checkpoint_from": 50,
        },
        out_dir=tmp_path,
        progress=False,
    )
    rows = result.summary["runs"]
    ortho, he = rows[f"depth=60/{inits[0]}"], rows["depth=60/he_normal"]
    assert ortho["checkpoint"] and not rows[f"depth=4/{inits[0]}"]["checkpoint"]
    assert ortho["test_acc"] > 0.5 > he["test_acc"]  # He is chaotic for tanh
    assert ortho["grad_spread_init"] < 4 < 10 < he["grad_spread_init"]  # measured 2.8, 25
    # dynamical isometry: the orthogonal Jacobian's spectrum is narrow (its 95th/5th
    # percentile ratio 10^0.79 at width 24), the Gaussian one wide (10^15.8)
    assert ortho["sv_log10_p95"] - ortho["sv_log10_p5"] < 1.2
    assert he["sv_log10_p95"] - he["sv_log10_p5"] > 5.0
    names = [f["png"].name for f in result.figures]
    assert names == [
        "deep-signal-accuracy.png",
        "deep-signal-gradients.png",
        "deep-signal-jacobian.png",
    ]
    assert any(v.startswith("depth 60:") for v in result.verdicts)


def test_configs_and_costs(tmp_path: Path) -> None:
    paper = effective(TrainabilityConfig(paper=True))
    assert len(paper.sigma_w2s) == 16 and min(paper.sigma_w2s) == 1.0
    assert max(paper.sigma_w2s) == 4.0 and max(paper.depths) == 300
    big = DeepSignalConfig(depths=(10000,), inits=("critical_orthogonal",))
    assert estimated_seconds(big) > 3600  # GPU-sized on this CPU
    with pytest.raises(InitlabError, match="depths"):
        run_experiment("deep-signal", {"depths": [1]}, out_dir=tmp_path, progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_a_cuda_device_without_cuda_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InitlabError, match="no CUDA device"):
        run_experiment("deep-signal", {"device": "cuda"}, out_dir=tmp_path, progress=False)
