"""Diagnose a network from one batch: per layer, does the signal survive?

One forward and one backward pass; for every Linear/Conv layer (in execution order) the
standard deviation of its activations (after the nonlinearity that follows it) and of the
back-propagated gradient (w.r.t. the layer's output), the saturated and dead fractions,
and a verdict with the rules below. This is the per-layer reading of Glorot & Bengio
(2010), "Understanding the difficulty of training deep feedforward neural networks"
(activation and gradient spread per layer, saturation), and He et al. (2015), "Delving
Deep into Rectifiers" (the std of ReLU signals shrinks or grows by a constant factor per
layer unless Var(W) = 2 / fan_in).

Verdict rules, checked in this order for each layer (the first that holds wins):

1. **exploding** if the weight, the layer output, the activations or the gradient contain
   NaN or Inf.
2. **symmetric** (hidden layers: all but the last Linear/Conv) if the layer's units are
   interchangeable: the rows of ``[W | b]`` are identical up to a relative tolerance of
   :data:`SYMMETRY_RTOL` and so are the next layer's weight columns that read them (e.g.
   constant or zero init). Such units get identical gradients and stay identical forever.
3. **dead** if the nonlinearity can die (ReLU) and more than :data:`DEAD_FRACTION` of the
   layer's units output exactly 0 for the whole batch (a negative pre-activation for every
   input: no gradient reaches them).
4. **symmetric** (hidden layers only) if the live units' activations are identical across
   the batch up to :data:`SYMMETRY_RTOL`.
5. **saturated** if more than :data:`SATURATED_FRACTION` of the activations sit on a flat
   part of a bounded nonlinearity (sigmoid <= 0.01 or >= 0.99, tanh |y| >= 0.99, softsign
   |y| >= 0.9; see :func:`initlab.probes.stats.saturated_fraction`).
6. **exploding** if the activation std is more than :data:`RATIO` (10x) the first layer's,
   or (hidden layers) the gradient std is more than 10x the last hidden layer's.
7. **vanishing** if the activation std is less than 1/10 of the first layer's, or (hidden
   layers) the gradient std is less than 1/10 of the last hidden layer's.
8. **ok** otherwise.

Activations are compared with the first layer because the forward signal starts there;
gradients with the last hidden layer (the Linear/Conv before the output layer) because
back-propagation starts there. The output layer's gradient is left out of the gradient
rules: its scale is set by the loss and by the change of width to the number of classes,
not by the initialization. The network's verdict is the most severe layer verdict in the
order symmetric > dead > saturated > exploding > vanishing > ok (a root cause before its
symptoms: saturated sigmoids also make gradients vanish). In deep ReLU nets some units die
at init even with He init (inputs grow correlated with depth: about 20% by layer 10 and
35% by layer 30 at width 128), hence the 50% threshold for "dead".

Loss when no ``loss_fn`` is given: with ``targets=None`` and a 2-D output of at least two
columns (logits), cross entropy against random class labels drawn with seed
``seed + LABEL_SEED_OFFSET``; with any other output, ``0.5 * sum(output ** 2) / batch``;
integer ``targets`` use cross entropy and floating ones the mean squared error. Cross
entropy's output gradient, softmax - one_hot, is bounded, so the gradient statistics
measure the network rather than the output scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from initlab.activations import activation_info, activation_name_of
from initlab.errors import InitlabError
from initlab.probes.stats import dead_fraction, nonfinite_count, saturated_fraction, std

if TYPE_CHECKING:
    from rich.table import Table

Verdict = Literal["ok", "vanishing", "exploding", "saturated", "dead", "symmetric"]
VERDICTS: tuple[str, ...] = get_args(Verdict)
SEVERITY: tuple[Verdict, ...] = ("symmetric", "dead", "saturated", "exploding", "vanishing", "ok")
"""Verdicts from most to least severe; the network's verdict is its layers' most severe."""

RATIO = 10.0
"""Vanishing / exploding when a std has shrunk / grown by more than this factor."""
SATURATED_FRACTION = 0.3
"""Saturated when more than this fraction of a layer's activations is saturated."""
DEAD_FRACTION = 0.5
"""Dead when more than this fraction of a layer's units is 0 for the whole batch."""
SYMMETRY_RTOL = 1e-6
"""Units are identical when they differ by at most this times the largest magnitude."""

