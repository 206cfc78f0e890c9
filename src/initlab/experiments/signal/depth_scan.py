"""A4 depth-scan: activation and gradient std per layer of very deep nets at init.

A deep vanilla MLP (``depth`` hidden layers of ``width`` units, no normalization, no
residuals; :func:`initlab.models.deep_mlp`) gets a batch of standard normal inputs; for every
scheme x activation we record, per layer l, the std of the activations ``z_l = phi(h_l)`` and
of the back-propagated gradients ``dL/dh_l`` (w.r.t. the pre-activations), for the loss
``L = sum(out * r)`` with a fixed standard normal ``r`` (so the gradient entering the output
layer has unit variance).

Mean-field prediction (Poole et al. 2016, eq. 3; Schoenholz et al. 2017, eq. 5) for i.i.d.
zero-mean weights of variance ``sigma_w^2 / fan_in`` and biases of variance ``sigma_b^2``
(both read off the initialized network)::

    q_1     = sigma_w^2 E[x^2] + sigma_b^2
    q_{l+1} = sigma_w^2 E[phi(sqrt(q_l) z)^2] + sigma_b^2          (pre-activation variance)
    std(z_l)^2 = E[phi(sqrt(q_l) z)^2] - E[phi(sqrt(q_l) z)]^2
    g_L = 1,   g_l = g_{l+1} sigma_w^2 E[phi'(sqrt(q_l) z)^2]       (gradient variance)

with Gaussian expectations by quadrature (:mod:`initlab.init.meanfield`). It is drawn
(dashed) for the schemes whose weights are i.i.d. zero-mean or orthogonal; the gradient
recursion assumes backward weights independent of forward ones, as the theory does. The
prediction is for infinite width: at depth much larger than the width the measured std
wanders from it, because finite-width fluctuations compound (Hanin & Rolnick 2018, "How
to start training: the effect of initialization and architecture").

Cost (issue 13; full defaults, 10 runs, one thread, CPU seconds): 16.7 s on a 2-core AMD
EPYC host with AVX-512 (2026-12-07), against an arithmetic floor of 6.6 s (the 20,020
products of 256 x 256 x 256 at the 512^3 GEMM rate, ~100 GFLOP/s): 2.5x; 35 s on the AVX2
host before the skip below. A scheme's two runs (tanh, relu) share one draw of its weights
(no scheme reads the activation; the plan puts them next to each other). A signal that has
vanished (exactly zero, denormals being flushed) needs no product: 7169 of the 19,990
hidden-layer products are skipped, with the same numbers (:func:`_vanished`). What is left
is mostly not the code's: the products themselves (~85-90 GFLOP/s on these shapes);
orthogonal's 1002 QR factorizations 2.5 s (LAPACK, not in the floor); the other draws
0.3-0.5 s a scheme (torch's generator; the same numbers need it); tanh (MKL's vector
tanh, 2.5 ns an element); the figure, imports, the per-layer statistics (~1 s), the
mean-field prediction (~0.7 s) and the store's 20,000 probe rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch

from initlab.experiments.base import (
    Experiment,
    ExperimentData,
    Progress,
    Recorder,
    RunData,
    RunOutcome,
    RunSpec,
    no_progress,
)
from initlab.experiments.common import (
    check_activations,
    check_inits,
    check_positive,
    color,
    fmt,
    init_label,
    run_seeds,
    single_thread,
)
from initlab.experiments.registry import register
from initlab.experiments.seeds import stream_seed
from initlab.report.figures import FigureInfo, LinePanel, Series

MEAN_FIELD_SCHEMES: tuple[str, ...] = (
    "normal",
    "uniform",
    "truncated_normal",
    "standard",
    "xavier_normal",
    "xavier_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "variance_scaling",
    "orthogonal",
    "critical",
    "glorot_normal",
    "glorot_uniform",
    "kaiming_normal",
    "kaiming_uniform",
)
"""Schemes with i.i.d. zero-mean (or orthogonal) weights: the mean-field prediction applies."""

SAFE_VAR = (1e-30, 1e30)  # variances trusted from the float32 passes (see layer_stats)
STATS_CHUNK = 64  # layers whose statistics are computed in one vectorized pass
CENTRE_BYTES = 1 << 20  # centred squares computed this many bytes at a time (the L2 cache)
FINITE_BLOCK = 4  # rows with a NaN or Inf: their float64 statistics, this many at a time
TINY = 1e-30  # a std below this counts as vanished (and is not compared with the theory)
WINDOW = 15  # the figure's y axis spans at most 1e-15 .. 1e15 around the data


@dataclass(frozen=True)
class DepthScanConfig:
    depth: Annotated[int, "number of hidden layers"] = 1000
    width: Annotated[int, "units per layer (and input size)"] = 256
    samples: Annotated[int, "Gaussian input vectors in the batch"] = 256
    activations: Annotated[tuple[str, ...], "activation functions"] = ("tanh", "relu")
    inits: Annotated[
        tuple[str, ...],
        "init schemes: std 0.5/sqrt(n), LeCun sqrt(1/n), He sqrt(2/n), orthogonal, and the "
        "tanh edge of chaos (sigma_b^2 = 0.05)",
    ] = ("variance_scaling:scale=0.25", "lecun_normal", "he_normal", "orthogonal", "critical")
    dtype: Annotated[
        Literal["float32", "float64"], "computation precision (float64 shows vanishing below 1e-38)"
    ] = "float32"
    seeds: Annotated[int, "number of seeds; each is a separate run"] = 1
    mean_field: Annotated[bool, "compute and draw the mean-field prediction"] = True


def mean_field_prediction(
    activation: str, sigma_w2: float, sigma_b2: float, q0: float, depth: int
) -> tuple[list[float], list[float]]:
    """Predicted std of activations and of gradients at layers 1..depth (see module doc).

    The gradient recursion starts from unit variance at the output layer's input gradient.
    The three Gaussian expectations of a layer share one quadrature grid
    (:func:`initlab.init.meanfield.gaussian_moments`) and are computed once per distinct
    ``q`` (a variance that has reached its fixed point, or 0, repeats for hundreds of layers).
    """
    from initlab.init.meanfield import gaussian_moments

    act_std, dphi2 = [], []
    moments: dict[float, tuple[float, float, float]] = {}
    q = sigma_w2 * q0 + sigma_b2
    for _ in range(depth):
        q = min(q, 1e300)
        if q not in moments:
            moments[q] = gaussian_moments(activation, q)
        first, second, slope = moments[q]  # E[phi], E[phi^2], E[phi'^2] at variance q
        act_std.append(math.sqrt(max(second - first * first, 0.0)))
        dphi2.append(slope)
        q = sigma_w2 * second + sigma_b2
    grad_var = [0.0] * depth
    g = 1.0 * sigma_w2  # output layer: W_out^T r has variance sigma_w^2 E[r^2]
    for layer in range(depth - 1, -1, -1):
        g = g * dphi2[layer]  # chi_1 of the layer with unit weight variance
        grad_var[layer] = g
        g = g * sigma_w2
    return act_std, [math.sqrt(v) for v in grad_var]


def network_and_inputs(
    spec: dict[str, Any],
    seed: int,
    reuse: torch.nn.Module | None = None,
    drawn: bool = False,
) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The run's network (each scheme's own bias rule: N(0, sigma_b^2) for critical), from
    the weights stream of ``seed``; its Gaussian input batch (inputs stream) and the fixed
    output weighting ``r`` of the loss (targets stream), all independent of each other
    (:mod:`initlab.experiments.seeds`), in the run's dtype.

    ``reuse``: the float32 network an earlier call returned; when it has this run's depth
    and width it is initialized again instead of building a new one (2002 modules: 0.7 s of
    a 1000-layer run), its activation modules swapped when another activation is asked
    for. ``initialize`` draws every weight and bias anew (no scheme reads what a tensor
    held), so the numbers are those of a fresh network. ``drawn``: ``reuse`` already holds
    this run's weights (the same scheme and seed; no scheme depends on the activation), so
    they are not drawn again: the draw is 0.7 s of normals a run, 4.6 s with orthogonal's
    1002 QR factorizations.
    """
    from initlab.data.gaussian import gaussian_inputs
    from initlab.init import initialize
    from initlab.models import deep_mlp

    depth, width, samples = spec["depth"], spec["width"], spec["samples"]
    dtype = torch.float64 if spec["dtype"] == "float64" else torch.float32
    if reuse is not None and _reusable(reuse, depth, width):
        model = _with_activation(reuse, spec["activation"])
    else:
        drawn = False
        with torch.device("meta"):  # no default init: initialize() fills every parameter
            model = deep_mlp(depth, width, spec["activation"], bias=True)
        model = model.to_empty(device="cpu")
    if not drawn or dtype != torch.float32:
        initialize(model, spec["init"], seed=stream_seed(seed, "weights"))
    first = model.linear1.weight
    if first.dtype != dtype:  # Module.to and requires_grad_ walk all 2002 modules
        model = model.to(dtype)
    if first.requires_grad:
        model.requires_grad_(False)
    x = gaussian_inputs(samples, width, seed=spec.get("input_seed", stream_seed(seed, "inputs")))
    gen = torch.Generator().manual_seed(spec.get("target_seed", stream_seed(seed, "targets")))
    r = torch.randn(samples, width, generator=gen, dtype=dtype)
    return model, x.to(dtype), r


