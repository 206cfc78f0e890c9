"""Functional optimizers: step-for-step equality with torch.optim, LARS against the paper,
batched members against separate runs, the active mask, and error messages."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from initlab.errors import InitlabError
from initlab.train.optim import OPTIMIZER_NAMES, OPTIMIZERS, make_optimizer

SHAPES = [(5, 4), (5,), (3, 5), (3,)]  # two layers: weight, bias, weight, bias
DECAY_MASK = [True, False, True, False]  # weight decay on weights only
STEPS = 20


def _params(seed: int, members: int | None = None) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    lead = () if members is None else (members,)
    return [torch.randn(*lead, *s, generator=g) for s in SHAPES]


def _grads(step: int, params: list[Tensor], lead: tuple[int, ...] = ()) -> list[Tensor]:
    """A noisy gradient of 0.5*||p||^2 (so the trajectory depends on the update)."""
    g = torch.Generator().manual_seed(1000 + step)
    return [p + 0.5 * torch.randn(*lead, *p.shape[len(lead) :], generator=g) for p in params]


def _torch_optimizer(name: str, groups: list[dict], h: dict) -> torch.optim.Optimizer:
    h = dict(h)
    if name in ("sgd", "momentum", "nesterov"):
        h.setdefault("momentum", 0.0 if name == "sgd" else 0.9)
        return torch.optim.SGD(groups, nesterov=name == "nesterov", **h)
    if name == "adagrad":
        return torch.optim.Adagrad(groups, **h)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, **h)
    betas = (h.pop("beta1", 0.9), h.pop("beta2", 0.999))
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return cls(groups, betas=betas, **h)


TORCH_CASES = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.05, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01}),
    ("momentum", {"lr": 0.01}),
    ("momentum", {"lr": 0.03, "momentum": 0.5, "weight_decay": 0.2}),
    ("nesterov", {"lr": 0.02}),
    ("nesterov", {"lr": 0.05, "momentum": 0.7, "weight_decay": 0.05}),
    ("adagrad", {"lr": 0.1}),
    ("adagrad", {"lr": 0.2, "lr_decay": 0.05, "initial_accumulator_value": 0.3}),
    ("adagrad", {"lr": 0.1, "weight_decay": 0.1, "eps": 1e-6}),
    ("rmsprop", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "alpha": 0.9, "weight_decay": 0.1}),
    ("rmsprop", {"lr": 0.005, "momentum": 0.9, "centered": True, "eps": 1e-6}),
    ("adam", {"lr": 0.01}),
    ("adam", {"lr": 0.02, "beta1": 0.5, "beta2": 0.99, "weight_decay": 0.1}),
    ("adamw", {"lr": 0.01}),
    ("adamw", {"lr": 0.05, "beta1": 0.8, "weight_decay": 0.3, "eps": 1e-6}),
]


@pytest.mark.parametrize("masked", [False, True], ids=["decay-all", "decay-weights"])
@pytest.mark.parametrize(("name", "h"), TORCH_CASES)
def test_matches_torch_optim_step_for_step(name: str, h: dict, masked: bool) -> None:
    ours = _params(1)
    theirs = [p.clone().requires_grad_(True) for p in ours]
    opt = make_optimizer(name, **h)
    mask = DECAY_MASK if masked else None
    state = opt.init_state(ours, mask)
    if masked:
        wd = h.get("weight_decay", OPTIMIZERS[name].defaults["weight_decay"])
        groups = [
            {"params": [p for p, m in zip(theirs, DECAY_MASK, strict=True) if m]},
            {"params": [p for p, m in zip(theirs, DECAY_MASK, strict=True) if not m]},
        ]
        groups[0]["weight_decay"] = wd
        groups[1]["weight_decay"] = 0.0
    else:
        groups = [{"params": theirs}]
    ref = _torch_optimizer(name, groups, h)
    for step in range(STEPS):
        grads = _grads(step, ours)
        originals = [g.clone() for g in grads]
        opt.step_(ours, grads, state)
        for g, o in zip(grads, originals, strict=True):
            assert torch.equal(g, o), "step_ must not modify the gradients"
        for p, g in zip(theirs, _grads(step, [t.detach() for t in theirs]), strict=True):
            p.grad = g
        ref.step()
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a, b.detach(), atol=1e-6, rtol=0)
    assert state["step"] == STEPS
    assert max(float(p.abs().max()) for p in ours) > 0  # the run did not collapse to zeros


def _lars_paper(params: list[Tensor], steps: int, h: dict, mask: list[bool]) -> list[Tensor]:
    """You et al. (2017), Algorithm 1, written out per layer with python floats."""
    w = [p.clone().double() for p in params]
    v = [torch.zeros_like(p) for p in w]
    for step in range(steps):
        g = _grads(step, [p.float() for p in w])
        for i in range(len(w)):
            gi = g[i].double()
            beta = h["weight_decay"] if mask[i] else 0.0
            wn, gn = math.sqrt(float((w[i] ** 2).sum())), math.sqrt(float((gi**2).sum()))
            local = h["eta"] * wn / (gn + beta * wn) if wn > 0 and gn > 0 else 1.0
            v[i] = h["momentum"] * v[i] + h["lr"] * local * (gi + beta * w[i])
            w[i] = w[i] - v[i]
    return [p.float() for p in w]


@pytest.mark.parametrize(
    "h",
    [
        {"lr": 2.0, "momentum": 0.9, "weight_decay": 0.0, "eta": 0.001},
        {"lr": 5.0, "momentum": 0.5, "weight_decay": 0.0005, "eta": 0.02},
    ],
)
def test_lars_matches_paper(h: dict) -> None:
    params = _params(2)
    params[1].zero_()  # a zero-initialized bias: local rate 1 there, and it must move
    expected = _lars_paper(params, STEPS, h, DECAY_MASK)
    opt = make_optimizer("lars", **h)
    state = opt.init_state(params, DECAY_MASK)
    for step in range(STEPS):
        opt.step_(params, _grads(step, params), state)
    for a, b in zip(params, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert float(params[1].abs().sum()) > 0


BATCHED_CASES = [
    ("sgd", {"lr": [0.1, 0.01, 0.3], "weight_decay": [0.0, 0.1, 0.01]}),
    ("sgd", {"lr": [0.1, 0.2, 0.05], "momentum": [0.0, 0.5, 0.9], "dampening": [0.0, 0.2, 0.5]}),
    ("momentum", {"lr": [0.01, 0.02, 0.03], "momentum": [0.9, 0.5, 0.0]}),
    ("nesterov", {"lr": [0.01, 0.05, 0.03], "weight_decay": [0.1, 0.0, 0.01]}),
    ("adagrad", {"lr": [0.1, 0.2, 0.05], "lr_decay": [0.0, 0.1, 0.01]}),
    ("adagrad", {"initial_accumulator_value": [0.0, 0.1, 1.0], "eps": [1e-10, 1e-6, 1e-3]}),
    ("rmsprop", {"lr": [0.01, 0.001, 0.02], "alpha": [0.99, 0.9, 0.5]}),
    ("rmsprop", {"momentum": [0.0, 0.5, 0.9], "weight_decay": [0.1, 0.0, 0.01], "centered": True}),
    ("adam", {"lr": [0.01, 0.001, 0.05], "beta1": [0.9, 0.5, 0.0], "beta2": [0.999, 0.9, 0.5]}),
    ("adam", {"eps": [1e-8, 1e-3, 1e-1], "weight_decay": [0.0, 0.1, 0.01]}),
    ("adamw", {"lr": [0.01, 0.03, 0.05], "weight_decay": [0.0, 0.1, 0.5]}),
    ("lars", {"lr": [1.0, 5.0, 0.5], "eta": [0.001, 0.02, 0.1], "weight_decay": [0, 1e-3, 1e-2]}),
    ("lars", {"momentum": [0.0, 0.5, 0.9]}),
]


def _split(h: dict, i: int) -> dict:
    return {k: float(torch.tensor(v)[i]) if isinstance(v, list) else v for k, v in h.items()}


def _stack(h: dict) -> dict:
    return {k: torch.tensor(v) if isinstance(v, list) else v for k, v in h.items()}


@pytest.mark.parametrize(("name", "h"), BATCHED_CASES)
def test_batched_members_equal_separate_runs(name: str, h: dict) -> None:
    n = 3
    stacked = _params(3, members=n)
    singles = [[p[i].clone() for p in stacked] for i in range(n)]
    opt = make_optimizer(name, **_stack(h))
    state = opt.init_state(stacked, DECAY_MASK)
    assert state["members"] == n
    solo = [make_optimizer(name, **_split(h, i)) for i in range(n)]
    solo_states = [o.init_state(ps, DECAY_MASK) for o, ps in zip(solo, singles, strict=True)]
    for step in range(STEPS):
        grads = _grads(step, stacked, lead=(n,))
        opt.step_(stacked, grads, state)
        for i in range(n):
            solo[i].step_(singles[i], [g[i] for g in grads], solo_states[i])
    for i in range(n):
        for a, b in zip(stacked, singles[i], strict=True):
            torch.testing.assert_close(a[i], b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_float_hparams_with_stacked_params(name: str) -> None:
    """The batched engine may share every hyperparameter: members=N, floats everywhere."""
    n = 2
    stacked = _params(4, members=n)
    singles = [[p[i].clone() for p in stacked] for i in range(n)]
    opt = make_optimizer(name, weight_decay=0.01)
    state = opt.init_state(stacked, DECAY_MASK, members=n)
    solo_states = [opt.init_state(ps, DECAY_MASK) for ps in singles]
    for step in range(5):
        grads = _grads(step, stacked, lead=(n,))
        opt.step_(stacked, grads, state)
        for i in range(n):
            opt.step_(singles[i], [g[i] for g in grads], solo_states[i])
    for i in range(n):
        for a, b in zip(stacked, singles[i], strict=True):
            torch.testing.assert_close(a[i], b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["adam", "adamw"])
@pytest.mark.parametrize("members", [None, 3])
def test_float_hparams_run_torch_fused_kernel(name: str, members: int | None) -> None:
    """With one float per hyperparameter, Adam and AdamW are torch's fused kernel: bit for
    bit ``torch.optim.Adam(fused=True)`` (the foreach update differs from it by an ulp within
    a few steps), a single model or stacked members alike, weight decay on the masked
    tensors only."""
    h = {"lr": 0.02, "beta1": 0.8, "beta2": 0.99, "weight_decay": 0.1, "eps": 1e-6}
    ours = _params(6, members)
    theirs = [p.clone().requires_grad_(True) for p in ours]
    opt = make_optimizer(name, **h)
    state = opt.init_state(ours, DECAY_MASK, members=members)
    decayed = [p for p, m in zip(theirs, DECAY_MASK, strict=True) if m]
    plain = [p for p, m in zip(theirs, DECAY_MASK, strict=True) if not m]
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    ref = cls(
        [{"params": decayed}, {"params": plain, "weight_decay": 0.0}],
        lr=h["lr"],
        betas=(h["beta1"], h["beta2"]),
        eps=h["eps"],
        weight_decay=h["weight_decay"],
        fused=True,
    )
    lead = () if members is None else (members,)
    for step in range(STEPS):
        opt.step_(ours, _grads(step, ours, lead), state)
        for p, g in zip(theirs, _grads(step, [t.detach() for t in theirs], lead), strict=True):
            p.grad = g
        ref.step()
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b.detach())


def test_fused_adam_leaves_strided_tensors_to_the_foreach_update() -> None:
    """The fused kernel walks a parameter and its gradient as one flat array: a transposed
    gradient or a strided parameter view goes through the foreach update instead."""
    base = torch.randn(6, 8, generator=torch.Generator().manual_seed(8))
    grad = torch.randn(8, 6, generator=torch.Generator().manual_seed(9))
    dense = [base.clone()]
    opt = make_optimizer("adam", lr=0.1)
    opt.step_(dense, [grad.t().contiguous()], opt.init_state(dense))
    transposed = [base.clone()]
    opt.step_(transposed, [grad.t()], opt.init_state(transposed))  # a non-contiguous view
    torch.testing.assert_close(transposed[0], dense[0], atol=1e-6, rtol=0)
    wide = torch.zeros(6, 16)
    wide[:, ::2] = base
    view = [wide[:, ::2]]  # every other column of a larger tensor
    opt.step_(view, [grad.t().contiguous()], opt.init_state(view))
    torch.testing.assert_close(view[0], dense[0], atol=1e-6, rtol=0)
    assert torch.equal(wide[:, 1::2], torch.zeros(6, 8))  # the columns between untouched


def test_fused_adam_member_does_not_depend_on_a_frozen_neighbour() -> None:
    n = 3
    start = _params(9, members=n)
    runs = []
    for freeze in (False, True):
        params = [p.clone() for p in start]
        opt = make_optimizer("adam", lr=0.01, weight_decay=0.01)
        state = opt.init_state(params, DECAY_MASK, members=n)
        for step in range(12):
            active = torch.tensor([True, True, not (freeze and step >= 4)])
            opt.step_(params, _grads(step, params, lead=(n,)), state, active=active)
        runs.append(params)
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a[:2], b[:2])  # bit for bit, frozen neighbour or not
        assert not torch.equal(a[2], b[2])


def test_adam_after_a_freeze_keeps_per_member_bias_corrections() -> None:
    """Once a member is frozen its step count falls behind: the update then corrects each
    member's moments by its own count (the foreach path), not the shared one."""
    n = 2
    params = _params(7, members=n)
    opt = make_optimizer("adam", lr=0.01)
    state = opt.init_state(params, members=n)
    opt.step_(params, _grads(0, params, lead=(n,)), state, active=torch.tensor([True, False]))
    assert state["uneven_steps"]
    solo = [p[1].clone() for p in params]  # member 1 from here on, alone: its first step
    solo_state = opt.init_state(solo)
    for step in range(1, 4):
        grads = _grads(step, params, lead=(n,))
        opt.step_(params, grads, state)
        opt.step_(solo, [g[1] for g in grads], solo_state)
    assert state["member_step"].tolist() == [4.0, 3.0]
    for a, b in zip(params, solo, strict=True):
        torch.testing.assert_close(a[1], b, atol=1e-6, rtol=1e-5)


