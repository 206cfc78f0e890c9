"""The :class:`Experiment` base: one classic experiment as a named, parameterized preset.

One file per experiment implements this small abstract base (as Optuna does for its
samplers), and the runner (:mod:`initlab.experiments.runner`) drives every experiment the
same way::

    config = build_config(...)                 # defaults -> quick -> --config -> --set
    for run in experiment.plan(config, seed):  # RunSpec: key, spec dict, seed, group
        handle = store.start_run(...)          # None: done already (resume), skip
        outcome = experiment.execute(run, config, Recorder(handle), progress)
        # runs sharing a ``group``: the unfinished ones go to execute_group together
    data = load_experiment_data(store, ...)    # what the runs stored, in plan order
    experiment.figures(config, data)           # FigureInfo list -> PNG + SVG
    summary = experiment.summary(config, data) # headline numbers -> summary.json
    experiment.verdicts(summary)               # the sentences the experiment is about

``execute`` writes everything it wants to keep through the :class:`Recorder`; figures and
summaries are computed *only* from what was stored, so a resumed experiment (some runs
computed today, some yesterday) draws exactly what a single sitting would.

Group execution: runs whose :attr:`RunSpec.group` is the same string are computed together
by :meth:`Experiment.execute_group` (e.g. one :func:`initlab.train.batched.fit_batched` over
a grid of inits, seeds or hyperparameters with one architecture), and each is stored as its
own run. On resume only the unfinished members of a group are passed in, so a group's
members must be independent of each other (the batched engine's members are: they share
only the minibatch stream, whose seed belongs in each run's spec). A member whose numbers
went NaN/Inf is stored as diverged; the others are done.

Common config keys are named the same in every experiment that has them: ``steps``,
``epochs``, ``batch_size``, ``seeds`` (the number of seeds; run seeds are ``seed, seed + 1,
...``), ``lr``, ``inits``, ``activations``, ``dataset``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import torch

from initlab.errors import InitlabError
from initlab.report.figures import FigureInfo

RunStatus = Literal["done", "diverged"]

Progress = Callable[[float, float], None]
"""``progress(completed, total)``: how far the current run is, in any unit (steps, layers)."""


def no_progress(completed: float, total: float) -> None:
    """A :data:`Progress` that shows nothing."""


@dataclass(frozen=True)
class RunSpec:
    """One run of an experiment: a readable key, the settings that define it, a seed.

    ``key`` is unique within the experiment and names the run in figures and tables
    (e.g. ``"tanh/std=0.01"``). ``spec`` must be JSON (numbers finite): with the seed it is
    the run's identity in the store, so an unchanged run is skipped on resume. ``group``
    (None: alone) names the runs computed in one :meth:`Experiment.execute_group` call; it
    is not part of the identity, so grouping runs differently reuses what is stored.
    """

    key: str
    spec: dict[str, Any]
    seed: int = 0
    group: str | None = None  # runs with the same group are executed together; not identity

    def stored_spec(self) -> dict[str, Any]:
        """The spec as stored: the run's settings plus its key."""
        return {"key": self.key, **self.spec}


@dataclass
class RunOutcome:
    """What ``execute`` reports: the final status and a small JSON summary of the run."""

    status: RunStatus = "done"
    summary: dict[str, Any] = field(default_factory=dict)


class RunWriter(Protocol):
    """The part of :class:`initlab.store.RunHandle` a :class:`Recorder` writes through."""

    def log_metrics(self, rows: Sequence[Mapping[str, Any]]) -> int: ...

    def log_probes(self, records: Sequence[Mapping[str, Any]]) -> int: ...

    def save_params(self, params: Mapping[str, torch.Tensor]) -> int: ...


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