def weights_key(spec: dict[str, Any], seed: int) -> tuple[Any, ...]:
    """What a run's weights depend on: scheme, weights seed, shape and dtype (not the
    activation): two runs with one key get the same network."""
    return (spec["init"], stream_seed(seed, "weights"), spec["depth"], spec["width"], spec["dtype"])


def _reusable(model: torch.nn.Module, depth: int, width: int) -> bool:
    """Whether ``model`` is a float32 ``deep_mlp(depth, width, ...)`` on the CPU (as
    :func:`network_and_inputs` makes them: all parameters of one dtype and device)."""
    from initlab.models import MLP

    if not isinstance(model, MLP) or model.spec.batchnorm or model.spec.dropout > 0:
        return False
    if model.spec.widths != (width,) * (depth + 2) or not model.spec.bias:
        return False
    first = model.linear1.weight
    return first.dtype == torch.float32 and first.device.type == "cpu"


def _with_activation(model: torch.nn.Module, activation: str) -> torch.nn.Module:
    """``model`` (a plain ``deep_mlp``) with its activation modules and spec set to
    ``activation``, in place; the linear layers are untouched."""
    import dataclasses

    from initlab.activations import make_activation

    if model.spec.activation == activation:
        return model
    for layer in range(1, model.spec.depth):
        setattr(model, f"act{layer}", make_activation(activation))
    model.spec = dataclasses.replace(model.spec, activation=activation)
    return model


