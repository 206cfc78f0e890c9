"""Named schemes: equivalence with torch.nn.init and PyTorch's default layer init, and the
structure of the deterministic and orthogonal schemes.

Where our draw order is PyTorch's (xavier, kaiming, orthogonal, standard), the same
generator seed gives bit-identical values, which is stronger than equality in
distribution; we assert torch.equal.
"""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from initlab import init
from initlab.errors import InitlabError
from initlab.init import schemes
from initlab.init.meanfield import critical_point
from initlab.init.variance_scaling import TRUNCATED_NORMAL_STD

SHAPES = [(300, 200), (32, 16, 3, 3), (8, 4, 5)]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pair(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.empty(shape), torch.empty(shape)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gain", [1.0, 0.5, "tanh", "relu"])
def test_xavier_identical_to_torch(shape: tuple[int, ...], gain: float | str) -> None:
    torch_gain = nn.init.calculate_gain(gain) if isinstance(gain, str) else gain
    ours, theirs = _pair(shape)
    init.xavier_normal_(ours, gain, generator=_gen(1))
    nn.init.xavier_normal_(theirs, torch_gain, generator=_gen(1))
    assert torch.equal(ours, theirs)
    init.xavier_uniform_(ours, gain, generator=_gen(2))
    nn.init.xavier_uniform_(theirs, torch_gain, generator=_gen(2))
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize(
    ("slope", "nonlinearity"), [(0.0, "relu"), (0.0, "leaky_relu"), (0.2, "leaky_relu")]
)
def test_he_identical_to_torch_kaiming(
    shape: tuple[int, ...], mode: str, slope: float, nonlinearity: str
) -> None:
    ours, theirs = _pair(shape)
    schemes.he_normal_(ours, slope, mode, nonlinearity, generator=_gen(3))
    nn.init.kaiming_normal_(theirs, slope, mode, nonlinearity, generator=_gen(3))
    assert torch.equal(ours, theirs)
    schemes.he_uniform_(ours, slope, mode, nonlinearity, generator=_gen(4))
    nn.init.kaiming_uniform_(theirs, slope, mode, nonlinearity, generator=_gen(4))
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("shape", [(300, 200), (200, 300), (32, 16, 3, 3), (64, 8, 3)])
def test_orthogonal_identical_to_torch(shape: tuple[int, ...]) -> None:
    ours, theirs = _pair(shape)
    init.orthogonal_(ours, 1.5, generator=_gen(5))
    nn.init.orthogonal_(theirs, 1.5, generator=_gen(5))
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("layer_type", ["linear", "conv2d", "conv_transpose1d"])
def test_standard_identical_to_pytorch_default_init(layer_type: str) -> None:
    build = {
        "linear": lambda: nn.Linear(300, 200),
        "conv2d": lambda: nn.Conv2d(16, 32, 3),
        "conv_transpose1d": lambda: nn.ConvTranspose1d(8, 4, 5),
    }[layer_type]
    torch.manual_seed(7)
    default = build().weight.detach()
    ours = schemes.standard_(torch.empty_like(default), generator=_gen(7))
    assert torch.equal(ours, default)
    # and in distribution: bound 1/sqrt(fan_in), std 1/sqrt(3 fan_in)
    fan_in = nn.init._calculate_fan_in_and_fan_out(default)[0]
    assert ours.abs().max().item() <= 1 / math.sqrt(fan_in)


def test_standard_distribution_on_a_large_layer() -> None:
    # N = 1e6: std within 1% (about 20 standard errors for the uniform)
    w = schemes.standard_(torch.empty(1000, 1000), generator=_gen())
    assert w.abs().max().item() <= 1 / math.sqrt(1000)
    assert w.abs().max().item() > 0.999 / math.sqrt(1000)
    assert w.std().item() == pytest.approx(1 / math.sqrt(3 * 1000), rel=0.01)
    linear = nn.Linear(1000, 1000)
    assert linear.weight.std().item() == pytest.approx(w.std().item(), rel=0.01)


def test_he_rejects_a_slope_for_relu() -> None:
    with pytest.raises(InitlabError, match="needs nonlinearity='leaky_relu'"):
        schemes.he_normal_(torch.empty(3, 3), 0.1, nonlinearity="relu")
    with pytest.raises(InitlabError, match="valid: fan_in, fan_out"):
        schemes.he_uniform_(torch.empty(3, 3), mode="fan_avg")


def test_aliases_are_the_same_functions() -> None:
    assert schemes.glorot_normal_ is init.xavier_normal_
    assert schemes.glorot_uniform_ is init.xavier_uniform_


def test_truncated_normal_in_std_units() -> None:
    w = schemes.truncated_normal_(torch.empty(1000, 500), 0.1, 1.0, -1.0, 3.0, _gen())
    assert w.min().item() >= 1.0 - 0.1 and w.max().item() <= 1.0 + 0.3
    w = schemes.truncated_normal_(torch.empty(1000, 500), 0.1, generator=_gen())
    assert w.std().item() == pytest.approx(0.1 * TRUNCATED_NORMAL_STD, rel=0.01)


def test_identity_is_a_scaled_eye() -> None:
    assert torch.equal(schemes.identity_(torch.empty(3, 5), 2.0), 2.0 * torch.eye(3, 5))
    with pytest.raises(InitlabError, match="2-D weight"):
        schemes.identity_(torch.empty(3, 3, 3))


@pytest.mark.parametrize(
    ("shape", "groups"), [((6, 4, 3), 1), ((8, 4, 3, 3), 2), ((4, 4, 3, 3, 3), 1)]
)
def test_dirac_matches_torch(shape: tuple[int, ...], groups: int) -> None:
    ours, theirs = _pair(shape)
    init.dirac_(ours, groups, gain=0.5)
    nn.init.dirac_(theirs, groups)
    assert torch.equal(ours, 0.5 * theirs)


def test_dirac_convolution_copies_its_input() -> None:
    x = torch.randn(2, 4, 9, 9)
    w = init.dirac_(torch.empty(6, 4, 3, 3))
    y = F.conv2d(x, w, padding=1)
    assert torch.equal(y[:, :4], x) and torch.equal(y[:, 4:], torch.zeros_like(y[:, 4:]))


@pytest.mark.parametrize(
    ("shape", "gain"),
    [((16, 16, 3, 3), 1.0), ((32, 8, 5), 2.0), ((8, 8, 3, 3, 3), 0.5), ((8, 4, 2, 4), 1.0)],
)
def test_delta_orthogonal_structure(shape: tuple[int, ...], gain: float) -> None:
    w = schemes.delta_orthogonal_(torch.empty(shape), gain, _gen())
    centre = tuple((k - 1) // 2 for k in shape[2:])  # the tap padding="same" centres on
    h = w[(slice(None), slice(None), *centre)]
    assert torch.allclose(h.T @ h, gain**2 * torch.eye(shape[1]), atol=1e-5)
    off_centre = w.clone()
    off_centre[(slice(None), slice(None), *centre)] = 0
    assert torch.count_nonzero(off_centre).item() == 0


def test_delta_orthogonal_convolution_is_an_isometry() -> None:
    # with circular padding the convolution is exactly the orthogonal map at every pixel
    w = schemes.delta_orthogonal_(torch.empty(16, 16, 3, 3), generator=_gen())
    x = torch.randn(4, 16, 10, 10, dtype=torch.float64)
    y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), w.double())
    assert y.norm().item() == pytest.approx(x.norm().item(), rel=1e-6)


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_delta_orthogonal_same_padding_convolution_preserves_the_norm(dims: int, k: int) -> None:
    # H^T H = I at the tap padding="same" aligns with each output position, so for every
    # input x the output y has ||y|| = ||x|| up to float64 round-off (rel 1e-10). The old
    # k // 2 tap lost 4-14% of the norm for even k (one-pixel shift into the padding).
    generator = _gen(k + 10 * dims)
    w = schemes.delta_orthogonal_(
        torch.empty(12, 6, *[k] * dims, dtype=torch.float64), 1.0, generator
    )
    x = torch.randn(3, 6, *[7] * dims, dtype=torch.float64, generator=generator)
    y = _CONV[dims](x, w, padding="same")
    assert y.shape[2:] == x.shape[2:]
    assert y.norm().item() == pytest.approx(x.norm().item(), rel=1e-10)
    shifted = torch.zeros_like(w)  # torch's dirac tap k // 2 instead: loses norm for even k
    shifted[(slice(None), slice(None), *[k // 2] * dims)] = w[
        (slice(None), slice(None), *[(k - 1) // 2] * dims)
    ]
    ratio = _CONV[dims](x, shifted, padding="same").norm().item() / x.norm().item()
    assert (ratio == pytest.approx(1.0, rel=1e-10)) == (k % 2 == 1)


def test_delta_orthogonal_needs_in_at_most_out() -> None:
    with pytest.raises(InitlabError, match="in_channels <= out_channels") as err:
        schemes.delta_orthogonal_(torch.empty(4, 8, 3, 3))
    assert "in=8 > out=4" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InitlabError, match="convolution weight"):
        schemes.delta_orthogonal_(torch.empty(8, 8))


def test_critical_variance() -> None:
    sigma_w2, _ = critical_point(0.3)
    w = schemes.critical_(torch.empty(1000, 500), sigma_b2=0.3, generator=_gen())
    assert w.var().item() == pytest.approx(sigma_w2 / 500, rel=0.02)  # 10 SE of a variance
    w = schemes.critical_(torch.empty(1000, 500), sigma_b2=0.0, generator=_gen())
    assert w.var().item() == pytest.approx(1 / 500, rel=0.02)  # sigma_w^2 = 1: LeCun


def test_constants() -> None:
    assert torch.count_nonzero(init.zeros_(torch.ones(4, 4))).item() == 0
    assert torch.equal(init.constant_(torch.empty(2, 3), -0.25), torch.full((2, 3), -0.25))
    with pytest.raises(InitlabError, match="std must be >= 0"):
        init.normal_(torch.empty(2, 2), std=-1.0)
