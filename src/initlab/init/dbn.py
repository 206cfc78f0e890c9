"""Greedy layer-wise pretraining of a network's Linear layers as a stack of RBMs (a DBN).

Hinton, Osindero & Teh (2006), "A fast learning algorithm for deep belief nets", and Hinton
& Salakhutdinov (2006), "Reducing the dimensionality of data with neural networks": train an
RBM on the data, then a second RBM on the first one's hidden activities, and so on; the
stack's weights and hidden biases become the starting point of a feed-forward network that
backpropagation fine-tunes. For the model's Linear layers ``L_1 .. L_n`` (module order, a
chain: ``L_i.in_features == L_{i-1}.out_features``):

1. RBM_1 ``(L_1.in_features, L_1.out_features)`` trains on the data (Bernoulli visibles for
   data in [0, 1], Gaussian visibles for standardized real data);
2. RBM_i trains on ``p(h | v)`` of RBM_{i-1} on the same examples (probabilities, not
   samples, as in the 2006 papers' code);
3. ``L_i.weight = W_i`` (``[out, in]``, as the RBM stores it) and ``L_i.bias = c_i`` (the
   hidden biases); the visible biases are not used by the feed-forward net;
4. the output layer ``L_n`` is not an RBM (its targets are labels): ``N(0, output_std^2)``
   weights and zero bias, unless ``pretrain_output`` asks to pretrain it too.

The network's hidden activations should be sigmoids for the weights to mean what they
meant in the RBMs (``p(h = 1 | v) = sigmoid(W v + c)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import pairwise

import torch
from torch import Tensor, nn

from initlab.errors import InitlabError
from initlab.init.apply import InitSummary, LayerInit, initializable_layers
from initlab.init.fans import compute_fans
from initlab.init.rbm import (
    RBM,
    SEED_OFFSETS,
    RBMConfig,
    RBMHistory,
    VisibleKind,
    check_data,
    train_rbm,
)

LAYER_SEED_STRIDE = 1_000_003  # RBM i trains from seed + i * stride (its own streams)
OUTPUT_SEED_OFFSET = 3_000_017  # the output layer's weights: seed + this

LayerCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class PretrainedLayer:
    """What pretraining did for one Linear layer: its RBM's monitors, epoch 0 first."""

    name: str  # module name ("linear1")
    shape: tuple[int, int]  # (n_visible, n_hidden) of the RBM
    visible: VisibleKind
    history: RBMHistory
    rbm: RBM = field(repr=False)  # the trained RBM (for pictures: filters, samples)


@dataclass(frozen=True)
class DBNSummary(InitSummary):
    """:class:`InitSummary` rows plus each pretrained layer's RBM and monitors."""

    pretrained: tuple[PretrainedLayer, ...] = ()

    def table(self) -> str:
        """The init table, then one line per RBM: epochs and first/last monitor values."""
        lines = [super().table(), ""]
        for layer in self.pretrained:
            first, last = layer.history.rows[0], layer.history.rows[-1]
            text = (
                f"{layer.name}: RBM {layer.shape[0]}x{layer.shape[1]} ({layer.visible}), "
                f"{int(last['epoch'])} epochs, recon error {first['recon_error']:.4g} -> "
                f"{last['recon_error']:.4g}"
            )
            if "free_energy_gap" in last:
                text += f", free-energy gap {last['free_energy_gap']:.4g}"
            lines.append(text)
        return "\n".join(lines)


def dbn_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The model's Linear layers in module order, checked to form a chain; else an error."""
    layers = initializable_layers(model)
    if not layers:
        raise InitlabError(f"{type(model).__name__} has no Linear or Conv layer to initialize")
    others = [f"{name} ({type(m).__name__})" for name, m in layers if not isinstance(m, nn.Linear)]
    if others:
        raise InitlabError(f"dbn pretrains Linear layers only; the model also has {others[0]}")
    linears = [(name, m) for name, m in layers if isinstance(m, nn.Linear)]
    for (prev_name, prev), (name, layer) in pairwise(linears):
        if layer.in_features != prev.out_features:
            raise InitlabError(
                f"dbn needs a chain of Linear layers; {name} takes {layer.in_features} inputs "
                f"but {prev_name} gives {prev.out_features}"
            )
    return linears