def _state_tensors(state: dict) -> list[Tensor]:
    return [t for v in state.values() if isinstance(v, list) for t in v if isinstance(t, Tensor)]


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_active_mask_freezes_members(name: str) -> None:
    n = 3
    params = _params(5, members=n)
    reference = [p.clone() for p in params]
    opt = make_optimizer(name, momentum=0.5) if name in ("rmsprop", "sgd") else make_optimizer(name)
    state = opt.init_state(params, members=n)
    ref_state = opt.init_state(reference, members=n)
    for step in range(3):  # all active: both runs identical
        grads = _grads(step, params, lead=(n,))
        opt.step_(params, grads, state, active=torch.ones(n, dtype=torch.bool))
        opt.step_(reference, grads, ref_state)
    frozen_params = [p[1].clone() for p in params]
    frozen_state = [t[1].clone() for t in _state_tensors(state)]
    assert frozen_state, "every optimizer here keeps state tensors"
    active = torch.tensor([True, False, True])
    for step in range(3, 8):
        grads = _grads(step, params, lead=(n,))
        for g in grads:
            g[1] = float("nan")  # a diverged member: its NaNs must not leak anywhere
        opt.step_(params, grads, state, active=active)
        opt.step_(reference, grads, ref_state)
    for p, before in zip(params, frozen_params, strict=True):
        assert torch.equal(p[1], before)
    for t, before in zip(_state_tensors(state), frozen_state, strict=True):
        assert torch.equal(t[1], before)
    assert state["member_step"].tolist() == [8.0, 3.0, 8.0]
    for p, r in zip(params, reference, strict=True):  # active members as if unmasked
        torch.testing.assert_close(p[[0, 2]], r[[0, 2]], atol=1e-6, rtol=1e-5)
        assert torch.isfinite(p).all()


