"""The single-model trainer: minibatch training of one ``nn.Module`` with initlab's optimizers.

:func:`fit` runs the loop of the from-scratch book's ``Trainer`` and of the PyTorch lecture
code: draw a minibatch (with replacement, as the book, or by shuffled epochs), forward in
train mode, loss, backward, one step of a functional optimizer from
:mod:`initlab.train.optim`, and log. It adds what the classic experiments need: the book's
L2 weight decay on weights only, periodic evaluation in eval mode, hook-based probes on a
schedule, and divergence detection (a NaN/Inf loss ends the run with status "diverged"
instead of raising).

Determinism: minibatch indices come from :func:`initlab.data.batches.minibatches` with
``torch.Generator().manual_seed(seed)``, the same stream the batched engine draws, so a run
here and a member there see the same batches. Dropout draws from torch's global generator,
seeded from ``seed`` inside a forked RNG state (the caller's global RNG is left as it was).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from initlab.data.batches import BatchMode, batches_per_epoch, minibatches
from initlab.data.dataset import Dataset
from initlab.errors import InitlabError
from initlab.models.mlp import MLPSpec
from initlab.probes.probe import Probe
from initlab.probes.schedules import Schedule, every
from initlab.train.checks import (
    as_dataset,
    check_classes,
    check_examples,
    check_features,
    check_positive,
    model_inputs,
    model_outputs,
)
from initlab.train.losses import LossFn, l2_penalty, make_loss
from initlab.train.optim import Optimizer, make_optimizer
from initlab.train.result import RunStatus, TrainResult

Callback = Callable[[dict[str, Any]], bool | None]
"""Called with every history row as it is logged; returning True stops the run early."""

DROPOUT_SEED_OFFSET = 0x5D0C_7A11  # keeps the dropout stream apart from the batch stream


class _Gate:
    """A probe schedule that fit can close while it evaluates (so eval passes are not probed)."""

    def __init__(self, schedule: Schedule | None) -> None:
        self.schedule = schedule  # None: never probe
        self.open = True

    def __call__(self, step: int) -> bool:
        return self.open and self.schedule is not None and bool(self.schedule(step))

    @contextmanager
    def closed(self) -> Iterator[None]:
        """Probe nothing inside the block."""
        self.open = False
        try:
            yield
        finally:
            self.open = True


def decay_mask_of(model: nn.Module, decay_biases: bool = False) -> list[bool]:
    """Which trainable parameters get weight decay: weight matrices and kernels only.

    As in the from-scratch book (``0.5 * lambda * sum ||W||^2`` over the affine weights),
    biases and 1-D normalization parameters are left out unless ``decay_biases``.
    """
    return [
        decay_biases or (name.rsplit(".", 1)[-1] == "weight" and p.ndim >= 2)
        for name, p in model.named_parameters()
        if p.requires_grad
    ]


def _build_optimizer(
    optimizer: str | Optimizer,
    lr: float | None,
    hparams: Mapping[str, float] | None,
    weight_decay: float | None,
) -> Optimizer:
    if isinstance(optimizer, Optimizer):
        if lr is not None or hparams or weight_decay is not None:
            raise InitlabError(
                "lr, hparams and weight_decay go to make_optimizer when fit is given an "
                "Optimizer instance; pass the optimizer's name instead to set them here"
            )
        opt = optimizer
    else:
        kwargs: dict[str, float] = dict(hparams or {})
        if lr is not None:
            kwargs["lr"] = lr
        if weight_decay is not None:
            kwargs["weight_decay"] = weight_decay
        opt = make_optimizer(optimizer, **kwargs)
    tensors = [k for k, v in opt.hparams.items() if isinstance(v, Tensor)]
    if tensors:
        raise InitlabError(
            f"fit trains one model, so hyperparameters must be floats; {', '.join(tensors)} "
            "are per-member tensors (use the batched engine for those)"
        )
    return opt


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss: str | LossFn = "cross_entropy",
    batch_size: int = 1000,
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``(x, y)`` in eval mode, in chunks of batch_size.

    The model's train/eval mode is restored afterwards.
    """
    loss_sum = make_loss(loss, "sum") if isinstance(loss, str) else None
    was_training = model.training
    model.eval()
    try:
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        correct = torch.zeros((), dtype=torch.int64, device=x.device)
        n = x.shape[0]
        for start in range(0, n, batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            out = model(xb)
            if loss_sum is not None:
                total += loss_sum(out, yb).double()
            else:
                total += loss(out, yb).double() * xb.shape[0]  # a mean loss
            correct += (out.argmax(dim=1) == yb).sum()
    finally:
        model.train(was_training)
    return float(total) / max(n, 1), int(correct) / max(n, 1)


@contextmanager
def progress_bar(total: int, enabled: bool) -> Iterator[Callable[[int, float | None], None]]:
    """A rich progress bar (or a no-op) yielding ``update(steps_done, loss)``."""
    if not enabled:
        yield lambda done, loss: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("train"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("loss {task.fields[loss]}"),
    )
    with Progress(*columns) as bar:
        task = bar.add_task("train", total=total, loss="-")

        def update(done: int, loss: float | None) -> None:
            fields = {} if loss is None else {"loss": f"{loss:.4f}"}
            bar.update(task, completed=done, **fields)

        yield update


def _fork_rng(device: torch.device) -> Any:
    devices = [device.index or 0] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


def fit(
    model: nn.Module,
    data: Dataset,
    *,
    optimizer: str | Optimizer = "sgd",
    lr: float | None = None,
    hparams: Mapping[str, float] | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 128,
    batch_mode: BatchMode = "replacement",
    drop_last: bool = False,
    seed: int = 0,
    weight_decay: float | None = None,
    decay_biases: bool = False,
    eval_data: Dataset | None = None,
    eval_every: int | None = None,
    eval_train: bool = False,
    eval_batch_size: int = 1000,
    probe: Schedule | int | None = None,
    probe_layers: Sequence[str] | None = None,
    probe_data: Dataset | None = None,
    histograms: bool = False,
    log_every: int = 1,
    progress: bool = False,
    callback: Callback | None = None,
    loss: str | LossFn = "cross_entropy",
    loss_after_update: bool = False,
    bn_eps: float | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` with minibatch gradient descent; return a :class:`TrainResult`.

    Args:
        model: any module mapping ``data.x[batch]`` to class scores; trained in place.
        data: the training set (``x`` float, ``y`` int64 labels).
        optimizer: a name of :data:`initlab.train.optim.OPTIMIZER_NAMES` or an ``Optimizer``.
        lr: learning rate (None: the optimizer's default).
        hparams: further optimizer hyperparameters, e.g. ``{"momentum": 0.9}``.
        steps, epochs: stop after this many updates or epochs, whichever comes first (at
            least one is required). An epoch is ``ceil(N / batch_size)`` minibatches.
        batch_size: examples per minibatch.
        batch_mode: ``"replacement"`` (each batch drawn uniformly with replacement, as the
            from-scratch book) or ``"epoch"`` (a fresh permutation per epoch).
        drop_last: in epoch mode, drop each epoch's last short batch.
        seed: seeds the minibatch stream and dropout; the same seed gives the same numbers.
        weight_decay: L2 coefficient lambda (None: the optimizer's default, 0 except AdamW's
            0.01). For every optimizer but AdamW this is the book's ``0.5 * lambda * ||W||^2``
            added to the loss (its gradient ``lambda * W`` is added by the optimizer, and the
            logged ``train_loss`` includes the term); for AdamW it is the decoupled decay;
            for LARS the paper's beta.
        decay_biases: also decay biases and normalization parameters (default: weights only).
        eval_data: a held-out set evaluated in eval mode (``valid_loss``, ``valid_acc``).
        eval_every: evaluate every this many updates (default: once per epoch), at the
            start and at the end.
        eval_train: also evaluate on the whole training set (``train_eval_loss``,
            ``train_eval_acc``), in eval mode, as the book's per-epoch train accuracy.
        eval_batch_size: chunk size of evaluation passes.
        probe: when to record per-layer statistics (a schedule ``step -> bool`` or an int k
            for every k steps); None disables probing.
        probe_layers: module names or patterns to probe (default: every Linear/Conv and
            activation).
        probe_data: if given, probes record activations and gradients of this fixed set (in
            eval mode, before the update of the scheduled step) instead of the training
            minibatch, as Glorot & Bengio's 300 test examples. Weight records are unchanged.
        histograms: also record histograms in the probe records.
        log_every: a history row every this many updates (and at every evaluation).
        progress: show a rich progress bar.
        callback: called with each history row; returning True stops the run (status "done").
        loss: ``"cross_entropy"`` (logits), ``"nll"`` (log-probabilities) or a function
            ``(outputs, labels) -> mean loss``.
        loss_after_update: also log ``train_loss_after``: the loss (with the L2 term) on the
            step's minibatch after its update, in eval mode, the quantity the from-scratch
            book records (``grad``, ``update``, then ``network.loss(x_batch, t_batch)``);
            ``train_loss`` stays the loss the gradient was taken of. Costs one forward pass
            per logged step.
        bn_eps: set the eps of every batch-norm layer of ``model`` (kept after training);
            None leaves them as built (torch's 1e-5; the book uses 1e-6).

    Returns:
        A :class:`TrainResult`; ``status`` is "diverged" (with ``diverged_at``) when a
        training loss was NaN or Inf, in which case the update of that step is not applied.
    """
    # 1. check the settings, build the optimizer and its state
    if steps is None and epochs is None:
        raise InitlabError("give steps or epochs (or both) to say how long to train")
    data = as_dataset(data)
    check_positive(batch_size=batch_size, steps=steps, epochs=epochs)
    check_examples(data)
    inputs, outputs = model_inputs(model), model_outputs(model)
    if inputs is not None and data.x.dim() == 2:
        check_features(data, inputs)
    if isinstance(loss, str) and outputs is not None:
        check_classes(data, outputs)
    if eval_data is not None:
        eval_data = as_dataset(eval_data, "eval_data")
        check_examples(eval_data, "eval_data")
        if inputs is not None and eval_data.x.dim() == 2:
            check_features(eval_data, inputs, "eval_data")
        if isinstance(loss, str) and outputs is not None:
            check_classes(eval_data, outputs, "eval_data")
    for what, value in (("log_every", log_every), ("eval_batch_size", eval_batch_size)):
        if value < 1:
            raise InitlabError(f"{what} must be a positive integer, got {value}")
    if eval_every is not None and eval_every < 1:
        raise InitlabError(f"eval_every must be a positive integer, got {eval_every}")
    opt = _build_optimizer(optimizer, lr, hparams, weight_decay)
    if bn_eps is not None:
        if isinstance(bn_eps, bool) or not isinstance(bn_eps, int | float) or not bn_eps > 0:
            raise InitlabError(f"bn_eps must be a positive number, got {bn_eps!r}")
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eps = float(bn_eps)
        if isinstance(getattr(model, "spec", None), MLPSpec):  # rebuilt from its spec later
            model.spec = replace(model.spec, bn_eps=float(bn_eps))

    # 2. the minibatch stream and the schedules
    per_epoch = batches_per_epoch(len(data), batch_size, drop_last and batch_mode == "epoch")
    batches = minibatches(
        len(data),
        batch_size,
        steps=steps,
        epochs=epochs,
        mode=batch_mode,
        generator=torch.Generator().manual_seed(seed),
        drop_last=drop_last,
    )
    total = min(s for s in (steps, None if epochs is None else epochs * per_epoch) if s is not None)
    evaluating = eval_data is not None or eval_train
    loop = _Loop(
        model,
        opt,
        decay_mask_of(model, decay_biases),
        loss,
        data,
        eval_data=eval_data,
        eval_train=eval_train,
        eval_every=(eval_every or per_epoch) if evaluating else None,
        eval_batch_size=eval_batch_size,
        probe_data=probe_data,
        gate=_Gate(every(probe) if isinstance(probe, int) else probe),
        log_every=log_every,
        per_epoch=per_epoch,
        callback=callback,
        loss_after_update=loss_after_update,
    )

    # 3. train, with the RNG, the probe and the progress bar set up around the loop
    was_training = model.training
    start = time.perf_counter()
    with ExitStack() as stack:
        stack.callback(model.train, was_training)  # leave the model in the caller's mode
        stack.enter_context(_fork_rng(loop.device))
        torch.manual_seed(seed + DROPOUT_SEED_OFFSET)
        prober = None
        if probe is not None:
            prober = Probe(model, probe_layers, schedule=loop.gate, histograms=histograms)
            stack.enter_context(prober)
        loop.run(batches, prober, stack.enter_context(progress_bar(total, progress)))
        records = [r.to_dict() for r in prober.records] if prober is not None else []
    wall = time.perf_counter() - start

    return TrainResult(
        status=loop.status,
        steps_done=loop.done,
        history=loop.history,
        probe_records=records,
        final_state={k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        diverged_at=loop.diverged_at,
        wall_time=wall,
        config={
            "optimizer": opt.name,
            "hparams": dict(opt.hparams),
            "steps": steps,
            "epochs": epochs,
            "batch_size": batch_size,
            "batch_mode": batch_mode,
            "seed": seed,
            "weight_decay_on": "all" if decay_biases else "weights",
            "loss": loss if isinstance(loss, str) else getattr(loss, "__name__", "custom"),
            "data": data.name,
            "loss_after_update": loss_after_update,
        },
    )


class _Loop:
    """The training loop of :func:`fit`: one minibatch step at a time, rows into history."""

    def __init__(
        self,
        model: nn.Module,
        opt: Optimizer,
        decay_mask: list[bool],
        loss: str | LossFn,
        data: Dataset,
        *,
        eval_data: Dataset | None,
        eval_train: bool,
        eval_every: int | None,
        eval_batch_size: int,
        probe_data: Dataset | None,
        gate: _Gate,
        log_every: int,
        per_epoch: int,
        callback: Callback | None,
        loss_after_update: bool = False,
    ) -> None:
        self.model, self.opt, self.loss = model, opt, loss
        self.loss_after_update = loss_after_update
        self.loss_fn = make_loss(loss) if isinstance(loss, str) else loss
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise InitlabError("the model has no trainable parameters")
        self.device = self.params[0].device
        self.state = opt.init_state(self.params, decay_mask)
        # the book's 0.5 * lambda * ||W||^2 is part of the loss, except for decoupled AdamW
        self.wd = float(opt.hparams.get("weight_decay", 0.0))
        coupled = opt.name != "adamw"
        self.penalized = [p for p, m in zip(self.params, decay_mask, strict=True) if m and coupled]
        self.x, self.y = data.x.to(self.device), data.y.to(self.device)
        self.eval_set = None if eval_data is None else eval_data.to(self.device)
        self.probe_set = None if probe_data is None else probe_data.to(self.device)
        self.eval_train = eval_train
        self.eval_every = eval_every  # None: no evaluation
        self.eval_batch_size = eval_batch_size
        self.gate = gate
        self.log_every = log_every
        self.per_epoch = per_epoch
        self.callback = callback
        self.history: list[dict[str, Any]] = []
        self.status: RunStatus = "done"
        self.diverged_at: int | None = None
        self.done = 0

    def run(
        self,
        batches: Iterator[Tensor],
        prober: Probe | None,
        update_bar: Callable[[int, float | None], None],
    ) -> None:
        """Train on every batch until the stream ends, the loss diverges or the callback stops."""
        for t, idx in enumerate(batches):
            row: dict[str, Any] = {"step": t, "epoch": t // self.per_epoch}
            evaluated = self.eval_every is not None and t % self.eval_every == 0
            if evaluated:
                row.update(self.eval_metrics())
            if self.probe_set is not None and self.gate(t):
                _probe_fixed_batch(self.model, self.probe_set.x, self.probe_set.y, self.loss_fn)
            logged = evaluated or t % self.log_every == 0
            if not self.train_step(idx.to(self.device), row, logged):
                self.status, self.diverged_at = "diverged", t
                self.emit(row)
                return
            self.done = t + 1
            if prober is not None:
                prober.step(t)
            update_bar(self.done, row.get("train_loss"))
            if logged and self.emit(row):
                return
        if self.eval_every is not None:
            self.emit(
                {"step": self.done, "epoch": self.done // self.per_epoch, **self.eval_metrics()}
            )

    def train_step(self, idx: Tensor, row: dict[str, Any], logged: bool) -> bool:
        """Forward, loss, backward and one update on batch ``idx``; False if the loss diverged.

        Puts ``train_loss`` (with the L2 term) and ``train_acc`` into ``row`` when ``logged``
        (always ``train_loss`` when it is not finite). Probes see this pass unless they watch
        fixed ``probe_data``.
        """
        model = self.model
        model.train()
        model.zero_grad(set_to_none=True)
        xb, yb = self.x[idx], self.y[idx]
        with self.gate.closed() if self.probe_set is not None else nullcontext():
            out = model(xb)
        batch_loss = self.loss_fn(out, yb)
        value = float(batch_loss.detach())
        if not math.isfinite(value):
            row["train_loss"] = value
            return False
        if logged:
            with torch.no_grad():
                penalty = (
                    float(l2_penalty(self.penalized, self.wd))
                    if self.wd and self.penalized
                    else 0.0
                )
                row["train_loss"] = value + penalty
                row["train_acc"] = float((out.argmax(dim=1) == yb).float().mean())
        batch_loss.backward()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        self.opt.step_(self.params, grads, self.state)
        if logged and self.loss_after_update:
            row["train_loss_after"] = self.loss_after(xb, yb)
        return True

    @torch.no_grad()
    def loss_after(self, xb: Tensor, yb: Tensor) -> float:
        """The loss (with the L2 term) on ``(xb, yb)`` with the updated weights, eval mode."""
        with self.gate.closed():
            self.model.eval()
            try:
                value = float(self.loss_fn(self.model(xb), yb))
            finally:
                self.model.train()
        if self.wd and self.penalized:
            value += float(l2_penalty(self.penalized, self.wd))
        return value

    def eval_metrics(self) -> dict[str, float]:
        """Loss and accuracy on the held-out set (and the training set), in eval mode."""
        row: dict[str, float] = {}
        with self.gate.closed():
            if self.eval_set is not None:
                row["valid_loss"], row["valid_acc"] = evaluate(
                    self.model, self.eval_set.x, self.eval_set.y, self.loss, self.eval_batch_size
                )
            if self.eval_train:
                row["train_eval_loss"], row["train_eval_acc"] = evaluate(
                    self.model, self.x, self.y, self.loss, self.eval_batch_size
                )
        return row

    def emit(self, row: dict[str, Any]) -> bool:
        """Append ``row`` to the history; True if the callback asks to stop."""
        self.history.append(row)
        return bool(self.callback(row)) if self.callback is not None else False


def _probe_fixed_batch(model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn) -> None:
    """One forward and backward pass on fixed examples, in eval mode, for the probes only.

    Eval mode keeps batch-norm running statistics and dropout untouched; the gradients are
    thrown away before the training pass of the step.
    """
    was_training = model.training
    model.eval()
    try:
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
