"""B5 ensemble: averaging the outputs of copies trained from different seeds beats each copy.

Model averaging (Goodfellow, Bengio & Courville, "Deep Learning", 2016, sec. 7.11): ``k``
networks whose errors are not perfectly correlated make, on average, fewer errors together;
with mean-squared errors, the ensemble's expected squared error is ``v/k + (k-1)c/k`` for
per-model variance ``v`` and covariance ``c``. Saito's "Deep Learning from Scratch" (sec.
8.1.2) reports the same gain on MNIST. Here ``seeds`` copies of one network (by default
B1's 784-100-100-100-100-10 ReLU with He init, SGD lr 0.01, batches of 128, 2000
iterations) are trained, and the test accuracy of each is compared with that of the
averaged output: the mean of the members' softmax probabilities,
``p(y | x) = (1/k) sum_i softmax(f_i(x))``, classified by its argmax.

Execution: the copies are one group, trained in one batched computation. They differ in
their initial weights (and dropout masks, if any), not in their minibatches: all see the
stream of the base seed. Each run stores its test-set probabilities, so the ensemble (and
the accuracy of averaging the first ``k`` copies, for every ``k``) is computed from the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import torch

from initlab.errors import InitlabError
from initlab.experiments import flops as fl
from initlab.experiments.base import (
    ExperimentData,
    GroupExperiment,
    Progress,
    Recorder,
    RunOutcome,
    RunSpec,
    no_progress,
)
from initlab.experiments.common import check_activations, check_inits, color, run_seeds
from initlab.experiments.mnist_task import (
    DATASET_HELP,
    DatasetChoice,
    check_dataset,
    check_hidden,
    dataset_title,
    group_task,
    train_group,
)
from initlab.experiments.registry import register
from initlab.experiments.seeds import stream_seed
from initlab.report.figures import FigureInfo, LinePanel, Series


@dataclass(frozen=True)
class EnsembleConfig:
    dataset: Annotated[DatasetChoice, DATASET_HELP] = "mnist"
    hidden: Annotated[tuple[int, ...], "hidden layer widths"] = (100, 100, 100, 100)
    activation: Annotated[str, "hidden activation"] = "relu"
    init: Annotated[str, "init scheme (biases 0)"] = "he_normal"
    seeds: Annotated[int, "number of copies (each from its own seed)"] = 5
    lr: Annotated[float, "SGD learning rate"] = 0.01
    steps: Annotated[int, "SGD iterations"] = 2000
    batch_size: Annotated[int, "minibatch size (drawn with replacement)"] = 128
    eval_every: Annotated[int, "test accuracy every this many iterations"] = 200


def ensemble_accuracy(probs: list[torch.Tensor], labels: torch.Tensor) -> float:
    """Accuracy of the averaged softmax outputs ``mean_i probs[i]`` (each ``[N, classes]``)."""
    mean = torch.stack([p.double() for p in probs]).mean(0)
    return float((mean.argmax(1) == labels).double().mean())


@register
class Ensemble(GroupExperiment):
    """Test accuracy of each of 5 copies and of their averaged softmax output."""

    name = "ensemble"
    description = "B5: 5 copies from different seeds: each one's test accuracy vs their average"
    cost = "~20 s"  # measured: benchmarks/suite.py, CPU seconds (README, Performance)
    source = (
        "Goodfellow, Bengio & Courville, Deep Learning (2016), sec. 7.11 (model averaging); "
        "Saito, Deep Learning from Scratch (2016), sec. 8.1.2"
    )
    Config = EnsembleConfig
    quick: ClassVar[dict[str, Any]] = {"steps": 600}
    quick_cost = "~10 s"

    def validate(self, config: EnsembleConfig) -> None:
        super().validate(config)
        check_dataset(config.dataset)
        check_hidden(config.hidden)
        check_activations([config.activation])
        check_inits([config.init])
        if config.eval_every < 1:
            raise InitlabError(f"eval_every must be positive, got {config.eval_every}")

    def flops(self, config: EnsembleConfig) -> float:
        evals = config.steps // config.eval_every + 1
        return fl.training_flops(
            [784, *config.hidden, 10],
            members=config.seeds,
            steps=config.steps,
            batch=config.batch_size,
            eval_examples=evals * fl.split_size(config.dataset, "test"),
        )

    def plan(self, config: EnsembleConfig, seed: int = 0) -> list[RunSpec]:
        runs = []
        for s in run_seeds(seed, config.seeds):
            spec = {
                "dataset": config.dataset,
                "hidden": list(config.hidden),
                "activation": config.activation,
                "init": config.init,
                "lr": config.lr,
                "steps": config.steps,
                "batch_size": config.batch_size,
                "eval_every": config.eval_every,
                "batch_seed": stream_seed(seed, "minibatches"),
            }
            runs.append(RunSpec(f"seed={s}", spec, s, group="copies"))
        return runs

    def execute_group(
        self,
        runs: list[RunSpec],
        config: EnsembleConfig,
        recorders: list[Recorder],
        progress: Progress = no_progress,
    ) -> list[RunOutcome]:
        first = runs[0].spec
        task = group_task(first)
        result, outcomes = train_group(
            runs,
            recorders,
            progress,
            members=[(run.spec["init"], run.seed) for run in runs],
            data=task.train,
            spec=task.spec,
            keep=("train_loss", "valid_acc", "valid_loss"),
            lr=first["lr"],
            steps=first["steps"],
            batch_size=first["batch_size"],
            batch_seed=first["batch_seed"],
            eval_data=task.test,
            eval_every=first["eval_every"],
        )
        assert task.test is not None
        for member, recorder in enumerate(recorders):
            model = result.model(member).eval()
            with torch.no_grad():
                probs = torch.softmax(model(task.test.x), dim=1)
            recorder.save_params({"test_probs": probs.float(), "test_labels": task.test.y})
        return outcomes

    # -- results ----------------------------------------------------------------------
    def _members(self, data: ExperimentData) -> list[tuple[Any, torch.Tensor, torch.Tensor]]:
        """(run, test probabilities, labels) of every copy that finished without NaN."""
        out = []
        for run in data.finished():
            params = run.params() if run.status == "done" else None
            if params is not None:
                out.append((run, params["test_probs"], params["test_labels"]))
        return out

    def summary(self, config: EnsembleConfig, data: ExperimentData) -> dict[str, Any]:
        members = self._members(data)
        if not members:
            return {"members": {}}
        labels = members[0][2]
        accs = {run.key: float((p.argmax(1) == y).double().mean()) for run, p, y in members}
        probs = [p for _, p, _ in members]
        by_size = [ensemble_accuracy(probs[:k], labels) for k in range(1, len(probs) + 1)]
        mean = sum(accs.values()) / len(accs)
        return {
            "members": accs,
            "member_mean": mean,
            "member_best": max(accs.values()),
            "member_worst": min(accs.values()),
            "ensemble": by_size[-1],
            "ensemble_by_size": by_size,
            "gain_over_mean": by_size[-1] - mean,
            "gain_over_best": by_size[-1] - max(accs.values()),
            "excluded": [r.key for r in data.runs if r.status != "done"],
        }

    def figures(self, config: EnsembleConfig, data: ExperimentData) -> list[FigureInfo]:
        members = self._members(data)
        if not members:
            return []
        summary = self.summary(config, data)
        curves = []
        for i, (run, _, _) in enumerate(members):
            steps, acc = run.series("valid_acc")
            curves.append(Series(steps, acc, run.key, color(i), linewidth=1.2))
        ensemble = summary["ensemble"]
        sizes = list(range(1, len(members) + 1))
        individual = list(summary["members"].values())
        low = min(min(individual), *summary["ensemble_by_size"])
        high = max(max(individual), ensemble)
        pad = max(0.002, 0.15 * (high - low))
        panels = [
            LinePanel(
                curves,
                title="each copy during training",
                xlabel="iteration",
                ylabel="test accuracy",
                ylim=(0.0, 1.0),
                hlines=[(ensemble, f"ensemble of {len(members)}: {ensemble:.4f}")],
            ),
            LinePanel(
                [
                    Series(
                        [1] * len(individual),
                        individual,
                        "single copies",
                        "tab:gray",
                        "",
                        marker="o",
                    ),
                    Series(
                        sizes,
                        summary["ensemble_by_size"],
                        "average of the first k copies",
                        "tab:red",
                        marker="o",
                    ),
                ],
                title="averaging k copies (zoomed)",
                xlabel="copies averaged k",
                ylabel="test accuracy",
                ylim=(low - pad, high + pad),
                hlines=[(summary["member_mean"], "mean single copy")],
            ),
        ]
        return [
            FigureInfo(
                name="ensemble",
                title=f"Ensemble of {len(members)} copies on {dataset_title(config.dataset)}",
                panels=[panels],  # type: ignore[list-item]
                caption=(
                    "Left: test accuracy of every copy during training, and (dotted) that of "
                    "their averaged softmax output at the end. Right: final test accuracy of "
                    "each copy (k = 1) and of the average of the first k copies; note its "
                    "zoomed y axis."
                ),
                panel_size=(5.0, 3.8),
            )
        ]

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        if not summary.get("members"):
            return []
        n = len(summary["members"])
        out = [
            f"Averaging the softmax outputs of {n} copies: test accuracy "
            f"{summary['ensemble']:.4f} vs {summary['member_mean']:.4f} for a single copy on "
            f"average (range {summary['member_worst']:.4f} to {summary['member_best']:.4f}): "
            f"{100 * summary['gain_over_mean']:+.2f} points.",
        ]
        word = "beats" if summary["gain_over_best"] > 0 else "does not beat"
        out.append(
            f"The ensemble {word} the best single copy ({100 * summary['gain_over_best']:+.2f} "
            "points)."
        )
        if summary["excluded"]:
            out.append(f"Left out (not done): {', '.join(summary['excluded'])}.")
        return out
