"""``initlab diagnose``: one batch through a network, a verdict per layer and what to change.

By default it builds the deep vanilla MLP 784 -> ``width`` x ``depth`` -> 10 with the given
activation, initializes it with ``--init`` and feeds it a batch of standard Gaussian inputs.
The defaults (10 sigmoid layers, weights N(0, 1)) are the textbook failure: saturated
units. ``--model module:function`` diagnoses your own network instead.

Before anything is allocated the built-in network's memory is estimated and a network that
would not fit in the memory this machine has free is refused with the figure. Deep chains
(:data:`initlab.probes.diagnose.STREAM_FROM_LAYERS` layers and more) are diagnosed layer by
layer in bounded memory with a progress bar; the table then shows the first and last layers
and where the verdict changes (``--json`` has every layer). Errors in a ``--model``
module (it does not import, its function raises, returns the wrong things) are reported as
one line that names your file and line, not initlab's.
"""

from __future__ import annotations

import importlib
import json as jsonlib
import math
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from initlab.cli.console import make_console
from initlab.errors import InitlabError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from initlab.probes.diagnose import Diagnosis

DEFAULT_INIT = "normal:std=1"
IN_FEATURES, NUM_CLASSES = 784, 10
INPUT_SEED_OFFSET = 1_000_003  # inputs use seed + this, the weights use seed
ACTIVATIONS_HELP = "sigmoid, tanh, relu, leaky_relu, elu, selu, softsign, gelu, silu, identity"
"""The activations named in ``--help`` (a test checks them against initlab.activations)."""
FLOAT_BYTES = 4
LAYER_OVERHEAD_BYTES = 8192  # Python objects of a Linear + activation pair (6 KiB measured)
MEMORY_SHARE = 0.8  # refuse a network that needs more than this share of the free memory


def _user_frame(err: BaseException) -> str:
    """``file, line N, in function`` of the innermost frame outside initlab and the
    installed packages (the user's code), or "" when there is none."""
    package = str(Path(__file__).resolve().parents[1])
    frames = traceback.extract_tb(err.__traceback__)
    if isinstance(err, SyntaxError) and err.filename:
        return f"{err.filename}, line {err.lineno}"
    user = [
        f
        for f in frames
        if not f.filename.startswith(package)
        and "site-packages" not in f.filename
        and not f.filename.startswith("<frozen")
        and not f.filename.startswith(os.path.dirname(os.__file__))
    ]
    if not user:
        return ""
    f = user[-1]
    return f"{f.filename}, line {f.lineno}, in {f.name}"


def _user_error(spec: str, what: str, err: BaseException) -> InitlabError:
    """One line for an exception raised by the user's code, with the user's frame."""
    message = (str(err).strip().splitlines() or [""])[0]
    if isinstance(err, SyntaxError):
        message = err.msg
    where = _user_frame(err)
    where = f" ({where})" if where else ""
    return InitlabError(
        f"--model {spec}: your code failed {what}: {type(err).__name__}: {message}{where}"
    )


def load_model_factory(spec: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor | None]:
    """Import ``"module:function"`` (the current directory is importable), call the function
    and return its ``(model, inputs)`` or ``(model, inputs, targets)``."""
    import torch
    from torch import nn

    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise InitlabError(f"--model must look like 'module:function', got {spec!r}")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and module_name.startswith(err.name):
            raise InitlabError(
                f"--model {spec}: cannot import {module_name!r}: no such module in {cwd} or on "
                "the Python path"
            ) from None
        raise _user_error(spec, f"importing {module_name!r}", err) from None
    except Exception as err:  # the user's module: any error is theirs to see, in one line
        raise _user_error(spec, f"importing {module_name!r}", err) from None
    finally:
        if added:
            sys.path.remove(cwd)
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise InitlabError(f"--model {spec}: module {module_name!r} has no function {func_name!r}")
    try:
        made = factory()
    except Exception as err:  # the user's function
        raise _user_error(spec, f"in {func_name}()", err) from None
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
    if not inputs.is_floating_point():
        raise InitlabError(
            f"--model {spec}: inputs must be floating point (the layers' weights are), got "
            f"{inputs.dtype}; return inputs.float()"
        )
    return model, inputs, targets


