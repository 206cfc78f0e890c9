"""Experiment configs: dataclasses with a help line per field, and their overrides.

Every experiment's config is a frozen dataclass whose fields carry one line of help in
their type hint, ``lr: Annotated[float, "SGD learning rate"] = 0.01``, shown by
``initlab run NAME --show`` and in the HTML report. Defaults reproduce the published source
(PROTOCOLS.md); list-valued settings are tuples, so configs stay immutable.

A config is built in four layers, later ones winning::

    defaults -> the experiment's ``quick`` overrides (with --quick) -> --config FILE.toml -> --set

``--set key=value`` parses ``value`` as a TOML literal (``0.01``, ``[1, 2]``, ``"he_normal"``,
``{adam = 0.1}``); a bare word that is not valid TOML is taken as a string, so
``--set dataset=mnist`` and ``--set activations=[relu, tanh]`` work without quotes. Values
are checked against the field's type hint (int, float, bool, str, ``Literal``, ``list[...]``,
``tuple[..., ...]``, ``dict[str, ...]`` and ``X | None``). An unknown key or a bad value
raises :class:`InitlabError` with one line naming the key, what was expected and the valid
keys.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from initlab.errors import InitlabError

C = TypeVar("C")


def field_help(config_type: type) -> dict[str, str]:
    """The help line of every field of a config dataclass, in declaration order.

    The help is the first string in the field's ``Annotated[...]`` metadata.

    >>> from initlab.experiments.signal.exploding_product import ExplodingProductConfig
    >>> field_help(ExplodingProductConfig)["seeds"]
    'number of independent products (one run each)'
    """
    hints = get_type_hints(config_type, include_extras=True)
    out = {}
    for f in dataclasses.fields(config_type):
        meta = getattr(hints.get(f.name), "__metadata__", ())
        out[f.name] = next((m for m in meta if isinstance(m, str)), "")
    return out


def config_keys(config_type: type) -> list[str]:
    """The field names of a config dataclass, in declaration order."""
    return [f.name for f in dataclasses.fields(config_type)]


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly copy of a config (tuples become lists)."""
    return _jsonable(dataclasses.asdict(config))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def parse_literal(text: str) -> Any:
    """Parse one ``--set`` value as a TOML literal; a bare word that is not TOML is a string.

    A flat list may hold bare words too: ``[relu, tanh]`` is ``["relu", "tanh"]``.

    >>> parse_literal("0.01"), parse_literal("[1, 2]"), parse_literal("relu")
    (0.01, [1, 2], 'relu')
    >>> parse_literal("[relu, normal:std=0.01, 2]")
    ['relu', 'normal:std=0.01', 2]
    >>> parse_literal("{adam = 0.1}")
    {'adam': 0.1}
    """
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    inner = text[1:-1].strip()
    if text.startswith("[") and text.endswith("]") and "[" not in inner and "{" not in inner:
        return [parse_literal(item) for item in inner.split(",") if item.strip()]
    return text


def parse_assignment(item: str) -> tuple[str, Any]:
    """Split ``"key=value"`` into the key and its parsed value."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InitlabError(f"--set expects key=value, got {item!r}")
    return key, parse_literal(value)


def _type_name(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(hint))
    if origin in (list, tuple, Sequence):
        args = [a for a in get_args(hint) if a is not Ellipsis]
        inner = _type_name(args[0]) if args else "values"
        return f"a list of ({inner})"
    if origin in (dict, Mapping):
        return f"a table of ({_type_name(get_args(hint)[1])})"
    if hint is type(None):
        return "none"
    if hint is float:
        return "a number"
    if hint is int:
        return "an integer"
    if hint is bool:
        return "true or false"
    if hint is str:
        return "a string"
    return getattr(hint, "__name__", str(hint))


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against the type hint ``hint`` and return it in the field's form.

    Integers are accepted for floats (and converted); a single value is accepted for a list
    (``--set inits=he_normal`` means ``["he_normal"]``); lists become tuples for tuple fields.
    Raises :class:`InitlabError` naming ``key`` and the expected type otherwise.
    """
    try:
        return _coerce(value, hint)
    except _BadValueError:
        raise InitlabError(
            f"bad value for {key!r}: expected {_type_name(hint)}, got {value!r}"
        ) from None


class _BadValueError(Exception):
    pass


def _coerce(value: Any, hint: Any) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin is Literal:
        if isinstance(value, str | int | float | bool) and value in get_args(hint):
            return value
        raise _BadValueError
    if origin in (Union, types.UnionType):
        for arg in get_args(hint):
            try:
                return _coerce(value, arg)
            except _BadValueError:
                continue
        raise _BadValueError
    if hint is type(None):
        if value is None or value == "none":
            return None
        raise _BadValueError
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _BadValueError
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _BadValueError
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _BadValueError
    if hint is str:
        if isinstance(value, str):
            return value
        raise _BadValueError
    if origin in (list, tuple, Sequence):
        args = [a for a in get_args(hint) if a is not Ellipsis]
        inner = args[0] if args else Any
        items = value if isinstance(value, list | tuple) else [value]
        converted = [_coerce(v, inner) for v in items]
        return tuple(converted) if origin is tuple else converted
    if origin in (dict, Mapping):
        if not isinstance(value, dict):
            raise _BadValueError
        key_type, value_type = get_args(hint) or (str, Any)
        return {_coerce(k, key_type): _coerce(v, value_type) for k, v in value.items()}
    raise _BadValueError


def load_config_file(path: str | Path, section: str | None = None) -> dict[str, Any]:
    """Read a TOML config file (``tomllib``).

    The keys are the top-level keys of the file; if the file has a table named ``section``
    (the experiment's name), that table is used instead, so one file can hold the settings
    of several experiments.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InitlabError(f"config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InitlabError(f"cannot read config file {str(path)!r}: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise InitlabError(f"config file {str(path)!r} is not valid TOML: {err}") from None
    if section is not None and isinstance(data.get(section), dict):
        return dict(data[section])
    return data


def build_config(
    config_type: type[C],
    *,
    quick: Mapping[str, Any] | None = None,
    file_values: Mapping[str, Any] | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    what: str = "config",
) -> C:
    """Build a config: defaults, then ``quick``, then ``file_values``, then ``overrides``.

    ``overrides`` are ``"key=value"`` strings (``--set``) or an already parsed mapping.
    ``what`` names the config in error messages (e.g. the experiment's name).
    """
    hints = get_type_hints(config_type)
    keys = config_keys(config_type)
    values: dict[str, Any] = {}
    pairs: list[tuple[str, Any]] = []
    if isinstance(overrides, Mapping):
        pairs = list(overrides.items())
    else:
        pairs = [parse_assignment(item) for item in overrides]
    for layer in (dict(quick or {}).items(), dict(file_values or {}).items(), pairs):
        for key, value in layer:
            if key not in hints or key not in keys:
                raise InitlabError(f"unknown key {key!r} for {what}; valid keys: {', '.join(keys)}")
            values[key] = coerce(value, hints[key], key)
    try:
        return config_type(**values)
    except InitlabError:
        raise
    except (TypeError, ValueError) as err:
        raise InitlabError(f"bad {what} settings: {err}") from None


def replace(config: C, **changes: Any) -> C:
    """A copy of ``config`` with some fields changed and checked against their type hints."""
    hints = get_type_hints(type(config))
    checked = {k: coerce(v, hints[k], k) for k, v in changes.items()}
    return typing.cast(C, dataclasses.replace(config, **checked))  # type: ignore[type-var]
