"""What the MNIST training experiments (B1-B6) share: data, the book's smoothing, group training.

Data: ``dataset = "mnist"`` is the real MNIST (:func:`initlab.data.mnist.load_mnist`, pixels
``byte / 255`` as the from-scratch book's ``normalize=True`` and torchvision's
``ToTensor``); ``dataset = "synthetic"`` is a small MNIST-like set made here from a fixed
seed (:func:`synthetic_mnist`), the route for tests and offline smoke runs: its numbers
are not MNIST results.

Training: every experiment trains its runs in groups with the batched engine
(:func:`initlab.train.batched.fit_batched`): one architecture and one optimizer per group,
members differing in init, init seed, learning rate, weight decay or dropout. All members
of a group see the minibatch stream of ``batch_seed`` (the minibatches stream of the
experiment's base seed, :func:`initlab.experiments.seeds.stream_seed`, written in every
run's spec); a member's weights come from its run seed and its dropout masks from the
dropout stream of its run seed, so a member computed alone (on resume) gets the numbers it
gets in its group, to float rounding.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, get_args

import torch

from initlab.data.batches import batches_per_epoch
from initlab.data.dataset import Dataset
from initlab.errors import InitlabError, check_choice
from initlab.experiments.base import Progress, Recorder, RunOutcome, RunSpec
from initlab.experiments.common import single_thread
from initlab.experiments.seeds import stream_seed
from initlab.models.mlp import MLPSpec

DatasetChoice = Literal["mnist", "synthetic"]
DATASETS: tuple[str, ...] = get_args(DatasetChoice)
DATASET_HELP = "mnist, or synthetic (small MNIST-like random data: a test/smoke route only)"
LN10 = math.log(10.0)  # the cross entropy of a uniform guess over 10 classes

LossCurve = Literal["after_update", "before_update"]
LOSS_CURVE_HELP = (
    "which training loss the curves show: after_update (the book's: the step's minibatch "
    "after its update) or before_update (the loss the gradient was taken of); both are stored"
)


def loss_metric(curve: str) -> str:
    """The stored metric of a :data:`LossCurve`: ``train_loss_after`` or ``train_loss``."""
    check_choice(curve, get_args(LossCurve), "loss curve")
    return "train_loss_after" if curve == "after_update" else "train_loss"


def loss_label(curve: str) -> str:
    """How a figure names the loss it shows."""
    if curve == "after_update":
        return "training loss after the update (the book's)"
    return "training loss before the update"


def loss_caption(curve: str) -> str:
    """The caption's sentence on which loss a curve is."""
    if curve == "after_update":
        return (
            "the loss of each step's minibatch after that step's update, as the book records "
            "it (loss_curve=before_update shows the loss the gradient was taken of)"
        )
    return "the loss each gradient was taken of, before its update (the book plots the loss after)"


SYNTHETIC_SIZES: dict[str, int] = {"train": 2000, "test": 1000}
SYNTHETIC_NOISE = 0.8  # std of the Gaussian pixel noise around each class's prototype
SYNTHETIC_INK = 0.15  # fraction of "on" pixels in a prototype (MNIST: ~19%)
_SYNTHETIC_SEEDS = {"prototypes": 0x5EED, "train": 1, "test": 2}


def synthetic_mnist(split: Literal["train", "test"], n: int | None = None) -> Dataset:
    """A small MNIST-like task: 784 pixels in [0, 1], 10 classes (tests and smoke runs only).

    Class ``c`` has a fixed binary prototype ``p_c`` (each pixel on with probability 0.15);
    an example of class ``y`` is ``clip(p_y + 0.8 * N(0, I), 0, 1)``. The noise is strong
    enough that 300 examples can be memorized by a 6-layer MLP without being learned (a
    train/test gap, as MNIST's B4), weak enough that a few hundred SGD steps learn the task.
    Prototypes come from one fixed seed, the examples of each split from their own, so the
    same call gives the same tensors everywhere.
    """
    check_choice(split, tuple(SYNTHETIC_SIZES), "synthetic split")
    n = SYNTHETIC_SIZES[split] if n is None else n
    protos_gen = torch.Generator().manual_seed(_SYNTHETIC_SEEDS["prototypes"])
    prototypes = (torch.rand(10, 784, generator=protos_gen) < SYNTHETIC_INK).float()
    gen = torch.Generator().manual_seed(_SYNTHETIC_SEEDS[split])
    y = torch.randint(0, 10, (n,), generator=gen)
    x = (prototypes[y] + SYNTHETIC_NOISE * torch.randn(n, 784, generator=gen)).clamp_(0.0, 1.0)
    return Dataset(x, y, f"synthetic-{split}", tuple(str(d) for d in range(10)))


