"""``initlab init list`` and ``initlab init show``, driven in-process with CliRunner."""

import pytest
from typer.testing import CliRunner

from initlab.cli.init_cmd import app
from initlab.errors import InitlabError
from initlab.init import list_schemes

runner = CliRunner()


def test_list_shows_every_scheme_with_options() -> None:
    result = runner.invoke(app, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for scheme in list_schemes():
        assert scheme.name in result.output
    assert "std=1.0, mean=0.0" in result.output
    assert "cut at [a, b] std" in result.output  # rich markup is escaped
    for source in ("JAX glorot_normal", "Keras HeNormal", "JAX lecun_normal", "Martens 2010"):
        assert source in result.output  # the JAX/Keras truncated forms and sparse, with sources
    assert "fan_geo_avg" in result.output


def test_show_prints_options_and_formula() -> None:
    result = runner.invoke(app, ["show", "kaiming_uniform"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("he_uniform (also: kaiming_uniform)")
    for text in ("negative_slope", "fan_in|fan_out", "relu|leaky_relu", "He et al. 2015"):
        assert text in result.output
    assert ">>>" not in result.output


def test_show_unknown_scheme_raises_the_one_line_error() -> None:
    result = runner.invoke(app, ["show", "xavier"])
    assert isinstance(result.exception, InitlabError)
    assert "valid: zeros" in str(result.exception) and "\n" not in str(result.exception)


@pytest.mark.parametrize("args", [[], ["--help"]])
def test_help(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert "list" in result.output and "show" in result.output