def layer_stats(stack: torch.Tensor, scratch: torch.Tensor | None = None) -> list[dict[str, float]]:
    """Mean, population std and non-finite count of each ``stack[l]`` over its finite
    entries (as :func:`initlab.probes.stats.mean` / ``std``), for all layers of the chunk
    at once instead of three small passes per layer.

    Two passes in the chunk's own precision, ``mean = sum / n`` and ``var = |x - mean|^2 /
    n`` (a sum, then the centred squares summed: several times faster than ``var_mean``'s
    Welford pass), written into ``scratch`` (a buffer of at least the chunk's size, reused
    from chunk to chunk: a fresh 16 MB buffer per chunk cost more in page faults than the
    arithmetic). Rows whose variance leaves [1e-30, 1e30] (vanishing or exploding signals,
    whose squares under- or overflow a float32) are redone on the row scaled by a power of
    two (exact), and rows with a NaN or Inf over their finite entries only, in float64.
    """
    flat = stack.reshape(stack.shape[0], -1)
    rows, n = flat.shape
    if scratch is None or scratch.numel() < flat.numel() or scratch.dtype != flat.dtype:
        scratch = torch.empty_like(flat)
    work = scratch.reshape(-1)[: flat.numel()].view(rows, n)
    mu32 = flat.sum(1, keepdim=True) / n
    var = (_centred_squares(flat, mu32, work) / n).double()
    mu = mu32.squeeze(1).double()
    bad = torch.zeros(rows, dtype=torch.int64)
    ok = torch.isfinite(mu) & (var >= SAFE_VAR[0]) & (var <= SAFE_VAR[1])
    wide = (~ok).nonzero().flatten()
    if wide.numel():
        broken = _rescaled_stats(flat, wide, work, mu, var)
        if broken.numel():
            _finite_stats(flat, broken, mu, var, bad)
    return [
        {"mean": m, "std": math.sqrt(v) if v >= 0 else math.nan, "nonfinite": int(b)}
        for m, v, b in zip(mu.tolist(), var.tolist(), bad.tolist(), strict=True)
    ]


