"""Speed of the batched engine against a plain PyTorch loop, on the init-compare experiment.

The experiment (PROTOCOLS.md, B1): MNIST, 784-100-100-100-100-10 ReLU, SGD lr 0.01, batch
128 drawn with replacement, members initialized with std 0.01, sqrt(1/n) (LeCun) and He
(cycled over the members, each with its own seed). Both contenders run in this process on
the same minibatches from the same initial weights:

* engine: :func:`initlab.train.batched.fit_batched` (all members in one computation);
* loop: one ``nn.Module`` and one ``torch.optim.SGD`` per member, ``zero_grad``,
  ``cross_entropy``, ``backward``, ``step`` for each member on each minibatch.

Reported per member count: model-steps/s (members x steps / seconds) for both and their
ratio, the engine's and the loop's achieved GFLOP/s, the engine's share of this machine's
float32 GEMM peak (a large ``torch.mm`` measured in the same run), and how well the
engine's and the loop's per-step training losses agree. They agree to float rounding at
first; over thousands of SGD steps rounding differences grow chaotically, so the check is:
the first 10 steps agree within 1e-5 (relative to max(1, |loss|): float32 rounding
scales with the value) and the mean loss of the last 100 steps within 5e-3.
For scale, the first member count also runs the loop from initial weights moved by one ulp
and reports how far that moves the loop's own losses (the float-rounding envelope).

FLOP count per member and step, the matrix products that training needs (the input batch
needs no gradient): forward 2*B*sum(in*out), weight gradients 2*B*sum(in*out), input
gradients 2*B*sum(in*out) for every layer but the first, i.e. B*(6*sum(in*out) - 2*in1*out1)
= 63.9 MFLOP for this network at B = 128 (the rough 6*B*sum(in*out) would be 84.0).

For large ensembles the loop is timed on fewer steps (``--loop-steps-large``) and its speed
extrapolated per step; the losses are compared over the steps both ran.

Timing: the two contenders run interleaved, one loop step after each engine step (the
engine's callback), so that both see the same machine: on shared cores a neighbour's load
comes and goes, and run one after the other, the ratio depended on which contender had the
quiet minutes (it moved between 1.9x and 2.5x at 3 members). Every step is timed; the speed
reported is the median over 20 windows of consecutive steps, next to the plain mean.

Usage::

    python benchmarks/bench_init_compare.py [--members 3 30 300] [--steps 2000] [--synthetic]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from initlab.data.batches import minibatches
from initlab.data.dataset import Dataset
from initlab.errors import InitlabError
from initlab.init.apply import initialize
from initlab.models.mlp import mlp
from initlab.train.batched import fit_batched

WIDTHS = (784, 100, 100, 100, 100, 10)
SCHEMES = ("normal:std=0.01", "lecun_normal", "he_normal")  # B1's three inits
BATCH, LR, SEED = 128, 0.01, 0


@dataclass
class Row:
    members: int
    engine_steps: int
    loop_steps: int
    engine_rate: float  # model-steps/s, median over windows of steps
    loop_rate: float
    engine_mean: float  # model-steps/s, all steps / all seconds
    loop_mean: float
    first_diff: float  # max |engine - loop| / max(1, |loop|) over the first 10 steps
    max_diff: float  # max |engine - loop| loss over all steps both ran
    late_diff: float  # max over members of |mean of the last 100 losses, engine - loop|
    envelope: float | None  # max |loop - loop from 1-ulp-moved weights| over the same steps
    final_losses: list[float]  # engine, last step, first three members


def window_rate(durations: list[float], members: int) -> float:
    """Median model-steps/s over 20 windows of consecutive steps (``durations[t]``: the
    seconds step t took)."""
    width = max(1, len(durations) // 20)
    rates = [
        members * width / sum(durations[i : i + width])
        for i in range(0, len(durations) - width + 1, width)
    ]
    return statistics.median(rates)


def flops_per_member_step(widths: tuple[int, ...], batch: int) -> float:
    """Matrix-product FLOPs of one training step of one member (see the module docstring)."""
    products = [a * b for a, b in itertools.pairwise(widths)]
    return batch * (6 * sum(products) - 2 * products[0])


def best_seconds(call: Callable[[], object], repeats: int) -> float:
    """Fewest seconds of ``repeats`` timed calls of ``call``, after one untimed warm-up."""
    call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def gemm_peak(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of ``torch.mm`` on two ``size x size`` matrices."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    return 2 * size**3 / best_seconds(lambda: torch.mm(a, b, out=out), repeats) / 1e9


def load_data(synthetic: bool) -> Dataset:
    if synthetic:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(60000, 784, generator=g)
        return Dataset(x, torch.randint(0, 10, (60000,), generator=g), "synthetic-60000x784")
    from initlab.data.mnist import load_mnist

    try:
        return load_mnist("train", progress=False)
    except InitlabError as err:
        sys.exit(
            f"MNIST is not available ({err}).\n"
            "Fetch it once with `initlab data fetch mnist` (or load_mnist('train')), or run "
            "this benchmark on random data of the same shape with --synthetic."
        )


def build_models(n: int) -> list[nn.Module]:
    models = []
    for i in range(n):
        model = mlp(WIDTHS, "relu")
        initialize(model, SCHEMES[i % len(SCHEMES)], seed=i)
        models.append(model)
    return models


class PlainLoop:
    """The baseline: one module and one ``torch.optim.SGD`` per member, stepped one
    minibatch at a time (``zero_grad``, ``cross_entropy``, ``backward``, ``step``)."""

    def __init__(self, models: list[nn.Module], data: Dataset, steps: int) -> None:
        self.models = models
        self.opts = [torch.optim.SGD(m.parameters(), lr=LR) for m in models]
        self.data = data
        gen = torch.Generator().manual_seed(SEED)  # the engine's minibatch stream
        self.batches = list(
            minibatches(len(data), BATCH, steps=steps, mode="replacement", generator=gen)
        )
        self.losses = torch.empty(steps, len(models))
        self.durations: list[float] = []

    @property
    def done(self) -> int:
        return len(self.durations)

    def step(self) -> None:
        """Train every member on the next minibatch; time it."""
        start = time.perf_counter()
        t = self.done
        idx = self.batches[t]
        xb, yb = self.data.x[idx], self.data.y[idx]
        for m, (model, opt) in enumerate(zip(self.models, self.opts, strict=True)):
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            self.losses[t, m] = loss.detach()
        self.durations.append(time.perf_counter() - start)

    def run(self) -> PlainLoop:
        while self.done < len(self.batches):
            self.step()
        return self


def interleaved(
    models: list[nn.Module], twins: list[nn.Module], data: Dataset, steps: int, loop_steps: int
) -> tuple[list[float], Any, PlainLoop]:
    """Run the engine on ``models`` and the loop on ``twins`` step by step, alternately.

    After each engine step (its callback) the loop takes its next step, so both see the
    same machine at the same time: the cores here are shared, and a neighbour's load that
    comes and goes would otherwise favour whichever contender ran in the quiet minutes.
    The engine's step durations are the times between callbacks, minus the loop's step.
    """
    loop = PlainLoop(twins, data, loop_steps)
    marks: list[tuple[float, float]] = []  # (callback entered, callback left)

    def on_row(row: dict[str, Any]) -> None:
        if row["member"] != 0:
            return
        entered = time.perf_counter()
        # the loop's steps spread evenly over the engine's when it runs fewer
        while loop.done < len(loop.batches) and loop.done * steps <= row["step"] * loop_steps:
            loop.step()
        marks.append((entered, time.perf_counter()))

    result = fit_batched(
        models, data, lr=LR, steps=steps, batch_size=BATCH, seed=SEED, callback=on_row
    )
    engine = [marks[t][0] - marks[t - 1][1] for t in range(1, len(marks))]
    return engine, result, loop


def nudged(models: list[nn.Module]) -> list[nn.Module]:
    """Copies with every parameter moved by one ulp (towards +inf)."""
    out = [copy.deepcopy(m) for m in models]
    with torch.no_grad():
        for model in out:
            for p in model.parameters():
                p.copy_(torch.nextafter(p, torch.full_like(p, float("inf"))))
    return out


def measure(n: int, data: Dataset, steps: int, loop_steps: int, envelope: bool) -> Row:
    models = build_models(n)
    twins = [copy.deepcopy(m) for m in models]
    moved = nudged(models) if envelope else None
    engine_durations, result, loop_run = interleaved(models, twins, data, steps, loop_steps)
    engine = torch.tensor([[v for _, v in r.metric("train_loss")] for r in result]).T
    loop = loop_run.losses
    spread = None
    if moved is not None:
        spread = (PlainLoop(moved, data, loop_steps).run().losses - loop).abs().max().item()
    both = engine[:loop_steps]
    late = min(100, loop_steps)
    return Row(
        members=n,
        engine_steps=steps,
        loop_steps=loop_steps,
        engine_rate=window_rate(engine_durations, n),
        loop_rate=window_rate(loop_run.durations, n),
        engine_mean=n * len(engine_durations) / sum(engine_durations),
        loop_mean=n * loop_steps / sum(loop_run.durations),
        first_diff=((both[:10] - loop[:10]).abs() / loop[:10].abs().clamp_min(1.0)).max().item(),
        max_diff=(both - loop).abs().max().item(),
        late_diff=(both[-late:].mean(0) - loop[-late:].mean(0)).abs().max().item(),
        envelope=spread,
        final_losses=engine[-late:, :3].mean(0).tolist(),
    )


def print_table(rows: list[Row], flops: float, peak: float) -> None:
    header = (
        f"{'members':>7} {'steps':>10} {'loop m-st/s':>11} {'engine m-st/s':>13} {'speedup':>7} "
        f"{'loop GF/s':>9} {'eng GF/s':>8} {'% peak':>6} {'|dL|<=10':>8} {'max|dL|':>8} "
        f"{'late|dL|':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        steps = f"{r.engine_steps}/{r.loop_steps}"
        gf_engine = r.engine_rate * flops / 1e9
        print(
            f"{r.members:>7} {steps:>10} {r.loop_rate:>11.0f} {r.engine_rate:>13.0f} "
            f"{r.engine_rate / r.loop_rate:>6.2f}x {r.loop_rate * flops / 1e9:>9.1f} "
            f"{gf_engine:>8.1f} {100 * gf_engine / peak:>5.0f}% {r.first_diff:>8.1e} "
            f"{r.max_diff:>8.1e} {r.late_diff:>8.1e}"
        )
    print(
        "\nsteps: engine/loop (at large N the loop runs fewer steps; its speed is per step).\n"
        "m-st/s: model-steps/s, median over windows of steps (mean over the whole run: "
        + ", ".join(f"{r.members}: {r.engine_mean:.0f} vs {r.loop_mean:.0f}" for r in rows)
        + ").\n|dL|<=10: largest difference of engine and loop losses over the first 10 steps,\n"
        "relative to max(1, |loss|); max|dL|: largest absolute difference over all steps;\n"
        "late|dL|: difference of the mean loss over the last 100 steps both ran (max over "
        "members)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[3, 30, 300])
    parser.add_argument("--steps", type=int, default=2000, help="engine steps (and loop steps)")
    parser.add_argument(
        "--max-model-steps",
        type=int,
        default=60_000,
        help="cap on members x steps per engine run (300 members: 200 steps)",
    )
    parser.add_argument(
        "--loop-steps-large",
        type=int,
        default=50,
        help="loop steps for more than 30 members (its speed is per step)",
    )
    parser.add_argument("--synthetic", action="store_true", help="random data, MNIST's shape")
    args = parser.parse_args(argv)

    data = load_data(args.synthetic)
    peak = gemm_peak()
    flops = flops_per_member_step(WIDTHS, BATCH)
    print(
        f"data: {data.name} {list(data.x.shape)}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"float32 GEMM peak (torch.mm 2048^3): {peak:.1f} GFLOP/s")
    print(f"FLOPs per member-step: {flops / 1e6:.1f} M (B*(6*sum(in*out) - 2*in1*out1))\n")
    rows = []
    for n in args.members:
        steps = max(1, min(args.steps, args.max_model_steps // n))
        loop_steps = steps if n <= 30 else min(steps, args.loop_steps_large)
        rows.append(measure(n, data, steps, loop_steps, envelope=not rows))
        row = rows[-1]
        print(f"  {n} members done: engine {row.engine_rate:.0f}, loop {row.loop_rate:.0f}")
    print()
    print_table(rows, flops, peak)
    first = rows[0]
    names = ", ".join(f"{s}={v:.4f}" for s, v in zip(SCHEMES, first.final_losses, strict=False))
    print(f"mean training loss over the last 100 steps ({first.members} members): {names}")
    if first.envelope is not None:
        print(
            f"float-rounding envelope ({first.members} members, {first.loop_steps} steps): "
            "the loop "
            f"from weights moved by 1 ulp differs from the loop by up to {first.envelope:.1e} "
            f"(engine vs loop: {first.max_diff:.1e})"
        )
    agree = all(r.first_diff <= 1e-5 and r.late_diff <= 5e-3 for r in rows)
    print(f"engine and loop losses agree (first 10 steps <= 1e-5 relative, late <= 5e-3): {agree}")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
