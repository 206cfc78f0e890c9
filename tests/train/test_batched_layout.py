"""The engine's product layouts (feature- vs batch-major gradients, bmm vs a member loop)
give the same numbers, and the layout is chosen by batch size as measured.

Every layout computes the same sums in another order inside MKL, so results agree to float32
rounding: atol 1e-6 / rtol 1e-5 after one step, 1e-5 / 1e-4 after 20 SGD steps.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from initlab.data.batches import minibatches
from initlab.data.dataset import Dataset
from initlab.errors import InitlabError
from initlab.models.mlp import mlp
from initlab.train import batched_layout
from initlab.train.batched import fit_batched
from initlab.train.batched_layout import (
    DEFER_STEPS,
    SMALL_BATCH,
    ProductLayout,
    choose_layout,
    cpu_capability,
    cpu_vendor,
    forward_major_for,
)
from initlab.train.batched_mlp import FusedDecay, StackedMLP
from initlab.train.fit import fit

WIDTHS = [24, 32, 32, 32, 6]
AVAILABLE_KERNELS = ("gemm", "onednn") if batched_layout.onednn_available() else ("gemm",)
LAYOUTS = [
    ProductLayout(grad_major=g, forward_major=f, members=m, kernel=k)
    for g, f, m, k in itertools.product(
        ("feature", "batch"), ("feature", "batch"), ("batched", "looped"), AVAILABLE_KERNELS
    )
]
needs_onednn = pytest.mark.skipif(
    not batched_layout.onednn_available(), reason="this PyTorch build runs no oneDNN kernel"
)


def _members(n: int = 3, **kwargs: object) -> list[nn.Module]:
    models = []
    for i in range(n):
        torch.manual_seed(10 + i)
        models.append(mlp(WIDTHS, "tanh", **kwargs))  # type: ignore[arg-type]
    return models


def _data(n: int = 120) -> Dataset:
    g = torch.Generator().manual_seed(3)
    return Dataset(torch.randn(n, 24, generator=g), torch.randint(0, 6, (n,), generator=g), "r")


def test_choice_follows_the_measurement() -> None:
    assert choose_layout(10, 12, (1024, 1000, 9)).grad_major == "batch"
    expected = forward_major_for(cpu_capability(), cpu_vendor())
    assert choose_layout(10, 12, (1024, 1000, 9)).forward_major == expected
    assert choose_layout(128, 3, (1024, 1000, 9)).forward_major == "feature"
    assert choose_layout(10, 3, (784, 100, 10)).forward_major == "feature"
    assert choose_layout(SMALL_BATCH, 3, (784, 100, 10)).grad_major == "batch"
    assert choose_layout(128, 3, (784, 100, 10)).grad_major == "feature"
    assert choose_layout(128, 3, (1024, 1000, 1000, 9)) == ProductLayout("batch", chunk=None)
    assert choose_layout(10, 12, (1024, 1000, 1000, 9)).chunk is None  # chunks: slower
    assert choose_layout(10, 6, (1024, 1000, 9)).members == "batched"
    assert choose_layout(128, 3, (1024, 1000, 9)).kernel == "gemm"
    assert choose_layout(10, 3, (784, 100, 10)).kernel == "gemm"
    with pytest.raises(InitlabError, match="grad_major must be one of"):
        ProductLayout(grad_major="column")  # type: ignore[arg-type]


def test_forward_layout_follows_the_vector_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    """Intel with AVX-512: feature-major forward (MKL's thin kernel is fast there); AVX2,
    other makers and anything else: batch-major (module docstring's two hosts)."""
    assert forward_major_for("AVX512", "GenuineIntel") == "feature"
    assert forward_major_for("AVX2", "GenuineIntel") == "batch"
    assert forward_major_for("AVX512", "AuthenticAMD") == "batch"
    assert forward_major_for("DEFAULT", "") == "batch"
    assert batched_layout.onednn_for("AVX512", "AuthenticAMD") is True  # measured
    assert batched_layout.onednn_for("AVX2", "AuthenticAMD") is False  # not measured
    assert batched_layout.onednn_for("AVX512", "GenuineIntel") is False
    assert batched_layout.onednn_for("AVX512", "") is False  # unknown maker
    monkeypatch.setattr(batched_layout, "cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(batched_layout, "cpu_vendor", lambda: "GenuineIntel")
    assert choose_layout(10, 12, (1024, 1000, 9)).forward_major == "batch"
    monkeypatch.setattr(batched_layout, "onednn_available", lambda: True)
    assert choose_layout(10, 12, (1024, 1000, 9)).kernel == "gemm"  # AVX2: not measured
    monkeypatch.setattr(batched_layout, "cpu_capability", lambda: "AVX512")
    assert choose_layout(10, 12, (1024, 1000, 9)).forward_major == "feature"
    assert choose_layout(10, 12, (1024, 1000, 9)).kernel == "gemm"  # Intel: MKL, not measured
    assert choose_layout(10, 12, (1024, 1000, 9)).defer > 1
    monkeypatch.setattr(batched_layout, "cpu_vendor", lambda: "AuthenticAMD")
    assert choose_layout(10, 12, (1024, 1000, 9)).kernel == "onednn"  # measured there
    assert choose_layout(128, 12, (1024, 1000, 9)).kernel == "gemm"
    monkeypatch.setattr(batched_layout, "onednn_available", lambda: False)
    assert choose_layout(10, 12, (1024, 1000, 9)).kernel == "gemm"  # a build without it
    monkeypatch.undo()
    assert cpu_capability() == str(torch.backends.cpu.get_cpu_capability())
    assert cpu_vendor() in {"", "GenuineIntel", "AuthenticAMD"} or cpu_vendor().isprintable()


@pytest.mark.parametrize("batchnorm", [False, True])
def test_every_layout_gives_the_same_step(batchnorm: bool) -> None:
    models = _members(batchnorm=batchnorm, dropout=0.2)
    data = _data(10)
    outs = []
    for layout in LAYOUTS:
        stacked = StackedMLP(models[0].spec, models, dropout_seeds=[1, 2, 3], layout=layout)
        loss, logits, _ = stacked.train_step(data.x, data.y)
        ws = stacked.workspace(10, True, True)
        assert ws.layout == layout
        if layout.grad_major == "batch":  # the gradient buffers really are batch-major
            assert ws.gh[0].transpose(1, 2).is_contiguous()
        # beside feature-major activations, dL/dH is copied feature-major for the
        # element-wise backward (operands of two memory orders do not vectorize)
        mixed = layout.grad_major == "batch" and layout.forward_major == "feature"
        assert bool(ws.ghf) == mixed and all(g.is_contiguous() for g in ws.ghf)
        outs.append((loss.clone(), logits.clone(), [g.clone() for g in stacked.grads]))
    ref_loss, ref_logits, ref_grads = outs[0]
    for loss, logits, grads in outs[1:]:
        torch.testing.assert_close(loss, ref_loss, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(logits, ref_logits, atol=1e-6, rtol=1e-5)
        for g, ref in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(g, ref, atol=1e-6, rtol=1e-5)


@needs_onednn
def test_onednn_kernel_computes_each_product_as_mkl_does() -> None:
    """The three thin products (layer 1's forward for all members, the batch-major forward
    and input gradient of a layer > 1) against torch's GEMM, at the Glorot shapes' kind
    (B = 10, several members, a strided transposed weight)."""
    g = torch.Generator().manual_seed(0)
    n, batch, d_in, d = 3, 10, 40, 64
    gemm, onednn = ProductLayout("batch", "batch"), ProductLayout("batch", "batch", kernel="onednn")
    x = torch.randn(batch, d_in, generator=g)
    w1, b1 = torch.randn(n * d, d_in, generator=g), torch.randn(n * d, 1, generator=g)
    outs = [torch.empty(n * d, batch) for _ in range(2)]
    for layout, out in zip((gemm, onednn), outs, strict=True):
        batched_layout.first_forward(layout, w1, b1, x, out)
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs[0], (x @ w1.t() + b1.t()).t(), atol=1e-5, rtol=1e-5)
    out = 48  # a layer of 48 units on one of 64: [N, out, in] weights, not square
    w, b = torch.randn(n, out, d, generator=g), torch.randn(n, out, 1, generator=g)
    for h in (
        torch.randn(n, batch, d, generator=g).transpose(1, 2),  # batch-major memory
        torch.randn(n, d, batch, generator=g),  # feature-major (layer 1's output, strided)
    ):
        for bias in (b, None):
            zs = [torch.empty(n, batch, out).transpose(1, 2) for _ in range(2)]
            for layout, z in zip((gemm, onednn), zs, strict=True):
                batched_layout.affine_forward(layout, w, bias, h, z)
            torch.testing.assert_close(zs[1], zs[0], atol=1e-5, rtol=1e-5)
            expected = w @ h + (0 if bias is None else bias)
            torch.testing.assert_close(zs[0], expected, atol=1e-5, rtol=1e-5)
    gz = torch.randn(n, out, batch, generator=g)  # feature-major, as the engine's scratch
    ghs = [batched_layout.grad_buffer(gemm, n, d, batch, torch.device("cpu")) for _ in range(2)]
    for layout, gh in zip((gemm, onednn), ghs, strict=True):
        batched_layout.input_grad(layout, w, gz, gh)
    torch.testing.assert_close(ghs[1], ghs[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ghs[0], w.transpose(1, 2) @ gz, atol=1e-5, rtol=1e-5)


def test_onednn_kernel_falls_back_where_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chosen: float64 (or a build without oneDNN) gets MKL's kernel; asked for
    explicitly: one error line naming what is valid."""
    cpu = torch.device("cpu")
    layout = ProductLayout("batch", "batch", kernel="onednn")
    assert batched_layout.usable_layout(layout, cpu, torch.float64).kernel == "gemm"
    models = _members(2)
    with pytest.raises(InitlabError, match="kernel='onednn' needs float32 tensors on the CPU"):
        StackedMLP(models[0].spec, models, layout=layout, dtype=torch.float64)
    monkeypatch.setattr(batched_layout, "onednn_available", lambda: False)
    assert batched_layout.usable_layout(layout, cpu, torch.float32).kernel == "gemm"
    assert batched_layout.usable_layout(ProductLayout(), cpu, torch.float64) == ProductLayout()
    with pytest.raises(InitlabError, match="kernel must be one of"):
        ProductLayout(kernel="blas")  # type: ignore[arg-type]


def test_onednn_probe_reports_a_build_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    batched_layout.onednn_available.cache_clear()
    try:
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)  # the probe is float32 whatever the default
        try:
            assert batched_layout.onednn_available() is torch.backends.mkldnn.is_available()
        finally:
            torch.set_default_dtype(default)
        batched_layout.onednn_available.cache_clear()
        monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
        assert batched_layout.onednn_available() is False
        batched_layout.onednn_available.cache_clear()
        monkeypatch.undo()

        def missing(*args: object) -> None:
            raise RuntimeError("No such operator mkldnn::_linear_pointwise")

        monkeypatch.setattr(batched_layout, "onednn_linear", missing)
        assert batched_layout.onednn_available() is False
    finally:
        batched_layout.onednn_available.cache_clear()


def test_every_layout_trains_to_the_same_weights_with_fused_sgd() -> None:
    data = _data()
    lr = torch.tensor([0.05, 0.1, 0.2])
    finals = []
    for layout in LAYOUTS:
        stacked = StackedMLP(_members()[0].spec, _members(), layout=layout)
        for t in range(20):
            idx = torch.arange(t * 6, t * 6 + 10) % len(data)
            _, _, updated = stacked.train_step(data.x[idx], data.y[idx], sgd_lr=lr)
            assert updated
        finals.append([p.clone() for p in stacked.params])
    for params in finals[1:]:
        for p, ref in zip(params, finals[0], strict=True):
            torch.testing.assert_close(p, ref, atol=1e-5, rtol=1e-4)


def test_fit_batched_default_at_batch_10_equals_the_feature_major_layout() -> None:
    """The default (batch-major at B = 10) against the feature-major layout, end to end."""
    data = _data()
    default = fit_batched(_members(2), data, lr=0.1, steps=15, batch_size=10)
    stacked_default = StackedMLP(_members(2)[0].spec, _members(2))
    assert stacked_default.workspace(10, True, True).layout.grad_major == "batch"
    forced = StackedMLP(
        _members(2)[0].spec, _members(2), layout=ProductLayout(grad_major="feature")
    )
    gen = torch.Generator().manual_seed(0)
    for idx in minibatches(len(data), 10, steps=15, mode="replacement", generator=gen):
        forced.train_step(data.x[idx], data.y[idx], sgd_lr=0.1)
    for m in range(2):
        state = default[m].final_state
        for name, p in zip(forced.param_names, forced.params, strict=True):
            torch.testing.assert_close(state[name], p[m], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kernel", AVAILABLE_KERNELS)
@pytest.mark.parametrize("batchnorm", [False, True])
def test_member_chunks_give_the_same_step_as_one_pass(batchnorm: bool, kernel: str) -> None:
    """Chunks of 2 of 3 members (views of the ensemble's tensors), fused per-member SGD."""
    data = _data(10)
    lr = torch.tensor([0.05, 0.1, 0.2])
    runs = []
    for chunk in (None, 2, 1):
        models = _members(batchnorm=batchnorm, dropout=0.2)
        layout = ProductLayout(
            grad_major="batch",
            chunk=chunk,
            kernel=kernel,  # type: ignore[arg-type]
        )
        stacked = StackedMLP(models[0].spec, models, dropout_seeds=[1, 2, 3], layout=layout)
        for _ in range(3):
            loss, logits, updated = stacked.train_step(data.x, data.y, sgd_lr=lr)
            assert updated
        runs.append((loss, logits.clone(), stacked.params, stacked.buffers))
    for loss, logits, params, buffers in runs[1:]:
        torch.testing.assert_close(loss, runs[0][0], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(logits, runs[0][1], atol=1e-6, rtol=1e-5)
        for p, ref in zip(params, runs[0][2], strict=True):
            torch.testing.assert_close(p, ref, atol=1e-6, rtol=1e-5)
        for name, b in buffers.items():
            torch.testing.assert_close(b, runs[0][3][name], atol=1e-6, rtol=1e-5)


def test_a_diverging_member_in_a_chunk_is_not_updated_and_the_rest_are() -> None:
    data = _data(10)
    plain = StackedMLP(_members()[0].spec, _members(), layout=ProductLayout("batch"))
    chunked = StackedMLP(_members()[0].spec, _members(), layout=ProductLayout("batch", chunk=2))
    for stacked in (plain, chunked):
        with torch.no_grad():
            stacked.params[0][1].fill_(float("inf"))  # member 1's loss is NaN
    loss, _, updated = plain.train_step(data.x, data.y, sgd_lr=0.1)
    assert not updated and not torch.isfinite(loss[1])
    before = [p.clone() for p in chunked.params]
    loss_c, _, updated = chunked.train_step(data.x, data.y, sgd_lr=0.1)
    assert updated and not torch.isfinite(loss_c[1])
    for p, g, q, old in zip(plain.params, plain.grads, chunked.params, before, strict=True):
        for m in (0, 2):  # what the optimizer's masked SGD step gives the live members
            torch.testing.assert_close(q[m], p[m] - 0.1 * g[m], atol=1e-6, rtol=1e-5)
        assert torch.equal(q[1], old[1])  # the diverging member stays as it was


@pytest.mark.parametrize("chunk", [None, 2])
def test_fused_weight_decay_is_torchs_coupled_l2_step(chunk: int | None) -> None:
    """``keep * p - lr * g`` (fused, ``keep = 1 - lr * wd``) equals torch's coupled L2 SGD
    step ``p - lr * (g + wd * p)`` on the decayed parameters (weights, not biases) and the
    plain step elsewhere, per member, in one pass and in chunks; a chunk with a diverging
    member falls back to the same step for its finite members."""
    data = _data(10)
    lr, wd = torch.tensor([0.05, 0.1, 0.2]), torch.tensor([0.3, 0.0, 0.1])
    reference = StackedMLP(_members()[0].spec, _members(), layout=ProductLayout("batch"))
    reference.train_step(data.x, data.y)  # gradients only
    stacked = StackedMLP(_members()[0].spec, _members(), layout=ProductLayout("batch", chunk=chunk))
    mask = [name.endswith("weight") for name in stacked.param_names]
    decay = FusedDecay.of(lr, wd, mask)
    _, _, updated = stacked.train_step(data.x, data.y, sgd_lr=lr, sgd_decay=decay)
    assert updated
    for name, p, ref, g in zip(
        stacked.param_names, stacked.params, reference.params, reference.grads, strict=True
    ):
        shape = (-1, *[1] * (p.ndim - 1))
        coef = wd.view(shape) if name.endswith("weight") else 0.0
        expected = ref - lr.view(shape) * (g + coef * ref)
        torch.testing.assert_close(p, expected, atol=1e-6, rtol=1e-5, msg=name)
    if chunk is None:
        return
    diverging = StackedMLP(
        _members()[0].spec, _members(), layout=ProductLayout("batch", chunk=chunk)
    )
    with torch.no_grad():
        diverging.params[0][1].fill_(float("inf"))  # member 1's loss is NaN: chunk 0 not fused
    before = [p.clone() for p in diverging.params]
    diverging.train_step(data.x, data.y, sgd_lr=lr, sgd_decay=decay)
    for name, p, q, old in zip(
        stacked.param_names, stacked.params, diverging.params, before, strict=True
    ):
        for m in (0, 2):
            torch.testing.assert_close(q[m], p[m], atol=1e-6, rtol=1e-5, msg=name)
        assert torch.equal(q[1], old[1])


@pytest.mark.parametrize("kernel", AVAILABLE_KERNELS)
@pytest.mark.parametrize("batchnorm", [False, True])
def test_deferred_updates_give_the_same_steps(batchnorm: bool, kernel: str) -> None:
    """SGD updates kept as low-rank factors and written back every 3 steps (activations
    batch- or feature-major) give the losses,
    logits (training and evaluation passes between write-backs) and final weights of the
    update at every step, to float32 rounding; a shorter last batch and a non-fused step
    (the optimizer's path) write the pending updates back first."""
    data = _data(40)
    lr = torch.tensor([0.05, 0.1, 0.2])
    runs = []
    for defer, forward in ((1, "batch"), (3, "batch"), (3, "feature")):
        models = _members(batchnorm=batchnorm, dropout=0.2)
        layout = ProductLayout(
            grad_major="batch",
            forward_major=forward,
            defer=defer,
            kernel=kernel,  # type: ignore[arg-type]
        )
        stacked = StackedMLP(models[0].spec, models, dropout_seeds=[1, 2, 3], layout=layout)
        seen = []
        for step in range(8):
            rows = slice(0, 6) if step == 7 else slice(step * 4, step * 4 + 10)
            loss, logits, updated = stacked.train_step(data.x[rows], data.y[rows], sgd_lr=lr)
            assert updated
            seen += [loss.clone(), logits.clone(), stacked.forward(data.x, False).clone()]
        deferred = stacked._deferred
        # 7 steps of 10 (written back after steps 3 and 6), then one of 6: 16 of 30 columns
        assert (deferred is not None and deferred.used == 16) is (defer == 3)
        stacked.train_step(data.x[:10], data.y[:10])  # gradients only: written back first
        assert deferred is None or not deferred.pending
        seen += [g.clone() for g in stacked.grads]
        seen += list(stacked.member_state_dict(1).values())
        runs.append(seen)
    for run in runs[1:]:
        for a, b in zip(runs[0], run, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_the_engine_defers_at_small_batches_on_wide_layers_as_fit_steps() -> None:
    widths = [40, 512, 512, 5]
    assert choose_layout(10, 2, tuple(widths)).defer == DEFER_STEPS > 1
    assert choose_layout(128, 2, tuple(widths)).defer == 1
    g = torch.Generator().manual_seed(5)
    data = Dataset(
        torch.randn(200, 40, generator=g), torch.randint(0, 5, (200,), generator=g), "wide"
    )
    members = []
    for i in range(2):
        torch.manual_seed(20 + i)
        members.append(mlp(widths, "tanh"))
    batched = fit_batched(
        members, data, lr=[0.05, 0.2], steps=11, batch_size=10, eval_data=data, eval_every=5
    )
    for i, member in enumerate(batched):
        torch.manual_seed(20 + i)
        model = mlp(widths, "tanh")
        single = fit(model, data, lr=[0.05, 0.2][i], steps=11, batch_size=10, eval_data=data,
                     eval_every=5)  # fmt: skip
        for a, b in zip(single.history, member.history, strict=True):
            for key in ("train_loss", "valid_loss", "valid_acc"):
                if key in a:
                    assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (i, key)
        for name, value in model.state_dict().items():
            torch.testing.assert_close(member.final_state[name], value, atol=1e-5, rtol=1e-4)