@functools.lru_cache(maxsize=8)
def load_split(dataset: str, split: Literal["train", "test"], size: int = 0) -> Dataset:
    """The ``split`` of ``dataset``; ``size > 0`` keeps its first ``size`` examples (the
    book's ``x_train[:1000]``), 0 keeps all.

    Cached per process: an experiment's groups (lab-09 has four) read the same splits, and
    reading and converting MNIST costs ~0.3 s a split (only the kept examples are
    converted); nothing downstream writes into a dataset's tensors (the engines copy what
    they convert)."""
    check_choice(dataset, DATASETS, "dataset")
    if dataset == "synthetic":
        data = synthetic_mnist(split)
        return data.head(size) if 0 < size < len(data) else data
    from initlab.data.mnist import load_mnist

    return load_mnist(split, progress=False, limit=size if size > 0 else None)


class GroupTask(NamedTuple):
    """What one group of runs trains on: the training split, the test split (None when the
    experiment has none) and the MLP architecture."""

    train: Dataset
    test: Dataset | None
    spec: MLPSpec


def group_task(spec: Mapping[str, Any], test: bool = True) -> GroupTask:
    """The data and architecture a run spec names: ``dataset``, ``hidden``, and optionally
    ``train_size`` / ``test_size`` (0: the whole split), ``activation`` (default relu) and
    ``batchnorm``. The input and output widths come from the data."""
    train = load_split(spec["dataset"], "train", spec.get("train_size", 0))
    test_data = load_split(spec["dataset"], "test", spec.get("test_size", 0)) if test else None
    widths = (train.num_features, *spec["hidden"], train.num_classes)
    mlp_spec = MLPSpec(
        widths, spec.get("activation", "relu"), batchnorm=bool(spec.get("batchnorm", False))
    )
    return GroupTask(train, test_data, mlp_spec)


def dataset_title(dataset: str) -> str:
    """How figures name the dataset: "MNIST", or "synthetic data" for the smoke route."""
    return "MNIST" if dataset == "mnist" else f"{dataset} data"


def check_dataset(dataset: str, **sizes: int) -> None:
    """``dataset`` must be known and every size >= 0 (0: the whole split)."""
    check_choice(dataset, DATASETS, "dataset")
    for key, value in sizes.items():
        if value < 0:
            raise InitlabError(f"{key} must be >= 0 (0: the whole split), got {value}")


def check_hidden(hidden: Sequence[int], key: str = "hidden") -> None:
    """Hidden widths: at least one, all positive."""
    if not hidden or any(w < 1 for w in hidden):
        raise InitlabError(f"{key} must list positive hidden widths, e.g. [100, 100], got {hidden}")


def smooth_curve(values: Sequence[float], window: int = 11, beta: float = 2.0) -> list[float]:
    """The from-scratch book's ``smooth_curve`` (``common/util.py``): a Kaiser-window average.

    The series is mirrored by ``window - 1`` values at both ends, convolved with the
    normalized Kaiser window ``w = kaiser(11, beta=2) / sum(w)`` and cut back to its
    length, so ``y[t] = sum_k w[k] x[t + k - 5]`` with mirrored ends. Series shorter than
    the window are returned as they are.

    >>> [round(v, 6) for v in smooth_curve([1.0] * 12)][:3]
    [1.0, 1.0, 1.0]
    """
    n = len(values)
    if n < window:
        return [float(v) for v in values]
    x = torch.tensor(values, dtype=torch.float64)
    padded = torch.cat([x[1:window].flip(0), x, x[-window + 1 :].flip(0)])
    w = torch.kaiser_window(window, periodic=False, beta=beta, dtype=torch.float64)
    w = w / w.sum()
    y = torch.nn.functional.conv1d(padded.view(1, 1, -1), w.view(1, 1, -1)).view(-1)
    half = window // 2
    return y[half : len(y) - half].tolist()


def tail_mean(values: Sequence[float], count: int) -> float:
    """Mean of the last ``count`` values (NaN when empty or not finite)."""
    tail = [float(v) for v in values[-count:]]
    if not tail or not all(math.isfinite(v) for v in tail):
        return math.nan
    return sum(tail) / len(tail)


