"""Everything written to the store reads back the same: experiments, runs, metrics, probes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import initlab
from initlab.errors import InitlabError
from initlab.store import RunStore, save_result


def test_experiments_and_runs_round_trip(store: RunStore, probe_record: Callable) -> None:
    t0 = time.time()
    exp_id = store.begin_experiment("init-compare", {"iterations": 2000, "inits": ["he"]})
    assert store.begin_experiment("init-compare", {"iterations": 2000, "inits": ["he"]}) == exp_id
    spec = {"init": "he", "lr": 0.01, "widths": [784, 100, 10]}
    run = store.start_run("init-compare", spec, seed=7)
    assert run is not None and run.attempt == 1
    history = [
        {"step": s, "train_loss": 2.3 / (s + 1), "lr": 0.01, "epoch": s // 3} for s in range(10)
    ]
    assert run.log_metrics(history[:6]) == 18
    assert run.log_metrics(history[6:]) == 12
    records = [
        probe_record(s, layer, kind)
        for s in (0, 5)
        for layer in ("linear1", "act1")
        for kind in ("activation", "gradient")
    ]
    assert run.log_probes(records) == 8
    params = {"linear1.weight": torch.randn(4, 3), "linear1.bias": torch.zeros(4)}
    assert run.save_params(params) > 0
    run.finish("done", {"test_acc": 0.97, "per_class": np.array([0.5, 1.0])}, wall_time=12.5)

    (info,) = store.list_runs("init-compare")
    assert (info.id, info.seed, info.spec, info.status, info.attempt) == (
        run.id,
        7,
        spec,
        "done",
        1,
    )
    assert info.key == store.run_key(spec, 7)
    assert info.experiment == "init-compare" and info.version == initlab.__version__
    assert info.summary == {"test_acc": 0.97, "per_class": [0.5, 1.0]}
    assert info.error is None and info.wall_time == 12.5 and info.duration == 12.5
    assert t0 <= info.started_at <= info.finished_at <= time.time()
    assert info.last_step == 9 and info.final_loss == pytest.approx(0.23)
    assert store.get_run(run.id) == info

    back = store.metrics(run.id)
    assert [row["step"] for row in back] == list(range(10))
    for got, want in zip(back, history, strict=True):
        assert got == pytest.approx({k: float(v) for k, v in want.items()} | {"step": want["step"]})
    assert store.metrics(run.id, names=["lr"])[3] == {"step": 3, "lr": 0.01}

    assert store.probes(run.id) == sorted(records, key=lambda r: r["step"])
    grads = store.probes(run.id, layer="act1", kind="gradient")
    assert [(r["step"], r["histogram"]["counts"]) for r in grads] == [
        (0, [0, 2, 3]),
        (5, [5, 2, 3]),
    ]
    loaded = store.params(run.id)
    assert loaded is not None and loaded.keys() == params.keys()
    assert all(torch.equal(loaded[k], params[k]) for k in params)

    (exp,) = store.list_experiments()
    assert (exp.id, exp.name, exp.counts, exp.total) == (exp_id, "init-compare", {"done": 1}, 1)
    assert exp.spec == {"iterations": 2000, "inits": ["he"]}


def test_experiment_spec_is_updated_and_ids_accepted(store: RunStore) -> None:
    exp_id = store.begin_experiment("e", {"a": 1})
    assert store.begin_experiment("e", {"a": 2}) == exp_id
    assert store.list_experiments()[0].spec == {"a": 2}
    run = store.start_run(exp_id, {"x": 1}, 0)
    assert run is not None and store.list_runs(exp_id)[0].id == run.id
    with pytest.raises(InitlabError, match=r"unknown experiment 'nope'.*valid: e$"):
        store.start_run("nope", {"x": 1}, 0)


def test_nan_inf_and_numeric_types_round_trip(store: RunStore, probe_record: Callable) -> None:
    store.begin_experiment("e")
    run = store.start_run("e", {}, 0)
    assert run is not None
    run.log_metrics(
        [
            {"step": np.int64(0), "train_loss": torch.tensor(1.5), "acc": np.float32(0.25)},
            {"step": 1, "train_loss": math.nan, "grad_norm": math.inf},
        ]
    )
    record = probe_record(1, "linear1")
    record["stats"]["mean"] = math.nan
    record["stats"]["saturated"] = None
    run.log_probes([record, probe_record(2, "linear1", member=3, histogram=None)])
    run.finish("diverged")
    rows = store.metrics(run.id)
    assert rows[0] == {"step": 0, "acc": 0.25, "train_loss": 1.5}
    assert math.isnan(rows[1]["train_loss"]) and rows[1]["grad_norm"] == math.inf
    first, second = store.probes(run.id)
    assert math.isnan(first["stats"]["mean"]) and first["stats"]["saturated"] is None
    assert "member" not in first and second["member"] == 3 and second["histogram"] is None
    info = store.get_run(run.id)
    assert info.status == "diverged" and math.isnan(info.final_loss)


def test_probe_objects_with_to_dict_are_accepted(store: RunStore, probe_record: Callable) -> None:
    @dataclass
    class Record:
        data: dict

        def to_dict(self) -> dict:
            return self.data

    store.begin_experiment("e")
    run = store.start_run("e", {}, 0)
    assert run is not None
    run.log_probes([Record(probe_record(4, "linear2", "weight"))])
    assert store.probes(run.id) == [probe_record(4, "linear2", "weight")]


def test_context_manager_statuses(store: RunStore) -> None:
    store.begin_experiment("e")
    with store.start_run("e", {"k": 0}, 0) as run:  # type: ignore[union-attr]
        run.log_metrics([{"step": 0, "train_loss": 1.0}])
    assert store.get_run(run.id).status == "done"

    with pytest.raises(RuntimeError), store.start_run("e", {"k": 1}, 0) as failing:  # type: ignore[union-attr]
        failing.log_metrics([{"step": 0, "train_loss": 1.0}])
        raise RuntimeError("loss exploded\nat step 3")
    info = store.get_run(failing.id)
    assert (info.status, info.error) == ("failed", "RuntimeError: loss exploded at step 3")
    assert store.metrics(failing.id) == [{"step": 0, "train_loss": 1.0}]

    with pytest.raises(KeyboardInterrupt), store.start_run("e", {"k": 2}, 0):  # type: ignore[union-attr]
        raise KeyboardInterrupt
    interrupted = store.list_runs("e")[-1]
    assert (interrupted.status, interrupted.error) == ("interrupted", "KeyboardInterrupt")

    with store.start_run("e", {"k": 3}, 0) as explicit:  # type: ignore[union-attr]
        explicit.finish("diverged", {"at_step": 3})
    assert store.get_run(explicit.id).status == "diverged"
    counts = store.list_experiments()[0].counts
    assert counts == {"done": 1, "failed": 1, "interrupted": 1, "diverged": 1}


def test_write_mistakes_raise_one_line(store: RunStore, probe_record: Callable) -> None:
    store.begin_experiment("e")
    run = store.start_run("e", {}, 0)
    assert run is not None
    run.log_metrics([{"step": 0, "train_loss": 1.0}])
    bad: list[tuple[Callable[[], Any], str]] = [
        (lambda: run.log_metrics([{"train_loss": 1.0}]), "has no 'step'"),
        (lambda: run.log_metrics([{"step": -1, "x": 1.0}]), "int >= 0"),
        (lambda: run.log_metrics([{"step": 1.5, "x": 1.0}]), "int >= 0"),
        (lambda: run.log_metrics([{"step": 1, "x": "high"}]), "must be numbers"),
        (lambda: run.log_metrics([{"step": 1, "x": 1}, {"step": 1, "x": 2}]), "twice at step 1"),
        (lambda: run.log_metrics([{"step": 0, "train_loss": 2.0}]), "logged again"),
        (lambda: run.log_probes([probe_record(0, "l", "activations")]), "unknown probe kind"),
        (lambda: run.log_probes([{"step": 0, "layer": "l"}]), "lacks kind, stats"),
        (
            lambda: run.log_probes(
                [probe_record(0, "l", histogram={"edges": [0, 1], "counts": [1, 2]})]
            ),
            "2 edges for 2 counts",
        ),
        (lambda: run.finish("ok"), "unknown final run status 'ok'"),
        (lambda: run.finish("done", {"p": Path("x")}), "cannot be stored as JSON"),
        (lambda: store.get_run(999), "no run with id 999"),
        (lambda: store.metrics(999), "no run with id 999"),
    ]
    for call, needle in bad:
        with pytest.raises(InitlabError) as info:
            call()
        assert needle in str(info.value) and "\n" not in str(info.value)
    assert store.metrics(run.id) == [{"step": 0, "train_loss": 1.0}]  # failed writes left nothing
    run.finish("done")
    with pytest.raises(InitlabError, match="no longer running"):
        run.log_metrics([{"step": 5, "train_loss": 1.0}])


@dataclass
class FakeResult:
    status: str
    history: list[dict]
    probe_records: list[dict] = field(default_factory=list)
    wall_time: float = 3.25


def test_save_result_stores_a_whole_training_result(
    store: RunStore, probe_record: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    import initlab.store.results as results

    monkeypatch.setattr(results, "METRIC_BATCH", 7)  # several batches
    store.begin_experiment("b1")
    history = [{"step": s, "train_loss": 1.0 / (s + 1), "train_acc": s / 20} for s in range(20)]
    result = FakeResult("diverged", history, [probe_record(0, "linear1")])
    params = {"w": torch.arange(6.0).view(2, 3)}
    run_id = save_result(store, "b1", {"lr": 0.1}, 0, result, summary={"note": "x"}, params=params)
    assert run_id is not None
    info = store.get_run(run_id)
    assert (info.status, info.wall_time, info.summary) == ("diverged", 3.25, {"note": "x"})
    assert store.metrics(run_id) == history  # doubles round-trip exactly
    assert store.probes(run_id) == [probe_record(0, "linear1")]
    assert torch.equal(store.params(run_id)["w"], params["w"])  # type: ignore[index]
    assert save_result(store, "b1", {"lr": 0.1}, 0, result) is None  # done: skipped
    with pytest.raises(InitlabError, match="unknown result status 'ok'"):
        save_result(store, "b1", {"lr": 0.2}, 0, FakeResult("ok", history))
    with pytest.raises(InitlabError, match="lacks status, history"):
        save_result(store, "b1", {"lr": 0.2}, 0, object())  # type: ignore[arg-type]


def test_path_url_and_memory_forms(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "runs.db"
    with RunStore(path) as by_path:
        by_path.begin_experiment("e")
    assert path.is_file()
    with RunStore(f"sqlite:///{path}") as by_url:
        assert [e.name for e in by_url.list_experiments()] == ["e"]
        assert by_url.address == str(path)
    with RunStore("sqlite://") as memory:
        memory.begin_experiment("m")
        run = memory.start_run("m", {}, 2**40)  # seeds are 64-bit
        assert run is not None
        run.log_metrics([{"step": 0, "x": 1.0}])
        assert memory.metrics(run.id) == [{"step": 0, "x": 1.0}]
        assert memory.get_run(run.id).seed == 2**40


def test_default_store_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INITLAB_STORE", str(tmp_path / "env.db"))
    with RunStore() as store:
        assert store.address == str(tmp_path / "env.db")
    monkeypatch.delenv("INITLAB_STORE")
    monkeypatch.chdir(tmp_path)
    with RunStore() as store:
        assert store.address == str(Path("initlab-runs") / "runs.db")
    assert (tmp_path / "initlab-runs" / "runs.db").is_file()
