"""Glorot & Bengio (2010), group D: quick runs that check the paper's small-scale findings.

Small networks (5 hidden layers of 64-100 units) on a few thousand Shapeset-3x2 images, so
each run takes seconds. The thresholds are the experiments' own (their verdicts), with
margins measured on these settings: sigmoid's top-layer mean falls by ~0.3 within 300
updates (threshold 0.1); the standard init's gradient variance falls ~3x per layer
(threshold 2x), the normalized one's by ~1.25x (flat band 0.7-1.43x).
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import pytest
import torch

from initlab.errors import InitlabError
from initlab.experiments import run_experiment
from initlab.experiments.base import ExperimentData, RunData, RunSpec
from initlab.experiments.glorot.common import jacobian_singular_values, stream_seed
from initlab.experiments.glorot.saturation import _saturation_sentence
from initlab.experiments.glorot.table import (
    PAPER_KEY,
    TABLE_KEY,
    GlorotTable,
    GlorotTableConfig,
)
from initlab.report.figures import FigureInfo
from initlab.report.html import build_report


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the figures an experiment returns, which are not drawn: matplotlib's
    text layout is most of these runs' time, and the table test below draws its own."""
    names: list[str] = []

    def no_drawing(figures: list[FigureInfo], out: Path, workers: int = 1) -> list[dict[str, Path]]:
        names.extend(f.name for f in figures)
        assert all(f.panels and f.title for f in figures)
        return [{"png": out / f"{f.name}.png"} for f in figures]

    monkeypatch.setattr("initlab.experiments.runner.render_figures", no_drawing)
    return names


def test_sigmoid_top_layer_moves_toward_zero_early(tmp_path: Path, drawn: list[str]) -> None:
    result = run_experiment(
        "glorot-saturation",
        [
            "activations=[sigmoid]",
            "inits=[standard]",
            "hidden=[100, 100, 100, 100, 100]",
            "lr=0.3",
            "steps=300",
            "probe_every=50",
            "probe_examples=100",
        ],
        out_dir=tmp_path,
        progress=False,
    )
    row = result.summary["runs"]["sigmoid/standard"]
    assert row["top_mean_init"] == pytest.approx(0.5, abs=0.05)  # sigmoid(~0) at init
    assert row["top_mean_early_min"] < row["top_mean_init"] - 0.1
    assert all(row["top_mean_final"] < m - 0.1 for m in row["other_means_final"])
    assert "moves toward 0 early" in result.verdicts[0]
    assert sorted(drawn) == ["final-histograms", "saturation-sigmoid"]


def test_gradient_variance_and_jacobians_at_init(tmp_path: Path, drawn: list[str]) -> None:
    result = run_experiment(
        "glorot-gradients",
        ["hidden=[64, 64, 64, 64, 64]", "steps=20", "probe_examples=100", "bins=20"],
        out_dir=tmp_path,
        progress=False,
    )
    runs = result.summary["runs"]
    standard, normalized = runs["standard"], runs["normalized"]
    # standard init: ~1/3 per layer toward the input; normalized: nearly flat
    assert standard["grad_var_factor_init"] < 0.5
    assert 0.7 <= normalized["grad_var_factor_init"] <= 1 / 0.7
    var = standard["grad_var_init"]
    assert all(b > a for a, b in itertools.pairwise(var))  # grows toward the top
    # mean Jacobian singular values nearer 1 with the normalized init, at every layer
    for s, n in zip(
        standard["jacobian_sv_mean_init"], normalized["jacobian_sv_mean_init"], strict=True
    ):
        assert abs(n - 1) < abs(s - 1)
    assert standard["jacobian_sv_mean_all_init"] < 0.65 < normalized["jacobian_sv_mean_all_init"]
    assert "nearer 1 with the normalized init" in result.verdicts[-1]
    assert sorted(drawn) == [
        "gradient-variance",
        "histograms-activation",
        "histograms-gradient",
        "histograms-weight-grad",
        "jacobian",
    ]


def test_jacobian_singular_values_equal_autograd_svd() -> None:
    torch.manual_seed(0)
    weights = [torch.randn(8, 5) * 0.5, torch.randn(6, 8) * 0.4, torch.randn(6, 6) * 0.4]
    biases = [torch.randn(8) * 0.1, torch.randn(6) * 0.1, None]
    x = torch.randn(3, 5)
    got = jacobian_singular_values(weights, biases, x, "tanh")
    assert [tuple(g.shape) for g in got] == [(3, 6), (3, 6)]
    for e in range(3):
        h1 = torch.tanh(x[e].double() @ weights[0].double().t() + biases[0].double())
        h2 = torch.tanh(h1 @ weights[1].double().t() + biases[1].double())
        for h, w, b, sv in ((h1, weights[1], biases[1], got[0]), (h2, weights[2], None, got[1])):

            def layer(v: torch.Tensor, w: torch.Tensor = w, b: torch.Tensor | None = b):
                return torch.tanh(v @ w.double().t() + (0 if b is None else b.double()))

            jac = torch.autograd.functional.jacobian(layer, h)
            want = torch.linalg.svdvals(jac).sort().values
            torch.testing.assert_close(sv[e].sort().values, want, atol=1e-10, rtol=1e-8)


