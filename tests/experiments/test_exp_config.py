"""Configs and overrides: TOML literals, layering, one-line errors; the registry contract."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest

from initlab.errors import InitlabError
from initlab.experiments import get_experiment, list_experiments, resolve_config
from initlab.experiments.config import (
    build_config,
    config_to_dict,
    field_help,
    load_config_file,
    parse_literal,
)
from initlab.store import canonical_json


@dataclasses.dataclass(frozen=True)
class Demo:
    lr: Annotated[float, "learning rate"] = 0.01
    steps: Annotated[int, "number of steps"] = 100
    inits: Annotated[tuple[str, ...], "schemes"] = ("he_normal",)
    mode: Annotated[Literal["a", "b"], "a mode"] = "a"
    table: Annotated[dict[str, float], "per-name numbers"] = dataclasses.field(default_factory=dict)
    flag: Annotated[bool, "a switch"] = False


def test_parse_literal_is_toml_with_bare_words_as_strings() -> None:
    assert parse_literal("0.5") == 0.5
    assert parse_literal("3") == 3
    assert parse_literal("[1, 2.5]") == [1, 2.5]
    assert parse_literal('"he_normal"') == "he_normal"
    assert parse_literal("he_normal") == "he_normal"
    assert parse_literal("normal:std=0.01") == "normal:std=0.01"
    assert parse_literal("{adam = 0.1, sgd = 1}") == {"adam": 0.1, "sgd": 1}
    assert parse_literal("true") is True


def test_layers_apply_in_order_and_values_are_typed() -> None:
    config = build_config(
        Demo,
        quick={"steps": 10, "lr": 1},
        file_values={"steps": 20, "inits": ["xavier_normal", "lecun_normal"]},
        overrides=["lr=0.5", "mode=b", "table={adam = 2}", "flag=true"],
    )
    assert config.steps == 20  # the file beats quick
    assert config.lr == 0.5 and isinstance(config.lr, float)  # --set beats quick; int -> float
    assert config.inits == ("xavier_normal", "lecun_normal")  # lists become tuples
    assert config.mode == "b" and config.table == {"adam": 2.0} and config.flag is True
    assert build_config(Demo, overrides=["inits=orthogonal"]).inits == ("orthogonal",)
    assert config_to_dict(config)["inits"] == ["xavier_normal", "lecun_normal"]
    assert field_help(Demo) == {
        "lr": "learning rate",
        "steps": "number of steps",
        "inits": "schemes",
        "mode": "a mode",
        "table": "per-name numbers",
        "flag": "a switch",
    }


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("lrr=0.1", "unknown key 'lrr' for demo; valid keys: lr, steps, inits, mode, table, flag"),
        ("steps=1.5", "bad value for 'steps': expected an integer, got 1.5"),
        ("steps=many", "bad value for 'steps': expected an integer, got 'many'"),
        ("mode=c", "bad value for 'mode': expected one of 'a', 'b', got 'c'"),
        ("inits=[1, 2]", "bad value for 'inits': expected a list of (a string), got [1, 2]"),
        ("flag=1", "bad value for 'flag': expected true or false, got 1"),
        ("lr", "--set expects key=value, got 'lr'"),
    ],
)
def test_bad_overrides_are_one_line_errors(override: str, expected: str) -> None:
    with pytest.raises(InitlabError) as err:
        build_config(Demo, overrides=[override], what="demo")
    assert str(err.value) == expected
    assert "\n" not in str(err.value)


def test_config_file_top_level_or_experiment_table(tmp_path: Path) -> None:
    flat = tmp_path / "flat.toml"
    flat.write_text('steps = 7\ninits = ["orthogonal"]\n')
    assert load_config_file(flat, "demo") == {"steps": 7, "inits": ["orthogonal"]}
    nested = tmp_path / "nested.toml"
    nested.write_text("[demo]\nsteps = 9\n[other]\nsteps = 1\n")
    assert load_config_file(nested, "demo") == {"steps": 9}
    broken = tmp_path / "broken.toml"
    broken.write_text("steps = = 3\n")
    with pytest.raises(InitlabError, match="is not valid TOML"):
        load_config_file(broken)
    with pytest.raises(InitlabError, match="does not exist"):
        load_config_file(tmp_path / "missing.toml")


def test_unknown_experiment_lists_the_valid_names() -> None:
    with pytest.raises(InitlabError) as err:
        get_experiment("activation-histogram")
    message = str(err.value)
    assert message.startswith("unknown experiment 'activation-histogram'; valid: ")
    for name in ("activation-histograms", "symmetry", "exploding-product", "depth-scan"):
        assert name in message


def test_builtin_names_map_to_the_modules_that_register_them() -> None:
    from initlab.experiments.registry import BUILTIN_EXPERIMENTS

    registered = {e.name: type(e).__module__ for e in list_experiments()}
    assert {n: registered[n] for n in BUILTIN_EXPERIMENTS} == BUILTIN_EXPERIMENTS
    assert list(registered)[: len(BUILTIN_EXPERIMENTS)] == list(BUILTIN_EXPERIMENTS)


def test_get_experiment_imports_only_that_experiment_s_module() -> None:
    code = (
        "import sys\n"
        "from initlab.experiments.registry import BUILTIN_MODULES, get_experiment\n"
        "assert get_experiment('init-compare').name == 'init-compare'\n"
        "print(sorted(m for m in BUILTIN_MODULES if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.stdout.strip() == "['initlab.experiments.mnist.init_compare']", done.stderr


def test_resolve_config_checks_choices_the_types_cannot() -> None:
    exp = get_experiment("depth-scan")
    with pytest.raises(InitlabError, match="unknown activation 'tanhh'"):
        resolve_config(exp, ["activations=tanhh"])
    with pytest.raises(InitlabError, match="seeds must be positive"):
        resolve_config(exp, ["seeds=0"])
    with pytest.raises(InitlabError, match="optimizer"):
        resolve_config(get_experiment("optimizer-paths"), ["optimizers=[sgd, adamm]"])


@pytest.mark.parametrize("experiment", list_experiments(), ids=lambda e: e.name)
def test_every_experiment_honours_the_contract(experiment) -> None:  # type: ignore[no-untyped-def]
    """Every field has help; defaults and quick settings validate; the plan is storable."""
    assert experiment.name and experiment.description and experiment.cost and experiment.source
    assert len(experiment.description) <= 100
    helps = field_help(experiment.Config)
    assert all(helps.values()), f"fields without help: {[k for k, v in helps.items() if not v]}"
    assert dataclasses.is_dataclass(experiment.Config)
    assert set(experiment.quick) <= set(helps)
    for quick in (False, True):
        config = resolve_config(experiment, quick=quick)
        runs = experiment.plan(config, seed=3)
        keys = [run.key for run in runs]
        assert runs and len(keys) == len(set(keys))
        for run in runs:
            canonical_json(run.stored_spec())  # JSON with finite numbers: a valid store key
        json.dumps(config_to_dict(config))
