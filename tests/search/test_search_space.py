"""Search spaces: parsing, the one-line errors, TOML files, grids, narrowing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from initlab.errors import InitlabError
from initlab.search.space import SearchSpace, describe_param, load_space

BOOK = {
    "lr": {"kind": "log_uniform", "low": 1e-6, "high": 1e-2},
    "weight_decay": {"kind": "log_uniform", "low": 1e-8, "high": 1e-4},
}


def test_space_round_trips_and_describes_the_book_ranges() -> None:
    space = SearchSpace.from_dict(BOOK)
    assert space.to_dict() == BOOK
    assert describe_param(space["lr"]) == "10^U(-6, -2)"
    dist = space.distributions()["weight_decay"]
    assert (dist.low, dist.high, dist.log) == (1e-8, 1e-4, True)
    assert space.fingerprint() == SearchSpace.from_dict(dict(BOOK)).fingerprint()
    other = {**BOOK, "lr": {"kind": "log_uniform", "low": 1e-5, "high": 1e-2}}
    assert SearchSpace.from_dict(other).fingerprint() != space.fingerprint()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"learning_rate": {"kind": "uniform", "low": 0, "high": 1}}, "unknown search parameter"),
        ({"lr": {"kind": "loguniform", "low": 1e-3, "high": 1}}, "unknown kind 'loguniform'"),
        ({"lr": {"kind": "uniform", "low": 0.1, "high": 0.1}}, "empty range"),
        ({"lr": {"kind": "uniform", "low": 1.0, "high": 0.1}}, "inverted range"),
        ({"lr": {"kind": "log_uniform", "low": 0.0, "high": 1.0}}, "log range needs low > 0"),
        ({"lr": {"kind": "log_uniform", "low": -1.0, "high": 1.0}}, "log range needs low > 0"),
        ({"width": {"kind": "int", "low": 10, "high": 5}}, "inverted range"),
        ({"activation": {"kind": "categorical", "choices": []}}, "non-empty list"),
        ({"lr": {"kind": "uniform", "low": 0, "high": 1, "step": 2}}, "unknown key(s) step"),
        ({"lr": {"kind": "uniform", "low": "a", "high": 1}}, "finite number"),
        ({}, "the search space is empty"),
    ],
)
def test_bad_spaces_are_one_line_errors(table: dict, message: str) -> None:
    with pytest.raises(InitlabError) as err:
        SearchSpace.from_dict(table)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_space_from_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "space.toml"
    path.write_text(
        '[space]\nlr = {kind = "log_uniform", low = 1e-6, high = 1e-2}\n'
        'activation = {kind = "categorical", choices = ["relu", "tanh"]}\n'
    )
    space = load_space(path)
    assert space.names == ["lr", "activation"]
    assert space["activation"].choices == ("relu", "tanh")
    (tmp_path / "bad.toml").write_text("[space\n")
    with pytest.raises(InitlabError, match="cannot read space file"):
        load_space(tmp_path / "bad.toml")
    with pytest.raises(InitlabError, match="no space file"):
        load_space(tmp_path / "missing.toml")


def test_grid_is_log_spaced_on_log_ranges() -> None:
    grid = SearchSpace.from_dict(BOOK).grid(5)
    assert grid["lr"] == pytest.approx([1e-6, 1e-5, 1e-4, 1e-3, 1e-2], rel=1e-9)
    space = SearchSpace.from_dict({"width": {"kind": "int", "low": 10, "high": 12}})
    assert space.grid(5)["width"] == [10, 11, 12]


def test_narrowing_keeps_the_top_trials_inside_with_a_log_margin() -> None:
    space = SearchSpace.from_dict(BOOK)
    top = [{"lr": 1e-3, "weight_decay": 1e-6}, {"lr": 4e-3, "weight_decay": 1e-7}]
    narrowed = space.narrow(top, margin=0.1)
    # margin: 10% of the 4 decades searched = 0.4 decades on each side, clipped to the range
    assert math.log10(narrowed["lr"]["low"]) == pytest.approx(-3.4)
    assert narrowed["lr"]["high"] == pytest.approx(1e-2)  # 4e-3 * 10^0.4 > 1e-2: clipped
    assert math.log10(narrowed["weight_decay"]["low"]) == pytest.approx(-7.4)
    assert math.log10(narrowed["weight_decay"]["high"]) == pytest.approx(-5.6)
    assert space.narrow([]) == space.to_dict()