LABEL_SEED_OFFSET = 2_000_003
"""Random labels are drawn with seed + this, so that they are independent of weights and
inputs drawn with the same user seed."""

_AFFINE = (nn.Linear, nn.modules.conv._ConvNd)

# The scheme to recommend per activation: He for the ReLU family (He et al. 2015), LeCun
# for SELU (Klambauer et al. 2017), Glorot/Xavier for the symmetric saturating ones.
_SCHEME: dict[str | None, str] = {
    "relu": "he_normal",
    "leaky_relu": "he_normal",
    "elu": "he_normal",
    "gelu": "he_normal",
    "silu": "he_normal",
    "selu": "lecun_normal",
    "tanh": "xavier_uniform",
    "softsign": "xavier_uniform",
    "sigmoid": "xavier_uniform",
    "identity": "xavier_uniform",
    None: "xavier_uniform",
}
_LABEL: dict[str, str] = {"relu": "ReLU", "leaky_relu": "leaky ReLU", "elu": "ELU"}


@dataclass(frozen=True)
class LayerDiagnosis:
    """The numbers and verdict for one Linear/Conv layer."""

    name: str  # module name, e.g. "linear3"
    module: str  # module class, e.g. "Linear"
    activation: str | None  # the nonlinearity after it (None: none, e.g. the output layer)
    act_std: float  # std of the activations after that nonlinearity (else the layer output)
    grad_std: float  # std of d loss / d (layer output); NaN if no gradient reached it
    saturated: float  # fraction of activations on a flat part of the nonlinearity
    dead: float  # fraction of units exactly 0 for the whole batch
    weight_std: float  # std of the layer's weight
    fan_in: int  # inputs per unit (in_features, or in_channels x kernel size)
    fan_out: int  # outputs per input (out_features, or out_channels x kernel size)
    nonfinite: int  # NaN/Inf entries in its weight, output, activations and gradient
    verdict: Verdict
    reason: str  # one line: which rule fired, with its numbers

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the fields."""
        return asdict(self)


@dataclass(frozen=True)
class Diagnosis:
    """The outcome of :func:`diagnose`: per-layer verdicts, the worst one and what to do."""

    layers: list[LayerDiagnosis]
    verdict: Verdict
    recommendation: str
    loss: float

    def to_dicts(self) -> list[dict[str, Any]]:
        """One plain dict per layer."""
        return [layer.to_dict() for layer in self.layers]

    def render(self, max_rows: int | None = 40) -> Table:
        """A rich table: one row per layer, the verdict in the title, the advice below it
        (each layer's ``reason`` is in :meth:`to_dicts`).

        A network of more than ``max_rows`` layers shows its first and last layers and every
        layer whose verdict differs from the one before; a dimmed row says how many layers
        were left out between them (None shows every layer).
        """
        from rich.markup import escape
        from rich.table import Table

        colour = {"ok": "green", "vanishing": "yellow", "exploding": "red"}
        table = Table(
            title=f"diagnosis: {self.verdict}",
            caption=escape(f"recommendation: {self.recommendation}"),
            caption_justify="left",
            caption_style="bold",
        )
        table.add_column("layer", no_wrap=True)
        table.add_column("act fn", no_wrap=True)
        for column in ("W std", "act std", "grad std", "sat", "dead"):
            table.add_column(column, justify="right", no_wrap=True)
        table.add_column("verdict", no_wrap=True)
        shown = _shown_rows(self.layers, max_rows)
        previous = -1
        for i in shown:
            if i > previous + 1:
                table.add_row(f"[dim]... {i - previous - 1} layers[/dim]", *([""] * 7))
            previous = i
            d = self.layers[i]
            style = colour.get(d.verdict, "magenta")
            table.add_row(
                escape(d.name),
                d.activation or "-",
                f"{d.weight_std:.3g}",
                f"{d.act_std:.3g}",
                f"{d.grad_std:.3g}",
                f"{d.saturated:.0%}",
                f"{d.dead:.0%}",
                f"[{style}]{d.verdict}[/{style}]",
            )
        return table


def _shown_rows(layers: Sequence[LayerDiagnosis], max_rows: int | None) -> list[int]:
    """The layer indices a table of at most ``max_rows`` rows shows: the first and last
    layers, then the layers whose verdict changes, in order."""
    n = len(layers)
    if max_rows is None or n <= max_rows:
        return list(range(n))
    head, tail = max_rows // 3, max_rows // 6
    keep = set(range(head)) | set(range(n - tail, n))
    for i in range(1, n):
        if len(keep) >= max_rows:
            break
        if layers[i].verdict != layers[i - 1].verdict:
            keep.add(i)
    return sorted(keep)


@dataclass
class _Seen:
    """One module call seen by the forward hooks, in execution order."""

    name: str
    module: nn.Module
    output: torch.Tensor
    grad: torch.Tensor | None = None


def _capture(model: nn.Module, run: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, list[_Seen]]:
    """Run ``run`` with hooks on every Linear/Conv and activation module; return its output
    and, in execution order, each module's first output (gradients are filled in later)."""
    seen: list[_Seen] = []
    names: set[str] = set()
    handles = []

    def make_hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if name in names or not isinstance(output, torch.Tensor):
                return
            names.add(name)
            entry = _Seen(name, module, output.detach())
            seen.append(entry)
            if isinstance(module, _AFFINE) and output.requires_grad:

                def keep(grad: torch.Tensor) -> None:
                    entry.grad = grad.detach()

                output.register_hook(keep)

        return hook

    try:
        for name, module in model.named_modules():
            if isinstance(module, _AFFINE) or activation_name_of(module) is not None:
                handles.append(module.register_forward_hook(make_hook(name)))
        output = run()
    finally:
        for handle in handles:
            handle.remove()
    return output, seen


def _loss(
    output: torch.Tensor,
    targets: torch.Tensor | None,
    loss_fn: Callable[..., torch.Tensor] | None,
    seed: int,
) -> torch.Tensor:
    """The loss to back-propagate (rules in the module docstring)."""
    logits = output.dim() == 2 and output.shape[1] >= 2
    if targets is None and logits:
        gen = torch.Generator().manual_seed(LABEL_SEED_OFFSET + seed)
        targets = torch.randint(output.shape[1], (output.shape[0],), generator=gen)
        targets = targets.to(output.device)
    if loss_fn is not None:
        return loss_fn(output, targets) if targets is not None else loss_fn(output)
    if targets is None:
        return 0.5 * output.pow(2).sum() / max(output.shape[0], 1)
    if not targets.dtype.is_floating_point:
        return F.cross_entropy(output, targets)
    return F.mse_loss(output, targets)


def _rows(module: nn.Module) -> torch.Tensor | None:
    """The layer's units as rows: ``[W.reshape(out, -1) | b]``."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        return None
    rows = weight.detach().reshape(weight.shape[0], -1)
    bias = getattr(module, "bias", None)
    if isinstance(bias, torch.Tensor):
        rows = torch.cat([rows, bias.detach().reshape(-1, 1)], dim=1)
    return rows


def _fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a Linear ``[out, in]`` or Conv ``[out, in, *kernel]`` weight."""
    if weight.dim() < 2:
        return (weight.numel(), weight.numel())
    receptive = math.prod(weight.shape[2:])
    return (weight.shape[1] * receptive, weight.shape[0] * receptive)


def _identical(units: torch.Tensor) -> bool:
    """Whether all slices ``units[i]`` agree up to SYMMETRY_RTOL of the largest magnitude."""
    if units.shape[0] < 2:
        return False
    spread = (units - units[:1]).abs().max()
    return bool(spread <= SYMMETRY_RTOL * units.abs().max())


def _symmetric_weights(module: nn.Module, next_module: nn.Module | None) -> bool:
    """Rows of ``[W | b]`` identical, and so the columns of the next layer's weight that read
    these units (when its input width matches this layer's output width)."""
    rows = _rows(module)
    if rows is None or not _identical(rows):
        return False
    weight = getattr(next_module, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() >= 2 and weight.shape[1] == rows.shape[0]:
        return _identical(weight.detach().transpose(0, 1).reshape(rows.shape[0], -1))
    return True


def _units(x: torch.Tensor) -> torch.Tensor:
    """Activations as ``[units, samples * positions]`` (units along dim 1)."""
    if x.dim() < 2:
        return x.reshape(-1, 1)
    return x.transpose(0, 1).reshape(x.shape[1], -1)


def _symmetric_activations(x: torch.Tensor) -> bool:
    """Live units (not 0 everywhere) with identical activations across the batch."""
    units = _units(x)
    live = units[(units != 0).any(dim=1)]
    return _identical(live)


def _layer_verdict(
    d: dict[str, Any], hidden: bool, ref_act: float, ref_grad: float
) -> tuple[Verdict, str]:
    """Apply rules 1-8 of the module docstring to one layer's numbers."""
    if d["nonfinite"] > 0:
        return "exploding", f"{d['nonfinite']} non-finite values"
    if hidden and d["symmetric_weights"]:
        return "symmetric", "identical weights for every unit"
    if d["can_die"] and d["dead"] > DEAD_FRACTION:
        return "dead", f"{d['dead']:.0%} of units are 0 for the whole batch"
    if hidden and d["symmetric_acts"]:
        return "symmetric", "identical activations for every unit"
    if d["saturated"] > SATURATED_FRACTION:
        return "saturated", f"{d['saturated']:.0%} of activations saturated"
    ratios = {"activation": d["act_std"] / ref_act if ref_act > 0 else math.nan}
    if hidden and ref_grad > 0:
        ratios["gradient"] = d["grad_std"] / ref_grad
    for what, r in ratios.items():
        if r > RATIO:
            return "exploding", f"{what} std x{r:.3g} of the reference layer"
    for what, r in ratios.items():
        if r < 1 / RATIO:
            return "vanishing", f"{what} std x{r:.2g} of the reference layer"
    return "ok", "std within 10x of the reference layers"


def scheme_std(scheme: str, fan_in: int, fan_out: int) -> float:
    """The weight std a recommended scheme gives: He sqrt(2 / fan_in), LeCun
    sqrt(1 / fan_in), Glorot/Xavier sqrt(2 / (fan_in + fan_out))."""
    if scheme == "he_normal":
        return math.sqrt(2.0 / fan_in)
    if scheme == "lecun_normal":
        return math.sqrt(1.0 / fan_in)
    return math.sqrt(2.0 / (fan_in + fan_out))


def _recommend(layers: list[LayerDiagnosis], verdict: Verdict) -> str:
    """One line: what is wrong where, and which scheme to use instead.

    The scheme follows the activation: he_normal for the ReLU family, lecun_normal for SELU,
    xavier_uniform otherwise. When the weights already have about that scheme's std (within
    1.5x) and the signal still vanishes, the cure is not the scale: sigmoid's slope is at
    most 1/4, so advise tanh or ReLU; for other activations, orthogonal weights.
    """
    if verdict == "ok" or not layers:
        return "signal propagates: activation and gradient std stay within 10x; no change needed"
    bad = [d for d in layers if d.verdict == verdict]
    worst = bad[0]
    hidden = [d.activation for d in layers if d.activation is not None]
    act = worst.activation or (max(set(hidden), key=hidden.count) if hidden else None)
    scheme = _SCHEME.get(act, "xavier_uniform")
    label = _LABEL.get(act, act) if act is not None else "linear"
    where = f"{label} with std {worst.weight_std:.2g}"
    count = f"{len(bad)}/{len(layers)} layers {verdict}, first {worst.name}: {worst.reason}"
    if verdict == "symmetric":
        return (
            f"constant init: units are symmetric in {len(bad)}/{len(layers)} layers (identical "
            f"units get identical gradients and stay identical); use a random init such as "
            f"{scheme}"
        )
    if verdict == "dead":
        return (
            f"{worst.dead:.0%} of {label} units in {worst.name} are dead (0 for every input, so "
            f"no gradient): use {scheme} with zero biases, or leaky_relu"
        )
    if verdict == "saturated":
        advice = "use xavier_uniform or switch to tanh" if act == "sigmoid" else f"use {scheme}"
        return (
            f"{label} saturated ({worst.saturated:.0%} of {worst.name}'s activations on the flat "
            f"part, weight std {worst.weight_std:.2g}): {advice}"
        )
    if verdict == "exploding" and worst.nonfinite:
        return f"{where}: non-finite values ({count}); use {scheme}"
    target = scheme_std(scheme, worst.fan_in, worst.fan_out)
    if verdict == "vanishing" and worst.weight_std > target / 1.5:
        if act == "sigmoid":
            advice = "sigmoid's slope is at most 1/4: switch to tanh (xavier_uniform) or ReLU"
            return f"{where} ({count}): {advice} (he_normal)"
        return f"{where} ({count}): the scale is already {scheme}'s; use orthogonal"
    if verdict == "vanishing" and act == "sigmoid":
        return f"{where} ({count}): use xavier_uniform or switch to tanh"
    return f"{where} ({count}): use {scheme}"


STREAM_FROM_LAYERS = 100
"""Plain chains (``nn.Sequential`` of Linear/Conv and activations) with at least this many
Linear/Conv layers are diagnosed block by block in bounded memory
(:mod:`initlab.probes.diagnose_chain`), with progress; smaller ones through hooks."""


def _check_inputs(model: nn.Module, args: tuple[Any, ...]) -> None:
    """One line for inputs that cannot be diagnosed: not tensors, an empty batch, or a
    feature count the first Linear layer cannot read."""
    if not args or not all(isinstance(a, torch.Tensor) for a in args):
        kinds = ", ".join(type(a).__name__ for a in args) or "nothing"
        raise InitlabError(
            f"diagnose needs inputs as a tensor (or a tuple of tensors), got {kinds}"
        )
    first = args[0]
    if first.dim() == 0 or first.shape[0] == 0:
        raise InitlabError(
            f"diagnose needs a non-empty batch, got inputs of shape {list(first.shape)}"
        )
    if not (first.is_floating_point() or first.is_complex()):
        return
    linear = next((m for m in model.modules() if isinstance(m, _AFFINE)), None)
    if (
        isinstance(linear, nn.Linear)
        and len(args) == 1
        and first.shape[-1] != linear.in_features
        and next(iter(model.children()), None) is linear
    ):
        raise InitlabError(
            f"inputs of shape {list(first.shape)} do not fit the model's first layer "
            f"({linear.in_features} input features); give [batch, {linear.in_features}]"
        )


def _check_targets(output: torch.Tensor, targets: torch.Tensor | None) -> None:
    """Targets that the default losses can use: class indices within the output's columns
    (one per sample), or floats of the output's shape."""
    if targets is None:
        return
    if not isinstance(targets, torch.Tensor):
        raise InitlabError(f"targets must be a tensor, got {type(targets).__name__}")
    if targets.dtype.is_floating_point:
        if targets.shape != output.shape:
            raise InitlabError(
                f"float targets must have the output's shape {list(output.shape)}, got "
                f"{list(targets.shape)} (class labels must be integers)"
            )
        return
    if targets.dtype == torch.bool or targets.dim() != 1 or targets.shape[0] != output.shape[0]:
        raise InitlabError(
            f"class targets must be integers of shape [{output.shape[0]}] (one per sample), "
            f"got {targets.dtype} of shape {list(targets.shape)}"
        )
    classes = output.shape[1] if output.dim() == 2 else 0
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= classes):
        raise InitlabError(
            f"class targets must lie in 0..{classes - 1} (the output has {classes} columns), "
            f"got {int(targets.min())}..{int(targets.max())}"
        )


def _forward(model: nn.Module, args: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``model(*args)``; a failure of the model on these inputs becomes one line."""
    try:
        return model(*args)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        shapes = ", ".join(str(list(a.shape)) for a in args)
        raise InitlabError(f"the model failed on inputs of shape {shapes}: {first}") from None


def diagnose(
    model: nn.Module,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    targets: torch.Tensor | None = None,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    seed: int = 0,
    progress: Callable[[float, float], None] | None = None,
) -> Diagnosis:
    """One forward and backward pass on ``inputs``; a verdict per Linear/Conv layer.

    Args:
        model: any module with Linear/Conv layers; activation modules of the
            :mod:`initlab.activations` vocabulary are paired with the layer before them.
        inputs: a non-empty batch (a tuple is passed as ``model(*inputs)``).
        targets: optional targets: integer class labels (one per sample, within the
            output's columns) or floats of the output's shape; ``None`` draws random labels
            for logits (see the module docstring for the default losses).
        loss_fn: ``loss_fn(output, targets)``, or ``loss_fn(output)`` when there are no targets.
        seed: seed of the random labels.
        progress: ``progress(done, total)`` as layers pass; called only for deep plain
            chains (:data:`STREAM_FROM_LAYERS`), which are diagnosed layer by layer.

    The model is left as it was: its mode, parameters, ``.grad`` and buffers (batch-norm
    running statistics) are unchanged. Verdict rules and thresholds: see the module docstring.
    """
    args = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    _check_inputs(model, args)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InitlabError("diagnose needs a model with parameters that require grad")
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}

    def loss_of(output: Any) -> torch.Tensor:
        if not isinstance(output, torch.Tensor):
            raise InitlabError(
                f"diagnose needs a model that returns a tensor, got {type(output).__name__}"
            )
        _check_targets(output, targets)
        loss = _loss(output, targets, loss_fn, seed)
        if not (isinstance(loss, torch.Tensor) and loss.dim() == 0 and loss.requires_grad):
            raise InitlabError(
                "diagnose needs a scalar loss that depends on the parameters; check loss_fn "
                "and that the model's forward does not detach its output"
            )
        return loss

    from initlab.probes.diagnose_chain import chain_blocks, diagnose_chain

    blocks = chain_blocks(model) if len(args) == 1 else None
    try:
        if blocks is not None and len(blocks) >= STREAM_FROM_LAYERS:
            numbers, loss = diagnose_chain(
                blocks, args[0], loss_of, _forward_numbers, _add_grad, progress
            )
            layers = _judge(numbers)
        else:
            with torch.enable_grad():
                output, seen = _capture(model, lambda: _forward(model, args))
                loss = loss_of(output)
                torch.autograd.grad(loss, params, allow_unused=True)
            layers = _diagnose_layers(seen)
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
    if not layers:
        raise InitlabError("diagnose found no Linear or Conv layer in the model")
    verdict = min((d.verdict for d in layers), key=SEVERITY.index)
    return Diagnosis(layers, verdict, _recommend(layers, verdict), float(loss.detach()))


def _forward_numbers(
    name: str,
    module: nn.Module,
    act_name: str | None,
    acts: torch.Tensor,
    output: torch.Tensor,
    next_module: nn.Module | None,
) -> dict[str, Any]:
    """One layer's numbers from its forward pass (the gradient's come in :func:`_add_grad`)."""
    weight = getattr(module, "weight", None)
    fans = _fans(weight) if isinstance(weight, torch.Tensor) else (0, 0)
    return {
        "name": name,
        "module": type(module).__name__,
        "activation": act_name,
        "act_std": std(acts),
        "saturated": saturated_fraction(acts, act_name),
        "dead": dead_fraction(acts),
        "weight_std": std(weight) if isinstance(weight, torch.Tensor) else math.nan,
        "fan_in": fans[0],
        "fan_out": fans[1],
        "nonfinite": sum(
            nonfinite_count(t) for t in (weight, output, acts) if isinstance(t, torch.Tensor)
        ),
        "hidden": next_module is not None,
        "can_die": act_name is not None and activation_info(act_name).can_die,
        "symmetric_weights": _symmetric_weights(module, next_module),
        "symmetric_acts": _symmetric_activations(acts),
    }


def _add_grad(numbers: dict[str, Any], grad: torch.Tensor | None) -> None:
    """Complete a layer's numbers with its back-propagated gradient (None: none reached it)."""
    numbers["grad_std"] = std(grad) if grad is not None else math.nan
    if grad is not None:
        numbers["nonfinite"] += nonfinite_count(grad)


def _judge(numbers: list[dict[str, Any]]) -> list[LayerDiagnosis]:
    """Apply the verdict rules to every layer's numbers (references: see the docstring)."""
    if not numbers:
        return []
    ref_act = numbers[0]["act_std"]
    hidden = [d for d in numbers if d["hidden"]]
    ref_grad = hidden[-1]["grad_std"] if hidden else math.nan
    out = []
    for d in numbers:
        verdict, reason = _layer_verdict(d, d["hidden"], ref_act, ref_grad)
        fields = {k: d[k] for k in LayerDiagnosis.__dataclass_fields__ if k in d}
        out.append(LayerDiagnosis(**fields, verdict=verdict, reason=reason))
    return out


def _diagnose_layers(seen: list[_Seen]) -> list[LayerDiagnosis]:
    """Pair each Linear/Conv with the activation module after it, measure, and judge."""
    affine = [i for i, s in enumerate(seen) if isinstance(s.module, _AFFINE)]
    numbers: list[dict[str, Any]] = []
    for k, i in enumerate(affine):
        stop = affine[k + 1] if k + 1 < len(affine) else len(seen)
        after = [s for s in seen[i + 1 : stop] if activation_name_of(s.module) is not None]
        layer = seen[i]
        act_name = activation_name_of(after[0].module) if after else None
        acts = after[0].output if after else layer.output
        next_module = seen[affine[k + 1]].module if k + 1 < len(affine) else None
        d = _forward_numbers(layer.name, layer.module, act_name, acts, layer.output, next_module)
        _add_grad(d, layer.grad)
        numbers.append(d)
    return _judge(numbers)
