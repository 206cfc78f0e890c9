"""Speed of batched trials against the same trials one by one, on the C1 random search.

C1 (PROTOCOLS.md; the from-scratch book's sec. 6.5.3): 500 MNIST training images, 20% for
validation, 784-100x6-10 ReLU with He init, SGD, minibatches of 100, 50 epochs, 100
trials with lr = 10^U(-6, -2) and weight decay = 10^U(-8, -4). In one process:

1. the search as ``initlab run random-search`` runs it: an Optuna study in a SQLite file,
   the 100 trials asked at once, trained together by
   :meth:`~initlab.search.task.SearchTask.train_batched` (one ``fit_batched``, whose layer
   1 runs in the dual form here: :mod:`initlab.train.batched_dual`), told;
2. the same trials (parameters and init seeds read back from the study) trained one by
   one with :meth:`~initlab.search.task.SearchTask.train_one` (``fit``);
3. the batched training of those trials again, without the study (engine only);
4. the same, with layer 1 computed from its weights (``first_layer="primal"``): what the
   dual form adds;
5. the trials one by one again, each from its initial weights moved up by one ulp
   (``torch.nextafter``): ``fit``'s own sensitivity to float rounding.

The two batched timings (1, 3) bracket the one-by-one run, so a change of the shared
machine's load shows as a difference between them; the ratio uses their mean. Runs 1-3 are
timed in wall-clock seconds and in this process's CPU seconds (``time.process_time``): on a
shared machine the CPU time counts only this process's work, so its ratio moves far less
with the neighbours' load than the wall-clock one. Run 4 is timed in wall-clock seconds
right after run 3 (the dual form's gain is their ratio); run 5 is not timed.

Equal within float rounding: the engine sums in another order than ``fit`` (an ulp here
and there), and SGD amplifies such differences over 200 steps into a validation image's
prediction flipping now and then. The per-epoch validation accuracies of runs 1, 3, 4 and 5
are compared with the one-by-one run's, trial by trial (the largest difference at any
epoch): the batched runs are equal within float rounding when no run's largest difference
exceeds that of ``fit`` from itself under a one-ulp change of its initial weights (run 5),
or one image when that run happens to match everywhere (a comparison of maxima). Per run
the script also prints the trials identical at every epoch, those more than one image
apart, and those further than both one image and the same trial's one-ulp difference (one
sample of a chaotic quantity: a trial can be calm under one perturbation and not another).

The arithmetic floor is printed beside the times: the matrix-product FLOPs of the trials
(``initlab.experiments.flops.training_flops``: every training step, and the evaluation of
the training and validation images at step 0 and after every epoch; with the dual form,
``dual_training_flops``) at the float32 GEMM rate measured in the same process with the
same threads. The one-by-one time over the primal floor is the largest ratio an engine
that computes what ``fit`` computes could reach on this machine (every product at the GEMM
peak and nothing else); the batched times over their floors say how far the engine is
from that.

A second floor prices each product at the rate the batched engine gets for it alone. Each
product of layers 2 and up is one small block per member (``[100, 100] @ [100, B]`` for
the hidden layers), batched in one ``bmm`` (MKL's batch kernel), which runs below the peak
of one large product. So those layers' forward, input-gradient, update and evaluation
FLOPs are divided by the rates of the engine's own calls for them
(:mod:`initlab.train.batched_layout`, in the layout it picks for C1) on blocks of the hidden
layers' shape, measured in the same run; the output layer's (2% of them) are priced at the
same rates. Layer 1's products (one large one a step in the dual form) are priced at the
peak. The operands stay in cache and each rate is the best of five, so this floor is a
lower bound. The one-by-one time over it is the largest ratio the engine could reach with
no element-wise work.

With ``--overhead`` the study's own cost is timed alone: ``run_search`` on C1's job (same
storage, sampler, batch, epochs and per-epoch reporter calls) with a task that trains
nothing and gives every trial fixed curves, so what is left is opening the storage,
asking, the per-epoch reporter (heartbeats, progress) and telling.

With ``--experiment`` the whole C1 experiment (``run_experiment("random-search")``: study,
store, test evaluation of the best trial, figures) is also timed in a fresh workspace.

Usage::

    python benchmarks/bench_search.py [--trials 100] [--epochs 50] [--threads N] [--overhead]
        [--experiment]
        [--synthetic]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_init_compare import best_seconds, gemm_peak
from initlab.experiments.flops import affine_macs, dual_training_flops, training_flops
from initlab.experiments.search.common import BOOK_SPACE, build_task, search_job, search_spec
from initlab.experiments.search.random_search import RandomSearchConfig
from initlab.search.driver import run_search, study_trials, worker_threads
from initlab.search.task import TrialOutcome, TrialPlan
from initlab.train import batched_layout

ONE_IMAGE = 0.01  # one validation image of 100 (C1's 20% of 500)
PRODUCT_NAMES = {
    "forward": "forward",
    "input_grad": "input gradient",
    "update": "update",
    "evaluation": "evaluation",
}


def c1_spec(trials: int, epochs: int, synthetic: bool) -> dict[str, Any]:
    """The run spec of C1 with these settings."""
    config = RandomSearchConfig(
        dataset="synthetic" if synthetic else "mnist", trials=trials, epochs=epochs
    )
    spec = search_spec(config, "random", "none")
    assert spec["space"] == BOOK_SPACE
    return spec


def measure(
    trials: int, epochs: int, synthetic: bool, workdir: Path, threads: int
) -> dict[str, Any]:
    """Time the five runs; compare each run's accuracies with the one-by-one run's."""
    spec = c1_spec(trials, epochs, synthetic)
    job = search_job(spec, 0, str(workdir / "runs.db"), study="bench")
    task = build_task(**job.task_args)
    peak, rates = gemm_peak(), block_rates(task, trials)
    # 1. the search, batched, with its study
    start, cpu = time.perf_counter(), time.process_time()
    study, _ = run_search(job, threads=threads)
    search_s, search_cpu = time.perf_counter() - start, time.process_time() - cpu
    rows = study_trials(study)
    plans = [TrialPlan(r["number"], r["params"], r["seed"]) for r in rows]
    # 2. the same trials one by one with fit
    start, cpu = time.perf_counter(), time.process_time()
    alone = [task.train_one(plan) for plan in plans]
    loop_s, loop_cpu = time.perf_counter() - start, time.process_time() - cpu
    # 3. the batched training again, engine only
    start, cpu = time.perf_counter(), time.process_time()
    together = task.train_batched(plans)
    batched_s, batched_cpu = time.perf_counter() - start, time.process_time() - cpu
    # 4. layer 1 from its weights
    start = time.perf_counter()
    primal = dataclasses.replace(task, first_layer="primal").train_batched(plans)
    primal_s = time.perf_counter() - start
    # 5. fit from initial weights one ulp up
    nudged = [task.train_one(plan, model=ulp_up(task.initial_model(plan))) for plan in plans]
    ulp = curve_diffs(alone, [x.valid_acc for x in nudged])
    curves = {
        "search": [r["valid_acc"] for r in rows],
        "batched": [x.valid_acc for x in together],
        "primal": [x.valid_acc for x in primal],
        "ulp": [x.valid_acc for x in nudged],
    }
    return {
        "trials": len(plans),
        "search_s": search_s,
        "batched_s": batched_s,
        "loop_s": loop_s,
        "search_cpu": search_cpu,
        "batched_cpu": batched_cpu,
        "loop_cpu": loop_cpu,
        "ratio": loop_s / ((search_s + batched_s) / 2),
        "ratio_engine": loop_s / batched_s,
        "ratio_cpu": loop_cpu / ((search_cpu + batched_cpu) / 2),
        "primal_s": primal_s,
        "agreement": {run: agreement(curve_diffs(alone, c), ulp) for run, c in curves.items()},
        "best": max(r["value"] for r in rows),
        "flops": trial_flops(task, len(plans)),
        "dual_flops": trial_flops(task, len(plans), dual=True),
        "later_flops": later_layer_flops(task, len(plans)),
        "peak": max(peak, gemm_peak()),
        "block_rates": {k: max(v, rates[k]) for k, v in block_rates(task, trials).items()},
    }


def curve_diffs(reference: list[Any], curves: list[list[float]]) -> list[float]:
    """Per trial, the largest difference of validation accuracy from the ``reference``
    outcome's at any epoch."""
    return [
        max((abs(a - b) for a, b in zip(ref.valid_acc, curve, strict=True)), default=0.0)
        for ref, curve in zip(reference, curves, strict=True)
    ]


