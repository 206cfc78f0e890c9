"""TensorBoard export: scalars and histograms read back with tensorboard's EventAccumulator."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from initlab.errors import InitlabError
from initlab.store import RunStore, export_tensorboard
from initlab.store.tensorboard import raw_histogram

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)


def _fill(store: RunStore, probe_record: Callable) -> list[int]:
    store.begin_experiment("b1 / init")
    ids = []
    for seed in (0, 1):
        run = store.start_run("b1 / init", {"init": "he"}, seed)
        assert run is not None
        run.log_metrics([{"step": s, "train_loss": 2.0 - s / 10, "acc": s / 10} for s in range(7)])
        run.log_probes([probe_record(s, "linear1") for s in (0, 6)])
        run.log_probes([probe_record(6, "linear1", "gradient", member=2)])
        run.finish("done")
        ids.append(run.id)
    return ids


def _accumulator(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def test_export_one_run_reads_back(tmp_path: Path, store: RunStore, probe_record: Callable) -> None:
    run_id = _fill(store, probe_record)[0]
    (folder,) = export_tensorboard(store, run_id, tmp_path / "tb")
    assert folder == tmp_path / "tb" / "b1_init" / f"run{run_id}-seed0"
    acc = _accumulator(folder)
    tags = acc.Tags()
    loss = acc.Scalars("train_loss")
    assert [e.step for e in loss] == list(range(7))
    assert [e.value for e in loss] == pytest.approx([2.0 - s / 10 for s in range(7)], abs=1e-6)
    assert len(acc.Scalars("acc")) == 7
    assert [e.value for e in acc.Scalars("activation/linear1/mean")] == [0.5, 6.5]
    assert "gradient/member2/linear1/std" in tags["scalars"]
    assert set(tags["histograms"]) == {"activation/linear1", "gradient/member2/linear1"}
    first, last = acc.Histograms("activation/linear1")
    assert (first.step, last.step) == (0, 6)
    assert first.histogram_value.num == 5 and last.histogram_value.num == 11
    assert list(last.histogram_value.bucket) == [0, 6, 2, 3]
    assert list(last.histogram_value.bucket_limit) == [0.0, 0.5, 1.0, 1.5]
    assert (first.histogram_value.min, first.histogram_value.max) == (0.5, 1.5)  # empty bin 0


def test_export_experiment_and_refuse_second_export(
    tmp_path: Path, store: RunStore, probe_record: Callable
) -> None:
    ids = _fill(store, probe_record)
    folders = export_tensorboard(store, "b1 / init", tmp_path / "tb")
    assert [f.name for f in folders] == [f"run{ids[0]}-seed0", f"run{ids[1]}-seed1"]
    assert all(len(_accumulator(f).Scalars("train_loss")) == 7 for f in folders)
    with pytest.raises(InitlabError, match="already holds a TensorBoard export"):
        export_tensorboard(store, str(ids[0]), tmp_path / "tb")
    with pytest.raises(InitlabError, match="unknown experiment 'nope'"):
        export_tensorboard(store, "nope", tmp_path / "tb2")
    with pytest.raises(InitlabError, match="no run with id 77"):
        export_tensorboard(store, "77", tmp_path / "tb2")


def test_raw_histogram_moments_from_centres() -> None:
    raw = raw_histogram([-1.0, 0.0, 1.0, 2.0], [2, 0, 4])
    assert raw is not None
    assert (raw["min"], raw["max"], raw["num"]) == (-1.0, 2.0, 6)
    assert raw["sum"] == pytest.approx(2 * -0.5 + 4 * 1.5)
    assert raw["sum_squares"] == pytest.approx(2 * 0.25 + 4 * 2.25)
    assert raw["bucket_counts"] == [0, 2, 0, 4]
    assert raw_histogram([0.0, 1.0], [0]) is None


def test_missing_tensorboard_gives_install_hint(
    tmp_path: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(InitlabError, match=r"needs the tensorboard package: pip install"):
        export_tensorboard(store, 1, tmp_path)