def test_unknown_hyperparameter_is_one_line_listing_valid() -> None:
    with pytest.raises(InitlabError) as err:
        make_optimizer("adam", betas=(0.9, 0.99))
    message = str(err.value)
    assert "\n" not in message
    assert "'betas'" in message
    assert "valid: lr, beta1, beta2, eps, weight_decay" in message


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: make_optimizer("adamax"), "valid: sgd, momentum, nesterov"),
        (lambda: make_optimizer("sgd", lr=-0.1), "'lr' must be a finite number >= 0"),
        (lambda: make_optimizer("adam", beta2=1.0), "'beta2' must be [0, 1)"),
        (lambda: make_optimizer("sgd", lr=torch.ones(2, 2)), "1-D float tensor"),
        (lambda: make_optimizer("sgd", lr=torch.ones(2), momentum=torch.ones(3) * 0.5), "3 values"),
        (lambda: make_optimizer("rmsprop", centered=0.5), "switch"),
        (lambda: make_optimizer("sgd", lr="fast"), "must be a number"),
    ],
)
def test_bad_hyperparameters(call: Callable[[], object], fragment: str) -> None:
    with pytest.raises(InitlabError) as err:
        call()
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_stacked_shapes_are_checked() -> None:
    opt = make_optimizer("sgd", lr=torch.full((3,), 0.1))
    with pytest.raises(InitlabError, match="leading dimension of 3"):
        opt.init_state(_params(0, members=2))
    state = opt.init_state(_params(0, members=3))
    with pytest.raises(InitlabError, match="active mask has shape"):
        opt.step_(_params(0, members=3), _params(1, members=3), state, torch.ones(2, dtype=bool))
