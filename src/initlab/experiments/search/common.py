"""What C1 and C2 share: the book's search task, the run of one search, and its figures.

Task (the from-scratch book, sec. 6.5.3, ``ch06/hyperparameter_optimization.py``): the
first 500 MNIST training images, shuffled, 20% held out for validation (the test set is
never seen by a trial), 784-100x6-10 ReLU with He init, SGD, minibatches of 100 drawn with
replacement, 50 epochs of 4 iterations, L2 weight decay on the weights; the trial's value
is its validation accuracy after the last epoch.

One run = one search (an Optuna study in the workspace's database, named from the run's
settings, so ``initlab search NAME`` and ``initlab run NAME`` work on the same study). The
run trains what the study lacks, evaluates the best trial once on the test set, and
stores every finished trial: per trial (metric step = trial number) its value, epochs,
pruned / diverged flags and numeric parameters; the per-epoch validation and training
accuracies as the run's tensors; best trial, narrowed space and importances in the summary.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import torch

from initlab.data.dataset import train_valid_split
from initlab.errors import InitlabError
from initlab.experiments.base import ExperimentData, Progress, Recorder, RunData, RunOutcome
from initlab.experiments.common import check_activations, check_inits
from initlab.experiments.mnist_task import (
    DATASET_HELP,
    DatasetChoice,
    check_dataset,
    check_hidden,
    load_split,
)
from initlab.report.figures import BarPanel, FigureInfo, LinePanel, ScatterPanel, Series
from initlab.search.space import SearchSpace

BOOK_SPACE: dict[str, dict[str, Any]] = {
    "lr": {"kind": "log_uniform", "low": 1e-6, "high": 1e-2},
    "weight_decay": {"kind": "log_uniform", "low": 1e-8, "high": 1e-4},
}
"""The book's space: lr = 10^U(-6, -2), weight decay = 10^U(-8, -4)."""

SPLIT_SEED_OFFSET = 0x5B117  # the validation split's stream, apart from the batches'
STUDY_PREFIX = "initlab"


@dataclass(frozen=True)
class SearchConfig:
    dataset: Annotated[DatasetChoice, DATASET_HELP] = "mnist"
    train_size: Annotated[int, "training images (the first N), split into train + validation"] = 500
    valid_fraction: Annotated[float, "fraction of them held out for validation"] = 0.2
    test_size: Annotated[int, "test images for the best trial's one evaluation (0: all)"] = 0
    hidden: Annotated[tuple[int, ...], "hidden layer widths"] = (100,) * 6
    activation: Annotated[str, "hidden activation"] = "relu"
    init: Annotated[str, "init scheme (the book's MultiLayerNet: He)"] = "he_normal"
    epochs: Annotated[int, "epochs per trial"] = 50
    batch_size: Annotated[int, "minibatch size (drawn with replacement, as the book)"] = 100
    trials: Annotated[int, "finished trials per search (complete or pruned)"] = 100
    space: Annotated[
        dict[str, dict[str, Any]],
        "search space: name = {kind = log_uniform|uniform|int|categorical, low, high | choices}",
    ] = field(default_factory=lambda: dict(BOOK_SPACE))
    batch: Annotated[int, "trials trained together (0: automatic)"] = 0
    top: Annotated[int, "best trials drawn and used to narrow the ranges"] = 20
    seeds: Annotated[int, "searches with seeds seed, seed + 1, ..."] = 1


def search_setup(config: Any) -> dict[str, Any]:
    """The settings a search's trials train with (its study's identity, with the space)."""
    return {
        "dataset": config.dataset,
        "train_size": config.train_size,
        "valid_fraction": config.valid_fraction,
        "hidden": list(config.hidden),
        "activation": config.activation,
        "init": config.init,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
    }


def validate_search(config: Any) -> None:
    """Checks shared by C1 and C2 (one line each)."""
    check_dataset(config.dataset, train_size=config.train_size, test_size=config.test_size)
    check_hidden(config.hidden)
    check_activations([config.activation])
    check_inits([config.init])
    if not 0.0 < config.valid_fraction < 1.0:
        raise InitlabError(f"valid_fraction must be in (0, 1), got {config.valid_fraction}")
    for key in ("trials", "top"):
        if getattr(config, key) < 1:
            raise InitlabError(f"{key} must be positive, got {getattr(config, key)}")
    if config.batch < 0:
        raise InitlabError(f"batch must be >= 0 (0: automatic), got {config.batch}")
    SearchSpace.from_dict(config.space)


