"""optimizer-paths: how SGD, Momentum, Nesterov, AdaGrad, RMSProp and Adam walk a 2-D valley.

Source: Saito, "Deep Learning from Scratch" (2016), sec. 6.1.7, ``optimizer_compare_naive.py``:
the function ``f(x, y) = x^2 / 20 + y^2`` (a valley 20 times steeper in y than in x), start
(-7, 2), 30 steps, learning rates SGD 0.95, Momentum 0.1 (momentum 0.9), AdaGrad 1.5, Adam
0.3; one contour panel per optimizer with its path. SGD zig-zags across the valley, Momentum
rolls like a ball, AdaGrad's per-coordinate step sizes damp the steep direction, Adam
combines both. The book leaves out RMSProp and Nesterov; here RMSProp uses lr 0.15 with its
decay alpha 0.99 (the book's decay_rate) and Nesterov lr 0.1 with momentum 0.9 (as
Momentum), chosen so that their 30-step paths are comparable with the others.

The paths are computed with initlab's own optimizers (:mod:`initlab.train.optim`, the ones
the trainers use; they follow ``torch.optim``'s update rules), on float64 parameters.

Other test functions: ``rosenbrock`` (1 - x)^2 + 100 (y - x^2)^2 (a curved valley, minimum
(1, 1)), ``beale`` (minimum (3, 0.5), flat plateaus and steep walls), ``saddle`` x^2 - y^2
(no minimum: a good optimizer escapes the saddle point at (0, 0)).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import torch

from initlab.errors import InitlabError, check_choice
from initlab.experiments.base import (
    Experiment,
    ExperimentData,
    Progress,
    Recorder,
    RunOutcome,
    RunSpec,
    no_progress,
)
from initlab.experiments.common import check_positive, fmt, ranking
from initlab.experiments.registry import register
from initlab.report.figures import ContourPanel, FigureInfo, Path2D

FunctionName = Literal["book", "rosenbrock", "beale", "saddle"]

Fn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Surface:
    """A 2-D test function with its start point, minimum, plot window and learning rates."""

    formula: str
    f: Fn
    start: tuple[float, float]
    minimum: tuple[float, float] | None  # None: no minimum (the saddle); mark `centre`
    centre: tuple[float, float]  # the point marked on the plot and measured to
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    lr: dict[str, float]  # default learning rate per optimizer


FUNCTIONS: dict[str, Surface] = {
    "book": Surface(
        "x^2/20 + y^2",
        lambda x, y: x**2 / 20.0 + y**2,
        (-7.0, 2.0),
        (0.0, 0.0),
        (0.0, 0.0),
        (-10.0, 10.0),
        (-5.0, 5.0),
        {
            "sgd": 0.95,
            "momentum": 0.1,
            "nesterov": 0.1,
            "adagrad": 1.5,
            "rmsprop": 0.15,
            "adam": 0.3,
            "adamw": 0.3,
            "lars": 0.1,
        },
    ),
    "rosenbrock": Surface(
        "(1 - x)^2 + 100 (y - x^2)^2",
        lambda x, y: (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2,
        (-1.5, 2.0),
        (1.0, 1.0),
        (1.0, 1.0),
        (-2.0, 2.0),
        (-1.0, 3.0),
        {
            "sgd": 0.001,
            "momentum": 0.001,
            "nesterov": 0.001,
            "adagrad": 0.5,
            "rmsprop": 0.05,
            "adam": 0.2,
            "adamw": 0.2,
            "lars": 0.01,
        },
    ),
    "beale": Surface(
        "(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2",
        lambda x, y: (
            (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2
        ),
        (1.0, 1.4),
        (3.0, 0.5),
        (3.0, 0.5),
        (-1.0, 4.5),
        (-1.5, 2.0),
        {
            "sgd": 0.01,
            "momentum": 0.005,
            "nesterov": 0.005,
            "adagrad": 0.5,
            "rmsprop": 0.05,
            "adam": 0.2,
            "adamw": 0.2,
            "lars": 0.05,
        },
    ),
    "saddle": Surface(
        "x^2 - y^2",
        lambda x, y: x**2 - y**2,
        (-1.5, 0.05),
        None,
        (0.0, 0.0),
        (-2.0, 2.0),
        (-2.0, 2.0),
        {
            "sgd": 0.1,
            "momentum": 0.05,
            "nesterov": 0.05,
            "adagrad": 0.5,
            "rmsprop": 0.05,
            "adam": 0.2,
            "adamw": 0.2,
            "lars": 0.1,
        },
    ),
}

TITLES = {
    "sgd": "SGD",
    "momentum": "Momentum",
    "nesterov": "Nesterov",
    "adagrad": "AdaGrad",
    "rmsprop": "RMSProp",
    "adam": "Adam",
    "adamw": "AdamW",
    "lars": "LARS",
}


@dataclass(frozen=True)
class OptimizerPathsConfig:
    function: Annotated[
        FunctionName, "test function: book (x^2/20 + y^2), rosenbrock, beale or saddle"
    ] = "book"
    optimizers: Annotated[
        tuple[str, ...], "optimizers, one panel each (initlab.train.optim names)"
    ] = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
    lr: Annotated[
        dict[str, float],
        "learning rate per optimizer, e.g. {adam = 0.1}; missing ones use the function's "
        "preset (book: SGD 0.95, Momentum 0.1, Nesterov 0.1, AdaGrad 1.5, RMSProp 0.15, "
        "Adam 0.3)",
    ] = field(default_factory=dict)
    momentum: Annotated[float, "momentum of Momentum and Nesterov"] = 0.9
    alpha: Annotated[float, "RMSProp's decay rate of the squared-gradient average"] = 0.99
    beta1: Annotated[float, "Adam's first-moment decay"] = 0.9
    beta2: Annotated[float, "Adam's second-moment decay"] = 0.999
    steps: Annotated[int, "optimizer steps"] = 30
    start: Annotated[tuple[float, ...], "start point [x, y]; empty: the function's own"] = ()
    grid: Annotated[int, "contour grid points per axis"] = 201


def _hparams(name: str, lr: float, config: OptimizerPathsConfig) -> dict[str, float]:
    """The optimizer's hyperparameters for this experiment (names of initlab.train.optim)."""
    hp: dict[str, float] = {"lr": lr}
    if name in ("momentum", "nesterov", "lars"):
        hp["momentum"] = config.momentum
    if name == "rmsprop":
        hp["alpha"] = config.alpha
    if name in ("adam", "adamw"):
        hp["beta1"], hp["beta2"] = config.beta1, config.beta2
    return hp


