"""The contract every registered scheme keeps, and per scheme a check of its formula.

Run over ``list_schemes()``: a newly registered scheme is tested automatically, and
``test_every_scheme_has_a_formula_check`` fails until it gets an entry in FORMULA_CHECKS.
Statistical tolerances: N >= 500_000 samples; stds to 1% (>= 10 standard errors), means
to 6 standard errors, bounds exactly, orthogonality to 1e-4 (float32 round-off).
"""

import inspect
import math
from collections.abc import Callable

import pytest
import torch

from initlab.errors import InitlabError
from initlab.init import list_schemes, parse_scheme
from initlab.init.meanfield import critical_point
from initlab.init.registry import Scheme
from initlab.init.variance_scaling import TRUNCATED_NORMAL_STD

SCHEMES = list_schemes()
LINEAR_SHAPE = (64, 32)
CONV_SHAPE = (32, 16, 3, 3)  # out >= in, as delta_orthogonal needs
BIG = (1000, 500)  # fan_in 500, fan_out 1000, fan_avg 750
N = BIG[0] * BIG[1]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _shapes(scheme: Scheme) -> list[tuple[int, ...]]:
    return [LINEAR_SHAPE if kind == "linear" else CONV_SHAPE for kind in scheme.applies_to]


def _draw(name: str, shape: tuple[int, ...] = BIG, **options: object) -> torch.Tensor:
    scheme, _ = parse_scheme(name)
    return scheme(torch.empty(shape), _gen(11), **options)


def _moments(w: torch.Tensor, std: float, mean: float = 0.0) -> None:
    assert w.std().item() == pytest.approx(std, rel=0.01)
    assert w.mean().item() == pytest.approx(mean, abs=6 * std / math.sqrt(w.numel()))


def _uniform(w: torch.Tensor, bound: float) -> None:
    assert bound * 0.999 < w.abs().max().item() <= bound
    _moments(w, bound / math.sqrt(3))


def _check_zeros() -> None:
    assert torch.count_nonzero(_draw("zeros")).item() == 0


def _check_constant() -> None:
    assert torch.equal(_draw("constant", value=0.3), torch.full(BIG, 0.3))


def _check_normal() -> None:
    _moments(_draw("normal", std=0.02, mean=0.1), 0.02, 0.1)


def _check_uniform() -> None:
    _uniform(_draw("uniform", a=0.2), 0.2)


def _check_truncated_normal() -> None:
    w = _draw("truncated_normal", std=0.5)
    assert w.abs().max().item() <= 1.0
    _moments(w, 0.5 * TRUNCATED_NORMAL_STD)


def _check_standard() -> None:
    _uniform(_draw("standard"), 1 / math.sqrt(500))


def _check_xavier_normal() -> None:
    _moments(_draw("xavier_normal", gain=2.0), 2.0 * math.sqrt(2 / 1500))


def _check_xavier_uniform() -> None:
    _uniform(_draw("xavier_uniform", gain="tanh"), 5 / 3 * math.sqrt(6 / 1500))


def _check_he_normal() -> None:
    w = _draw("he_normal", mode="fan_out", negative_slope=0.1)
    _moments(w, math.sqrt(2 / (1.01 * 1000)))


def _check_he_uniform() -> None:
    _uniform(_draw("he_uniform"), math.sqrt(6 / 500))


def _check_lecun_normal() -> None:
    _moments(_draw("lecun_normal"), math.sqrt(1 / 500))


def _check_lecun_uniform() -> None:
    _uniform(_draw("lecun_uniform"), math.sqrt(3 / 500))


def _truncated(w: torch.Tensor, std: float) -> None:
    """Variance std^2 after the cut at 2 parent stds (parent std = std / 0.8796)."""
    _moments(w, std)
    assert 1.99 * std / TRUNCATED_NORMAL_STD < w.abs().max().item()
    assert w.abs().max().item() <= 2 * std / TRUNCATED_NORMAL_STD * (1 + 1e-6)


def _check_glorot_truncated_normal() -> None:
    _truncated(_draw("glorot_truncated_normal", gain=2.0), 2.0 * math.sqrt(2 / 1500))


def _check_he_truncated_normal() -> None:
    w = _draw("he_truncated_normal", mode="fan_out", negative_slope=0.1)
    _truncated(w, math.sqrt(2 / (1.01 * 1000)))


def _check_lecun_truncated_normal() -> None:
    _truncated(_draw("lecun_truncated_normal"), math.sqrt(1 / 500))


def _check_sparse() -> None:
    w = _draw("sparse", sparsity=0.25, std=0.5)
    assert ((w == 0).sum(dim=0) == 250).all()  # ceil(0.25 * 1000) zeros in every column
    _moments(w[w != 0], 0.5)