def pretrain_dbn(
    model: nn.Module,
    data: Tensor,
    config: RBMConfig | None = None,
    *,
    held_out: Tensor | None = None,
    visible: VisibleKind = "bernoulli",
    hidden_lr: float | None = None,
    pretrain_output: bool = False,
    output_std: float = 0.01,
    seed: int = 0,
    callback: LayerCallback | None = None,
) -> DBNSummary:
    """Pretrain ``model``'s Linear layers greedily as RBMs and copy them in; returns a summary.

    Args:
        model: a network whose Linear layers (module order) form a chain, e.g. ``mlp(...)``
            with sigmoid activations.
        data: inputs ``[N, in_features]`` (or ``[N, ...]`` with that many values); in [0, 1]
            for Bernoulli visibles.
        config: the RBMs' training settings (:class:`~initlab.init.rbm.RBMConfig`).
        held_out: held-out inputs for the free-energy gap monitor (optional).
        visible: the first RBM's visible units, ``bernoulli`` or ``gaussian``; the upper
            RBMs see probabilities, so theirs are Bernoulli.
        hidden_lr: learning rate of the upper RBMs (default ``config.lr``; with Gaussian
            visibles the first RBM wants a smaller rate than the others).
        pretrain_output: also pretrain the last Linear layer (default: it gets
            ``N(0, output_std^2)`` weights and zero bias, as a classifier on top).
        output_std: std of the output layer's weights when it is not pretrained.
        seed: RBM ``i`` trains from ``seed + i * LAYER_SEED_STRIDE`` (own weight, minibatch
            and Gibbs streams); same seed and data, same weights.
        callback: ``callback(layer_index, epoch_row)`` after every epoch of every RBM.
    """
    config = config or RBMConfig()
    config.check()
    if output_std < 0:
        raise InitlabError(f"output_std must be >= 0, got {output_std}")
    layers = dbn_layers(model)
    if len(layers) < 2 and not pretrain_output:
        raise InitlabError(
            "dbn pretrains the hidden layers and leaves the output layer to backprop, but the "
            "model has one Linear layer; add a hidden layer or pass pretrain_output=True"
        )
    width = layers[0][1].in_features
    x = check_data(data, "dbn data", width).reshape(len(data), -1).float().cpu()
    held = None
    if held_out is not None:
        held = check_data(held_out, "dbn held-out data", width)
        held = held.reshape(len(held), -1).float().cpu()[: config.monitor_size]
    if visible == "bernoulli" and (x.min() < 0 or x.max() > 1):
        raise InitlabError(
            f"Bernoulli visible units need data in [0, 1], got values in [{float(x.min()):.3g}, "
            f"{float(x.max()):.3g}]; scale it, or standardize it and use visible=gaussian"
        )
    count = len(layers) if pretrain_output else len(layers) - 1
    pretrained: list[PretrainedLayer] = []
    for i, (name, layer) in enumerate(layers[:count]):
        kind: VisibleKind = visible if i == 0 else "bernoulli"
        layer_config = config if i == 0 or hidden_lr is None else replace(config, lr=hidden_lr)
        layer_seed = seed + i * LAYER_SEED_STRIDE
        weights = torch.Generator().manual_seed(layer_seed + SEED_OFFSETS["weights"])
        rbm = RBM(
            layer.in_features, layer.out_features, kind, init_std=config.init_std, generator=weights
        )
        on_epoch = None if callback is None else (lambda row, i=i: callback(i, row))
        history = train_rbm(rbm, x, layer_config, held_out=held, seed=layer_seed, callback=on_epoch)
        pretrained.append(PretrainedLayer(name, (rbm.n_visible, rbm.n_hidden), kind, history, rbm))
        with torch.no_grad():  # 3. the RBM's weights and hidden biases go into the layer
            layer.weight.copy_(rbm.weight)
            if layer.bias is not None:
                layer.bias.copy_(rbm.hidden_bias)
            x = rbm.hidden_probs(x)
            held = None if held is None else rbm.hidden_probs(held)
    rows = [_row(name, layer, "dbn (RBM)") for name, layer in layers[:count]]
    if count < len(layers):  # 4. the output layer: small random weights, zero bias
        name, layer = layers[-1]
        gen = torch.Generator().manual_seed(seed + OUTPUT_SEED_OFFSET)
        with torch.no_grad():
            draw = torch.randn(layer.weight.shape, generator=gen) * output_std
            layer.weight.copy_(draw)
            if layer.bias is not None:
                layer.bias.zero_()
        rows.append(_row(name, layer, f"normal:std={output_std:g}"))
    return DBNSummary(tuple(rows), tuple(pretrained))


