"""B1-B6 (MNIST training experiments) on small synthetic data, and group execution.

Every experiment runs on ``dataset=synthetic`` (a fixed MNIST-like random set, no download)
with narrow layers and few steps; the assertions are the lessons of each experiment.
"""

import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
import pytest
import torch

from initlab.experiments import ExperimentData, RunSpec, run_experiment
from initlab.experiments import runner as runner_module
from initlab.experiments.base import GroupExperiment, RunOutcome
from initlab.experiments.mnist_task import LN10, smooth_curve, synthetic_mnist
from initlab.report.figures import FigureInfo
from initlab.store import RunStore

NARROW4 = "hidden=[32, 32, 32, 32]"


def _delete_run(db: Path, key_fragment: str) -> None:
    """Remove one stored run (and its rows), as if it had never been computed."""
    with sqlite3.connect(db) as conn:
        (run_id,) = conn.execute(
            "SELECT id FROM runs WHERE spec LIKE ?", (f"%{key_fragment}%",)
        ).fetchone()
        for table in ("metrics", "probes", "params"):
            conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))


def _losses(db: Path, experiment: str) -> dict[str, list[float]]:
    with RunStore(db) as store:
        return {
            r.spec["key"]: [m["train_loss"] for m in store.metrics(r.id) if "train_loss" in m]
            for r in store.list_runs(experiment)
        }


# --------------------------------------------------------------------- group execution
@dataclass(frozen=True)
class GroupToyConfig:
    nan_key: Annotated[str, "the run whose metric is NaN"] = "a/1"


class GroupToy(GroupExperiment):
    """Two groups and one single run; each run logs value = its index."""

    name = "group-toy"
    description = "toy"
    cost = "~0 s"
    source = "a test"
    Config = GroupToyConfig
    calls: ClassVar[list[list[str]]] = []

    def plan(self, config: GroupToyConfig, seed: int = 0) -> list[RunSpec]:
        runs = [RunSpec(f"a/{i}", {"i": i}, seed, group="a") for i in range(3)]
        runs.append(RunSpec("single", {"i": 9}, seed))
        runs += [RunSpec(f"b/{i}", {"i": 10 + i}, seed, group="b") for i in range(2)]
        return runs

    def execute_group(self, runs, config, recorders, progress=None):  # type: ignore[no-untyped-def]
        GroupToy.calls.append([run.key for run in runs])
        for run, recorder in zip(runs, recorders, strict=True):
            value = math.nan if run.key == config.nan_key else float(run.spec["i"])
            recorder.log_metrics([{"step": 0, "value": value}])
        return [RunOutcome("done", {"i": run.spec["i"]}) for run in runs]

    def figures(self, config: GroupToyConfig, data: ExperimentData) -> list[FigureInfo]:
        return []

    def summary(self, config: GroupToyConfig, data: ExperimentData) -> dict[str, Any]:
        return {r.key: r.status for r in data}

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        return []


def test_groups_run_together_diverged_members_alone_and_resume_only_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "get_experiment", lambda name: GroupToy())
    GroupToy.calls.clear()
    result = run_experiment("group-toy", out_dir=tmp_path, progress=False)
    # one call per group (at its first member's place), the single run as a group of one
    assert GroupToy.calls == [["a/0", "a/1", "a/2"], ["single"], ["b/0", "b/1"]]
    assert result.executed == ["a/0", "a/1", "a/2", "single", "b/0", "b/1"]
    assert result.statuses["a/1"] == "diverged"  # its NaN; the other members are done
    assert {k for k, s in result.statuses.items() if s == "done"} == {
        "a/0",
        "a/2",
        "single",
        "b/0",
        "b/1",
    }
    # a partly finished group computes only its missing member
    _delete_run(tmp_path / "runs.db", '"i":2,')
    GroupToy.calls.clear()
    again = run_experiment("group-toy", out_dir=tmp_path, progress=False)
    assert GroupToy.calls == [["a/2"]] and again.executed == ["a/2"]
    assert len(again.skipped) == 5


