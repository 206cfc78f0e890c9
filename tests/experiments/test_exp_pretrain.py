"""E1 dbn and E2 lsuv on small synthetic data: the figures are written and the stored
numbers say what the experiments are about (pretraining learns, LSUV's variances are 1)."""

import json
import math
from pathlib import Path

import pytest
import torch

from initlab.errors import InitlabError
from initlab.experiments import run_experiment
from initlab.experiments.pretrain.dbn import DBNConfig, estimated_seconds, settings
from initlab.experiments.pretrain.pictures import image_grid
from initlab.store import RunStore

DBN_TINY = {
    "dataset": "synthetic",
    "train_size": 600,
    "valid_size": 100,
    "hidden": [32, 32],
    "rbm_epochs": 3,
    "rbm_batch_size": 20,
    "epochs": 2,
    "seeds": 1,
}
LSUV_TINY = {
    "dataset": "synthetic",
    "train_size": 400,
    "depth": 12,
    "width": 32,
    "steps": 20,
    "cnn_depth": 6,
    "cnn_channels": 4,
    "cnn_pool": 4,
    "cnn_steps": 4,
    "eval_every": 10,
    "lsuv_batch": 64,
}


def test_dbn_quick_run_writes_its_figures_and_pretraining_learns(tmp_path: Path) -> None:
    result = run_experiment("dbn", DBN_TINY, out_dir=tmp_path, progress=False)
    out = tmp_path / "dbn"
    for name in ("dbn-test-error", "dbn-pretraining", "dbn-receptive-fields", "dbn-samples"):
        assert (out / f"{name}.png").stat().st_size > 5000, name
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert set(summary["contenders"]) == {"dbn/sigmoid", "xavier_uniform/sigmoid", "he_normal/relu"}
    rbm1 = summary["pretraining"]["rbm1"]
    assert rbm1["epochs"] == 3 and rbm1["recon_error_end"] < rbm1["recon_error_start"]
    assert "rbm2" in summary["pretraining"] and "rbm3" not in summary["pretraining"]
    assert any(v.startswith("784-32-32-10 after 2 fine-tuning epochs") for v in result.verdicts)
    with RunStore(tmp_path / "runs.db") as store:
        run = next(r for r in store.list_runs("dbn") if r.spec["scheme"] == "dbn")
        params = store.params(run.id)
    assert params is not None
    assert params["filters"].shape == (32, 784) and params["chains"].shape == (10, 4, 784)
    assert sum(t.numel() for t in params.values()) < 100_000  # no views of whole datasets


def test_dbn_presets_and_cost() -> None:
    hinton = DBNConfig(architecture="hinton")
    assert settings(hinton) == {"hidden": [500, 500, 2000], "rbm_epochs": 50, "epochs": 50}
    assert settings(DBNConfig())["hidden"] == [256, 256]
    lecture, big = estimated_seconds(DBNConfig(), 50000), estimated_seconds(hinton, 50000)
    assert big["rbm"] > 20 * lecture["rbm"] and big["fine_tuning"] > 10 * lecture["fine_tuning"]
    with pytest.raises(InitlabError, match="scheme/activation"):
        run_experiment("dbn", {"contenders": ["dbn"]}, progress=False)


def test_lsuv_quick_run_writes_its_figure_and_variances(tmp_path: Path) -> None:
    run_experiment("lsuv", LSUV_TINY, out_dir=tmp_path, progress=False)
    out = tmp_path / "lsuv"
    assert (out / "lsuv.png").stat().st_size > 5000
    parts = json.loads((out / "summary.json").read_text())["summary"]["parts"]
    mlp, cnn = parts["mlp"]["schemes"], parts["cnn"]["schemes"]
    assert mlp["lsuv"]["layers"] == 13 and cnn["lsuv"]["layers"] == 7
    # on a batch LSUV did not see, its variances stay near 1; Xavier's ReLU signal shrinks
    assert mlp["lsuv"]["max_abs_variance_minus_1"] < 0.25
    assert mlp["lsuv"]["lsuv_converged"] and cnn["lsuv"]["lsuv_converged"]
    assert mlp["Glorot"]["last_layer_variance"] < 0.05
    assert all(1 <= i <= 10 for i in mlp["lsuv"]["lsuv_iterations"])


