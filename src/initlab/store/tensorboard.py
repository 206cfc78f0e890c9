"""Export stored runs to TensorBoard event files (scalars and per-layer histograms).

Layout: ``LOGDIR/<experiment>/run<id>-seed<seed>/events.out.tfevents.*``, one TensorBoard
"run" per stored run. Tags: each metric under its own name (``train_loss``); each probe
statistic as ``<kind>/<layer>/<stat>`` and each probe histogram as ``<kind>/<layer>``
(with ``member<m>/`` after the kind for records of a batched trainer).

Histograms are rebuilt from the stored edges and counts. TensorBoard keeps only right bucket
limits, so an empty bucket ending at the first edge is put in front (as
``torch.utils.tensorboard`` does); ``min`` / ``max`` are the outer edges of the non-empty
buckets and ``sum`` / ``sum_squares`` use bucket centres, an approximation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from initlab.errors import InitlabError
from initlab.store.runstore import RunInfo, RunStore

INSTALL_HINT = "pip install tensorboard (or pip install 'initlab[tensorboard]')"


def _summary_writer() -> Any:
    """Import SummaryWriter lazily; a missing tensorboard package gives an install hint."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise InitlabError(
            f"TensorBoard export needs the tensorboard package: {INSTALL_HINT}"
        ) from err
    return SummaryWriter


def raw_histogram(edges: list[float], counts: list[float]) -> dict[str, Any] | None:
    """Arguments for ``SummaryWriter.add_histogram_raw`` from edges and counts (None if empty).

    >>> h = raw_histogram([0.0, 1.0, 2.0], [1, 3])
    >>> h["bucket_limits"], h["bucket_counts"], h["num"], h["sum"]
    ([0.0, 1.0, 2.0], [0, 1, 3], 4, 5.0)
    """
    nonzero = [i for i, c in enumerate(counts) if c > 0]
    if not nonzero:
        return None
    centres = [(edges[i] + edges[i + 1]) / 2 for i in range(len(counts))]
    return {
        "min": edges[nonzero[0]],
        "max": edges[nonzero[-1] + 1],
        "num": sum(counts),
        "sum": sum(c * x for c, x in zip(counts, centres, strict=True)),
        "sum_squares": sum(c * x * x for c, x in zip(counts, centres, strict=True)),
        "bucket_limits": list(edges),
        "bucket_counts": [0, *counts],
    }


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name).strip("._") or "experiment"


def _runs_of(store: RunStore, target: int | str) -> list[RunInfo]:
    if isinstance(target, int) or (target.isascii() and target.isdigit()):
        return [store.get_run(int(target))]
    runs = store.list_runs(target)
    if not runs:
        raise InitlabError(f"experiment {target!r} in {store.address} has no runs to export")
    return runs


def _write_run(writer: Any, store: RunStore, run: RunInfo) -> None:
    for row in store.metrics(run.id):
        for name, value in row.items():
            if name != "step":
                writer.add_scalar(name, value, row["step"])
    for record in store.probes(run.id):
        member = f"member{record['member']}/" if "member" in record else ""
        tag = f"{record['kind']}/{member}{record['layer']}"
        for stat, value in record["stats"].items():
            if value is not None:
                writer.add_scalar(f"{tag}/{stat}", value, record["step"])
        hist = record["histogram"]
        raw = None if hist is None else raw_histogram(hist["edges"], hist["counts"])
        if raw is not None:
            writer.add_histogram_raw(tag, global_step=record["step"], **raw)


def export_tensorboard(store: RunStore, target: int | str, logdir: str | Path) -> list[Path]:
    """Write TensorBoard event files for one run (an id) or every run of an experiment.

    ``target``: a run id (an int, or a string of digits) or an experiment name. Returns
    the run folders written. A run folder that already holds event files is refused, so
    an export never doubles the points of an earlier one.
    """
    SummaryWriter = _summary_writer()
    runs = _runs_of(store, target)
    folders = [
        Path(logdir) / _safe_name(run.experiment) / f"run{run.id}-seed{run.seed}" for run in runs
    ]
    for folder in folders:
        if folder.is_dir() and any(folder.glob("events.out.tfevents.*")):
            raise InitlabError(
                f"{folder} already holds a TensorBoard export; remove it or pick another --logdir"
            )
    for run, folder in zip(runs, folders, strict=True):
        writer = SummaryWriter(log_dir=str(folder))
        try:
            _write_run(writer, store, run)
        finally:
            writer.close()
    return folders