def agreement(diffs: list[float], ulp: list[float]) -> dict[str, float]:
    """A run's per-trial differences from one by one (``diffs``) beside ``fit``'s own under
    a one-ulp change of its initial weights (``ulp``): the largest, the trials identical at
    every epoch, the trials more than one image apart, and the trials further than both one
    image and that trial's own one-ulp difference."""
    return {
        "max": max(diffs),
        "identical": sum(d == 0.0 for d in diffs),
        "over_one": sum(d > ONE_IMAGE + 1e-9 for d in diffs),
        "beyond_own": sum(d > max(ONE_IMAGE, u) + 1e-9 for d, u in zip(diffs, ulp, strict=True)),
    }


def ulp_up(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every parameter moved to the next float up (in place)."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.nextafter(p, torch.full_like(p, float("inf"))))
    return model


def trial_flops(task: Any, trials: int, dual: bool = False) -> float:
    """Matrix-product FLOPs of ``trials`` trials of ``task``: its training steps, and one
    evaluation of the training and validation images at step 0 and after every epoch (with
    ``dual``, layer 1 in the dual form over those images)."""
    widths = task.spec_of({}).widths  # the searched space (lr, weight decay) keeps it
    examples = len(task.train) + len(task.valid)
    shape = {
        "members": trials,
        "steps": task.epochs * task.per_epoch,
        "batch": task.batch_size,
        "eval_examples": (task.epochs + 1) * examples,
    }
    if dual:
        return dual_training_flops(widths, rows=examples, **shape)
    return training_flops(widths, **shape)


def later_layer_flops(task: Any, trials: int) -> dict[str, float]:
    """The share of :func:`trial_flops` in layers 2 and up (the same in both forms), per
    product: each step's forward, input-gradient and weight-gradient (update) products,
    ``2 B sum_{l>1} n_in n_out`` each, and the evaluation's forward products, ``2 sum_{l>1}
    n_in n_out`` per evaluated image."""
    widths = task.spec_of({}).widths
    macs = affine_macs(widths[1:])
    steps = task.epochs * task.per_epoch
    examples = (task.epochs + 1) * (len(task.train) + len(task.valid))
    step = trials * steps * 2.0 * task.batch_size * macs
    return {
        "forward": step,
        "input_grad": step,
        "update": step,
        "evaluation": trials * examples * 2.0 * macs,
    }


def block_rates(task: Any, members: int, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of the engine's products of layers 2 and up, each alone (best of ``repeats``)
    on ``members`` blocks of the hidden layers' shape, in the layout the engine picks for
    the training batch: the forward ``Z = W @ H + b``, the input gradient ``W^T @ dZ`` and the
    fused update ``W += alpha dZ @ H^T`` at the training batch, and the forward at the
    evaluation of the training images (keys as :func:`later_layer_flops`)."""
    width, batch = task.hidden[0], task.batch_size
    widths = task.spec_of({}).widths
    layout = batched_layout.choose_layout(batch, members, widths)

    def blocks(columns: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w = torch.randn(members, width, width)
        return w, torch.randn(members, width, columns), torch.empty(members, width, columns)

    w, h, z = blocks(batch)
    b, gz, gh = torch.randn(members, width, 1), torch.randn_like(z), torch.empty_like(h)
    _, h_eval, z_eval = blocks(len(task.train))
    calls = {
        "forward": lambda: batched_layout.affine_forward(layout, w, b, h, z),
        "input_grad": lambda: batched_layout.input_grad(layout, w, gz, gh),
        "update": lambda: batched_layout.fused_update(layout, w, gz, h.transpose(1, 2), -1e-9),
        "evaluation": lambda: batched_layout.affine_forward(layout, w, b, h_eval, z_eval),
    }
    flops = {k: 2.0 * members * width * width * batch for k in calls}
    flops["evaluation"] *= len(task.train) / batch
    return {k: flops[k] / best_seconds(call, repeats) / 1e9 for k, call in calls.items()}


class NoTraining:
    """A search task that trains nothing: every trial reports fixed accuracies each epoch
    (a function of its number) through the same reporter calls as ``train_batched``."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def train_batched(self, plans: list[TrialPlan], report: Any = None) -> list[TrialOutcome]:
        curves = [[((p.number * 7 + e) % 100) / 100 for e in range(self.epochs)] for p in plans]
        for epoch in range(self.epochs):
            for member, curve in enumerate(curves):
                if report is not None:
                    report(member, epoch + 1, curve[epoch])
        return [TrialOutcome("complete", c[-1], c, c) for c in curves]


def no_training(epochs: int, **_: Any) -> NoTraining:
    """The task factory of :class:`NoTraining` (module level, as a job's factory must be)."""
    return NoTraining(epochs)


def time_overhead(trials: int, epochs: int, workdir: Path, threads: int) -> tuple[float, float]:
    """Wall and CPU seconds of C1's search with a task that trains nothing."""
    spec = c1_spec(trials, epochs, synthetic=True)
    job = search_job(spec, 0, str(workdir / "overhead.db"), study="overhead")
    job = dataclasses.replace(job, task_factory=no_training)
    start, cpu = time.perf_counter(), time.process_time()
    study, _ = run_search(job, threads=threads)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert len(study_trials(study)) == trials
    return wall, cpu


def time_experiment(trials: int, epochs: int, synthetic: bool, workdir: Path) -> float:
    """Seconds for the whole C1 experiment in a fresh workspace (study, store, figures)."""
    from initlab.experiments import run_experiment

    overrides = {"trials": trials, "epochs": epochs}
    if synthetic:
        overrides["dataset"] = "synthetic"
    start = time.perf_counter()
    run_experiment("random-search", overrides, out_dir=workdir / "c1", progress=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0: every core)"
    )
    parser.add_argument("--synthetic", action="store_true", help="synthetic data (no MNIST)")
    parser.add_argument("--experiment", action="store_true", help="also time the whole C1")
    parser.add_argument(
        "--overhead", action="store_true", help="also time the study alone (no training)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(worker_threads(1, args.threads))
    with tempfile.TemporaryDirectory(prefix="initlab-bench-search-") as tmp:
        row = measure(args.trials, args.epochs, args.synthetic, Path(tmp), args.threads)
        overhead = (
            time_overhead(args.trials, args.epochs, Path(tmp), args.threads)
            if args.overhead
            else None
        )
        total = (
            time_experiment(args.trials, args.epochs, args.synthetic, Path(tmp))
            if args.experiment
            else None
        )
    data = "synthetic data" if args.synthetic else "MNIST"
    print(
        f"C1 random search, {row['trials']} trials x {args.epochs} epochs on {data}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    )
    print("                                              wall s    CPU s")
    print(
        f"  batched search (study in SQLite, ask/tell): {row['search_s']:8.2f} "
        f"{row['search_cpu']:8.2f}"
    )
    print(
        f"  batched training only (fit_batched):        {row['batched_s']:8.2f} "
        f"{row['batched_cpu']:8.2f}"
    )
    print(
        f"  one by one (fit):                           {row['loop_s']:8.2f} {row['loop_cpu']:8.2f}"
    )
    if overhead is not None:
        print(
            f"  the study alone (search, no training):      {overhead[0]:8.2f} {overhead[1]:8.2f}"
        )
    print(f"  batched training, layer 1 from its weights:  {row['primal_s']:8.2f}")
    print(f"  speedup, search vs one by one: {row['ratio']:.2f}x (mean of the two batched)")
    print(f"  speedup, training only:        {row['ratio_engine']:.2f}x")
    print(f"  speedup in CPU time:           {row['ratio_cpu']:.2f}x (mean of the two batched)")
    print(
        f"  speedup with layer 1 from its weights: {row['loop_s'] / row['primal_s']:.2f}x "
        f"(the dual form trains {row['primal_s'] / row['batched_s']:.2f}x faster)"
    )
    stats, trials = row["agreement"], row["trials"]
    print(
        "  validation accuracies against one by one (per trial, the largest difference at any "
        "epoch):"
    )
    names = {
        "search": "batched search",
        "batched": "batched training only",
        "primal": "layer 1 from its weights",
        "ulp": "fit from weights one ulp up",
    }
    for run, name in names.items():
        a = stats[run]
        beyond = "" if run == "ulp" else f", {a['beyond_own']:.0f} beyond its own ulp run's"
        print(
            f"    {name + ':':30s} largest {a['max']:.3f}, {a['identical']:.0f}/{trials} "
            f"identical, {a['over_one']:.0f} more than one image apart{beyond}"
        )
    limit = max(ONE_IMAGE, stats["ulp"]["max"]) + 1e-9
    equal = all(stats[run]["max"] <= limit for run in ("search", "batched", "primal"))
    print(
        "  equal within float rounding (no run's largest difference above fit's own one-ulp "
        f"run's, or one image): {equal}"
    )
    print(f"  best validation accuracy: {row['best']:.3f}")
    peak = row["peak"] * 1e9
    floor, dual_floor = row["flops"] / peak, row["dual_flops"] / peak
    print(
        f"  arithmetic floor: {row['flops'] / 1e12:.2f} TFLOP at the GEMM peak "
        f"{row['peak']:.0f} GFLOP/s ({torch.get_num_threads()} thread(s), best of before and "
        f"after) = {floor:.1f} s, {dual_floor:.1f} s with layer 1 in the dual form "
        f"({row['dual_flops'] / 1e12:.2f} TFLOP); batched training at "
        f"{dual_floor / row['batched_s']:.0%} of the peak (layer 1 from its weights: "
        f"{floor / row['primal_s']:.0%}); the largest ratio any engine computing fit's "
        f"products could reach here: {row['loop_s'] / floor:.1f}x"
    )
    later, rates = row["later_flops"], row["block_rates"]
    block_floor = (row["dual_flops"] - sum(later.values())) / peak
    block_floor += sum(later[k] / (rates[k] * 1e9) for k in later)
    shown = ", ".join(f"{name} {rates[key]:.0f}" for key, name in PRODUCT_NAMES.items())
    print(
        f"  at the rates of the engine's products of layers 2 and up on {row['trials']} "
        f"members' blocks, each alone ({shown} GFLOP/s; layer 1 at the peak; a lower "
        f"bound): {block_floor:.1f} s for the dual form, the batched training at "
        f"{block_floor / row['batched_s']:.0%} of it; the largest ratio the batched engine "
        f"could reach here with no element-wise work: {row['loop_s'] / block_floor:.1f}x"
    )
    print(f"  target: >= 4x: {row['ratio'] >= 4.0} ({row['ratio']:.2f}x)")
    if total is not None:
        print(f"  whole C1 experiment (search, store, test evaluation, figures): {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