def _check_variance_scaling() -> None:
    w = _draw("variance_scaling", scale=3.0, mode="fan_avg", distribution="truncated_normal")
    _moments(w, math.sqrt(3 / 750))
    assert w.abs().max().item() <= 2 * math.sqrt(3 / 750) / TRUNCATED_NORMAL_STD * (1 + 1e-6)


def _check_orthogonal() -> None:
    w = _draw("orthogonal", shape=(500, 1000), gain=0.7)
    assert torch.allclose(w @ w.T, 0.49 * torch.eye(500), atol=1e-4)
    w = _draw("orthogonal", shape=(64, 16, 3, 3))  # conv: flattened rows are orthonormal
    flat = w.reshape(64, -1)
    assert torch.allclose(flat @ flat.T, torch.eye(64), atol=1e-5)


def _check_identity() -> None:
    assert torch.equal(_draw("identity", gain=0.5), 0.5 * torch.eye(*BIG))


def _check_dirac() -> None:
    w = _draw("dirac", shape=(8, 4, 3, 3), gain=2.0)
    expected = torch.zeros(8, 4, 3, 3)
    expected[torch.arange(4), torch.arange(4), 1, 1] = 2.0
    assert torch.equal(w, expected)


def _check_delta_orthogonal() -> None:
    w = _draw("delta_orthogonal", shape=(500, 250, 3), gain=1.5)
    h = w[:, :, 1]
    assert torch.allclose(h.T @ h, 2.25 * torch.eye(250), atol=1e-4)
    assert torch.count_nonzero(w[:, :, [0, 2]]).item() == 0


def _check_critical() -> None:
    sigma_w2, _ = critical_point(0.2)
    _moments(_draw("critical", sigma_b2=0.2), math.sqrt(sigma_w2 / 500))


def _check_critical_orthogonal() -> None:
    sigma_w2, _ = critical_point(0.2)
    w = _draw("critical_orthogonal", shape=(500, 500), sigma_b2=0.2)
    assert torch.allclose(w @ w.T, sigma_w2 * torch.eye(500), atol=1e-4)
    k = _draw("critical_orthogonal", shape=(64, 32, 3, 3), sigma_b2=0.2)  # delta-orthogonal
    h = k[:, :, 1, 1]
    assert torch.allclose(h.T @ h, sigma_w2 * torch.eye(32), atol=1e-4)
    assert torch.count_nonzero(k).item() == torch.count_nonzero(h).item()


FORMULA_CHECKS: dict[str, Callable[[], None]] = {
    name.removeprefix("_check_"): check
    for name, check in list(globals().items())
    if name.startswith("_check_")
}


def test_every_scheme_has_a_formula_check() -> None:
    assert set(FORMULA_CHECKS) == {scheme.name for scheme in SCHEMES}


@pytest.mark.parametrize("name", sorted(FORMULA_CHECKS))
def test_formula(name: str) -> None:
    FORMULA_CHECKS[name]()


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_fills_finite_values_deterministically(scheme: Scheme) -> None:
    for shape in _shapes(scheme):
        a = scheme(torch.full(shape, math.nan), _gen(1))
        b = scheme(torch.full(shape, math.nan), _gen(1))
        assert torch.isfinite(a).all()
        assert torch.equal(a, b)
        c = scheme(torch.empty(shape), _gen(2))
        assert torch.equal(a, c) != scheme.random  # random schemes differ under another seed


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_leaves_the_global_generator_alone(scheme: Scheme) -> None:
    state = torch.get_rng_state()
    for shape in _shapes(scheme):
        scheme(torch.empty(shape), _gen(1))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_works_on_a_1000_by_1000_weight(scheme: Scheme) -> None:
    shape = (1000, 1000) if "linear" in scheme.applies_to else (1000, 1000, 1)
    w = scheme(torch.empty(shape), _gen())
    assert w.shape == shape and torch.isfinite(w).all()
    if scheme.name != "zeros" and scheme.name != "constant":
        assert w.abs().max().item() > 0


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_rejects_the_layer_kinds_it_does_not_apply_to(scheme: Scheme) -> None:
    for kind, shape in (("linear", LINEAR_SHAPE), ("conv", CONV_SHAPE)):
        if kind not in scheme.applies_to:
            with pytest.raises(InitlabError):
                scheme(torch.empty(shape), _gen())


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_scheme_string_round_trip(scheme: Scheme) -> None:
    assert parse_scheme(scheme.format()) == (scheme, {})
    for alias in scheme.aliases:
        assert parse_scheme(alias)[0] is scheme


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_is_documented_with_a_doctest(scheme: Scheme) -> None:
    doc = inspect.getdoc(scheme.weight) or ""
    assert ">>>" in doc
    assert scheme.description and "\n" not in scheme.description
    parameters = inspect.signature(scheme.weight).parameters
    assert set(scheme.option_names) <= set(parameters)
    assert ("generator" in parameters) == scheme.random