class Recorder:
    """Writes one run's results to the store and notices non-finite numbers.

    Every metric value and probe statistic that is NaN or +-Inf (and every probe record
    with a positive ``nonfinite`` count) sets :attr:`nonfinite`, so the runner records the
    run as "diverged" even when ``execute`` did not say so.
    """

    def __init__(self, writer: RunWriter) -> None:
        self._writer = writer
        store = getattr(writer, "store", None)
        self.store_url: str | None = getattr(store, "url", None)  # where the run is stored
        self.nonfinite = False
        self.metric_rows = 0
        self.probe_records = 0

    def log_metrics(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store metric rows ``{"step": int, name: float, ...}`` (one transaction)."""
        rows = [dict(row) for row in rows]
        if any(not _finite(v) for row in rows for v in row.values()):
            self.nonfinite = True
        self._writer.log_metrics(rows)
        self.metric_rows += len(rows)

    def log_probes(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Store probe records (contract (c) dicts, one transaction)."""
        records = list(records)
        for record in records:
            stats = record.get("stats", {})
            if stats.get("nonfinite", 0) or any(not _finite(v) for v in stats.values()):
                self.nonfinite = True
        self._writer.log_probes(records)
        self.probe_records += len(records)

    def save_params(self, params: Mapping[str, torch.Tensor]) -> None:
        """Store the run's final tensors (read back by the figures)."""
        self._writer.save_params(params)


@dataclass
class RunData:
    """One planned run and what the store holds for it (empty when it never ran)."""

    run: RunSpec
    status: str  # done, diverged, failed, interrupted, running, or "missing"
    run_id: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    params_loader: Callable[[], dict[str, torch.Tensor] | None] | None = None

    @property
    def key(self) -> str:
        """The run's readable key."""
        return self.run.key

    @property
    def spec(self) -> dict[str, Any]:
        """The run's settings."""
        return self.run.spec

    @property
    def finished(self) -> bool:
        """True when the run has final results (done or diverged)."""
        return self.status in ("done", "diverged")

    def params(self) -> dict[str, torch.Tensor] | None:
        """The final tensors the run saved, or None."""
        return self.params_loader() if self.params_loader is not None else None

    def series(self, name: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric, in step order."""
        steps, values = [], []
        for row in self.metrics:
            if name in row:
                steps.append(int(row["step"]))
                values.append(float(row[name]))
        return steps, values

    def probe_records(self, kind: str | None = None, layer: str | None = None) -> list[dict]:
        """The run's probe records, optionally of one kind and/or layer."""
        return [
            r
            for r in self.probes
            if (kind is None or r["kind"] == kind) and (layer is None or r["layer"] == layer)
        ]


@dataclass
class ExperimentData:
    """Every planned run of an experiment with its stored results, in plan order."""

    runs: list[RunData]

    def __iter__(self) -> Iterator[RunData]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def get(self, key: str) -> RunData:
        """The run with this key (KeyError when it is not in the plan)."""
        for run in self.runs:
            if run.key == key:
                return run
        raise KeyError(key)

    def finished(self) -> list[RunData]:
        """The runs with final results."""
        return [run for run in self.runs if run.finished]


class Experiment(ABC):
    """A classic experiment: its config, its runs, how to compute them, figures and verdicts.

    Subclasses set the class attributes and implement the five abstract methods. Keep the
    module small: the config dataclass (defaults = the published source, one help line per
    field in its ``Annotated`` type hint), ``plan``, ``execute``, then the
    figure infos, the summary and the verdicts.
    """

    name: ClassVar[str]  # the CLI name, e.g. "activation-histograms"
    description: ClassVar[str]  # one line
    cost: ClassVar[str]  # expected cost of the full preset on a laptop CPU, e.g. "~3 min"
    source: ClassVar[str]  # the publication the defaults reproduce
    Config: ClassVar[type]  # a frozen dataclass: name: Annotated[type, "help"] = default
    quick: ClassVar[dict[str, Any]] = {}  # overrides for a smoke test (< 1 min)
    quick_cost: ClassVar[str] = "< 1 min"

    def validate(self, config: Any) -> None:
        """Check values the type hints cannot (names of activations, schemes...).

        Raise :class:`initlab.errors.InitlabError` with one line on a bad value. The base
        checks the common keys (``seeds``, ``steps``, ``epochs``, ``batch_size``, ``lr``
        must be positive where present); overrides should call ``super().validate(config)``.
        """
        for key in ("seeds", "steps", "epochs", "batch_size", "lr"):
            value = getattr(config, key, None)
            if isinstance(value, int | float) and not value > 0:
                raise InitlabError(f"{key} must be positive, got {value}")

    def flops(self, config: Any) -> float | None:
        """The matrix-product FLOPs the runs of ``config`` need (the arithmetic floor that
        ``benchmarks/suite.py`` compares the measured time with; see
        :mod:`initlab.experiments.flops`); None when the experiment does not say."""
        return None

    def cost_estimate(self, config: Any) -> str | None:
        """One line the runner prints before the runs start (e.g. a cost model's estimate of
        the whole preset); None prints nothing."""
        return None

    @abstractmethod
    def plan(self, config: Any, seed: int = 0) -> list[RunSpec]:
        """The runs of the experiment, in order; ``seed`` is the base seed."""

    @abstractmethod
    def execute(
        self, run: RunSpec, config: Any, recorder: Recorder, progress: Progress = no_progress
    ) -> RunOutcome | None:
        """Compute one run and store its metrics / probe records through ``recorder``.

        Return the outcome (None means "done", or "diverged" if the recorder saw NaN/Inf).
        Raise only for bugs and user errors; a numerically diverged run is a result.
        """

    def execute_group(
        self,
        runs: Sequence[RunSpec],
        config: Any,
        recorders: Sequence[Recorder],
        progress: Progress = no_progress,
    ) -> Sequence[RunOutcome | None]:
        """Compute the unfinished runs of one group together; one outcome per run, in order.

        ``recorders[i]`` stores ``runs[i]``. The default executes the runs one by one;
        experiments with a batched computation (e.g. :class:`GroupExperiment`) override it.
        ``runs`` may be any subset of the group (on resume, only the missing members), so
        every run's numbers must not depend on which other runs are computed with it (a
        batched group honours this to float rounding: see :mod:`initlab.train.batched`).
        """
        return [
            self.execute(run, config, recorder, progress)
            for run, recorder in zip(runs, recorders, strict=True)
        ]

    @abstractmethod
    def figures(self, config: Any, data: ExperimentData) -> list[FigureInfo]:
        """The figure infos, computed from the stored data only."""

    @abstractmethod
    def summary(self, config: Any, data: ExperimentData) -> dict[str, Any]:
        """The headline numbers (JSON), computed from the stored data only."""

    @abstractmethod
    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        """The sentences the experiment is about, from its summary."""


class GroupExperiment(Experiment):
    """An experiment whose runs are computed in groups: implement :meth:`execute_group`.

    A single run (an ungrouped one, or the one missing member of a group) is the group of
    one, so :meth:`execute` needs no code of its own.
    """

    def execute(
        self, run: RunSpec, config: Any, recorder: Recorder, progress: Progress = no_progress
    ) -> RunOutcome | None:
        """The group of one: ``execute_group([run], config, [recorder], progress)[0]``."""
        return self.execute_group([run], config, [recorder], progress)[0]

    @abstractmethod
    def execute_group(
        self,
        runs: Sequence[RunSpec],
        config: Any,
        recorders: Sequence[Recorder],
        progress: Progress = no_progress,
    ) -> Sequence[RunOutcome | None]:
        """Compute ``runs`` together (see :meth:`Experiment.execute_group`)."""