def _centred_squares(flat: torch.Tensor, mean: torch.Tensor, work: torch.Tensor) -> torch.Tensor:
    """``sum_j (flat[i, j] - mean[i])^2`` of every row, over blocks of rows that fill about
    :data:`CENTRE_BYTES` of ``work`` (the centred squares stay in the core's cache between
    the subtraction, the square and the sum: 3.2 ms instead of 5.4 ms for 64 rows of 65536
    floats, measured; each row's sum is the same reduction, so the numbers are too)."""
    rows, n = flat.shape
    block = max(1, CENTRE_BYTES // (n * flat.element_size()))
    sums = torch.empty(rows, dtype=flat.dtype)
    for start in range(0, rows, block):
        stop = min(start + block, rows)
        part = work[: stop - start]
        torch.sub(flat[start:stop], mean[start:stop], out=part)
        part.mul_(part)
        torch.sum(part, 1, out=sums[start:stop])
    return sums


def _rescaled_stats(
    flat: torch.Tensor, wide: torch.Tensor, work: torch.Tensor, mu: torch.Tensor, var: torch.Tensor
) -> torch.Tensor:
    """Mean and variance of the rows ``wide`` of ``flat`` on each row scaled by the power
    of two that brings its largest magnitude to [0.5, 1) (exact: the float passes then
    neither under- nor overflow; a vanishing ReLU signal reaches 1e-30 and below within the
    depth), into ``mu`` and ``var``; returns the rows holding a NaN or Inf.

    The largest magnitudes come from ``amax`` and ``amin`` over the chunk (no copy). Rows
    that are all zeros (a vanished signal, flushed to 0: most wide rows of a vanishing run)
    keep the first pass's mean and variance, exactly 0; only the other finite rows are
    copied and rescaled (the copy and five passes cost 10 ms a chunk of 64 zero rows).
    """
    n = flat.shape[1]
    high, low = flat.amax(1), flat.amin(1)  # aminmax(dim=1) is 7x slower than the two
    amax = torch.maximum(high.abs(), low.abs())[wide]  # NaN when the row has one
    finite = torch.isfinite(amax)
    live = finite & (amax != 0)
    rows = wide[live]
    if rows.numel():
        sub = work[: rows.numel()]
        torch.index_select(flat, 0, rows, out=sub)
        limit = 126 if sub.dtype == torch.float32 else 1022
        exponent = torch.frexp(amax[live]).exponent
        scale = torch.pow(2.0, (-exponent).clamp(-limit, limit).to(sub.dtype)).unsqueeze(1)
        sub.mul_(scale)
        sub_mu = sub.sum(1, keepdim=True) / n
        sub.sub_(sub_mu)
        sub.mul_(sub)
        sub_var = sub.sum(1) / n
        scale64 = scale.squeeze(1).double()
        mu[rows] = sub_mu.squeeze(1).double() / scale64
        var[rows] = sub_var.double() / scale64.square()
    return wide[~finite]


def _finite_stats(
    flat: torch.Tensor, rows: torch.Tensor, mu: torch.Tensor, var: torch.Tensor, bad: torch.Tensor
) -> None:
    """Mean, population variance (float64, two passes) and non-finite count of the finite
    entries of each row in ``rows`` of ``flat`` (NaN when a row has none), in place; a few
    rows at a time, so that the float64 copies stay in cache."""
    for block in rows.split(FINITE_BLOCK):
        values = flat.index_select(0, block).double()
        finite = torch.isfinite(values)
        count = finite.sum(1)
        mean = torch.where(finite, values, 0.0).sum(1) / count  # 0 / 0: NaN, no finite entry
        centred = torch.where(finite, values - mean.unsqueeze(1), 0.0)
        mu[block] = mean
        var[block] = centred.square().sum(1) / count
        bad[block] = values.shape[1] - count


def propagate(
    model: torch.nn.Module,
    x: torch.Tensor,
    r: torch.Tensor,
    activation: str,
    depth: int,
    progress: Progress = no_progress,
    buffers: dict[str, torch.Tensor] | None = None,
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Per-layer statistics of ``z_l = phi(h_l)`` and of ``dL/dh_l`` for ``L = sum(out * r)``.

    The forward and backward passes are written out (no autograd, no hooks): one ``addmm``
    per layer each way, ``h_l = z_{l-1} W_l^T + b_l`` and ``dL/dz_{l-1} = dL/dh_l W_l``
    (none where the signal has vanished to exactly zero: :func:`_vanished`),
    the activation's derivative from the batched engine's kernels
    (:mod:`initlab.train.batched_ops`, autograd's own ATen backward kernels). The layers'
    outputs are kept for the backward pass in one ``[depth, samples, width]`` buffer, and
    statistics are taken over chunks of :data:`STATS_CHUNK` layers at once. Denormal floats
    are flushed to zero meanwhile (``torch.set_flush_denormal``): a vanishing signal
    otherwise spends hundreds of layers in the subnormal range (below 1.2e-38 in float32),
    where every multiply is ~100x slower on x86; flushed, such values read 0 a few layers
    earlier ("vanish (underflow to 0)") instead of ~1e-40.

    ``buffers``: a dict this function keeps its working buffers in, for the next call to
    reuse (262 MB a buffer at depth 1000: the first touch of fresh memory, page faults,
    cost 0.17 s of system time each); every value in them is written before it is read.
    """
    from initlab.train.batched_ops import activation_kernels

    kernels = activation_kernels(activation)
    samples, width = x.shape
    linears = [getattr(model, f"linear{layer}") for layer in range(1, depth + 2)]
    kept = {} if buffers is None else buffers
    z_all = _buffer(kept, "z", (depth, samples, width), x.dtype)
    h_all = z_all if kernels.output_only else _buffer(kept, "h", z_all.shape, x.dtype)
    grads = _buffer(kept, "grads", (min(STATS_CHUNK, depth), samples, width), x.dtype)
    scratch = _buffer(kept, "scratch", grads.shape, x.dtype)  # layer_stats' working rows
    act: list[dict[str, float]] = []
    grad: list[dict[str, float] | None] = [None] * depth
    total = 2 * depth
    torch.set_flush_denormal(True)
    try:
        z = x
        for layer in range(depth):
            lin = linears[layer]
            if _vanished(z, lin.weight):  # z W^T is zero: h = b
                h_all[layer].copy_(lin.bias.expand_as(h_all[layer]))
            else:
                torch.addmm(lin.bias, z, lin.weight.t(), out=h_all[layer])
            z = kernels.forward(h_all[layer], z_all[layer])
            if (layer + 1) % STATS_CHUNK == 0 or layer + 1 == depth:
                act.extend(layer_stats(z_all[len(act) : layer + 1], scratch))
                progress(layer + 1, total)
        g = torch.mm(r, linears[depth].weight)  # dL/dz_L
        gh = torch.empty_like(g)
        chunk_end = depth
        for layer in range(depth - 1, -1, -1):
            slot = grads[(depth - 1 - layer) % grads.shape[0]]
            kernels.backward(g, h_all[layer], z_all[layer], slot)  # dL/dh_l
            if layer > 0:
                if _vanished(slot, linears[layer].weight):
                    gh.zero_()
                else:
                    torch.mm(slot, linears[layer].weight, out=gh)
                g, gh = gh, g
            done = chunk_end - layer
            if done == grads.shape[0] or layer == 0:
                stats = layer_stats(grads[:done], scratch)
                for k, record in enumerate(stats):
                    grad[chunk_end - 1 - k] = record
                chunk_end = layer
                progress(2 * depth - layer, total)
    finally:
        torch.set_flush_denormal(False)  # torch has no getter; off is its default
    return act, [g for g in grad if g is not None]


def _vanished(signal: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``signal`` is exactly zero and ``weight`` finite, so that a product of the
    two is zero and need not be computed (a vanished signal, flushed to 0, stays 0: in the
    default scan the ReLU runs with LeCun, orthogonal and 0.5/sqrt(n) weights and tanh with
    0.5/sqrt(n) are zero over most of their 1000 layers, and their gradients too, 36% of
    all the products). The two checks read the tensors once (~15 us at 256 x 256) where the
    product costs ~0.4 ms. The values are those of the product, up to the sign of a zero.

    ``aminmax`` is one pass (8 us here; ``any`` on floats 38 us), and a NaN fails it; a
    finite sum of the weights means no entry is Inf or NaN (5 us; ``isfinite().all()`` is
    four passes, 170 us; a sum that overflows with finite entries only costs the skip)."""
    low, high = torch.aminmax(signal)
    if float(low) != 0.0 or float(high) != 0.0:
        return False
    return math.isfinite(float(weight.sum()))


def _buffer(
    buffers: dict[str, torch.Tensor], name: str, shape: tuple[int, ...], dtype: torch.dtype
) -> torch.Tensor:
    """``buffers[name]`` when it has this shape and dtype, else a new one stored there."""
    found = buffers.get(name)
    if found is None or found.shape != torch.Size(shape) or found.dtype != dtype:
        found = buffers[name] = torch.empty(shape, dtype=dtype)
    return found


@register
class DepthScan(Experiment):
    """Per-layer std of activations and gradients through 1000 layers, per scheme."""

    name = "depth-scan"
    description = "A4: activation and gradient std per layer at init, up to depth 1000"
    cost = "~25 s"  # measured: benchmarks/suite.py, CPU seconds (README, Performance)
    source = (
        "Poole et al. 2016 (transient chaos), Schoenholz et al. 2017 (deep information "
        "propagation): mean-field signal propagation"
    )
    Config = DepthScanConfig
    quick: ClassVar[dict[str, Any]] = {"depth": 60, "width": 128, "samples": 128}
    _network: torch.nn.Module | None = None  # the last float32 run's network (see execute)
    _weights: tuple[Any, ...] | None = None  # its weights_key
    _variance_cache: tuple[float, float] | None = None  # its _variances

    def __init__(self) -> None:
        super().__init__()
        self._buffers: dict[str, torch.Tensor] = {}  # propagate's, reused from run to run

    def validate(self, config: DepthScanConfig) -> None:
        super().validate(config)
        check_activations(config.activations)
        check_inits(config.inits)
        check_positive(depth=config.depth, width=config.width, samples=config.samples)

    def flops(self, config: DepthScanConfig) -> float:
        """Per run: the forward products and the input-gradient products of every layer."""
        runs = config.seeds * len(config.activations) * len(config.inits)
        layer = 2.0 * config.samples * config.width * config.width
        return runs * (config.depth + 1) * 2 * layer

    def plan(self, config: DepthScanConfig, seed: int = 0) -> list[RunSpec]:
        runs = []
        for s in run_seeds(seed, config.seeds):  # one scheme's runs next to each other:
            for init in config.inits:  # they share the network's weights (execute)
                for activation in config.activations:
                    key = f"{activation}/{init}" + (f"/seed={s}" if config.seeds > 1 else "")
                    spec = {
                        "activation": activation,
                        "init": init,
                        "depth": config.depth,
                        "width": config.width,
                        "samples": config.samples,
                        "dtype": config.dtype,
                        "mean_field": config.mean_field,
                        "input_seed": stream_seed(s, "inputs"),
                        "target_seed": stream_seed(s, "targets"),
                    }
                    runs.append(RunSpec(key, spec, s))
        return runs

    def execute(
        self,
        run: RunSpec,
        config: DepthScanConfig,
        recorder: Recorder,
        progress: Progress = no_progress,
    ) -> RunOutcome:
        from initlab.init import parse_scheme

        spec = run.spec
        depth, activation = spec["depth"], spec["activation"]
        # 1.-3. network and inputs, forward and backward by hand, statistics in chunks; on
        # one thread: on a shared 2-core machine two threads made this 10x slower (60 s vs
        # 6 s a run, measured), and the per-layer products of 256 x 256 gain little
        with single_thread():
            key = weights_key(spec, run.seed)
            drawn = self._network is not None and key == self._weights
            self._weights = None  # a run that fails here leaves no half-drawn weights named
            model, x, r = network_and_inputs(spec, run.seed, self._network, drawn)
            act, grad = propagate(model, x, r, activation, depth, progress, self._buffers)
        # the next run of this shape initializes this network again instead of building
        # one, or, with the same scheme and seed (the plan puts them next), keeps its weights
        self._network = model if spec["dtype"] == "float32" else None
        self._weights = key if self._network is not None else None
        records = []
        for layer in range(1, depth + 1):
            records.append({"step": 0, "layer": f"act{layer}", "kind": "activation",
                            "stats": act[layer - 1], "histogram": None})  # fmt: skip
            records.append({"step": 0, "layer": f"linear{layer}", "kind": "gradient",
                            "stats": grad[layer - 1], "histogram": None})  # fmt: skip
        recorder.log_probes(records)
        total = 2 * depth
        # 4. the mean-field prediction from the network's own weight and bias variances
        if not drawn or self._variance_cache is None:  # the same weights: the same values
            self._variance_cache = _variances(model, depth)
        sigma_w2, sigma_b2 = self._variance_cache
        summary = {"sigma_w2": sigma_w2, "sigma_b2": sigma_b2}
        scheme_name = parse_scheme(spec["init"])[0].name
        if spec["mean_field"] and scheme_name in MEAN_FIELD_SCHEMES:
            q0 = float(x.double().pow(2).mean())
            with single_thread():
                mf_act, mf_grad = mean_field_prediction(activation, sigma_w2, sigma_b2, q0, depth)
            recorder.log_metrics(
                [
                    {"step": layer, "meanfield_act_std": a, "meanfield_grad_std": g}
                    for layer, (a, g) in enumerate(zip(mf_act, mf_grad, strict=True), 1)
                    if math.isfinite(a) and math.isfinite(g)
                ]
            )
        progress(total, total)
        return RunOutcome("done", summary)

    # -- results ----------------------------------------------------------------------
    @staticmethod
    def _per_layer(run: RunData, kind: str) -> tuple[list[int], list[float]]:
        prefix = "act" if kind == "activation" else "linear"
        pairs = sorted(
            (int(r["layer"].removeprefix(prefix)), float(r["stats"]["std"]))
            for r in run.probe_records(kind=kind)
        )
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def figures(self, config: DepthScanConfig, data: ExperimentData) -> list[FigureInfo]:
        grid: list[list[LinePanel | None]] = []
        for activation in config.activations:
            runs = [r for r in data.finished() if r.spec["activation"] == activation]
            if not runs:
                continue
            row: list[LinePanel | None] = []
            for kind, metric, what in (
                ("activation", "meanfield_act_std", "activations z_l"),
                ("gradient", "meanfield_grad_std", "gradients dL/dh_l"),
            ):
                series = []
                for i, run in enumerate(runs):
                    layers, values = self._per_layer(run, kind)
                    label = init_label(run.spec["init"])
                    if config.seeds > 1:
                        label += f" s{run.run.seed}"
                    width = max(2.6 - 0.4 * i, 1.0)  # earlier curves wider: coinciding ones show
                    series.append(Series(layers, values, label, color(i), linewidth=width))
                    mf_layers, mf = run.series(metric)
                    if mf:
                        series.append(
                            Series(mf_layers, mf, None, color(i), linestyle="--", linewidth=1.0)
                        )
                if any(s.linestyle == "--" for s in series):
                    series.append(Series([], [], "mean field (dashed)", "0.3", linestyle="--"))
                row.append(
                    LinePanel(
                        series,
                        title=f"{activation}: std of {what}",
                        xlabel="layer l",
                        ylabel="std (log scale)",
                        yscale="log",
                        ylim=_window(series),
                        legend=kind == "activation",
                    )
                )
            grid.append(row)
        if not grid:
            return []
        return [
            FigureInfo(
                name="depth-scan",
                title=f"Signal propagation at init through {config.depth} layers "
                f"of {config.width} units",
                panels=grid,  # type: ignore[arg-type]
                caption=(
                    "Solid: measured std per layer on a batch of "
                    f"{config.samples} standard normal inputs ({config.dtype}); dashed: the "
                    "mean-field prediction (variance map by quadrature) in the same colour. "
                    f"The y axis spans at most 1e-{WINDOW} to 1e{WINDOW}: vanishing curves "
                    "leave it at the bottom; gaps are values that underflowed to 0 or "
                    "overflowed. At depths far beyond the width, measured curves wander from "
                    "the mean field: finite-width fluctuations add up layer after layer "
                    "(Hanin & Rolnick 2018)."
                ),
                sharex=True,
                sharey="row",
                panel_size=(5.2, 3.4),
            )
        ]

    def summary(self, config: DepthScanConfig, data: ExperimentData) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for run in data.finished():
            _, act = self._per_layer(run, "activation")
            _, grad = self._per_layer(run, "gradient")
            if not act:
                continue
            row: dict[str, Any] = {
                "activation": run.spec["activation"],
                "init": run.spec["init"],
                "status": run.status,
                "act_std_first": act[0],
                "act_std_last": act[-1],
                "act_ratio": _ratio(act[-1], act[0]),
                "grad_std_first": grad[0],
                "grad_std_last": grad[-1],
                "grad_ratio": _ratio(grad[0], grad[-1]),  # input-side over output-side
                "sigma_w2": run.summary.get("sigma_w2"),
                "sigma_b2": run.summary.get("sigma_b2"),
            }
            _, mf = run.series("meanfield_act_std")
            if mf:
                row["meanfield_act_std_last"] = mf[-1]
                row["meanfield_max_log10_error"] = _max_log_error(act, mf)
            out[run.key] = row
        return out

    def verdicts(self, summary: dict[str, Any]) -> list[str]:
        by_activation: dict[str, list[str]] = {}
        for row in summary.values():
            text = (
                f"{init_label(row['init'])}: activations {_trend(row['act_ratio'])}, "
                f"gradients {_trend(row['grad_ratio'])}"
            )
            if "meanfield_max_log10_error" in row and math.isfinite(
                row["meanfield_max_log10_error"]
            ):
                text += f" (mean field within x{10 ** row['meanfield_max_log10_error']:.2g})"
            by_activation.setdefault(row["activation"], []).append(text)
        return [f"{act}: " + "; ".join(parts) + "." for act, parts in by_activation.items()]


def _variances(model: torch.nn.Module, depth: int) -> tuple[float, float]:
    """sigma_w^2 = fan_in * mean(W^2) and sigma_b^2 = mean(b^2), over the hidden layers."""
    w2, b2 = [], []
    with single_thread():  # 2 x depth small reductions: threads only wait on each other
        for layer in range(1, depth + 1):
            linear = getattr(model, f"linear{layer}")
            w = linear.weight.detach().reshape(-1)
            w2.append(float(torch.dot(w, w)) / w.numel() * linear.weight.shape[1])
            b = linear.bias
            b2.append(float(torch.dot(b, b)) / b.numel() if b is not None else 0.0)
    return sum(w2) / len(w2), sum(b2) / len(b2)


def _window(series: list[Series]) -> tuple[float, float] | None:
    """Log-axis limits: the positive finite data, clipped to [1e-WINDOW, 1e+WINDOW], padded."""
    values = [v for s in series for v in s.y if math.isfinite(v) and v > 0]
    if not values:
        return None
    lo = max(min(values), 10.0**-WINDOW)
    hi = min(max(values), 10.0**WINDOW)
    return lo / 3.0, hi * 3.0


def _ratio(a: float, b: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    if b == 0:  # both 0: the signal underflowed to exactly 0 on the way, it vanished
        return math.inf if a > 0 else 0.0
    return a / b


def _trend(ratio: float) -> str:
    """steady (x0.5-x2 over the depth), vanish (< 1e-3), explode (> 1e3) or drift."""
    if not math.isfinite(ratio) or ratio > 1e3:
        return "explode" + ("" if not math.isfinite(ratio) else f" (x{fmt(ratio, 2)})")
    if ratio == 0:
        return "vanish (underflow to 0)"
    if ratio < 1e-3:
        return f"vanish (x{fmt(ratio, 2)})"
    if 0.5 <= ratio <= 2.0:
        return f"stay steady (x{fmt(ratio, 2)})"
    return f"drift (x{fmt(ratio, 2)})"


def _max_log_error(measured: list[float], predicted: list[float]) -> float:
    """Largest |log10(measured / predicted)| over layers where both are > TINY and finite."""
    errors = [
        abs(math.log10(m / p))
        for m, p in zip(measured, predicted, strict=False)
        if math.isfinite(m) and math.isfinite(p) and m > TINY and p > TINY
    ]
    return max(errors) if errors else math.nan
