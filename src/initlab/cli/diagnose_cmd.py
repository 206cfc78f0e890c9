"""``initlab diagnose``: one batch through a network, a verdict per layer and what to change.

By default it builds the deep vanilla MLP 784 -> ``width`` x ``depth`` -> 10 with the given
activation, initializes it with ``--init`` and feeds it a batch of standard Gaussian inputs.
The defaults (10 sigmoid layers, weights N(0, 1)) are the textbook failure: saturated
units. ``--model module:function`` diagnoses your own network instead.
"""

from __future__ import annotations

import importlib
import json as jsonlib
import math
import os
import sys
from typing import Annotated, Any

import torch
import typer
from rich.console import Console
from rich.markup import escape
from torch import nn

from initlab.activations import ACTIVATION_NAMES
from initlab.errors import InitlabError, check_choice
from initlab.models import deep_mlp
from initlab.probes.diagnose import Diagnosis, diagnose

DEFAULT_INIT = "normal:std=1"
IN_FEATURES, NUM_CLASSES = 784, 10
INPUT_SEED_OFFSET = 1_000_003  # inputs use seed + this, the weights use seed


def load_model_factory(spec: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor | None]:
    """Import ``"module:function"`` (the current directory is importable), call the function
    and return its ``(model, inputs)`` or ``(model, inputs, targets)``."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise InitlabError(f"--model must look like 'module:function', got {spec!r}")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise InitlabError(f"--model {spec}: cannot import {module_name!r} ({err})") from None
    finally:
        if added:
            sys.path.remove(cwd)
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise InitlabError(f"--model {spec}: module {module_name!r} has no function {func_name!r}")
    made = factory()
    if not isinstance(made, tuple | list) or len(made) not in (2, 3):
        raise InitlabError(
            f"--model {spec} must return (model, inputs) or (model, inputs, targets), "
            f"got {type(made).__name__}"
        )
    model, inputs, *rest = made
    targets = rest[0] if rest else None
    if not isinstance(model, nn.Module) or not isinstance(inputs, torch.Tensor):
        raise InitlabError(
            f"--model {spec} must return (nn.Module, Tensor[, Tensor]), got "
            f"({', '.join(type(v).__name__ for v in made)})"
        )
    if targets is not None and not isinstance(targets, torch.Tensor):
        raise InitlabError(
            f"--model {spec}: targets must be a Tensor, got {type(targets).__name__}"
        )
    return model, inputs, targets


def _builtin(
    depth: int, width: int, activation: str, init: str, batch: int, seed: int
) -> tuple[nn.Module, torch.Tensor]:
    """The deep MLP initialized with ``init`` (from ``seed``) and a batch of N(0, 1) inputs
    (from ``seed + INPUT_SEED_OFFSET``, so they are independent of the weights)."""
    from initlab.init import initialize

    check_choice(activation, ACTIVATION_NAMES, "activation")
    if width < 1:
        raise InitlabError(f"width must be at least 1, got {width}")
    model = deep_mlp(depth, width, activation, in_features=IN_FEATURES, out_features=NUM_CLASSES)
    initialize(model, init, seed=seed)
    # a stream of its own: inputs drawn from the weights' seed would correlate with them
    gen = torch.Generator().manual_seed(INPUT_SEED_OFFSET + seed)
    inputs = torch.randn(batch, IN_FEATURES, generator=gen)
    return model, inputs


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and +-Inf become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def diagnosis_json(result: Diagnosis) -> str:
    """The diagnosis as one JSON document (NaN/Inf as null)."""
    layers = [{k: _plain(v) for k, v in row.items()} for row in result.to_dicts()]
    return jsonlib.dumps(
        {
            "verdict": result.verdict,
            "recommendation": result.recommendation,
            "loss": _plain(result.loss),
            "layers": layers,
        },
        indent=2,
    )


def diagnose_command(
    depth: Annotated[int, typer.Option(help="Hidden layers of the built-in deep MLP.")] = 10,
    width: Annotated[int, typer.Option(help="Units per hidden layer of the built-in MLP.")] = 256,
    activation: Annotated[
        str, typer.Option(help=f"Hidden activation: {', '.join(ACTIVATION_NAMES)}.")
    ] = "sigmoid",
    init: Annotated[
        str | None,
        typer.Option(
            help=(
                "Initialization scheme, e.g. normal:std=0.01, he_normal, xavier_uniform "
                f"(see `initlab init list`). Default: {DEFAULT_INIT} for the built-in MLP; "
                "a --model keeps its own weights unless --init is given."
            )
        ),
    ] = None,
    batch: Annotated[int, typer.Option(help="Batch size of the Gaussian inputs.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the weights, inputs and random labels.")] = 0,
    model: Annotated[
        str | None,
        typer.Option(
            help=(
                "Diagnose your own network: 'module:function' returning (model, inputs) or "
                "(model, inputs, targets); the module is imported from the current directory."
            )
        ),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """One forward/backward pass; per layer: vanishing, exploding, saturated, dead, symmetric.

    Prints one row per Linear/Conv layer (activation and gradient std, saturated and dead
    fractions, verdict) and a recommendation.
    """
    targets: torch.Tensor | None = None
    if model is None:
        if batch < 2:
            raise InitlabError(f"batch must be at least 2 to measure spread, got {batch}")
        scheme = init or DEFAULT_INIT
        net, inputs = _builtin(depth, width, activation, scheme, batch, seed)
        title = (
            f"deep MLP {IN_FEATURES}-{width}x{depth}-{NUM_CLASSES}, {activation}, init {scheme}, "
            f"{batch} Gaussian inputs, seed {seed}"
        )
    else:
        net, inputs, targets = load_model_factory(model)
        title = f"{model}: {type(net).__name__}, inputs {list(inputs.shape)}"
        if init is not None:
            from initlab.init import initialize

            initialize(net, init, seed=seed)
            title += f", init {init} (seed {seed})"
    result = diagnose(net, inputs, targets, seed=seed)
    if json:
        typer.echo(diagnosis_json(result))
        return
    console = Console()
    console.print(escape(title))
    console.print(result.render())
