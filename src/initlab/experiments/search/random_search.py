"""C1 random-search: the book's random search of learning rate and weight decay on a log scale.

Source: Saito, "Deep Learning from Scratch" (2016), sec. 6.5,
``ch06/hyperparameter_optimization.py``: 500 MNIST training images, 20% of them held out
for validation; 784-100x6-10 ReLU (He init), SGD, minibatches of 100, 50 epochs; 100 trials
with ``lr = 10 ** np.random.uniform(-6, -2)`` and ``weight_decay = 10 ** np.random.uniform(-8,
-4)``; validation accuracy; the best 20 validation curves in a 4x5 grid; then narrow the
ranges to where the best results are. The book evaluates the validation set, never the
test set, during the search; here the best trial is also evaluated once on the test set
and reported apart.

The 100 trials do not depend on each other, so they are asked at once (Optuna's
ask-and-tell, random sampler) and trained in one batched computation, each with its own
learning rate, weight decay and init seed (see :mod:`initlab.search`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

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
from initlab.report.figures import FigureInfo


@dataclass(frozen=True)
class RandomSearchConfig(SearchConfig):
    sampler: Annotated[str, "sampler: random (the book), tpe or grid"] = "random"
    pruner: Annotated[str, "pruner: none (the book), median or halving"] = "none"


@register
class RandomSearch(Experiment):
    """100 random trials of lr x weight decay on a log scale; the best 20 curves; narrowing."""

    name = "random-search"
    description = "C1: random search of lr and weight decay on a log scale, best 20 curves"
    cost = "~20 s"  # measured 2026-12-07: 16 s (2 threads; the dual form of layer 1)
    source = "Saito, Deep Learning from Scratch (2016), sec. 6.5: hyperparameter_optimization.py"
    Config = RandomSearchConfig
    quick: ClassVar[dict[str, Any]] = {"trials": 40, "epochs": 20, "test_size": 2000}
    quick_cost = "~8 s"

    def validate(self, config: RandomSearchConfig) -> None:
        from initlab.errors import check_choice
        from initlab.search.pruners import PRUNERS
        from initlab.search.samplers import SAMPLERS

        super().validate(config)
        validate_search(config)
        check_choice(config.sampler, SAMPLERS, "sampler")
        check_choice(config.pruner, PRUNERS, "pruner")

    def plan(self, config: RandomSearchConfig, seed: int = 0) -> list[RunSpec]:
        runs = []
        for s in run_seeds(seed, config.seeds):
            spec = search_spec(config, config.sampler, config.pruner)
            spec["study"] = study_name(spec, s)
            runs.append(RunSpec(f"{config.sampler}/seed={s}", spec, s))
        return runs

    def execute(
        self,
        run: RunSpec,
        config: RandomSearchConfig,
        recorder: Recorder,
        progress: Progress = no_progress,
    ) -> RunOutcome:
        return execute_search(run.spec, run.seed, recorder, progress)

    def figures(self, config: RandomSearchConfig, data: ExperimentData) -> list[FigureInfo]:
        searches = stored_searches(data)
        if not searches:
            return []
        key, first = next(iter(searches.items()))
        what = f"{dataset_title(config.dataset)}, {config.train_size} images"
        figures = [
            best_curves_figure(
                first,
                config.top,
                "best-curves",
                f"Best {min(config.top, len(first.numbers))} of {len(first.numbers)} trials "
                f"({key}): validation accuracy, {what}",
            )
        ]
        panels: list[Any] = [trials_panel(first, "value per trial")]
        scatter = scatter_panel(first, "trials, coloured by accuracy")
        if scatter is not None:
            panels.append(scatter)
        importance = importance_panel(first, "parameter importance")
        if importance is not None:
            panels.append(importance)
        figures.append(
            FigureInfo(
                name="search",
                title=f"Random search ({key}): {what}",
                panels=[panels],
                caption=(
                    "Left: each trial's final validation accuracy and the best so far. Middle: "
                    "the trials in the (learning rate, weight decay) plane, coloured by "
                    f"accuracy; red: the range narrowed to the best {config.top} "
                    "(the book's next step). Right: how much of the variation each "
                    "parameter explains (PED-ANOVA)."
                ),
                panel_size=(3.8, 3.2),
            )
        )
        return figures

    def summary(self, config: RandomSearchConfig, data: ExperimentData) -> dict[str, Any]:
        searches = stored_searches(data)
        return {"searches": search_rows(searches)}

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        out = []
        for key, row in summary.get("searches", {}).items():
            acc, test = row.get("best_valid_acc"), row.get("test_acc")
            if acc is None or test is None:
                continue
            lr = row.get("best_lr")
            wd = row.get("best_weight_decay")
            params = ", ".join(
                f"{n} {v:.2g}" for n, v in (("lr", lr), ("weight decay", wd)) if v is not None
            )
            out.append(
                f"{key}: best of {row['trials']} trials has validation accuracy {acc:.3f} "
                f"({params}); on the test set, evaluated once: {test:.3f}."
            )
            band = row.get("narrowed_lr")
            if isinstance(band, list) and all(isinstance(v, float) for v in band):
                decades = math.log10(band[1]) - math.log10(band[0])
                out.append(
                    f"{key}: the best trials narrow lr to [{band[0]:.2g}, {band[1]:.2g}] "
                    f"({decades:.1f} decades)."
                )
        return out
