"""Time per training step and peak memory of deep vanilla tanh MLPs against depth.

:func:`initlab.train.deep.fit_deep` trains a tanh MLP (784 inputs, ``depth`` hidden layers
of ``width`` units, 10 outputs; critical orthogonal init; plain SGD) on MNIST-shaped
random data, with activation checkpointing off and on. Every configuration runs in a fresh
subprocess, so that its peak resident memory (``ru_maxrss``) is its own. Reported per
configuration:

* seconds per step (median over the timed steps, after one warm-up step);
* GFLOP/s of the step, counting the products training needs (forward ``2 B sum(in out)``,
  weight gradients the same, input gradients the same but for the first layer) - the
  "useful" rate - and the rate including the recomputed forward of checkpointed segments;
* the share of this machine's float32 GEMM peak, measured in the same subprocess
  interleaved with the steps (one 1024 x 1024 x 1024 ``torch.mm`` after every step, the
  median over the steps), so that both numbers see the same load of the shared host;
* peak resident memory of the process (``ru_maxrss``: building the network, which holds
  the ``nn.Module`` and the stacked copy at once, is usually the peak), and the *step
  memory*: the resident high-water mark of the training steps (reset before them, see
  :class:`initlab.train.memory.PeakMemory`) minus the resident memory after the network
  was built and freed memory returned to the system (``malloc_trim``), i.e. what
  training adds (activations and scratch buffers; the weights,
  264 MB at depth 1000 and width 256, are in both).

Targets (the issue): at depth 1000, width 256, batch 128, the plain step runs at >= 50%
of the GEMM peak, and checkpointing needs at most a quarter of the plain step memory.

Usage::

    python benchmarks/bench_depth.py [--depths 10 100 1000] [--width 256] [--batch 128]
        [--steps 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch

GEMM_SIZE = 1024
MIB = 2**20


def flops_per_step(widths: list[int], batch: int, recomputed: int = 0) -> tuple[int, int]:
    """(useful, executed) FLOP of one SGD step; ``recomputed`` hidden layers run twice."""
    products = [a * b for a, b in itertools.pairwise(widths)]
    useful = 2 * batch * (3 * sum(products) - products[0])
    return useful, useful + 2 * batch * widths[1] * widths[1] * recomputed


def child(
    depth: int, width: int, batch: int, steps: int, checkpoint: bool, threads: int, gemm: int
) -> dict:
    """One configuration (run in its own process): timings and memory as a dict."""
    from initlab.data.dataset import Dataset
    from initlab.models.mlp import MLPSpec
    from initlab.train.batched import build_members
    from initlab.train.deep import DeepNet, segment_length
    from initlab.train.memory import PeakMemory, current_rss, max_rss

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    data = Dataset(torch.rand(4096, 784, generator=g), torch.randint(0, 10, (4096,), generator=g),
                   "random")  # fmt: skip
    spec = MLPSpec((784, *[width] * depth, 10), "tanh")
    net = DeepNet(spec, build_members(spec, [("critical_orthogonal", 0)]), data.x.device,
                  data.x.dtype, checkpoint)  # fmt: skip
    a, b = torch.randn(gemm, gemm), torch.randn(gemm, gemm)
    out = torch.mm(a, b)  # touched now: not counted as step memory
    _release_free_memory()  # building freed the nn.Module copy: give it back to the OS
    built = current_rss()
    times, gemms = [], []
    with PeakMemory() as peak_memory:  # the high-water mark from here on (Linux)
        for t in range(steps + 1):
            idx = torch.randint(0, 4096, (batch,), generator=g)
            start = time.perf_counter()
            loss, _, _ = net.train_step(data.x[idx], data.y[idx], 0.01)
            float(loss[0])
            middle = time.perf_counter()
            torch.mm(a, b, out=out)  # the GEMM peak, interleaved: the same load as the step
            if t > 0:  # the first step allocates the buffers
                times.append(middle - start)
                gemms.append(2 * gemm**3 / (time.perf_counter() - middle) / 1e9)
    peak = statistics.median(gemms)
    hidden = depth
    seg = segment_length(hidden, checkpoint)
    recomputed = 0 if seg > hidden else hidden - hidden // seg
    useful, executed = flops_per_step(list(spec.widths), batch, recomputed)
    step = statistics.median(times)
    return {
        "depth": depth,
        "checkpoint": checkpoint,
        "step_s": step,
        "useful_gflops": useful / step / 1e9,
        "executed_gflops": executed / step / 1e9,
        "gemm_peak": peak,
        "peak_rss": max_rss(),
        "step_peak_rss": peak_memory.bytes,
        "peak_scope": peak_memory.scope,
        "built_rss": built,
        "stored_layers": net.stored_layers(),
        "loss": float(loss[0]),
    }


def _release_free_memory() -> None:
    """``malloc_trim(0)`` where glibc has it: freed heap pages go back to the system, so
    that what the training steps allocate shows in the resident set instead of reusing
    the pages the network's construction left behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass
