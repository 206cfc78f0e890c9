"""Deep plain chains are diagnosed layer by layer: the same numbers as the hook version,
in bounded memory, with progress; and diagnose's input checks."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from initlab.errors import InitlabError
from initlab.init import initialize
from initlab.models import deep_mlp
from initlab.probes import diagnose

diagnose_module = sys.modules["initlab.probes.diagnose"]
FIELDS = ("act_std", "grad_std", "saturated", "dead", "weight_std", "nonfinite")


@pytest.mark.parametrize(
    ("activation", "scheme"),
    [("sigmoid", "normal:std=1"), ("relu", "he_normal"), ("tanh", "normal:std=0.01")],
)
def test_chain_gives_the_hook_version_numbers(
    activation: str, scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = deep_mlp(12, 16, activation, in_features=20, out_features=5)
    initialize(model, scheme, seed=1)
    x = torch.randn(64, 20, generator=torch.Generator().manual_seed(2))
    hooks = diagnose(model, x)
    monkeypatch.setattr(diagnose_module, "STREAM_FROM_LAYERS", 1)
    seen: list[tuple[float, float]] = []
    chain = diagnose(model, x, progress=lambda done, total: seen.append((done, total)))
    assert chain.verdict == hooks.verdict and chain.recommendation == hooks.recommendation
    assert chain.loss == pytest.approx(hooks.loss, rel=1e-6)
    for a, b in zip(hooks.layers, chain.layers, strict=True):
        assert (a.name, a.verdict) == (b.name, b.verdict)
        for field in FIELDS:  # float rounding only: relative 1e-5
            assert getattr(b, field) == pytest.approx(getattr(a, field), rel=1e-5, abs=1e-12)
    assert seen[-1] == (26.0, 26.0) and len(seen) == 26  # 13 layers, forward and backward


def test_deep_chain_runs_in_bounded_memory_with_a_verdict() -> None:
    """600 sigmoid layers: the gradient vanishes on the way back (sigmoid' <= 1/4 per layer)."""
    model = deep_mlp(600, 4, "sigmoid", in_features=8, out_features=3)
    initialize(model, "normal:std=1", seed=0)
    calls: list[float] = []
    result = diagnose(model, torch.randn(32, 8), progress=lambda d, t: calls.append(d))
    assert len(result.layers) == 601 and result.verdict == "vanishing"
    assert calls[-1] == 2 * 601
    assert math.isfinite(result.layers[-2].grad_std) and result.layers[-2].grad_std > 0
    assert result.layers[0].grad_std < 1e-30 * result.layers[-2].grad_std


def test_rendered_table_of_a_deep_net_is_short() -> None:
    from rich.console import Console

    model = deep_mlp(150, 4, "tanh", in_features=8, out_features=3)
    initialize(model, "normal:std=0.01", seed=0)
    table = diagnose(model, torch.randn(16, 8)).render()
    assert table.row_count <= 42  # 40 layers and the "... N layers" rows
    console = Console(width=120, record=True)
    console.print(table)
    text = console.export_text()
    assert "... 132 layers" in text and "linear151" in text and "linear20 " not in text


@pytest.mark.parametrize(
    ("inputs", "targets", "message"),
    [
        (torch.randn(0, 10), None, "non-empty batch"),
        (torch.randn(8, 7), None, "do not fit the model's first layer (10 input features)"),
        (torch.randn(8, 10), torch.full((8,), 3), "must lie in 0..2"),
        (torch.randn(8, 10), torch.zeros(8, 3, dtype=torch.long), "integers of shape [8]"),
        (torch.randn(8, 10), torch.zeros(8), "float targets must have the output's shape"),
    ],
)
def test_bad_inputs_and_targets_are_one_line(
    inputs: torch.Tensor, targets: torch.Tensor | None, message: str
) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(10, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    with pytest.raises(InitlabError) as err:
        diagnose(model, inputs, targets)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_memory_estimate_refuses_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    from initlab.cli import diagnose_cmd

    weights, working = diagnose_cmd.builtin_memory_bytes(10, 256, 256)
    # 784*256 + 9*256^2 + 2570 float32 numbers, plus 4 * 11 * 256 * 256 kept activations
    assert weights == 4 * (784 * 256 + 256 + 9 * (256 * 256 + 256) + 2570)
    assert working >= 4 * 4 * 11 * 256 * 256
    monkeypatch.setattr(diagnose_cmd, "free_memory_bytes", lambda: 2**30)
    diagnose_cmd.check_memory(10, 256, 256)  # about 13 MiB: fine
    with pytest.raises(InitlabError, match=r"needs about .* GiB .* 1 GiB free"):
        diagnose_cmd.check_memory(10, 8192, 256)
