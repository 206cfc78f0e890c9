"""RBMs: the exact likelihood is a normalized distribution, and training improves the model.

Data: 4 binary prototypes of 16 pixels, each pixel flipped with probability 0.05 (the
optimal average log-likelihood is -(log 4 + 16 H(0.05)) = -4.56 nats); for Gaussian
visibles, prototypes * 2 plus N(0, 0.3^2) noise, standardized. Everything is seeded.
"""

import doctest
import itertools
import math

import pytest
import torch

from initlab.errors import InitlabError
from initlab.init import rbm as rbm_module
from initlab.init.rbm import RBM, RBMConfig, train_rbm

OPTIMAL_LL = -(math.log(4) + 16 * -(0.05 * math.log(0.05) + 0.95 * math.log(0.95)))


def _binary(n: int = 600, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    prototypes = (torch.rand(4, 16, generator=torch.Generator().manual_seed(99)) < 0.4).float()
    which = torch.randint(0, 4, (n,), generator=gen)
    flips = (torch.rand(n, 16, generator=gen) < 0.05).float()
    return (prototypes[which] - flips).abs()


def _rbm(n_visible: int = 16, n_hidden: int = 8, visible: str = "bernoulli") -> RBM:
    return RBM(n_visible, n_hidden, visible, generator=torch.Generator().manual_seed(1))  # type: ignore[arg-type]


def _randomize(rbm: RBM, scale: float = 1.0) -> RBM:
    gen = torch.Generator().manual_seed(5)
    rbm.weight = torch.randn(rbm.weight.shape, generator=gen) * scale
    rbm.hidden_bias = torch.randn(rbm.n_hidden, generator=gen) * scale
    rbm.visible_bias = torch.randn(rbm.n_visible, generator=gen) * scale
    return rbm


def test_doctests() -> None:
    result = doctest.testmod(rbm_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("shape", [(5, 3), (3, 5)])  # enumerates over h, then over v
def test_exact_likelihood_is_a_normalized_distribution(shape: tuple[int, int]) -> None:
    rbm = _randomize(_rbm(*shape))
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=shape[0])))
    total = sum(math.exp(rbm.log_likelihood(v[None])) for v in states)
    assert total == pytest.approx(1.0, abs=1e-9)
    # and log Z equals the brute-force sum over every (v, h) of exp(-E(v, h))
    hiddens = torch.tensor(list(itertools.product([0.0, 1.0], repeat=shape[1])))
    w, b, c = (t.double() for t in (rbm.weight, rbm.visible_bias, rbm.hidden_bias))
    v, h = states.double(), hiddens.double()
    neg_energy = v @ b[:, None] + (h @ c)[None, :] + v @ w.T @ h.T  # [2^nv, 2^nh]
    assert rbm.log_partition() == pytest.approx(float(torch.logsumexp(neg_energy.flatten(), 0)))


def test_gaussian_log_partition_matches_quadrature() -> None:
    rbm = _randomize(_rbm(1, 3, "gaussian"), 0.7)
    grid = torch.linspace(-30, 30, 200_001, dtype=torch.float64)[:, None]
    saved = (rbm.weight, rbm.hidden_bias, rbm.visible_bias)
    rbm.weight, rbm.hidden_bias, rbm.visible_bias = (t.double() for t in saved)
    density = torch.exp(-rbm.free_energy(grid))
    rbm.weight, rbm.hidden_bias, rbm.visible_bias = saved
    integral = float(torch.trapezoid(density, grid[:, 0]))
    assert rbm.log_partition() == pytest.approx(math.log(integral), abs=1e-6)


@pytest.mark.parametrize(
    ("sampling", "lr", "momentum", "final"), [("cd", 0.1, 0.9, -5.3), ("pcd", 0.05, 0.5, -7.0)]
)
def test_training_raises_the_exact_likelihood_and_lowers_reconstruction_error(
    sampling: str, lr: float, momentum: float, final: float
) -> None:
    x = _binary()
    rbm = _rbm()
    config = RBMConfig(epochs=30, batch_size=20, lr=lr, momentum=momentum, sampling=sampling)  # type: ignore[arg-type]
    history = train_rbm(rbm, x[:500], config, held_out=x[500:], seed=3)
    ll = history.series("log_likelihood")
    recon = history.series("recon_error")
    assert len(ll) == 31 and history.rows[0]["epoch"] == 0
    # from -8.1 nats (independent pixels at their means, the guide's visible biases) toward
    # the optimum -4.56 (measured: CD-1 -4.74, PCD-1 -6.25; PCD's chains mix slowly here)
    assert ll[0] < -8.0 and final < ll[-1] <= OPTIMAL_LL + 0.2
    assert recon[-1] < 0.75 * recon[0]
    held = history.series("log_likelihood_held_out")
    assert held[-1] > held[0] + 1.0  # generalizes, not only memorizes


