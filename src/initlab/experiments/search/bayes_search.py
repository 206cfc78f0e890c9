"""C2 bayes-search: TPE with pruning against random search, at equal budget, over seeds.

The same task and space as C1 (:mod:`initlab.experiments.search.random_search`): the
from-scratch book's lr = 10^U(-6, -2), weight decay = 10^U(-8, -4) on 400 + 100 MNIST
images, and the book's remark (sec. 6.5.3) that Bayesian optimization does this more
rigorously. Per seed, two searches of ``trials`` trials each: Bergstra et al.'s
Tree-structured Parzen Estimator (NeurIPS 2011) with bad trials stopped early by a pruner
(the book's "give up on bad values early"), and random search with every trial trained to
the end. Compared: the best validation accuracy found against trials used, and against
epochs trained (what pruning saves).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from initlab.errors import check_choice
from initlab.experiments.base import (
    Experiment,
    ExperimentData,
    Progress,
    Recorder,
    RunOutcome,
    RunSpec,
    no_progress,
)
from initlab.experiments.common import run_seeds
from initlab.experiments.mnist_task import dataset_title
from initlab.experiments.registry import register
from initlab.experiments.search.common import (
    SearchConfig,
    StoredSearch,
    best_curves_figure,
    execute_search,
    importance_panel,
    scatter_panel,
    search_rows,
    search_spec,
    stored_searches,
    study_name,
    trials_panel,
    validate_search,
)
from initlab.report.figures import FigureInfo, LinePanel, Series

CHECKPOINTS = (10, 25, 50, 100)  # trials at which the best-so-far values are compared


@dataclass(frozen=True)
class BayesSearchConfig(SearchConfig):
    pruner: Annotated[str, "pruner of the TPE search: median, halving or none"] = "median"
    seeds: Annotated[int, "seeds (one TPE and one random search each)"] = 3
    compare_random: Annotated[bool, "also run random search at the same budget"] = True


def _best_curve(search: StoredSearch) -> tuple[list[float], list[float], list[float]]:
    """(trials used, epochs trained so far, best so far) after each finished trial."""
    epochs_so_far, total = [], 0
    for e in search.epochs:
        total += e
        epochs_so_far.append(float(total))
    used = [float(i + 1) for i in range(len(search.numbers))]
    return used, epochs_so_far, search.running_best()


@register
class BayesSearch(Experiment):
    """TPE + pruning vs random search: best accuracy found against trials used, over seeds."""

    name = "bayes-search"
    description = "C2: TPE with pruning vs random search at equal budget, over seeds"
    cost = "~3 min"  # measured 2026-12-07: 162 s (2 threads)
    source = (
        "Bergstra et al., Algorithms for Hyper-Parameter Optimization (NeurIPS 2011); "
        "Saito, Deep Learning from Scratch (2016), sec. 6.5"
    )
    Config = BayesSearchConfig
    quick: ClassVar[dict[str, Any]] = {"trials": 30, "epochs": 15, "seeds": 1, "test_size": 2000}
    quick_cost = "~10 s"

    def validate(self, config: BayesSearchConfig) -> None:
        from initlab.search.pruners import PRUNERS

        super().validate(config)
        validate_search(config)
        check_choice(config.pruner, PRUNERS, "pruner")

    def plan(self, config: BayesSearchConfig, seed: int = 0) -> list[RunSpec]:
        runs = []
        samplers = [("tpe", config.pruner)] + (
            [("random", "none")] if config.compare_random else []
        )
        for s in run_seeds(seed, config.seeds):
            for sampler, pruner in samplers:
                spec = search_spec(config, sampler, pruner)
                spec["study"] = study_name(spec, s)
                runs.append(RunSpec(f"{sampler}/seed={s}", spec, s))
        return runs

    def execute(
        self,
        run: RunSpec,
        config: BayesSearchConfig,
        recorder: Recorder,
        progress: Progress = no_progress,
    ) -> RunOutcome:
        return execute_search(run.spec, run.seed, recorder, progress)

    def figures(self, config: BayesSearchConfig, data: ExperimentData) -> list[FigureInfo]:
        searches = stored_searches(data)
        if not searches:
            return []
        colors = {"tpe": "tab:red", "random": "tab:blue"}
        by_trials, by_epochs = [], []
        labelled: set[str] = set()
        for key, search in searches.items():
            sampler = key.split("/")[0]
            used, epochs, best = _best_curve(search)
            label = (
                None
                if sampler in labelled
                else ("TPE + " + config.pruner if sampler == "tpe" else "random")
            )
            labelled.add(sampler)
            by_trials.append(Series(used, best, label, colors.get(sampler), linewidth=1.3))
            by_epochs.append(Series(epochs, best, None, colors.get(sampler), linewidth=1.3))
        what = f"{dataset_title(config.dataset)}, {config.train_size} images"
        figures = [
            FigureInfo(
                name="budget",
                title=f"Best validation accuracy found: TPE + pruning vs random ({what})",
                panels=[
                    [
                        LinePanel(
                            by_trials,
                            title="against trials used",
                            xlabel="trials",
                            ylabel="best validation accuracy so far",
                            ylim=(0.0, 1.0),
                        ),
                        LinePanel(
                            by_epochs,
                            title="against epochs trained",
                            xlabel="epochs trained",
                            ylim=(0.0, 1.0),
                            legend=False,
                        ),
                    ]
                ],
                caption=(
                    "One curve per search and seed. Right: the same against the training "
                    "actually done; pruned trials stop early, so TPE's curve is shorter."
                ),
                panel_size=(4.2, 3.2),
            )
        ]
        tpe = next((s for k, s in searches.items() if k.startswith("tpe/")), None)
        if tpe is not None:
            panels: list[Any] = [trials_panel(tpe, "value per trial (x: pruned)")]
            scatter = scatter_panel(tpe, "TPE's trials, coloured by accuracy")
            if scatter is not None:
                panels.append(scatter)
            importance = importance_panel(tpe, "parameter importance")
            if importance is not None:
                panels.append(importance)
            figures.append(
                FigureInfo(
                    name="tpe-search",
                    title=f"TPE + {config.pruner} pruning ({tpe.run.key}): {what}",
                    panels=[panels],
                    caption=(
                        "TPE samples more where the good trials were; red box: the range "
                        f"narrowed to the best {config.top}."
                    ),
                    panel_size=(3.8, 3.2),
                )
            )
            figures.append(
                best_curves_figure(
                    tpe,
                    config.top,
                    "best-curves",
                    f"Best {min(config.top, len(tpe.numbers))} TPE trials ({tpe.run.key}): {what}",
                )
            )
        return figures

    def summary(self, config: BayesSearchConfig, data: ExperimentData) -> dict[str, Any]:
        searches = stored_searches(data)
        compare: dict[str, dict[str, Any]] = {}
        for sampler in ("tpe", "random"):
            mine = [s for k, s in searches.items() if k.startswith(f"{sampler}/")]
            if not mine:
                continue
            row: dict[str, Any] = {"searches": len(mine)}
            for n in CHECKPOINTS:
                if n <= config.trials:
                    values = [s.running_best()[min(n, len(s.numbers)) - 1] for s in mine]
                    row[f"best_at_{n}"] = sum(values) / len(values)
            row["best"] = sum(s.running_best()[-1] for s in mine) / len(mine)
            row["epochs_trained"] = sum(sum(s.epochs) for s in mine) / len(mine)
            tests = [s.summary.get("best", {}).get("test_acc") for s in mine]
            row["test_acc"] = sum(tests) / len(tests) if all(t is not None for t in tests) else None
            compare[sampler] = row
        return {"compare": compare, "searches": search_rows(searches)}

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        compare = summary.get("compare", {})
        out = []
        for sampler, row in compare.items():
            points = ", ".join(
                f"{row[k]:.3f} after {k.removeprefix('best_at_')}"
                for k in row
                if k.startswith("best_at_") and math.isfinite(row[k])
            )
            out.append(
                f"{sampler} ({row['searches']} seed(s)): best validation accuracy {points} trials; "
                f"{row['epochs_trained']:.0f} epochs trained per search; "
                + (
                    f"test accuracy of the best {row['test_acc']:.3f}."
                    if row.get("test_acc") is not None
                    else ""
                )
            )
        tpe, rnd = compare.get("tpe"), compare.get("random")
        if tpe and rnd:
            saved = 1.0 - tpe["epochs_trained"] / max(rnd["epochs_trained"], 1.0)
            diff = tpe["best"] - rnd["best"]
            word = (
                "better than" if diff > 0.005 else "worse than" if diff < -0.005 else "as good as"
            )
            out.append(
                f"TPE with pruning finds {word} random search at equal trials "
                f"({tpe['best']:.3f} vs {rnd['best']:.3f}) with {saved:.0%} fewer epochs trained."
            )
        return out