def test_table_rows_are_complete_and_errors_are_percentages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_experiment(
        "glorot-table",
        [
            "datasets=[shapeset]",
            "hidden=[32, 32, 32, 32, 32]",
            "lrs=[0.03, 0.3]",
            "steps=40",
            "valid_size=100",
            "test_size=100",
        ],
        out_dir=tmp_path,
        progress=False,
    )
    assert "cost model: about" in capsys.readouterr().err  # printed before the runs
    table = result.summary[TABLE_KEY]
    assert list(table) == ["Softsign", "Softsign N", "Tanh", "Tanh N", "Sigmoid", "Sigmoid N"]
    for row in table.values():
        match = re.fullmatch(r"(\d+\.\d\d) ± (\d+\.\d\d)", row["Shapeset-3x2"])
        assert match is not None, row
        assert 0.0 <= float(match.group(1)) <= 100.0
    cells = result.summary["cells"]
    assert len(cells) == 6
    for cell in cells.values():
        assert 0.0 <= cell["test_error"] <= 100.0 and cell["lr"] in (0.03, 0.3)
        assert cell["seeds"] == 2
    assert list(result.summary[PAPER_KEY]["Tanh N"]) == ["Shapeset-3x2"]
    page = build_report(tmp_path).read_text("utf-8")
    assert TABLE_KEY in page and "Tanh N" in page and "training-curves.png" in page


def test_learning_rate_is_chosen_on_validation_and_diverged_rates_are_out() -> None:
    def run(lr: float, seed: int, valid: float | str, test: float) -> RunData:
        spec = {"dataset": "shapeset", "activation": "tanh", "init": "standard", "lr": lr}
        summary = {"valid_error": valid, "test_error": test}
        return RunData(RunSpec(f"{lr}/{seed}", spec, seed), "done", summary=summary)

    data = ExperimentData(
        [
            run(0.01, 0, 30.0, 31.0),
            run(0.01, 1, 34.0, 33.0),  # mean valid 32
            run(0.1, 0, 20.0, 21.0),
            run(0.1, 1, "nan", 90.0),  # diverged for one seed: out
            run(0.03, 0, 31.0, 40.0),
            run(0.03, 1, 32.0, 44.0),  # mean valid 31.5: the best finite rate
        ]
    )
    config = GlorotTableConfig(datasets=("shapeset",), activations=("tanh",), inits=("standard",))
    summary = GlorotTable().summary(config, data)
    assert summary["cells"]["shapeset/tanh/standard"]["lr"] == 0.03
    assert summary[TABLE_KEY]["Tanh"]["Shapeset-3x2"] == f"42.00 ± {math.sqrt(8):.2f}"


def test_paper_budget_prints_its_cost_and_bad_budget_is_one_line() -> None:
    table = GlorotTable()
    line = table.cost_estimate(GlorotTableConfig(budget="paper", datasets=("shapeset",)))
    assert "5,000,000 updates x 36 members" in line and "days" in line
    with pytest.raises(InitlabError, match="budget"):
        table.validate(GlorotTableConfig(budget="weekend"))  # type: ignore[arg-type]


def test_streams_have_their_own_seeds() -> None:
    streams = ("weights", "train", "batches", "valid", "test", "probe", "jacobian")
    seeds = {stream_seed(0, s) for s in streams} | {stream_seed(1, s) for s in streams}
    assert len(seeds) == 2 * len(streams)


def test_cifar10_without_its_files_is_one_line_or_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INITLAB_DATA", str(tmp_path / "empty-cache"))
    with pytest.raises(InitlabError, match="no CIFAR-10 batch files"):
        run_experiment("glorot-gradients", ["dataset=cifar10"], out_dir=tmp_path, progress=False)
    table = GlorotTable()
    config = GlorotTableConfig()  # shapeset, mnist, cifar10
    assert {r.spec["dataset"] for r in table.plan(config)} == {"shapeset", "mnist"}
    assert "left out (files not found): cifar10" in table.cost_estimate(config)


def test_tanh_saturation_verdict_tells_layer_order_from_all_at_once() -> None:
    finals = {"p98_final": [1.0, 0.99, 0.5, 0.3, 0.2]}
    bottom_up = _saturation_sentence({"saturated_at": [100, 300, None, None, None], **finals}, 900)
    assert "layer after layer from layer 1 up" in bottom_up
    together = _saturation_sentence({"saturated_at": [100] * 5, **finals}, 900)
    assert "all 5 at once (update 100)" in together
    assert "not in bottom-up order" in _saturation_sentence(
        {"saturated_at": [300, 100, None, None, None], **finals}, 900
    )
    assert "no layer saturated within 900" in _saturation_sentence(
        {"saturated_at": [None] * 5, **finals}, 900
    )
