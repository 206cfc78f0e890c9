"""A3 exploding-product: a product of random matrices explodes; the sigmoid's slope vanishes.

Source: the classic illustration of exploding and vanishing gradients (Goodfellow, Bengio
& Courville, "Deep Learning", 2016, sec. 8.2.5 and 10.7; the lecture version multiplies a
4 x 4 standard normal matrix by 100 more). Back-propagation through L layers multiplies L
Jacobians, ``W_l^T diag(phi'(a_l))``: the weights alone make the product's norm grow or
shrink exponentially, and a sigmoid's derivative ``phi' = phi (1 - phi) <= 1/4`` shrinks it
by at least 4 per layer.

For n x n matrices with independent N(0, 1) entries the growth rate is known exactly: the
top Lyapunov exponent is (Newman 1986, "The distribution of Lyapunov exponents: exact
results for random matrices")::

    lambda_1 = lim (1/k) ln ||A_k ... A_1|| = (ln 2 + psi(n / 2)) / 2

(psi the digamma function), because ``||A x||^2 ~ chi^2_n`` for any unit vector x. For
n = 4: lambda_1 = 0.558, i.e. 0.242 decades per multiplication; the figure draws it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import torch

from initlab.errors import InitlabError
from initlab.experiments.base import (
    Experiment,
    ExperimentData,
    Progress,
    Recorder,
    RunOutcome,
    RunSpec,
    no_progress,
)
from initlab.experiments.common import check_positive, color, fmt, run_seeds
from initlab.experiments.registry import register
from initlab.report.figures import FigureInfo, LinePanel, Series


@dataclass(frozen=True)
class ExplodingProductConfig:
    size: Annotated[int, "the matrices are size x size with standard normal entries"] = 4
    multiplications: Annotated[int, "how many matrices multiply the first one"] = 100
    seeds: Annotated[int, "number of independent products (one run each)"] = 5
    sigmoid_range: Annotated[float, "the sigmoid and its derivative are drawn on [-r, r]"] = 8.0
    points: Annotated[int, "points of the sigmoid curve"] = 161


def lyapunov_exponent(n: int) -> float:
    """Top Lyapunov exponent of products of n x n N(0, 1) matrices: (ln 2 + psi(n/2)) / 2."""
    psi = float(torch.special.digamma(torch.tensor(n / 2.0, dtype=torch.float64)))
    return 0.5 * (math.log(2.0) + psi)


def _fit_line(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least-squares line y = a + b x: (slope b, intercept a, coefficient of determination)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return slope, intercept, 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0


@register
class ExplodingProduct(Experiment):
    """The norm of a product of random matrices, and the sigmoid's vanishing derivative."""

    name = "exploding-product"
    description = "A3: norm of a product of 101 random 4x4 matrices; the sigmoid's slope"
    cost = "~3 s"  # measured: benchmarks/suite.py, CPU seconds (README, Performance)
    source = "Goodfellow, Bengio & Courville, Deep Learning (2016), sec. 8.2.5 and 10.7"
    Config = ExplodingProductConfig
    quick: ClassVar[dict[str, Any]] = {"seeds": 3}

    def validate(self, config: ExplodingProductConfig) -> None:
        super().validate(config)
        check_positive(
            size=config.size,
            multiplications=config.multiplications,
            seeds=config.seeds,
            sigmoid_range=config.sigmoid_range,
        )
        if config.points < 3:
            raise InitlabError(f"points must be at least 3, got {config.points}")

    def flops(self, config: ExplodingProductConfig) -> float:
        return config.seeds * config.multiplications * 2.0 * config.size**3

    def plan(self, config: ExplodingProductConfig, seed: int = 0) -> list[RunSpec]:
        product = {"size": config.size, "multiplications": config.multiplications}
        runs = [
            RunSpec(f"product/seed={s}", {"part": "product", **product}, s)
            for s in run_seeds(seed, config.seeds)
        ]
        curve = {"part": "sigmoid", "range": config.sigmoid_range, "points": config.points}
        runs.append(RunSpec("sigmoid", curve, 0))
        return runs

    def execute(
        self,
        run: RunSpec,
        config: ExplodingProductConfig,
        recorder: Recorder,
        progress: Progress = no_progress,
    ) -> RunOutcome:
        if run.spec["part"] == "sigmoid":
            return self._sigmoid(run, recorder)
        n, k = run.spec["size"], run.spec["multiplications"]
        gen = torch.Generator().manual_seed(run.seed)
        # float64: the norm reaches ~1e25 after 100 products and overflows float32 near 1e38
        mats = torch.randn(k + 1, n, n, generator=gen, dtype=torch.float64)
        product = mats[0]
        rows = [{"step": 0, "log10_norm": math.log10(float(torch.linalg.matrix_norm(product)))}]
        for i in range(1, k + 1):
            product = product @ mats[i]
            norm = float(torch.linalg.matrix_norm(product))
            rows.append({"step": i, "log10_norm": math.log10(norm) if norm > 0 else -math.inf})
            progress(i, k)
        recorder.log_metrics(rows)
        return RunOutcome("done", {"log10_norm_final": rows[-1]["log10_norm"]})

    @staticmethod
    def _sigmoid(run: RunSpec, recorder: Recorder) -> RunOutcome:
        r, points = run.spec["range"], run.spec["points"]
        x = torch.linspace(-r, r, points, dtype=torch.float64)
        s = torch.sigmoid(x)
        d = s * (1 - s)
        recorder.log_metrics(
            [
                {"step": i, "x": float(x[i]), "sigmoid": float(s[i]), "derivative": float(d[i])}
                for i in range(points)
            ]
        )
        return RunOutcome("done", {"derivative_max": float(d.max())})

    # -- results ----------------------------------------------------------------------
    def figures(self, config: ExplodingProductConfig, data: ExperimentData) -> list[FigureInfo]:
        products = [r for r in data.finished() if r.spec["part"] == "product"]
        series = []
        for i, run in enumerate(products):
            steps, values = run.series("log10_norm")
            series.append(Series(steps, values, f"seed {run.run.seed}", color(i), linewidth=1.2))
        decades = lyapunov_exponent(config.size) / math.log(10.0)
        if products:
            start = sum(r.series("log10_norm")[1][0] for r in products) / len(products)
            ks = [0, config.multiplications]
            series.append(
                Series(
                    ks,
                    [start + decades * k for k in ks],
                    f"theory: {decades:.3f} decades per product",
                    "black",
                    linestyle="--",
                )
            )
        left = LinePanel(
            series,
            title=f"Product of {config.multiplications + 1} random {config.size}x{config.size} "
            "matrices",
            xlabel="number of multiplications k",
            ylabel="log10 ||A_0 A_1 ... A_k||_F",
        )
        panels: list[LinePanel] = [left]
        curve = [r for r in data.finished() if r.spec["part"] == "sigmoid"]
        if curve:
            _, xs = curve[0].series("x")
            _, sig = curve[0].series("sigmoid")
            _, der = curve[0].series("derivative")
            panels.append(
                LinePanel(
                    [
                        Series(xs, sig, "sigmoid(x)", "tab:blue"),
                        Series(xs, der, "derivative sigmoid(x)(1 - sigmoid(x))", "tab:red"),
                    ],
                    title="The sigmoid saturates: its slope vanishes",
                    xlabel="x (pre-activation)",
                    ylabel="value",
                    hlines=[(0.25, "max slope 1/4")],
                )
            )
        return [
            FigureInfo(
                name="exploding-product",
                title="Exploding products and vanishing slopes",
                panels=[panels],
                caption=(
                    "Left: the Frobenius norm of a product of standard normal matrices grows "
                    "exponentially, one line per seed, at the rate predicted by the top "
                    "Lyapunov exponent (dashed). Right: back-propagating through a sigmoid "
                    "multiplies the gradient by at most 1/4, and by almost 0 where it "
                    "saturates."
                ),
                panel_size=(4.6, 3.4),
            )
        ]

    def summary(self, config: ExplodingProductConfig, data: ExperimentData) -> dict[str, Any]:
        out: dict[str, Any] = {}
        fits = []
        finals = []
        for run in data.finished():
            if run.spec["part"] != "product":
                continue
            steps, values = run.series("log10_norm")
            slope, _, r2 = _fit_line([float(s) for s in steps], values)
            fits.append((slope, r2))
            finals.append(values[-1])
        if fits:
            out["slope_decades_per_product"] = sum(f[0] for f in fits) / len(fits)
            out["slope_theory"] = lyapunov_exponent(config.size) / math.log(10.0)
            out["r2_min"] = min(f[1] for f in fits)
            out["log10_norm_final_mean"] = sum(finals) / len(finals)
            out["log10_norm_final_min"] = min(finals)
            out["log10_norm_final_max"] = max(finals)
            out["multiplications"] = config.multiplications
            out["seeds"] = len(fits)
        curve = [r for r in data.finished() if r.spec["part"] == "sigmoid"]
        if curve:
            _, xs = curve[0].series("x")
            _, der = curve[0].series("derivative")
            out["sigmoid_slope_max"] = max(der)
            out["sigmoid_slope_at_edge"] = der[-1]
            out["sigmoid_range"] = xs[-1]
        return out

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        out = []
        if "slope_decades_per_product" in summary:
            out.append(
                f"The norm of a product of {summary['multiplications'] + 1} random matrices "
                f"explodes: log10 norm grows linearly, "
                f"{summary['slope_decades_per_product']:.3f} decades per multiplication "
                f"(theory {summary['slope_theory']:.3f}; R^2 >= {summary['r2_min']:.3f}), "
                f"reaching about 1e{summary['log10_norm_final_mean']:.0f} "
                f"({summary['seeds']} seeds)."
            )
        if "sigmoid_slope_max" in summary:
            edge = summary["sigmoid_range"]
            out.append(
                f"The sigmoid's derivative is at most {summary['sigmoid_slope_max']:.2f} and "
                f"{fmt(summary['sigmoid_slope_at_edge'], 2)} at x = +-{edge:g}: each sigmoid "
                "layer shrinks a back-propagated gradient at least 4x, far more where it "
                "saturates."
            )
        return out