def test_a_failing_group_marks_every_member_failed_and_reruns_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "get_experiment", lambda name: GroupToy())

    def boom(self, runs, config, recorders, progress=None):  # type: ignore[no-untyped-def]
        raise RuntimeError("out of memory")

    with monkeypatch.context() as patch:
        patch.setattr(GroupToy, "execute_group", boom)
        with pytest.raises(RuntimeError):
            run_experiment("group-toy", out_dir=tmp_path, progress=False)
    with RunStore(tmp_path / "runs.db") as store:
        assert [r.status for r in store.list_runs("group-toy")] == ["failed"] * 3
    GroupToy.calls.clear()
    result = run_experiment("group-toy", out_dir=tmp_path, progress=False)
    assert GroupToy.calls[0] == ["a/0", "a/1", "a/2"] and len(result.executed) == 6


# ---------------------------------------------------------------------------- helpers
def test_smooth_curve_is_the_books_kaiser_window_average() -> None:
    x = np.random.default_rng(0).random(40)
    # common/util.py of the from-scratch book, written out with numpy
    s = np.r_[x[10:0:-1], x, x[-1:-11:-1]]
    w = np.kaiser(11, 2)
    expected = np.convolve(w / w.sum(), s, mode="valid")[5:-5]
    assert smooth_curve(x.tolist()) == pytest.approx(expected.tolist(), abs=1e-12)
    assert smooth_curve([1.0, 2.0]) == [1.0, 2.0]  # shorter than the window: unchanged


def test_synthetic_data_is_fixed_mnist_shaped_and_balanced() -> None:
    train, again = synthetic_mnist("train"), synthetic_mnist("train")
    assert torch.equal(train.x, again.x) and torch.equal(train.y, again.y)
    assert train.x.shape == (2000, 784) and train.num_classes == 10
    assert float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0
    assert min(train.class_counts()) > 150  # 200 per class expected
    assert not torch.equal(synthetic_mnist("test").x[:10], train.x[:10])


# -------------------------------------------------------------------------- B1 and B2
def test_b1_std001_stays_at_chance_he_learns_and_a_member_alone_equals_its_group(
    tmp_path: Path,
) -> None:
    settings = ["dataset=synthetic", NARROW4, "steps=300"]
    result = run_experiment("init-compare", settings, out_dir=tmp_path, progress=False)
    rows = result.summary["by_activation"]["relu"]
    assert abs(rows["normal:std=0.01"]["final_loss"] - LN10) < 0.01  # did not learn
    assert rows["he_normal"]["final_loss"] < 0.5 * LN10
    assert rows["he_normal"]["final_loss"] < rows["lecun_normal"]["final_loss"]
    assert rows["he_normal"]["test_acc"] > 0.8 > 0.2 > rows["normal:std=0.01"]["test_acc"]
    assert result.verdicts[0].startswith("normal:std=0.01 with relu: did not learn")
    assert any(v.startswith("he_normal learns fastest") for v in result.verdicts)
    assert (tmp_path / "init-compare" / "init-compare.png").exists()

    # the LeCun member computed again on its own gives the numbers it got in its group
    db = tmp_path / "runs.db"
    before = _losses(db, "init-compare")["relu/lecun_normal"]
    _delete_run(db, '"init":"lecun_normal"')
    again = run_experiment("init-compare", settings, out_dir=tmp_path, progress=False)
    assert again.executed == ["relu/lecun_normal"] and len(again.skipped) == 2
    after = _losses(db, "init-compare")["relu/lecun_normal"]
    assert len(after) == len(before) == 300
    assert after == pytest.approx(before, abs=1e-5)


