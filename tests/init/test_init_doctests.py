"""The examples in the docstrings of initlab.init run and give the values they show."""

import doctest
import importlib

import pytest

MODULES = [
    "initlab.init",
    "initlab.init.apply",
    "initlab.init.fans",
    "initlab.init.catalog",
    "initlab.init.meanfield",
    "initlab.init.nn_init",
    "initlab.init.registry",
    "initlab.init.schemes",
    "initlab.init.variance_scaling",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