def free_memory_bytes() -> int | None:
    """The memory this machine has available now (Linux MemAvailable), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def builtin_memory_bytes(depth: int, width: int, batch: int) -> tuple[int, int]:
    """(weights, working) bytes the built-in MLP's diagnosis needs, estimated before any
    allocation: float32 weights and biases, plus what the pass keeps of ``batch x width``
    activations: four per layer (output, activations, gradient, graph) through hooks, or
    about 2 sqrt(depth) + 4 with the layer-by-layer chain."""
    from initlab.probes.diagnose import STREAM_FROM_LAYERS

    layers = depth + 1
    weights = (IN_FEATURES * width + width) + (depth - 1) * (width * width + width)
    weights += width * NUM_CLASSES + NUM_CLASSES
    kept = 2 * math.isqrt(layers) + 6 if layers >= STREAM_FROM_LAYERS else 4 * layers
    working = kept * batch * width + batch * IN_FEATURES
    return weights * FLOAT_BYTES, working * FLOAT_BYTES + layers * LAYER_OVERHEAD_BYTES


def _gib(n: float) -> str:
    """Bytes in binary units, e.g. ``1.5 GiB``, ``298 TiB``."""
    for unit, power in (("PiB", 50), ("TiB", 40), ("GiB", 30)):
        if n >= 2**power:
            return (
                f"{n / 2**power:,.3g} {unit}"
                if n < 1000 * 2**power
                else f"{n / 2**power:,.0f} {unit}"
            )
    return f"{n / 2**20:.0f} MiB"


def check_memory(depth: int, width: int, batch: int) -> None:
    """Refuse a built-in network whose diagnosis would not fit in the free memory."""
    weights, working = builtin_memory_bytes(depth, width, batch)
    free = free_memory_bytes()
    if free is not None and weights + working > MEMORY_SHARE * free:
        raise InitlabError(
            f"diagnose --depth {depth} --width {width} --batch {batch} needs about "
            f"{_gib(weights + working)} ({_gib(weights)} of weights, {_gib(working)} to "
            f"diagnose) and this machine has {_gib(free)} free; lower --width, --depth or "
            "--batch"
        )


def _check_sizes(depth: int, width: int, batch: int) -> None:
    for name, value, low in (("depth", depth, 1), ("width", width, 1), ("batch", batch, 2)):
        if value < low:
            why = " to measure spread" if name == "batch" else ""
            raise InitlabError(f"--{name} must be at least {low}{why}, got {value}")


def _builtin(
    depth: int, width: int, activation: str, init: str, batch: int, seed: int
) -> tuple[nn.Module, torch.Tensor]:
    """The deep MLP initialized with ``init`` (from ``seed``) and a batch of N(0, 1) inputs
    (from ``seed + INPUT_SEED_OFFSET``, so they are independent of the weights)."""
    import torch

    from initlab.activations import ACTIVATION_NAMES
    from initlab.errors import check_choice
    from initlab.init import initialize, parse_scheme
    from initlab.models import deep_mlp

    check_choice(activation, ACTIVATION_NAMES, "activation")
    parse_scheme(init)  # a bad scheme string is refused before the network is built
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
        str, typer.Option(help=f"Hidden activation: {ACTIVATIONS_HELP}.")
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
    from initlab.probes.diagnose import STREAM_FROM_LAYERS, diagnose

    targets = None
    err_console = make_console(stderr=True)
    if model is None:
        _check_sizes(depth, width, batch)
        check_memory(depth, width, batch)
        scheme = init or DEFAULT_INIT
        if err_console.is_terminal and depth + 1 >= STREAM_FROM_LAYERS:
            with err_console.status(f"building the {depth}-layer network", spinner="dots"):
                net, inputs = _builtin(depth, width, activation, scheme, batch, seed)
        else:
            net, inputs = _builtin(depth, width, activation, scheme, batch, seed)
        title = (
            f"deep MLP {IN_FEATURES}-{width}x{depth}-{NUM_CLASSES}, {activation}, init {scheme}, "
            f"{batch} Gaussian inputs, seed {seed}"
        )
        deep = depth + 1 >= STREAM_FROM_LAYERS
    else:
        net, inputs, targets = load_model_factory(model)
        title = f"{model}: {type(net).__name__}, inputs {list(inputs.shape)}"
        if init is not None:
            from initlab.init import initialize

            initialize(net, init, seed=seed)
            title += f", init {init} (seed {seed})"
        deep = True
    try:
        result = _diagnose_with_progress(diagnose, net, inputs, targets, seed, deep, err_console)
    except InitlabError:
        raise
    except Exception as err:  # raised in the user's forward or loss
        if model is None:
            raise
        raise _user_error(model, "in the model's forward pass", err) from None
    if json:
        typer.echo(diagnosis_json(result))
        return
    console = make_console()
    console.print(escape(title))
    console.print(result.render())


def _diagnose_with_progress(
    diagnose: Any, net: Any, inputs: Any, targets: Any, seed: int, deep: bool, console: Any
) -> Diagnosis:
    """``diagnose(...)`` with a progress bar on stderr for deep chains (layer by layer)."""
    if not deep or not console.is_terminal:
        return diagnose(net, inputs, targets, seed=seed)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "diagnosing layers",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("layers", total=None)

        def report(done: float, total: float) -> None:
            bar.update(task, completed=done, total=total)

        return diagnose(net, inputs, targets, seed=seed, progress=report)