def test_b2_adam_and_momentum_end_below_sgd(tmp_path: Path) -> None:
    settings = ["dataset=synthetic", NARROW4, "steps=150", "optimizers=[sgd, momentum, adam]"]
    result = run_experiment("optimizer-compare", settings, out_dir=tmp_path, progress=False)
    rows = result.summary["optimizers"]
    assert rows["adam"]["lr"] == 0.001 and rows["sgd"]["lr"] == 0.01
    assert rows["adam"]["final_loss"] < 0.5 * rows["sgd"]["final_loss"]
    assert rows["momentum"]["final_loss"] < rows["sgd"]["final_loss"]
    assert result.verdicts[0].endswith(f"SGD {rows['sgd']['final_loss']:.3f}.")  # SGD last


# ----------------------------------------------------------------------------- B3-B6
def test_b3_batch_norm_learns_at_small_weight_scales_and_plain_does_not(tmp_path: Path) -> None:
    settings = [
        "dataset=synthetic",
        "train_size=500",
        "hidden=[32, 32, 32, 32, 32]",
        "stds=[0.01, 0.001]",
        "epochs=30",
    ]
    result = run_experiment("batchnorm", settings, out_dir=tmp_path, progress=False)
    for std in ("0.01", "0.001"):
        row = result.summary["by_std"][std]
        assert row["bn_final_acc"] > row["plain_final_acc"] + 0.3, (std, row)
        assert row["plain_final_acc"] < 0.2  # chance is ~0.1
    names = sorted(p.name for p in (tmp_path / "batchnorm").glob("*.png"))
    assert names == ["batchnorm-grid.png", "batchnorm-sweep.png"]


def test_b4_weight_decay_and_dropout_shrink_the_train_test_gap(tmp_path: Path) -> None:
    settings = [
        "dataset=synthetic",
        "hidden=[32, 32, 32, 32, 32, 32]",
        "epochs=150",
        "dropout_epochs=150",
    ]
    result = run_experiment("overfit", settings, out_dir=tmp_path, progress=False)
    rows = result.summary["variants"]
    plain = rows["plain"]
    assert plain["train_acc"] > 0.8 and plain["gap"] > 0.1  # memorizes 300 noisy images
    for variant in ("weight_decay", "dropout"):  # each cuts the gap by a quarter or more
        assert rows[variant]["gap"] < 0.75 * plain["gap"], (variant, rows)
    assert sum("shrinks the train/test gap" in v for v in result.verdicts) == 2


def test_b5_the_ensemble_beats_the_mean_copy(tmp_path: Path) -> None:
    settings = ["dataset=synthetic", "hidden=[32, 32]", "steps=60", "eval_every=30"]
    result = run_experiment("ensemble", settings, out_dir=tmp_path, progress=False)
    s = result.summary
    assert len(s["members"]) == 5 and s["ensemble_by_size"][0] == s["members"]["seed=0"]
    assert s["ensemble"] >= s["member_mean"]
    assert s["member_worst"] < s["member_best"]  # the seeds give different copies
    # the stored probabilities are what the summary averaged
    with RunStore(tmp_path / "runs.db") as store:
        probs = [store.params(r.id)["test_probs"] for r in store.list_runs("ensemble")]
    labels = synthetic_mnist("test").y
    mean = torch.stack(probs).mean(0)
    assert s["ensemble"] == pytest.approx(float((mean.argmax(1) == labels).double().mean()))


def test_b6_xavier_beats_std1_and_every_part_runs(tmp_path: Path) -> None:
    settings = [
        "dataset=synthetic",
        "hidden=[64, 64]",
        "deep_hidden=[32, 32, 32]",
        "epochs=2",
        "bn_epochs=1",
    ]
    result = run_experiment("lab-09", settings, out_dir=tmp_path, progress=False)
    parts = result.summary["parts"]
    assert set(parts) == {"init", "deep", "batchnorm"}
    assert parts["init"]["xavier_uniform"]["test_acc"] > parts["init"]["std 1"]["test_acc"]
    assert set(parts["deep"]) == {"no dropout", "dropout 0.3"}
    assert set(result.statuses.values()) == {"done"} and len(result.executed) == 6
    assert "raw 0-255 pixels (a bug)" in result.verdicts[-1]
