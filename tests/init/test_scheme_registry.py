"""The registry: lookup, listing, scheme strings with typed options, one-line errors."""

from collections.abc import Iterator

import pytest
import torch

from initlab.errors import InitlabError
from initlab.init import get_scheme, initialize, list_schemes, parse_scheme, register, unregister
from initlab.init.registry import Option, Scheme
from initlab.models import mlp

BUILTIN = [
    "zeros", "constant", "normal", "uniform", "truncated_normal", "standard",
    "xavier_normal", "xavier_uniform", "he_normal", "he_uniform", "lecun_normal",
    "lecun_uniform", "glorot_truncated_normal", "he_truncated_normal", "lecun_truncated_normal",
    "variance_scaling", "orthogonal", "identity", "sparse", "dirac", "delta_orthogonal",
    "critical",
]  # fmt: skip


def test_builtin_schemes_are_listed_in_order() -> None:
    assert [scheme.name for scheme in list_schemes()][: len(BUILTIN)] == BUILTIN


def test_lookup_by_name_and_alias() -> None:
    assert get_scheme("glorot_uniform") is get_scheme("xavier_uniform")
    assert get_scheme("kaiming_normal") is get_scheme("he_normal")
    assert get_scheme("critical").bias == "critical"
    assert get_scheme("standard").bias == "standard"


def test_unknown_scheme_lists_the_valid_ones_in_one_line() -> None:
    with pytest.raises(InitlabError) as err:
        get_scheme("xavier")
    message = str(err.value)
    assert message.startswith("unknown init scheme 'xavier'; valid: zeros, constant")
    assert "he_normal" in message and "kaiming_uniform" in message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "name", "options"),
    [
        ("he_normal", "he_normal", {}),
        ("normal:std=0.01", "normal", {"std": 0.01}),
        (
            "he_normal:mode=fan_out,negative_slope=0.1",
            "he_normal",
            {"mode": "fan_out", "negative_slope": 0.1},
        ),
        (" xavier_uniform : gain = tanh ", "xavier_uniform", {"gain": "tanh"}),
        ("glorot_normal:gain=2", "xavier_normal", {"gain": 2.0}),
        ("dirac:groups=2,gain=0.5", "dirac", {"groups": 2, "gain": 0.5}),
        ("constant:value=-1e-3", "constant", {"value": -0.001}),
        (
            "critical:sigma_b2=0,activation=softsign",
            "critical",
            {"sigma_b2": 0.0, "activation": "softsign"},
        ),
    ],
)
def test_parse_scheme(text: str, name: str, options: dict) -> None:
    scheme, parsed = parse_scheme(text)
    assert scheme.name == name and parsed == options
    assert [type(v) for v in parsed.values()] == [type(v) for v in options.values()]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("normal:sd=0.1", "unknown option 'sd' for scheme normal; valid: std, mean"),
        ("normal:std=abc", "option std must be float >= 0, got 'abc'"),
        ("normal:std=-1", "option std must be float >= 0, got -1.0"),
        ("normal:std=nan", "option std must be float >= 0"),
        ("he_normal:mode=fan_avg", "option mode must be fan_in|fan_out, got 'fan_avg'"),
        ("xavier_normal:gain=swish", "a number >= 0 or one of linear, identity, sigmoid"),
        ("dirac:groups=1.5", "option groups must be int >= 1"),
        ("normal:std", "write key=value; options of normal: std, mean"),
        ("normal:std=1,std=2", "option std given twice"),
        ("lecun_normal:gain=2", "unknown option 'gain' for scheme lecun_normal; valid: none"),
        ("", "non-empty string"),
    ],
)
def test_parse_errors_are_one_line(text: str, message: str) -> None:
    with pytest.raises(InitlabError) as err:
        parse_scheme(text)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_format_omits_defaults_and_round_trips() -> None:
    scheme = get_scheme("he_normal")
    text = scheme.format({"mode": "fan_out", "negative_slope": 0.1, "nonlinearity": "leaky_relu"})
    assert text == "he_normal:negative_slope=0.1,mode=fan_out"
    assert parse_scheme(text) == (scheme, {"negative_slope": 0.1, "mode": "fan_out"})
    assert get_scheme("normal").format({"std": 1e-7}) == "normal:std=1e-07"


def test_resolve_fills_defaults_and_checks_types() -> None:
    scheme = get_scheme("normal")
    assert scheme.resolve({"std": 2}) == {"std": 2.0, "mean": 0.0}
    with pytest.raises(InitlabError, match="option std must be float"):
        scheme.resolve({"std": "big"})


def _halves_(tensor: torch.Tensor, value: float = 0.5) -> torch.Tensor:
    """Fill with ``value`` (a test plugin).

    >>> _halves_(torch.empty(1, 1)).item()
    0.5
    """
    return tensor.fill_(value)


@pytest.fixture
def plugin() -> Iterator[Scheme]:
    scheme = register(
        Scheme(
            "test_halves",
            "every weight 0.5 (test plugin)",
            _halves_,
            options=(Option("value", "float", 0.5, "fill value"),),
            random=False,
            aliases=("test_halves_alias",),
        )
    )
    yield scheme
    unregister("test_halves")


def test_a_registered_scheme_is_usable_everywhere(plugin: Scheme) -> None:
    assert plugin in list_schemes()
    scheme, options = parse_scheme("test_halves_alias:value=0.25")
    assert scheme is plugin and options == {"value": 0.25}
    model = mlp([3, 4, 2])
    initialize(model, "test_halves:value=0.25")
    assert torch.equal(model.linear1.weight, torch.full((4, 3), 0.25))


def test_register_refuses_duplicates_and_bad_entries(plugin: Scheme) -> None:
    with pytest.raises(InitlabError, match="already registered"):
        register(plugin)
    with pytest.raises(InitlabError, match="already registered"):
        register(Scheme("normal2", "x", _halves_, aliases=("glorot_normal",)))
    with pytest.raises(InitlabError, match="unknown bias rule 'ones'"):
        register(Scheme("test_bad", "x", _halves_, bias="ones"))  # type: ignore[arg-type]
    with pytest.raises(InitlabError, match="option value must be float >= 0"):
        register(
            Scheme("test_bad", "x", _halves_, options=(Option("value", "float", -1, "v", low=0),))
        )
    with pytest.raises(InitlabError, match="lower_snake_case"):
        register(Scheme("Bad-Name", "x", _halves_))
    assert register(plugin, replace=True) is plugin
    assert "test_bad" not in [s.name for s in list_schemes()]


def test_data_dependent_schemes_are_refused_by_initialize() -> None:
    register(Scheme("test_needs_data", "needs a batch", _halves_, random=False, needs_data=True))
    try:
        with pytest.raises(InitlabError, match="data-dependent and needs a batch"):
            initialize(mlp([3, 2]), "test_needs_data")
    finally:
        unregister("test_needs_data")