def optimizer_path(
    function: str,
    optimizer: str,
    hparams: dict[str, float],
    start: tuple[float, float],
    steps: int,
) -> list[tuple[float, float, float]]:
    """The points (x, y, f) visited by ``optimizer`` from ``start``: ``steps + 1`` of them.

    Stops early (shorter list) once a coordinate is no longer finite.
    """
    from initlab.train.optim import make_optimizer

    f = FUNCTIONS[function].f
    opt = make_optimizer(optimizer, **hparams)
    p = torch.tensor(start, dtype=torch.float64)
    state = opt.init_state([p])
    points = []
    for step in range(steps + 1):
        q = p.detach().clone().requires_grad_(True)
        value = f(q[0], q[1])
        points.append((float(p[0]), float(p[1]), float(value.detach())))
        if step == steps or not all(math.isfinite(v) for v in points[-1]):
            break
        (grad,) = torch.autograd.grad(value, q)
        opt.step_([p], [grad], state)
    return points


@register
class OptimizerPaths(Experiment):
    """Paths of six optimizers on a 2-D function, drawn over its contour lines."""

    name = "optimizer-paths"
    description = "Paths of SGD, Momentum, Nesterov, AdaGrad, RMSProp, Adam on x^2/20 + y^2"
    cost = "~4 s"  # measured: benchmarks/suite.py, CPU seconds (README, Performance)
    source = "Saito, Deep Learning from Scratch (2016), sec. 6.1.7: optimizer_compare_naive.py"
    Config = OptimizerPathsConfig
    quick: ClassVar[dict[str, Any]] = {"grid": 101}

    def validate(self, config: OptimizerPathsConfig) -> None:
        super().validate(config)
        from initlab.train.optim import OPTIMIZER_NAMES

        if not config.optimizers:
            raise InitlabError(f"optimizers is empty; valid: {', '.join(OPTIMIZER_NAMES)}")
        for name in [*config.optimizers, *config.lr]:
            check_choice(name, OPTIMIZER_NAMES, "optimizer")
        check_positive(steps=config.steps, grid=config.grid - 1)
        if config.start and len(config.start) != 2:
            raise InitlabError(f"start must be [x, y], got {config.start}")

    def _start(self, config: OptimizerPathsConfig) -> tuple[float, float]:
        if config.start:
            return (float(config.start[0]), float(config.start[1]))
        return FUNCTIONS[config.function].start

    def flops(self, config: OptimizerPathsConfig) -> float:
        return 0.0  # two-dimensional functions: no matrix products

    def plan(self, config: OptimizerPathsConfig, seed: int = 0) -> list[RunSpec]:
        fn = FUNCTIONS[config.function]
        runs = []
        for name in config.optimizers:
            lr = config.lr.get(name, fn.lr[name])
            spec = {
                "function": config.function,
                "optimizer": name,
                "hparams": _hparams(name, lr, config),
                "start": list(self._start(config)),
                "steps": config.steps,
            }
            runs.append(RunSpec(name, spec, seed))
        return runs

    def execute(
        self,
        run: RunSpec,
        config: OptimizerPathsConfig,
        recorder: Recorder,
        progress: Progress = no_progress,
    ) -> RunOutcome:
        spec = run.spec
        points = optimizer_path(
            spec["function"],
            spec["optimizer"],
            spec["hparams"],
            tuple(spec["start"]),
            spec["steps"],
        )
        recorder.log_metrics(
            [{"step": i, "x": x, "y": y, "f": v} for i, (x, y, v) in enumerate(points)]
        )
        progress(1, 1)
        finite = all(math.isfinite(v) for p in points for v in p)
        return RunOutcome("done" if finite else "diverged", {"final_f": points[-1][2]})

    # -- results ----------------------------------------------------------------------
    def figures(self, config: OptimizerPathsConfig, data: ExperimentData) -> list[FigureInfo]:
        fn = FUNCTIONS[config.function]
        n = config.grid
        xs = [fn.xlim[0] + (fn.xlim[1] - fn.xlim[0]) * i / (n - 1) for i in range(n)]
        ys = [fn.ylim[0] + (fn.ylim[1] - fn.ylim[0]) * i / (n - 1) for i in range(n)]
        gx = torch.tensor(xs, dtype=torch.float64)
        gy = torch.tensor(ys, dtype=torch.float64)
        z = fn.f(gx[None, :], gy[:, None])
        levels = _levels(z, fn.minimum is not None)
        panels: list[ContourPanel | None] = []
        for run in data.finished():
            _, px = run.series("x")
            _, py = run.series("y")
            _, pf = run.series("f")
            title = f"{TITLES.get(run.key, run.key)} (lr {run.spec['hparams']['lr']:g})"
            panels.append(
                ContourPanel(
                    x=xs,
                    y=ys,
                    z=z.tolist(),
                    levels=levels,
                    paths=[Path2D(px, py, None, "tab:red", "o")],
                    points=[(fn.centre[0], fn.centre[1], "")],
                    title=title,
                    note=f"f = {fmt(pf[-1], 2)} after {len(pf) - 1} steps",
                )
            )
        cols = min(3, len(panels)) or 1
        grid = [panels[i : i + cols] for i in range(0, len(panels), cols)]
        if grid and len(grid[-1]) < cols:
            grid[-1] = grid[-1] + [None] * (cols - len(grid[-1]))
        start = self._start(config)
        return (
            [
                FigureInfo(
                    name=f"optimizer-paths-{config.function}",
                    title=f"Optimizer paths on f(x, y) = {fn.formula}, from {start}",
                    panels=grid,  # type: ignore[arg-type]
                    caption=(
                        f"{config.steps} steps of each optimizer (initlab.train.optim) from "
                        f"{start}; grey lines are contours of f, + marks the "
                        f"{'minimum' if fn.minimum else 'saddle point'} {fn.centre}."
                    ),
                    sharex=True,
                    sharey=True,
                    panel_size=(3.6, 2.9),
                )
            ]
            if grid
            else []
        )

    def summary(self, config: OptimizerPathsConfig, data: ExperimentData) -> dict[str, Any]:
        fn = FUNCTIONS[config.function]
        cx, cy = fn.centre
        out: dict[str, Any] = {}
        for run in data.runs:
            _, px = run.series("x")
            _, py = run.series("y")
            _, pf = run.series("f")
            if not px:
                continue
            steps = [(px[i + 1] - px[i], py[i + 1] - py[i]) for i in range(len(px) - 1)]
            turns = [a[0] * b[0] + a[1] * b[1] < 0 for a, b in itertools.pairwise(steps)]
            out[run.key] = {
                "lr": run.spec["hparams"]["lr"],
                "status": run.status,
                "start_distance": math.hypot(px[0] - cx, py[0] - cy),
                "final_distance": math.hypot(px[-1] - cx, py[-1] - cy),
                "final_x": px[-1],
                "final_y": py[-1],
                "final_f": pf[-1],
                "zigzag": sum(turns) / len(turns) if turns else 0.0,
            }
        return {"function": config.function, "centre": list(fn.centre), "runs": out}

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        runs = summary.get("runs", {})
        if not runs:
            return []
        fn = FUNCTIONS[summary["function"]]
        name = "minimum" if fn.minimum is not None else "saddle point"
        ranked = sorted(runs.items(), key=lambda kv: _sort_key(kv[1]["final_distance"]))
        start = next(iter(runs.values()))["start_distance"]
        closer = [k for k, r in runs.items() if r["final_distance"] < r["start_distance"]]
        listing = ranking(
            {k: r["final_distance"] for k, r in ranked},
            digits=2,
            label=lambda k: TITLES.get(k, k),
            sep=", ",
            diverged=[k for k, r in ranked if r["status"] == "diverged"],
        )
        out = [
            f"Distance to the {name} {tuple(fn.centre)} at the end (start: {fmt(start, 3)}): "
            f"{listing}; {len(closer)} of {len(runs)} ended nearer than they started."
        ]
        zig_key, zig = max(runs.items(), key=lambda kv: kv[1]["zigzag"])
        if zig["zigzag"] > 0.5:
            out.append(
                f"{TITLES.get(zig_key, zig_key)} zig-zags: {100 * zig['zigzag']:.0f}% of its "
                "consecutive steps reverse direction across the valley."
            )
        diverged = [k for k, r in runs.items() if r["status"] == "diverged"]
        if diverged:
            out.append(f"Diverged (NaN/Inf): {', '.join(diverged)}; lower their lr.")
        return out


def _sort_key(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def _levels(z: torch.Tensor, has_minimum: bool) -> list[float]:
    """Contour levels: geometric above the minimum (dense near it), else evenly spaced."""
    finite = z[torch.isfinite(z)]
    lo, hi = float(finite.min()), float(finite.max())
    if has_minimum:
        span = hi - lo
        ratios = torch.logspace(math.log10(span * 1e-3), math.log10(span * 0.9), 16)
        return [lo + float(r) for r in ratios]
    return [lo + (hi - lo) * i / 20 for i in range(1, 20)]
