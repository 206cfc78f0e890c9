"""How the batched engine lays out its products, chosen by shape from a measurement.

:class:`~initlab.train.batched_mlp.StackedMLP` keeps every activation feature-major,
``[N, features, batch]``, and computes layer ``l > 1`` with three products per step:

* forward ``Z = W @ H`` (``[N, out, in] @ [N, in, B]``);
* input gradient ``dH = W^T @ dZ``;
* weight gradient (or fused SGD update) ``dW = dZ @ H^T``.

Two choices are open, and the best one depends on the shapes:

1. **Gradient layout** (``grad_major``). ``dH = W^T @ dZ`` reads ``W`` transposed. With a
   wide batch (``B = 128``) MKL runs it as fast as the other two products; with a narrow
   one (``B = 10``) its transposed-weight kernel is the slowest product of the step. The
   same numbers come out batch-major, ``dH^T = dZ^T @ W`` (what ``nn.Linear``'s backward
   computes), which reads ``W`` in its own row order. ``"batch"`` stores the ``dL/dH``
   buffers as ``[N, B, F]`` memory seen through ``[N, F, B]`` views, so the rest of the
   engine is unchanged (element-wise kernels accept any strides).
2. **Member batching** (``members``): one ``bmm`` over the ``N`` stacked members, or a
   Python loop of ``N`` ``mm`` calls. A loop costs ~10 us of dispatch per member and
   product; ``bmm`` costs nothing extra but MKL's batched kernel can pick a worse blocking
   for thin matrices than its plain GEMM does.

The measurement (``python benchmarks/bench_small_batch.py --products``: each product alone,
five distinct weight tensors cycled so that weights come from memory as in training;
GFLOP/s, 1 thread, B = 10, 1000 x 1000 weights; 2-core Xeon VM shared by seven engineers,
2026-12-01 23:50 UTC, GEMM peak 102 GFLOP/s in that run):

====  =======  ========  ======  =====  =====  ========  =======  ========
N     fwd bmm  fwd loop  fwd bm  dH fm  dH bm  dH bm lp  upd bmm  upd loop
====  =======  ========  ======  =====  =====  ========  =======  ========
1     47       49        32      42     67     52        67       61
3     29       22        19      17     20     19        24       22
6     31       30        23      21     25     23        32       29
12    34       31        24      22     26     25        33       30
====  =======  ========  ======  =====  =====  ========  =======  ========

(fwd: ``W @ H`` feature-major, as ``bmm`` or a member loop, or batch-major ``H^T @ W^T``;
dH: ``W^T @ dZ`` feature-major or ``dZ^T @ W`` batch-major; upd: ``W += dZ @ H^T``.) So:

* the input gradient is computed batch-major at small batches (1.2-1.6x the feature-major
  product on its own; the issue that asked for this measured the feature-major forward at
  16 GFLOP/s against 50-57 batch-major on a quieter host, which this run does not
  reproduce for the forward, so the forward stays feature-major);
* members stay batched in one ``bmm`` (the loop was slower or equal for every product at
  every member count);
* one member's weights (20 MB) ran each product 1.5-2x faster than three members' (60 MB
  and more, no longer in cache between the forward and the backward pass), which suggests
  training the members in chunks (``chunk``: a step over chunks of members whose weights
  fit in cache). Whole training steps say otherwise (A/B, same process, same minibatch,
  1024-1000x5-9 tanh, B = 10, N = 3, 01:07 UTC): 1 thread, batch-major and all members in
  one pass 95.0 model-steps/s, in chunks of one 90.9, feature-major (the previous layout)
  83.9; 2 threads: 17.0, 8.5 and 16.3 (the chunks' many small operations lose most to
  OpenMP hand-offs on the shared cores). So the chosen layout is batch-major with all
  members in one pass; ``chunk`` and ``members="looped"`` stay available (and tested) as
  the measured alternatives.

Wider batches (same run, 00:17 UTC, host loaded to 3x its cores): with 1000 x 1000 weights
the batch-major input gradient is still the faster one (B = 32: 11-13 GFLOP/s against 6-7;
B = 128: 21-27 against 14-20), while with the B1 network's 100 x 100 weights at B = 128 the
two are equal (107 vs 112 at N = 3, 19 vs 19 at N = 30). So layers of at least
:data:`WIDE` units use batch-major gradients at any batch size, and the narrow networks keep
the feature-major layout they were tuned with (168-187 GFLOP/s in the B1 benchmark).

On a 2-core AMD EPYC host (AVX2; 2026-12-02 07:10 UTC, one thread, load average 2, 12
members, B = 10, 1000 x 1000 weights) the forward product told another story: feature-major
``W @ H`` 6-9 GFLOP/s, batch-major ``H^T @ W^T`` 15-20, whole steps 32 against 49
model-steps/s. So at small batches on wide layers the activations of layers > 1 are kept
batch-major too (``forward_major``), and the SGD updates are deferred (``defer``,
:data:`DEFER_STEPS` steps; :mod:`~initlab.train.batched_deferred`): 50 model-steps/s at 4
steps, 54 at 8, against 49 written back every step.

Back on a 2-core Xeon host with AVX-512 (2026-12-02 19:40 UTC, one thread, GEMM peak 116
GFLOP/s, same shapes) the forward went the other way again: feature-major ``W @ H`` 32-43
GFLOP/s against batch-major 18-21 in ``--products``, and whole steps (12 members, 60 steps,
deferred updates, alternated twice) 86-97 model-steps/s feature-major against 77-79
batch-major; the input gradient stayed faster batch-major there (18-23 against 11-13). MKL's
kernel for a thin right-hand operand is the fast one where the CPU has AVX-512 and the slow
one where it has AVX2 only, so the forward layout follows the CPU's vector extension
(:func:`forward_major_for`, read from ``torch.backends.cpu.get_cpu_capability()``) and
its maker (Intel only: MKL chooses kernels by maker too). On a 2-core AMD EPYC host with
AVX-512 (2026-12-07, one thread, 12 members, 60 steps, alternated twice) the batch-major
forward ran 117-125 model-steps/s against 77-86 feature-major (``W @ H`` alone: 15 GFLOP/s
against 45-60 batch-major), so AMD keeps batch-major with AVX-512 too.
The choice is the same on every run of one machine, so a seed gives the same numbers each
time, unless ``ATEN_CPU_CAPABILITY`` is set (it changes the layout, not MKL's kernels).

**Kernel** (``kernel``). At small batches on wide layers on an AMD CPU with AVX-512, the thin
products run on oneDNN's linear kernel (``torch.ops.mkldnn._linear_pointwise``,
the one PyTorch's compiler emits for CPU ``nn.Linear``) instead of MKL's GEMM: layer 1's
forward for all members at once (``X @ W1^T``, written transposed into its feature-major
buffer), and one call per member for the forward and the input gradient of layers > 1
(``dZ^T @ W`` passes ``W^T`` as oneDNN's weight, a strided view it reads in place). Each
product alone (2-core AMD EPYC, AVX-512, one thread, 2026-12-07 03:30 UTC, GEMM peak 92-99
GFLOP/s; GFLOP/s, B = 10, 1000 x 1000 weights): one member's weights in cache, MKL
``X @ W^T`` 56-58, oneDNN 67, oneDNN ``X @ W`` 97; twelve members' weights from memory,
forward ``bmm`` 38 against a oneDNN member loop 40, input gradient 34 against 42, layer 1
(``[12000, 1024]`` weights) 20 feature-major, 26 batch-major, 42 oneDNN. Whole steps (12
members, 40 steps, five rounds alternated, medians): MKL 127 model-steps/s, oneDNN for
layer 1 only 140, for every thin product 150. At lab-09's shapes (B = 100, 512 units)
MKL already runs at 94-99% of the peak and the whole step did not change, so the
kernel is chosen at small batches on wide layers only, and only on the CPUs it was
measured on (:func:`onednn_for`: AMD with AVX-512); Intel CPUs keep MKL (their
feature-major layout, see :func:`forward_major_for`), and so do CPUs with AVX2 only and
those of other makers, on which it was not measured. The kernel needs float32 on the CPU
and a PyTorch built with oneDNN (:func:`onednn_available`); elsewhere the layout falls back
to MKL (:func:`usable_layout`). Results agree with MKL's to float32 rounding.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import Tensor

from initlab.errors import InitlabError

Major = Literal["feature", "batch"]
MAJORS: tuple[str, ...] = get_args(Major)
MemberMode = Literal["batched", "looped"]
MEMBER_MODES: tuple[str, ...] = get_args(MemberMode)
Kernel = Literal["gemm", "onednn"]
KERNELS: tuple[str, ...] = get_args(Kernel)

#: Largest minibatch for which dL/dH is computed batch-major whatever the widths (module
#: docstring: measured at B = 10 and 32).
SMALL_BATCH = 32

#: Hidden width from which dL/dH is computed batch-major at any batch size (measured faster
#: with 1000-unit layers at B = 32 and 128, equal with 100-unit layers at B = 128).
WIDE = 512


@dataclass(frozen=True)
class ProductLayout:
    """How the products of layers ``l > 1`` are computed (layer 1 is always one GEMM).

    ``grad_major``: memory order of the back-propagated gradients dL/dH ("feature":
    ``[N, F, B]``, computed as ``W^T @ dZ``; "batch": ``[N, B, F]`` memory, computed as
    ``dZ^T @ W``). ``members``: one ``bmm`` over the members, or a loop of ``mm``.
    ``chunk``: a training step runs forward and backward over at most this many members at
    a time, so that their weights are still in cache when the backward pass reads them.
    ``forward_major``: memory order of the activations of layers ``l > 1`` ("feature":
    ``[N, F, B]``, ``Z = W @ H``; "batch": ``[N, B, F]`` memory, ``Z^T = H^T @ W^T`` as
    ``nn.Linear`` computes it). ``defer``: fused SGD updates are kept aside as low-rank
    factors and written into the weights every ``defer`` steps
    (:mod:`~initlab.train.batched_deferred`; 1: every step). ``kernel``: the thin products
    (layer 1's forward; the batch-major forward and input gradient of layers > 1) run on
    torch's GEMM ("gemm": ``mm``/``bmm``, MKL on x86) or on oneDNN's linear kernel, one call
    per member ("onednn"; module docstring).
    """

    grad_major: Major = "feature"
    forward_major: Major = "feature"  # memory order of the activations of layers > 1
    members: MemberMode = "batched"
    chunk: int | None = None  # members per pass (None: all in one pass)
    defer: int = 1  # fused SGD steps whose updates are written into the weights together
    kernel: Kernel = "gemm"  # the thin products: torch's GEMM or oneDNN's linear kernel

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise InitlabError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
        if self.defer < 1:
            raise InitlabError(f"defer must be a positive number of steps, got {self.defer}")
        if self.chunk is not None and self.chunk < 1:
            raise InitlabError(f"chunk must be a positive number of members, got {self.chunk}")
        if self.forward_major not in MAJORS:
            raise InitlabError(f"forward_major must be one of {MAJORS}, got {self.forward_major!r}")
        if self.grad_major not in MAJORS:
            raise InitlabError(f"grad_major must be one of {MAJORS}, got {self.grad_major!r}")
        if self.members not in MEMBER_MODES:
            raise InitlabError(f"members must be one of {MEMBER_MODES}, got {self.members!r}")


def choose_layout(batch: int, members: int, widths: tuple[int, ...]) -> ProductLayout:
    """The measured-best layout for a pass over ``batch`` samples (module docstring):
    batch-major gradients for ``batch <= SMALL_BATCH`` or when a hidden layer has at least
    ``WIDE`` units, else feature-major; all members in one pass, batched with ``bmm``
    (a member loop and member chunks were never faster). ``members`` is an input because
    the measurement covered 1-12 members; the choice does not depend on it.
    """
    del members  # measured: no effect on the best choice (module docstring)
    wide = max(widths[1:-1], default=0) >= WIDE
    small = batch <= SMALL_BATCH
    forward: Major = (
        forward_major_for(cpu_capability(), cpu_vendor()) if small and wide else "feature"
    )
    thin = small and wide and onednn_for(cpu_capability(), cpu_vendor()) and onednn_available()
    return ProductLayout(
        grad_major="batch" if small or wide else "feature",
        forward_major=forward,
        defer=DEFER_STEPS if small and wide else 1,
        kernel="onednn" if thin else "gemm",
    )


def onednn_for(capability: str, vendor: str) -> bool:
    """Whether the thin products of small batches run on oneDNN's kernel on this CPU: only
    where it was measured faster (module docstring: AMD with AVX-512); not on Intel (MKL's
    own maker, feature-major there), AVX2-only CPUs or CPUs of another or unknown maker
    (not measured)."""
    return vendor == "AuthenticAMD" and capability.upper().startswith("AVX512")


@functools.cache
def onednn_available() -> bool:
    """Whether this PyTorch runs oneDNN's linear kernel (``torch.ops.mkldnn._linear_pointwise``,
    an operator of PyTorch's CPU build, not of its stable API): tried once on a 2 x 3 product,
    so that a build without it, or with another signature, falls back to MKL."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        cpu, f32 = torch.device("cpu"), torch.float32  # whatever the defaults are
        x, w = torch.ones(2, 3, dtype=f32, device=cpu), torch.ones(4, 3, dtype=f32, device=cpu)
        out = onednn_linear(x, w, torch.zeros(4, dtype=f32, device=cpu))
        return tuple(out.shape) == (2, 4) and bool((out == 3).all())
    except (AttributeError, RuntimeError, TypeError, NotImplementedError):
        return False


def onednn_linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """``x @ w^T (+ b)``, ``[B, in] x [out, in] -> [B, out]``, on oneDNN's kernel (``w`` may
    be a strided view, e.g. the transpose of a row-major matrix)."""
    return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")


def usable_layout(layout: ProductLayout, device: torch.device, dtype: torch.dtype) -> ProductLayout:
    """``layout`` with MKL's kernel where oneDNN's cannot run (not float32 on the CPU, or a
    build without it); the chosen layout passes through here, an explicit one is checked by
    :func:`check_kernel`."""
    if layout.kernel == "onednn" and not onednn_usable(device, dtype):
        return dataclasses.replace(layout, kernel="gemm")
    return layout


def onednn_usable(device: torch.device, dtype: torch.dtype) -> bool:
    """oneDNN's kernel runs here: float32 tensors on the CPU, a build with oneDNN."""
    return device.type == "cpu" and dtype == torch.float32 and onednn_available()


def check_kernel(layout: ProductLayout, device: torch.device, dtype: torch.dtype) -> None:
    """An explicit ``kernel="onednn"`` where it cannot run is an error (one line)."""
    if layout.kernel == "onednn" and not onednn_usable(device, dtype):
        raise InitlabError(
            f"kernel='onednn' needs float32 tensors on the CPU and a PyTorch built with oneDNN; "
            f"got {dtype} on {device.type} (oneDNN available: {onednn_available()}); "
            f"valid kernels here: 'gemm'"
        )


def cpu_capability() -> str:
    """The vector extension PyTorch's CPU kernels run with ("AVX512", "AVX2", "DEFAULT", ...;
    ``ATEN_CPU_CAPABILITY`` overrides it)."""
    return str(torch.backends.cpu.get_cpu_capability())


@functools.cache
def cpu_vendor() -> str:
    """The CPU's maker as Linux reports it (``vendor_id`` in /proc/cpuinfo: "GenuineIntel",
    "AuthenticAMD", ...; "" where there is no such file), read once per process."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id":
            return value.strip()
    return ""


def forward_major_for(capability: str, vendor: str) -> Major:
    """Memory order of the activations of layers > 1 at small batches on wide layers, by the
    CPU's vector extension and maker (module docstring: the feature-major step measured
    1.1-1.3x the batch-major one on an Intel CPU with AVX-512; the batch-major step 1.5x the
    feature-major one on an AMD CPU with AVX2 only, 1.45x on an AMD CPU with AVX-512). MKL
    picks its kernels by maker as well as by extension, so feature-major is chosen for
    Intel with AVX-512 only."""
    intel = vendor == "GenuineIntel"
    return "feature" if intel and capability.upper().startswith("AVX512") else "batch"


#: Fused SGD steps whose updates are written back together at small batches with wide
#: layers (memory-bound products; :mod:`~initlab.train.batched_deferred`).
DEFER_STEPS = 4


def grad_buffer(
    layout: ProductLayout,
    n: int,
    width: int,
    batch: int,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """An ``[n, width, batch]`` buffer for dL/dH, stored in the layout's memory order."""
    if layout.grad_major == "batch":
        return torch.empty(n, batch, width, device=device, dtype=dtype).transpose(1, 2)
    return torch.empty(n, width, batch, device=device, dtype=dtype)