def first_below(steps: Sequence[int], values: Sequence[float], level: float) -> int | None:
    """The first step whose value is below ``level`` (None if never)."""
    for step, value in zip(steps, values, strict=True):
        if math.isfinite(value) and value < level:
            return int(step)
    return None


def group_progress(progress: Progress, total: int) -> Callable[[dict[str, Any]], None]:
    """A fit_batched callback that reports the furthest step any member has logged."""
    furthest = -1

    def callback(row: dict[str, Any]) -> None:
        nonlocal furthest
        step = int(row["step"])
        if step > furthest:
            furthest = step
            progress(float(step), float(total))

    return callback


def train_group(
    runs: Sequence[RunSpec],
    recorders: Sequence[Recorder],
    progress: Progress,
    *,
    members: Sequence[Any],
    data: Dataset,
    spec: Any,
    keep: Sequence[str],
    optimizer: str = "sgd",
    lr: float | Sequence[float] = 0.01,
    hparams: Mapping[str, float] | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 128,
    batch_mode: str = "replacement",
    drop_last: bool = False,
    batch_seed: int = 0,
    weight_decay: float | Sequence[float] | None = None,
    dropout: float | Sequence[float] | None = None,
    eval_data: Dataset | None = None,
    eval_every: int | None = None,
    eval_train: bool = False,
    log_every: int = 1,
    loss_after_update: bool = False,
    bn_eps: float | None = None,
    dropout_mode: str | None = None,
    dtype: str = "float32",
) -> tuple[Any, list[RunOutcome]]:
    """Train ``runs`` as one :func:`~initlab.train.batched.fit_batched` call and store each.

    ``members[i]`` (a model or an ``(init scheme, seed)`` pair) is ``runs[i]``; each run's
    dropout masks are drawn from the dropout stream of its seed. ``loss_after_update``,
    ``bn_eps``, ``dropout_mode`` and ``dtype`` ("float32" or "float64") go to the engine.
    Every member's history rows are stored
    through its recorder, keeping only the metric names in ``keep``. Runs on one
    intra-op thread: these MLPs are small, and on a shared CPU more threads only wait on
    each other. Returns the engine's result and one outcome per run (status and a summary
    with the last value of every kept metric, ``steps_done`` and ``diverged_at``).
    """
    from initlab.train.batched import fit_batched

    per_epoch = batches_per_epoch(len(data), batch_size, drop_last and batch_mode == "epoch")
    total = steps if steps is not None else (epochs or 0) * per_epoch
    with single_thread():
        result = fit_batched(
            list(members),
            data,
            spec=spec,
            optimizer=optimizer,
            lr=list(lr) if isinstance(lr, Sequence) else lr,
            hparams=dict(hparams or {}),
            steps=steps,
            epochs=epochs,
            batch_size=batch_size,
            batch_mode=batch_mode,  # type: ignore[arg-type]
            drop_last=drop_last,
            seed=batch_seed,
            weight_decay=list(weight_decay) if isinstance(weight_decay, Sequence) else weight_decay,
            dropout=list(dropout) if isinstance(dropout, Sequence) else dropout,
            dropout_seeds=[stream_seed(run.seed, "dropout") for run in runs],
            eval_data=eval_data,
            eval_every=eval_every,
            eval_train=eval_train,
            log_every=log_every,
            callback=group_progress(progress, total),
            loss_after_update=loss_after_update,
            bn_eps=bn_eps,
            dropout_mode=dropout_mode,  # type: ignore[arg-type]
            dtype=torch.float64 if dtype == "float64" else torch.float32,
        )
    outcomes = []
    for member, recorder in zip(result.results, recorders, strict=True):
        rows = []
        for row in member.history:
            kept = {k: v for k, v in row.items() if k in keep}
            if kept:
                rows.append({"step": row["step"], **kept})
        recorder.log_metrics(rows)
        summary: dict[str, Any] = {
            "steps_done": member.steps_done,
            "diverged_at": member.diverged_at,
        }
        for name in keep:
            value = member.last(name)
            if value is not None:
                summary[name] = value if math.isfinite(value) else str(value)
        outcomes.append(RunOutcome(member.status, summary))
    progress(float(total), float(total))
    return result, outcomes