def test_image_grid_tiles_row_by_row() -> None:
    grid = torch.tensor(image_grid(torch.arange(12.0).reshape(3, 4), cols=2, side=2))
    assert grid.shape == (5, 5)
    assert (
        grid[3, 0].item() == 8.0 and torch.isnan(grid[2]).all() and torch.isnan(grid[3, 3:]).all()
    )


def _row(acc: float, steps: float) -> dict[str, float]:
    return {"test_acc": acc, "steps_to_level": steps, "max_abs_variance_minus_1": 0.05}


def test_lsuv_verdicts_say_whether_the_claim_holds() -> None:
    from initlab.experiments.pretrain.lsuv import LSUV

    def verdicts(rows: dict[str, dict[str, float]]) -> list[str]:
        summary = {"parts": {"mlp": {"title": "MLP", "schemes": rows}}, "tol": 0.1}
        return LSUV().verdicts(summary)

    holds = verdicts({"lsuv": _row(0.9, 300), "Glorot": _row(0.3, math.nan)})
    assert "the claim holds here" in holds[-1] and "Glorot never" in holds[-1]
    partly = verdicts({"lsuv": _row(0.9, 300), "He": _row(0.85, 400), "Glorot": _row(0.5, 900)})
    assert "He keep up" in partly[-1] and "Glorot end more than 0.1 below" in partly[-1]
    fails = verdicts({"lsuv": _row(0.11, math.nan), "He": _row(0.8, 600)})
    assert fails[-1].startswith("LSUV did not learn here")
    assert fails[0] == "MLP: final test accuracy He 0.800, lsuv 0.110."


def test_pictures_doctest() -> None:
    import doctest

    from initlab.experiments.pretrain import pictures

    result = doctest.testmod(pictures)
    assert result.attempted > 0 and result.failed == 0


def test_dbn_hinton_verdict_names_a_reduced_budget() -> None:
    from initlab.experiments.pretrain.dbn import DBN

    row = {"test_error_pct": 2.34, "runs": 1, "spread_pct": 0.0}
    summary = {
        "contenders": {
            "dbn/sigmoid": row,
            "xavier_uniform/sigmoid": {**row, "test_error_pct": 8.3},
        },
        "pretraining": {},
        "architecture": "hinton",
        "widths": [784, 500, 500, 2000, 10],
        "epochs": 10,
        "rbm_epochs": 10,
    }
    verdicts = DBN().verdicts(summary)
    assert "5.96 points below the same sigmoid net" in verdicts[1]
    assert "'well under 2%' does not hold at a reduced budget (10 RBM and 10" in verdicts[-1]
    full = DBN().verdicts({**summary, "epochs": 50, "rbm_epochs": 50})
    assert full[-1].endswith("'well under 2%' does not hold.")


def test_lsuv_verdicts_count_seeds() -> None:
    from initlab.experiments.pretrain.lsuv import LSUV

    lsuv = {**_row(0.57, 450), "runs": 3, "learned_seeds": 2, "reached_seeds": 2}
    glorot = {**_row(0.117, math.nan), "runs": 3, "learned_seeds": 0, "reached_seeds": 0}
    summary = {"parts": {"cnn": {"title": "CNN", "schemes": {"lsuv": lsuv, "Glorot": glorot}}}}
    verdicts = LSUV().verdicts(summary)
    assert "lsuv 0.570 (learned in 2/3), Glorot 0.117 (learned in 0/3)" in verdicts[0]
    assert "lsuv 450 (2/3), Glorot never" in verdicts[-1]