def dbn_(
    model: nn.Module,
    data: Tensor,
    *,
    seed: int = 0,
    bias: str | float | None = None,
    epochs: int = 10,
    k: int = 1,
    lr: float = 0.1,
    hidden_lr: float = 0.0,
    sampling: str = "cd",
    visible: str = "bernoulli",
    batch_size: int = 100,
    weight_decay: float = 2e-4,
    momentum: float = 0.9,
    sparsity_target: float = 0.0,
    sparsity_cost: float = 0.0,
    lr_schedule: str = "constant",
    pretrain_output: bool = False,
    output_std: float = 0.01,
    progress: bool = False,
) -> DBNSummary:
    """DBN pretraining (Hinton, Osindero & Teh 2006): a greedy stack of RBMs, CD-k or PCD.

    ``initialize(model, "dbn", data=x)`` trains one RBM per hidden Linear layer, bottom up,
    each on the hidden probabilities ``p(h | v) = sigmoid(W v + c)`` of the one below, with
    ``dW = <h v>_data - <h v>_model - weight_decay W`` and momentum 0.5 then ``momentum``
    (Hinton's practical guide, UTML TR 2010-003), and copies ``W`` and ``c`` into the layer;
    the output layer gets ``N(0, output_std^2)``. ``hidden_lr`` 0 uses ``lr`` for every RBM.
    See :func:`pretrain_dbn` for held-out monitoring and full control.
    """
    if bias is not None:
        raise InitlabError("dbn sets the biases from its RBMs' hidden biases; leave bias unset")
    config = RBMConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        k=k,
        sampling=sampling,  # type: ignore[arg-type]
        momentum=momentum,
        weight_decay=weight_decay,
        sparsity_target=sparsity_target,
        sparsity_cost=sparsity_cost,
        lr_schedule=lr_schedule,  # type: ignore[arg-type]
    )
    layers = dbn_layers(model)
    count = len(layers) if pretrain_output else len(layers) - 1
    with _pretrain_bar(count * epochs, progress) as update:
        return pretrain_dbn(
            model,
            data,
            config,
            visible=visible,  # type: ignore[arg-type]
            hidden_lr=hidden_lr or None,
            pretrain_output=pretrain_output,
            output_std=output_std,
            seed=seed,
            callback=lambda i, row: update(i, i * epochs + int(row["epoch"]), row["recon_error"]),
        )


@contextmanager
def _pretrain_bar(total: int, enabled: bool) -> Iterator[Callable[[int, int, float], None]]:
    """A rich progress bar over RBM epochs (or a no-op): ``update(layer, done, recon)``."""
    if not enabled:
        yield lambda layer, done, recon: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("pretrain RBM {task.fields[layer]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("recon error {task.fields[recon]}"),
    )
    with Progress(*columns) as bar:
        task = bar.add_task("pretrain", total=total, layer=1, recon="-")

        def update(layer: int, done: int, recon: float) -> None:
            bar.update(task, completed=done, layer=layer + 1, recon=f"{recon:.4g}")

        yield update


def _row(name: str, layer: nn.Linear, scheme: str) -> LayerInit:
    fan_in, fan_out = compute_fans(layer.weight)
    return LayerInit(
        name=name,
        kind=type(layer).__name__,
        shape=tuple(layer.weight.shape),
        scheme=scheme,
        bias="-" if layer.bias is None else ("rbm hidden" if "dbn" in scheme else "zeros"),
        fan_in=fan_in,
        fan_out=fan_out,
        weight_std=float(layer.weight.detach().double().std(correction=0)),
    )


__all__ = ["DBNSummary", "PretrainedLayer", "dbn_", "dbn_layers", "pretrain_dbn"]