def first_forward(layout: ProductLayout, w: Tensor, b: Tensor | None, x: Tensor, z: Tensor) -> None:
    """Layer 1 of every member in one product: ``z = w @ x^T (+ b)``, ``w`` ``[N * out, in]``,
    ``x`` ``[B, in]`` (the shared minibatch), ``b`` ``[N * out, 1]``, ``z`` ``[N * out, B]``;
    with oneDNN as ``(x @ w^T + b)^T`` (a transposing copy of ``[B, N * out]``)."""
    if layout.kernel == "onednn":
        bias = None if b is None else b.reshape(-1)
        z.copy_(onednn_linear(x.contiguous(), w, bias).t())
    elif b is None:
        torch.mm(w, x.t(), out=z)
    else:
        torch.addmm(b, w, x.t(), out=z)


def affine_forward(
    layout: ProductLayout, w: Tensor, b: Tensor | None, h: Tensor, z: Tensor
) -> None:
    """``z = w @ h (+ b)``: ``w`` ``[N, out, in]``, ``h`` ``[N, in, B]``, ``b`` ``[N, out, 1]``;
    batch-major (``forward_major="batch"``, ``z`` a view of ``[N, B, out]`` memory) as
    ``z^T = h^T @ w^T (+ b^T)``."""
    if layout.forward_major == "batch":
        zt, ht, wt = z.transpose(1, 2), h.transpose(1, 2), w.transpose(1, 2)
        bt = None if b is None else b.transpose(1, 2)
        if layout.kernel == "onednn":  # one call per member: [B, in] x [out, in]^T
            for n in range(w.shape[0]):
                zt[n].copy_(onednn_linear(ht[n], w[n], None if b is None else b[n].reshape(-1)))
        elif layout.members == "looped":
            for n in range(w.shape[0]):
                if bt is None:
                    torch.mm(ht[n], wt[n], out=zt[n])
                else:
                    torch.addmm(bt[n], ht[n], wt[n], out=zt[n])
        elif bt is None:
            torch.bmm(ht, wt, out=zt)
        else:
            torch.baddbmm(bt, ht, wt, out=zt)
        return
    if layout.members == "looped":
        for n in range(w.shape[0]):
            if b is None:
                torch.mm(w[n], h[n], out=z[n])
            else:
                torch.addmm(b[n], w[n], h[n], out=z[n])
    elif b is None:
        torch.bmm(w, h, out=z)
    else:
        torch.baddbmm(b, w, h, out=z)