def study_name(spec: Mapping[str, Any], seed: int) -> str:
    """The study of a search: readable sampler and seed, then a hash of everything that
    changes its trials (not the budget or the batch size, so a search can be extended)."""
    skip = ("trials", "batch", "top", "test_size", "study")
    ident = {k: v for k, v in spec.items() if k not in skip}
    text = json.dumps({"spec": ident, "seed": seed}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{STUDY_PREFIX}-{spec['sampler']}-{spec['pruner']}-seed{seed}-{digest}"


def build_task(
    dataset: str,
    train_size: int,
    valid_fraction: float,
    hidden: Sequence[int],
    activation: str,
    init: str,
    epochs: int,
    batch_size: int,
    seed: int,
) -> Any:
    """The search task of a spec (module level: worker processes rebuild it)."""
    from initlab.search.task import SearchTask

    data = load_split(dataset, "train", train_size)
    train, valid = train_valid_split(data, valid_fraction, seed=seed + SPLIT_SEED_OFFSET)
    return SearchTask(
        train,
        valid,
        hidden=tuple(hidden),
        activation=activation,
        init=init,
        epochs=epochs,
        batch_size=batch_size,
        batch_seed=seed,
    )


def search_spec(config: Any, sampler: str, pruner: str) -> dict[str, Any]:
    """A run's spec: the setup, the space, sampler, pruner and budget."""
    return {
        **search_setup(config),
        "space": SearchSpace.from_dict(config.space).to_dict(),
        "sampler": sampler,
        "pruner": pruner,
        "trials": config.trials,
        "batch": config.batch,
        "top": config.top,
        "test_size": config.test_size,
    }


def search_job(
    spec: Mapping[str, Any],
    seed: int,
    storage: str,
    *,
    study: str | None = None,
    trials: int | None = None,
    batch: int | None = None,
    timeout: float | None = None,
) -> Any:
    """The :class:`~initlab.search.driver.SearchJob` of a run spec."""
    from initlab.search.driver import SearchJob, SearchSettings

    settings = SearchSettings(
        trials=spec["trials"] if trials is None else trials,
        sampler=spec["sampler"],
        pruner=spec["pruner"],
        batch=spec["batch"] if batch is None else batch,
        seed=seed,
        timeout=timeout,
    )
    task_args = {k: spec[k] for k in search_setup_keys()} | {"seed": seed}
    return SearchJob(
        storage=storage,
        study=study or spec.get("study") or study_name(spec, seed),
        space=dict(spec["space"]),
        settings=settings,
        task_factory=build_task,
        task_args=task_args,
    )


def search_setup_keys() -> list[str]:
    """The keys of :func:`search_setup` (the task's arguments)."""
    return list(search_setup(SearchConfig()))


def execute_search(
    spec: Mapping[str, Any], seed: int, recorder: Recorder, progress: Progress
) -> RunOutcome:
    """Run (or resume) one search in the run store's database and store its trials."""
    from initlab.search.analysis import importances, narrowed, top_rows
    from initlab.search.driver import run_search, study_trials

    if recorder.store_url is None:
        raise InitlabError("a search runs inside a run store (run it with initlab run)")
    job = search_job(spec, seed, recorder.store_url)
    study, _ = run_search(job, progress=lambda done, total, best: progress(done, total), wait=True)
    rows = study_trials(study)[: spec["trials"]]
    task = build_task(**job.task_args)
    space = SearchSpace.from_dict(spec["space"])
    complete = [r for r in rows if r["state"] == "complete"] or rows  # all pruned: the best
    best = max(complete, key=lambda r: r["value"])
    test = load_split(spec["dataset"], "test", spec["test_size"])
    test_acc = task.test_accuracy(best["params"], best["seed"], test)
    _store_trials(recorder, rows, space, spec["epochs"])
    top = top_rows(rows, spec["top"])
    summary = {
        "study": job.study,
        "trials": len(rows),
        "complete": sum(r["state"] == "complete" for r in rows),
        "pruned": sum(r["state"] == "pruned" for r in rows),
        "diverged": sum(r["state"] == "diverged" for r in rows),
        "epochs_trained": sum(len(r["valid_acc"]) for r in rows),
        "best": {
            "number": best["number"],
            "params": best["params"],
            "valid_acc": best["value"],
            "test_acc": test_acc,
        },
        "narrowed": narrowed(space, top),
        "importances": importances(space, rows),
    }
    return RunOutcome("done", summary)


def _store_trials(
    recorder: Recorder, rows: Sequence[Mapping[str, Any]], space: SearchSpace, epochs: int
) -> None:
    """Per trial a metric row (step = trial number); the curves as tensors."""
    metric_rows = []
    for r in rows:
        row: dict[str, Any] = {
            "step": r["number"],
            "value": float(r["value"]),
            "epochs": float(len(r["valid_acc"])),
            "pruned": float(r["state"] != "complete"),
            "diverged": float(r["state"] == "diverged"),
        }
        for p in space.params:
            value = r["params"][p.name]
            row[p.name] = float(p.choices.index(value) if p.kind == "categorical" else value)
        metric_rows.append(row)
    recorder.log_metrics(metric_rows)
    valid = torch.full((len(rows), epochs), math.nan, dtype=torch.float64)
    train = valid.clone()
    for i, r in enumerate(rows):
        valid[i, : len(r["valid_acc"])] = torch.tensor(r["valid_acc"], dtype=torch.float64)
        train[i, : len(r["train_acc"])] = torch.tensor(r["train_acc"], dtype=torch.float64)
    recorder.save_params({"valid_acc": valid, "train_acc": train})


# -- reading a stored search back ---------------------------------------------------------
@dataclass
class StoredSearch:
    """A finished search as the store holds it."""

    run: RunData
    space: SearchSpace
    numbers: list[int]
    values: list[float]
    epochs: list[int]
    pruned: list[bool]
    params: dict[str, list[float]]
    valid_acc: torch.Tensor
    train_acc: torch.Tensor

    @property
    def summary(self) -> dict[str, Any]:
        """The run's summary (best trial, narrowed space, importances)."""
        return self.run.summary

    def order(self) -> list[int]:
        """Row indices, best complete trial first (pruned trials after the complete)."""
        return sorted(range(len(self.numbers)), key=lambda i: (self.pruned[i], -self.values[i]))

    def running_best(self) -> list[float]:
        """The best value of the complete trials so far, per trial (by number)."""
        best, out = -math.inf, []
        for value, pruned in zip(self.values, self.pruned, strict=True):
            if not pruned:
                best = max(best, value)
            out.append(best if math.isfinite(best) else math.nan)
        return out


def load_search(run: RunData) -> StoredSearch | None:
    """The stored trials of a finished search run (None when it has none)."""
    tensors = run.params()
    if not run.finished or tensors is None:
        return None
    space = SearchSpace.from_dict(run.spec["space"])
    metrics = sorted(run.metrics, key=lambda r: r["step"])
    return StoredSearch(
        run=run,
        space=space,
        numbers=[int(r["step"]) for r in metrics],
        values=[float(r["value"]) for r in metrics],
        epochs=[int(r["epochs"]) for r in metrics],
        pruned=[bool(r["pruned"]) for r in metrics],
        params={p.name: [float(r[p.name]) for r in metrics] for p in space.params},
        valid_acc=tensors["valid_acc"],
        train_acc=tensors["train_acc"],
    )


def stored_searches(data: ExperimentData) -> dict[str, StoredSearch]:
    """The finished runs' searches by run key (runs without a stored search left out)."""
    out = {}
    for run in data.finished():
        search = load_search(run)
        if search is not None:
            out[run.key] = search
    return out


def _param_label(search: StoredSearch, i: int) -> str:
    parts = []
    for p in search.space.params[:2]:
        value = search.params[p.name][i]
        parts.append(
            f"{_short_name(p.name)} {value:.1e}"
            if p.kind != "categorical"
            else str(p.choices[int(value)])
        )
    return ", ".join(parts)


def _short_name(name: str) -> str:
    return {"weight_decay": "wd", "momentum": "m"}.get(name, name)


def best_curves_figure(search: StoredSearch, top: int, name: str, title: str) -> FigureInfo:
    """The book's grid of the best validation curves (5 per row), labelled with the params."""
    order = search.order()[:top]
    cols = 5
    panels: list[list[Any]] = []
    epochs = search.valid_acc.shape[1]
    x = [float(e) for e in range(1, epochs + 1)]
    for k, i in enumerate(order):
        if k % cols == 0:
            panels.append([])
        valid = search.valid_acc[i].tolist()
        train = search.train_acc[i].tolist()
        labels = ("validation", "train") if k == 0 else (None, None)
        panels[-1].append(
            LinePanel(
                [
                    Series(x, valid, labels[0], "tab:blue", linewidth=1.2),
                    Series(x, train, labels[1], "tab:orange", "--", linewidth=1.0),
                ],
                title=f"Best-{k + 1}: {search.values[i]:.2f}"
                + (" (pruned)" if search.pruned[i] else ""),
                ylim=(0.0, 1.0),
                note=_param_label(search, i),
                xlabel="epoch" if k >= len(order) - cols else "",
                ylabel="accuracy" if k % cols == 0 else "",
            )
        )
    if panels:
        panels[-1] += [None] * (cols - len(panels[-1]))  # a full grid (empty cells hidden)
    return FigureInfo(
        name=name,
        title=title,
        panels=panels,
        caption=(
            "The best trials by final validation accuracy (solid; dashed: accuracy on the "
            "training part), labelled with their learning rate and weight decay, as the book's "
            "figure 6-24. Good runs share a narrow band of learning rates."
        ),
        sharex=True,
        sharey=True,
        panel_size=(2.3, 1.8),
    )


def trials_panel(search: StoredSearch, title: str) -> LinePanel:
    """Value against trial number, with the running best."""
    done = [i for i in range(len(search.numbers)) if not search.pruned[i]]
    cut = [i for i in range(len(search.numbers)) if search.pruned[i]]
    series = [
        Series(
            [float(search.numbers[i]) for i in done],
            [search.values[i] for i in done],
            "trial",
            "tab:blue",
            "",
            marker="o",
            alpha=0.7,
        ),
        Series([float(n) for n in search.numbers], search.running_best(), "best so far", "tab:red"),
    ]
    if cut:
        series.insert(
            1,
            Series(
                [float(search.numbers[i]) for i in cut],
                [search.values[i] for i in cut],
                "pruned",
                "0.6",
                "",
                marker="x",
            ),
        )
    return LinePanel(
        series, title=title, xlabel="trial", ylabel="validation accuracy", ylim=(0.0, 1.0)
    )


def scatter_panel(search: StoredSearch, title: str) -> ScatterPanel | None:
    """The first two numeric parameters, coloured by accuracy, with the narrowed box."""
    numeric = [p for p in search.space.params if p.kind != "categorical"][:2]
    if len(numeric) < 2:
        return None
    px, py = numeric
    box = search.summary.get("narrowed", {})
    boxes = []
    if px.name in box and py.name in box:
        bx, by = box[px.name], box[py.name]
        boxes.append((bx["low"], bx["high"], by["low"], by["high"], "narrowed"))
    return ScatterPanel(
        x=search.params[px.name],
        y=search.params[py.name],
        c=search.values,
        title=title,
        xlabel=px.name,
        ylabel=py.name,
        xscale="log" if px.is_log else "linear",
        yscale="log" if py.is_log else "linear",
        vmin=0.0,
        vmax=1.0,
        colorbar_label="validation accuracy",
        boxes=boxes,
    )


def importance_panel(search: StoredSearch, title: str) -> BarPanel | None:
    """Parameter importances (PED-ANOVA) of the search."""
    imp = search.summary.get("importances") or {}
    if not imp:
        return None
    names = list(imp)
    return BarPanel(names, [float(imp[n]) for n in names], title=title, xlabel="importance")


def search_rows(searches: Mapping[str, StoredSearch]) -> dict[str, dict[str, Any]]:
    """The summary table: per search its best trial, budget used, narrowed ranges."""
    rows = {}
    for key, s in searches.items():
        best = s.summary.get("best", {})
        rows[key] = {
            "best_valid_acc": best.get("valid_acc"),
            "test_acc": best.get("test_acc"),
            "trials": len(s.numbers),
            "pruned": sum(s.pruned),
            "epochs_trained": sum(s.epochs),
            **{f"best_{k}": v for k, v in best.get("params", {}).items()},
            **{
                f"narrowed_{k}": [v.get("low"), v.get("high")] if "low" in v else v.get("choices")
                for k, v in s.summary.get("narrowed", {}).items()
            },
        }
    return rows
