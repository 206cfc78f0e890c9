"""``initlab diagnose`` driven in-process through a tiny Typer app."""

import inspect
import json
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from initlab.cli.diagnose_cmd import DEFAULT_INIT, diagnose_command
from initlab.errors import InitlabError

pytest.importorskip("initlab.init.apply")  # the command initializes with initlab.init

app = typer.Typer()
app.command()(diagnose_command)
runner = CliRunner()


def test_default_demo_shows_saturation() -> None:
    defaults = {
        name: param.default
        for name, param in inspect.signature(diagnose_command).parameters.items()
    }
    assert defaults["depth"] == 10 and defaults["activation"] == "sigmoid"
    assert defaults["init"] is None and DEFAULT_INIT == "normal:std=1"
    # the demo's defaults, on a narrower net and a smaller batch to keep the test fast
    result = runner.invoke(app, ["--width", "64", "--batch", "64"], terminal_width=120)
    assert result.exit_code == 0, result.output
    assert "784-64x10-10, sigmoid, init normal:std=1" in result.output
    assert "diagnosis: saturated" in result.output
    assert "use xavier_uniform or switch to tanh" in result.output


def test_json_output_for_he_relu_is_ok() -> None:
    args = ["--depth", "4", "--width", "64", "--activation", "relu", "--init", "he_normal"]
    result = runner.invoke(app, [*args, "--batch", "64", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["verdict"] == "ok"
    assert [row["name"] for row in data["layers"]] == [f"linear{i}" for i in range(1, 6)]
    assert data["layers"][0]["weight_std"] == pytest.approx((2 / 784) ** 0.5, rel=0.05)


def test_same_seed_same_numbers() -> None:
    args = ["--depth", "2", "--width", "32", "--batch", "16", "--json", "--seed", "3"]
    first, second = runner.invoke(app, args), runner.invoke(app, args)
    assert first.output == second.output


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "--model must look like 'module:function'"),
        ("no_such_module_xyz:build", "cannot import 'no_such_module_xyz'"),
        ("json:no_such_function", "module 'json' has no function 'no_such_function'"),
    ],
)
def test_bad_model_spec_is_one_clear_line(spec: str, message: str) -> None:
    result = runner.invoke(app, ["--model", spec])
    assert isinstance(result.exception, InitlabError)
    text = str(result.exception)
    assert message in text and "\n" not in text


def test_user_model_from_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "diag_user_model.py").write_text(
        "import torch\n"
        "from torch import nn\n"
        "def build():\n"
        "    torch.manual_seed(0)\n"
        "    net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))\n"
        "    return net, torch.randn(32, 8), torch.randint(3, (32,))\n"
        "def bad():\n"
        "    return 42\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "diag_user_model", raising=False)
    try:
        result = runner.invoke(app, ["--model", "diag_user_model:build", "--json"])
        assert result.exit_code == 0, result.output
        assert [row["name"] for row in json.loads(result.output)["layers"]] == ["0", "2"]
        zeros = runner.invoke(app, ["--model", "diag_user_model:build", "--init", "zeros"])
        assert "diagnosis: symmetric" in zeros.output
        bad = runner.invoke(app, ["--model", "diag_user_model:bad"])
        assert isinstance(bad.exception, InitlabError)
        assert "must return (model, inputs) or (model, inputs, targets)" in str(bad.exception)
    finally:
        sys.modules.pop("diag_user_model", None)
