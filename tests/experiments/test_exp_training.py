"""optimizer-paths (equal to torch.optim step for step) and A2 symmetry (trained with fit)."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from initlab.experiments import run_experiment
from initlab.experiments.signal.optimizer_paths import FUNCTIONS, optimizer_path
from initlab.store import RunStore

TORCH_OPTIMIZERS: dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]] = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.95),
    "momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    "nesterov": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    "adagrad": lambda p: torch.optim.Adagrad(p, lr=1.5),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=0.15, alpha=0.99),
    "adam": lambda p: torch.optim.Adam(p, lr=0.3, betas=(0.9, 0.999)),
}


def _torch_path(name: str, steps: int = 30) -> list[tuple[float, float]]:
    """The book's setting by hand: f = x^2/20 + y^2 from (-7, 2) with torch.optim."""
    p = torch.tensor([-7.0, 2.0], dtype=torch.float64, requires_grad=True)
    opt = TORCH_OPTIMIZERS[name]([p])
    points = [(-7.0, 2.0)]
    for _ in range(steps):
        opt.zero_grad()
        (p[0] ** 2 / 20 + p[1] ** 2).backward()
        opt.step()
        points.append((float(p[0].detach()), float(p[1].detach())))
    return points


def test_paths_equal_torch_optim_and_end_nearer_the_minimum(tmp_path: Path) -> None:
    result = run_experiment("optimizer-paths", out_dir=tmp_path, progress=False, quick=True)
    runs = result.summary["runs"]
    assert list(runs) == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
    with RunStore(tmp_path / "runs.db") as store:
        stored = {r.spec["key"]: store.metrics(r.id) for r in store.list_runs("optimizer-paths")}
    for name, row in runs.items():
        assert row["final_distance"] < row["start_distance"], name
        expected = _torch_path(name)
        got = [(m["x"], m["y"]) for m in stored[name]]
        assert len(got) == 31
        assert torch.tensor(got) == pytest.approx(torch.tensor(expected), abs=1e-10), name
    assert runs["sgd"]["zigzag"] == 1.0  # lr 0.95 on y^2: y flips sign every step
    assert (tmp_path / "optimizer-paths" / "optimizer-paths-book.svg").exists()


@pytest.mark.parametrize("function", ["rosenbrock", "beale", "saddle"])
def test_other_functions_run_with_their_presets(function: str) -> None:
    fn = FUNCTIONS[function]
    for name in ("sgd", "adam"):
        points = optimizer_path(function, name, {"lr": fn.lr[name]}, fn.start, 30)
        assert len(points) == 31
        assert points[-1][2] < points[0][2]  # every preset makes progress downhill


def test_symmetry_constant_init_keeps_units_identical(tmp_path: Path) -> None:
    settings = [
        "dataset=shapeset",
        "train_size=300",
        "hidden=8",
        "steps=60",
        "batch_size=50",
        'inits=["constant:value=0.01", "xavier_normal"]',
        "dropouts=[0.0, 0.5]",
    ]
    result = run_experiment("symmetry", settings, out_dir=tmp_path, progress=False)
    s = result.summary
    const = s["sigmoid/constant:value=0.01/dropout=0"]
    # all 8 units are one unit copied: distance 0 up to float32 rounding of their norm
    assert const["relative_distance"] < 1e-5 and const["distinct_units"] == 1
    assert const["relative_distance_before"] == 0.0
    # random init: distinct from the start; dropout: distinct after training
    for key in ("sigmoid/xavier_normal/dropout=0", "sigmoid/constant:value=0.01/dropout=0.5"):
        assert s[key]["relative_distance"] > 0.1 and s[key]["distinct_units"] == 8, key
    assert s[key]["dataset"].startswith("shapeset")
    # the trained weights and the loss curve are stored
    with RunStore(tmp_path / "runs.db") as store:
        runs = store.list_runs("symmetry")
        params = store.params(runs[0].id)
        loss = [m["train_loss"] for m in store.metrics(runs[2].id)]
    assert params is not None and params["linear1.weight"].shape == (8, 1024)
    assert len(loss) >= 60 and all(0 < v < 10 for v in loss)
    assert any("all 8 hidden units identical" in v for v in result.verdicts)
    assert (tmp_path / "symmetry" / "symmetry.png").exists()