class Row:
    depth: int
    checkpoint: bool
    data: dict[str, Any]

    @property
    def step_memory(self) -> int:
        return max(self.data["step_peak_rss"] - self.data["built_rss"], 0)


def run_child(args: argparse.Namespace, depth: int, checkpoint: bool) -> Row:
    command = [
        sys.executable, __file__, "--child", str(depth), str(int(checkpoint)),
        "--width", str(args.width), "--batch", str(args.batch), "--steps", str(args.steps),
        "--threads", str(args.threads), "--gemm", str(args.gemm),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: configuration depth={depth} failed:\n{done.stderr[-2000:]}")
    return Row(depth, checkpoint, json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gemm", type=int, default=GEMM_SIZE, help="GEMM peak matrix size")
    parser.add_argument("--child", type=int, nargs=2, metavar=("DEPTH", "CHECKPOINT"))
    args = parser.parse_args(argv)
    if args.child:
        depth, checkpoint = args.child
        out = child(
            depth, args.width, args.batch, args.steps, bool(checkpoint), args.threads, args.gemm
        )
        print(json.dumps(out))
        return 0
    print(
        f"tanh MLP 784-({args.width} x depth)-10, batch {args.batch}, critical orthogonal, SGD; "
        f"{args.threads} thread(s), {args.steps} timed steps; torch {torch.__version__}"
    )
    header = (
        f"{'depth':>6} {'ckpt':>5} {'s/step':>8} {'GFLOP/s':>8} {'+recomp':>8} {'GEMM peak':>9} "
        f"{'% peak':>7} {'peak RSS':>9} {'step mem':>9} {'stored':>7}"
    )
    print(header)
    rows: dict[tuple[int, bool], Row] = {}
    for depth in args.depths:
        for checkpoint in (False, True):
            row = run_child(args, depth, checkpoint)
            rows[(depth, checkpoint)] = row
            d = row.data
            print(
                f"{depth:>6} {'on' if checkpoint else 'off':>5} {d['step_s']:>8.4f} "
                f"{d['useful_gflops']:>8.1f} {d['executed_gflops']:>8.1f} {d['gemm_peak']:>9.1f} "
                f"{100 * d['useful_gflops'] / d['gemm_peak']:>6.0f}% "
                f"{d['peak_rss'] / MIB:>7.0f}MB {row.step_memory / MIB:>7.0f}MB "
                f"{d['stored_layers']:>7}",
                flush=True,
            )
    deepest = max(args.depths)
    plain, ck = rows[(deepest, False)], rows[(deepest, True)]
    share = plain.data["useful_gflops"] / plain.data["gemm_peak"]
    ck_share = ck.data["executed_gflops"] / ck.data["gemm_peak"]
    memory = ck.step_memory / max(plain.step_memory, 1)
    total = ck.data["peak_rss"] / plain.data["peak_rss"]
    print(
        f"depth {deepest}: plain step at {100 * share:.0f}% of the GEMM peak "
        f"(target >= 50%: {share >= 0.5}); checkpointed {100 * ck_share:.0f}% counting the "
        "recomputed forward"
    )
    print(
        f"depth {deepest}: checkpointed step memory {memory:.3f} of plain (target <= 0.25: "
        f"{memory <= 0.25}); whole-process peak RSS {total:.2f} of plain (weights in both)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