def input_grad(layout: ProductLayout, w: Tensor, gz: Tensor, gh: Tensor) -> None:
    """``gh = w^T @ gz`` (dL/dH of the layer below), in ``gh``'s memory order: feature-major
    as ``w^T @ gz``, batch-major as ``(gz^T @ w)`` written into ``gh^T``."""
    if layout.grad_major == "batch":
        gzt, ght = gz.transpose(1, 2), gh.transpose(1, 2)
        if layout.kernel == "onednn":  # dZ^T @ W: W^T (a view) as oneDNN's [in, out] weight
            for n in range(w.shape[0]):
                ght[n].copy_(onednn_linear(gzt[n], w[n].t(), None))
        elif layout.members == "looped":
            for n in range(w.shape[0]):
                torch.mm(gzt[n], w[n], out=ght[n])
        else:
            torch.bmm(gzt, w, out=ght)
    elif layout.members == "looped":
        for n in range(w.shape[0]):
            torch.mm(w[n].t(), gz[n], out=gh[n])
    else:
        torch.bmm(w.transpose(1, 2), gz, out=gh)


def weight_grad(layout: ProductLayout, gz: Tensor, ht: Tensor, gw: Tensor) -> None:
    """``gw = gz @ ht``: dL/dW from dL/dZ ``[N, out, B]`` and H^T ``[N, B, in]``."""
    if layout.members == "looped":
        for n in range(gz.shape[0]):
            torch.mm(gz[n], ht[n], out=gw[n])
    else:
        torch.bmm(gz, ht, out=gw)


def fused_update(layout: ProductLayout, w: Tensor, gz: Tensor, ht: Tensor, alpha: float) -> None:
    """``w += alpha * gz @ ht`` (plain SGD inside the weight-gradient product)."""
    if layout.members == "looped":
        for n in range(w.shape[0]):
            w[n].addmm_(gz[n], ht[n], alpha=alpha)
    else:
        w.baddbmm_(gz, ht, alpha=alpha)
