"""The CNN half of E3 deep-signal: deep vanilla tanh CNNs trained one by one with ``fit``.

Xiao et al. (2018, "Dynamical isometry and a mean field theory of CNNs") trained vanilla
tanh CNNs of thousands of layers from *delta-orthogonal* kernels at the edge of chaos: a
kernel that is zero except at its spatial centre, where it is ``sigma_w Q`` with ``Q``
orthogonal (their Algorithm 2; ``critical_orthogonal`` gives convolutions these), with
``sigma_w^2`` on the critical line ``chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2] = 1``. Gaussian
kernels of the same variance keep the mean signal but not the spectrum, and Xavier's
variance ``2 / (fan_in + fan_out)`` (``sigma_w^2 = 1`` for equal widths) sits on the
ordered side, where the signal's length and the back-propagated gradient decay with depth.

The network is :func:`initlab.models.cnn.deep_cnn`: ``depth`` 3x3 convolutions of equal
width and tanh, the first three with strides ``(1, 2, 2)`` (28x28 MNIST -> 7x7 before the
deep stack), then a Linear classifier on the flattened 7x7 maps (``cnn_readout="flatten"``),
trained with plain SGD at lr 0.03. The strided start is the downsampling before the deep
stack of Xiao et al.'s CNNs as a public PyTorch reproduction builds it (strides 1, 2, 2,
then global average pooling; we could not retrieve the paper's appendix to check it).

The readout is where we leave the paper, and why. A delta-orthogonal stack *is* a 1x1
convolution at init: the same per-pixel map ``x_p -> F(x_p)`` at every position. Behind
global average pooling its output is ``mean_p F(x_p)``, a function of the image's pixel
histogram alone (a pixel permutation leaves it unchanged; a linear probe on the 16 pooled
features reads 0.22 of MNIST's test digits, against 0.59-0.63 for Xavier's, whose kernels
mix neighbours from step 0), and the off-centre taps that would let it see shapes start at
zero and receive, behind the average, nearly the centre's gradient. In this experiment's
budget (1000 SGD steps of 32 examples, 16 channels) they barely grow: with 14x14 MNIST, no
strides, pooling and lr 0.1 (the previous setting), 1.7% of a kernel's energy was
off-centre after training at depth 50, and delta-orthogonal reached 0.52 test accuracy at
depth 10 and 0.11 at depth 50, Xavier 0.87 and 0.47. The flattening readout sees every
position (linear probe at init 0.65, Xavier 0.78-0.83: the strided centre taps subsample),
and the strides keep its 784 inputs few enough for one learning rate, 0.03, to train every
scheme; with it delta-orthogonal trains as well as Xavier at depths 10 and 50 (0.941 vs
0.938, 0.947 vs 0.947; three ad-hoc seeds at depth 50: 0.913-0.933 vs 0.918-0.924). The same
network is used for every scheme; ``--set cnn_readout=avgpool --set "cnn_strides=[]" --set
cnn_pool=2 --set cnn_lr=0.1`` is the previous setting.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from initlab.data.dataset import Dataset
from initlab.experiments.base import Progress, Recorder, RunOutcome, RunSpec


def images(data: Dataset, pool: int) -> Dataset:
    """``data`` as ``[N, 1, side / pool, side / pool]`` images (``pool x pool`` means)."""
    side = math.isqrt(data.num_features)
    x = data.x.reshape(len(data), 1, side, side)
    if pool > 1:
        x = F.avg_pool2d(x, pool)
    return Dataset(x.contiguous(), data.y, f"{data.name}-{x.shape[-1]}px", data.classes)


def signal_profile(
    model: nn.Sequential, x: torch.Tensor, y: torch.Tensor
) -> dict[str, list[float]]:
    """Per convolution ``l`` of a :func:`~initlab.models.cnn.deep_cnn`: the rms of the
    activation after it, ``a_l = phi(z_l)``, and of the back-propagated gradient ``dL/dz_l``
    (cross-entropy on ``(x, y)``), both over the batch, the channels and the pixels.

    One forward and backward pass with hooks; the model's gradients are left as they were.
    """
    children = list(model.children())
    convs = [i for i, m in enumerate(children) if isinstance(m, nn.Conv2d)]
    pre: list[torch.Tensor] = []
    post: list[torch.Tensor] = []

    def keep_pre(_module: nn.Module, _inputs: Any, out: torch.Tensor) -> None:
        out.retain_grad()
        pre.append(out)

    def keep_post(_module: nn.Module, _inputs: Any, out: torch.Tensor) -> None:
        post.append(out.detach())

    handles = [children[i].register_forward_hook(keep_pre) for i in convs]
    handles += [children[i + 1].register_forward_hook(keep_post) for i in convs]
    saved = [p.grad for p in model.parameters()]
    try:
        F.cross_entropy(model(x), y).backward()
    finally:
        for handle in handles:
            handle.remove()
    gradient = [_rms(z.grad) if z.grad is not None else math.nan for z in pre]
    for p, g in zip(model.parameters(), saved, strict=True):
        p.grad = g
    return {"activation_rms": [_rms(a) for a in post], "gradient_rms": gradient}


def _rms(t: torch.Tensor) -> float:
    return float(t.double().pow(2).mean().sqrt())


def network(spec: dict[str, Any], train: Dataset) -> nn.Sequential:
    """The run's :func:`~initlab.models.cnn.deep_cnn` (runs stored before ``strides`` and
    ``readout`` were recorded had neither: no strides, global average pooling)."""
    from initlab.models.cnn import deep_cnn

    return deep_cnn(
        spec["depth"],
        spec["channels"],
        "tanh",
        train.x.shape[1],
        train.num_classes,
        strides=spec.get("strides", ()),
        readout=spec.get("readout", "avgpool"),
        image_size=train.x.shape[-1],
    )


def train_cnn(
    run: RunSpec,
    recorder: Recorder,
    train: Dataset,
    test: Dataset,
    progress: Progress,
) -> RunOutcome:
    """Build, initialize, probe and train one CNN run of deep-signal; record it."""
    from initlab.experiments.common import single_thread
    from initlab.init import initialize
    from initlab.train.fit import fit

    spec = run.spec
    steps = spec["steps"]
    model = network(spec, train)
    initialize(model, spec["init"], seed=run.seed)
    model.to(train.x.device)
    x, y = train.x[: spec["batch_size"]], train.y[: spec["batch_size"]]  # the probe batch
    with single_thread():
        at_init = signal_profile(model, x, y)

        def on_row(row: dict[str, Any]) -> None:
            progress(float(row["step"]), float(steps))

        result = fit(
            model,
            train,
            optimizer="sgd",
            lr=spec["lr"],
            steps=steps,
            batch_size=spec["batch_size"],
            seed=spec["batch_seed"],
            eval_data=test,
            eval_every=steps,
            log_every=max(1, steps // 100),
            callback=on_row,
        )
        at_end = signal_profile(model, x, y)
    rows = [
        {"step": row["step"], **{k: row[k] for k in ("train_loss", "valid_acc") if k in row}}
        for row in result.history
    ]
    recorder.log_metrics([row for row in rows if len(row) > 1])
    recorder.log_probes(
        [
            {"step": step, "kind": kind, "layer": f"conv{j + 1}",
             "stats": {stat: profile[key][j]}}
            for step, profile in ((0, at_init), (steps, at_end))
            for kind, key, stat in (("activation", "activation_rms", "rms"),
                                    ("gradient", "gradient_rms", "delta_rms"))
            for j in range(len(profile[key]))
        ]
    )  # fmt: skip
    accs = [row["valid_acc"] for row in result.history if "valid_acc" in row]
    losses = [row["train_loss"] for row in result.history if "train_loss" in row]
    progress(float(steps), float(steps))
    return RunOutcome(
        result.status,
        {
            "test_acc": accs[-1] if accs else math.nan,
            "final_loss": losses[-1] if losses else math.nan,
            "diverged_at": result.diverged_at,
            "wall_time": result.wall_time,
        },
    )