def test_free_energy_ranks_data_below_noise_bernoulli_and_gaussian() -> None:
    x = _binary()
    rbm = _rbm()
    train_rbm(rbm, x[:500], RBMConfig(epochs=15, batch_size=20), seed=0)
    noise = (torch.rand(100, 16, generator=torch.Generator().manual_seed(7)) < 0.5).float()
    assert rbm.free_energy(x[500:]).mean() < rbm.free_energy(noise).mean() - 5.0
    gen = torch.Generator().manual_seed(2)
    real = x * 2 + 0.3 * torch.randn(x.shape, generator=gen)
    real = (real - real.mean(0)) / real.std(0)
    g = _rbm(visible="gaussian")
    history = train_rbm(g, real[:500], RBMConfig(epochs=20, batch_size=20, lr=0.01), seed=0)
    recon = history.series("recon_error")
    assert recon[-1] < 0.4 * recon[0]
    gauss_noise = torch.randn(100, 16, generator=gen)
    assert g.free_energy(real[500:]).mean() < g.free_energy(gauss_noise).mean() - 2.0
    ll = history.series("log_likelihood")  # measured: -22.7 -> -21.2
    assert ll[-1] > ll[0] + 1.0


def test_sparsity_target_lowers_the_mean_hidden_activity() -> None:
    x = _binary()
    plain, sparse = _rbm(), _rbm()
    train_rbm(plain, x, RBMConfig(epochs=10, batch_size=20), seed=0)
    config = RBMConfig(epochs=10, batch_size=20, sparsity_target=0.05, sparsity_cost=1.0)
    train_rbm(sparse, x, config, seed=0)
    activity_plain = float(plain.hidden_probs(x).mean())
    activity_sparse = float(sparse.hidden_probs(x).mean())
    assert activity_sparse < 0.15 < activity_plain


def test_schedules_monitors_and_seeds() -> None:
    x = _binary(200)
    config = RBMConfig(epochs=6, batch_size=50, lr_schedule="linear", momentum_epochs=2)
    a, b = _rbm(), _rbm()
    history = train_rbm(a, x, config, seed=4)
    train_rbm(b, x, config, seed=4)
    assert torch.equal(a.weight, b.weight)
    assert history.series("lr") == pytest.approx([0.1 * (1 - e / 6) for e in range(6)])
    assert history.series("momentum") == [0.5, 0.5, 0.9, 0.9, 0.9, 0.9]
    c = _rbm()
    train_rbm(c, x, config, seed=5)
    assert not torch.equal(a.weight, c.weight)
    assert "free_energy_gap" not in history.rows[-1]  # no held-out data given


def test_gibbs_samples_and_reconstructions_have_the_data_shape() -> None:
    x = _binary(100)
    rbm = _rbm()
    train_rbm(rbm, x, RBMConfig(epochs=5, batch_size=20), seed=0)
    gen = torch.Generator().manual_seed(0)
    samples = rbm.gibbs(x[:10], 50, gen)
    assert samples.shape == (10, 16) and samples.min() >= 0 and samples.max() <= 1
    assert rbm.reconstruct(x[:10]).shape == (10, 16)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (torch.full((10, 16), math.nan), "NaN or infinite"),
        (torch.zeros(1, 16), "at least 2 examples"),
        (torch.zeros(10, 15), "15 values per example"),
        ([[0.0] * 16] * 4, "must be a tensor"),
    ],
)
def test_bad_data_is_one_line(data: object, message: str) -> None:
    with pytest.raises(InitlabError, match=message) as info:
        train_rbm(_rbm(), data, RBMConfig(epochs=1))  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_bad_settings_are_one_line() -> None:
    for bad in ({"k": 0}, {"lr": -1.0}, {"momentum": 1.0}, {"sampling": "gibbs"}):
        with pytest.raises(InitlabError):
            train_rbm(_rbm(), _binary(20), RBMConfig(**bad))  # type: ignore[arg-type]
    with pytest.raises(InitlabError, match="2\\^30"):
        RBM(30, 40).log_partition()
    with pytest.raises(InitlabError, match="unknown RBM visible kind"):
        RBM(3, 2, "poisson")  # type: ignore[arg-type]
