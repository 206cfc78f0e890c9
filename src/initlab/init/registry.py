"""The scheme registry: every initialization scheme by name, with its typed options.

A :class:`Scheme` bundles a weight function (``fn(tensor, *, generator, **options)``), a
one-line description, the options it accepts (name, type, default, lower bound, choices)
and the bias rule that goes with it. Users name schemes with short strings, parsed by
:func:`parse_scheme`::

    "he_normal"                                   -> he_normal, {}
    "normal:std=0.01"                             -> normal, {"std": 0.01}
    "he_normal:mode=fan_out,negative_slope=0.1"   -> he_normal, {"mode": "fan_out", ...}

The built-in, data-free schemes are registered by :mod:`initlab.init.catalog`.
Data-dependent schemes (LSUV, RBM/DBN pretraining) register with ``needs_data=True``: they
appear in listings, and :func:`initlab.init.initialize` points users to their own entry
point instead of calling a weight function that would need a batch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from initlab.errors import InitlabError
from initlab.init.fans import GAIN_NAMES

OptionKind = Literal["float", "int", "bool", "choice", "gain"]
OPTION_KINDS: tuple[str, ...] = get_args(OptionKind)
LayerKind = Literal["linear", "conv"]
LAYER_KINDS: tuple[str, ...] = get_args(LayerKind)
BiasRule = Literal["zeros", "standard", "critical", "keep"]
BIAS_RULES: tuple[str, ...] = get_args(BiasRule)

OptionValue = float | int | bool | str
WeightFn = Callable[..., torch.Tensor]

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


@dataclass(frozen=True)
class Option:
    """One typed option of a scheme, e.g. ``std`` (float >= 0, default 1.0)."""

    name: str  # keyword of the weight function
    kind: OptionKind  # float | int | bool | choice | gain (a number or an activation name)
    default: OptionValue  # value used when the option is not given
    help: str  # one line for listings
    choices: tuple[str, ...] = ()  # the valid values of a "choice" option
    low: float | None = None  # smallest valid number (inclusive) for float, int and gain

    @property
    def type_name(self) -> str:
        """A short description of the valid values, e.g. ``float >= 0`` or ``fan_in|fan_out``."""
        if self.kind == "choice":
            return "|".join(self.choices)
        base = "float|activation" if self.kind == "gain" else self.kind
        return base if self.low is None else f"{base} >= {self.low:g}"

    def parse(self, text: str) -> OptionValue:
        """Convert the text of ``name=text`` to a typed value, or raise a one-line error."""
        text = text.strip()
        if self.kind in ("float", "gain", "int"):
            number = _to_number(text, int if self.kind == "int" else float)
            if number is not None:
                return self.check(number)
            if self.kind == "gain":
                return self.check(text)
            raise self._bad(text)
        if self.kind == "bool":
            if text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            raise self._bad(text)
        return self.check(text)

    def check(self, value: object) -> OptionValue:
        """Validate a Python value for this option (ints are accepted for floats)."""
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            raise self._bad(value)
        if self.kind == "choice":
            if isinstance(value, str) and value in self.choices:
                return value
            raise self._bad(value)
        if self.kind == "gain" and isinstance(value, str):
            if value in GAIN_NAMES:
                return value
            raise self._bad(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(value)
        if self.kind == "int" and not isinstance(value, int):
            raise self._bad(value)
        if self.kind != "int" and not math.isfinite(value):
            raise self._bad(value)
        if self.low is not None and value < self.low:
            raise self._bad(value)
        return int(value) if self.kind == "int" else float(value)

    def _bad(self, value: object) -> InitlabError:
        valid = self.type_name
        if self.kind == "gain":
            valid = f"a number >= {self.low or 0:g} or one of {', '.join(GAIN_NAMES)}"
        return InitlabError(f"option {self.name} must be {valid}, got {value!r}")


@dataclass(frozen=True)
class Scheme:
    """A named initialization scheme: weight function, options and default bias rule."""

    name: str  # registry name, lower_snake_case
    description: str  # one line for listings
    weight: WeightFn  # fills a weight tensor in place: weight(tensor, [generator=], **options)
    bias: BiasRule = "zeros"  # default rule for the layer's bias (see initlab.init.apply)
    options: tuple[Option, ...] = ()  # accepted keyword options, in display order
    random: bool = True  # draws random numbers (takes a generator); False: deterministic
    applies_to: tuple[LayerKind, ...] = ("linear", "conv")  # layer kinds it can initialize
    aliases: tuple[str, ...] = ()  # other names get_scheme accepts
    needs_data: bool = False  # data-dependent (LSUV, pretraining): not run by initialize()

    @property
    def option_names(self) -> tuple[str, ...]:
        """Names of the accepted options."""
        return tuple(option.name for option in self.options)

    def option(self, name: str) -> Option:
        """Look up one option; unknown names raise an error listing the valid ones."""
        for option in self.options:
            if option.name == name:
                return option
        valid = ", ".join(self.option_names) or "none"
        raise InitlabError(f"unknown option {name!r} for scheme {self.name}; valid: {valid}")

    def defaults(self) -> dict[str, OptionValue]:
        """Every option at its default value."""
        return {option.name: option.default for option in self.options}

    def resolve(self, options: Mapping[str, object]) -> dict[str, OptionValue]:
        """Validate ``options`` (typed values) and fill in the defaults of the others."""
        resolved = self.defaults()
        for name, value in options.items():
            resolved[name] = self.option(name).check(value)
        return resolved

    def __call__(
        self, tensor: torch.Tensor, generator: torch.Generator | None = None, **options: object
    ) -> torch.Tensor:
        """Fill ``tensor`` in place with this scheme and the given options."""
        if self.needs_data:
            raise InitlabError(f"scheme {self.name} needs a data batch; use its own function")
        resolved = self.resolve(options)
        if self.random:
            return self.weight(tensor, generator=generator, **resolved)
        return self.weight(tensor, **resolved)

    def format(self, options: Mapping[str, object] | None = None) -> str:
        """The scheme string for these options, omitting defaults: ``normal:std=0.01``."""
        resolved = self.resolve(options or {})
        given = [
            f"{name}={_format_value(value)}"
            for name, value in resolved.items()
            if value != self.option(name).default
        ]
        return self.name + (":" + ",".join(given) if given else "")


def _to_number(text: str, kind: type[int] | type[float]) -> int | float | None:
    try:
        return kind(text)
    except ValueError:
        return None


def _format_value(value: OptionValue) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    return str(value)


_SCHEMES: dict[str, Scheme] = {}
_ALIASES: dict[str, str] = {}


def register(scheme: Scheme, *, replace: bool = False) -> Scheme:
    """Add a scheme (and its aliases) to the registry; returns it.

    Names must be lower_snake_case and unused unless ``replace=True``; option defaults
    must be valid values of their own options.
    """
    for name in (scheme.name, *scheme.aliases):
        if not _NAME_PATTERN.match(name):
            raise InitlabError(f"scheme name {name!r} must be lower_snake_case")
        taken = name in _SCHEMES or name in _ALIASES
        owner = _ALIASES.get(name, name)
        if taken and not (replace and owner == scheme.name):
            raise InitlabError(f"scheme name {name!r} is already registered")
    if "\n" in scheme.description or not scheme.description.strip():
        raise InitlabError(f"scheme {scheme.name}: the description must be one non-empty line")
    if scheme.bias not in BIAS_RULES:
        raise InitlabError(
            f"scheme {scheme.name}: unknown bias rule {scheme.bias!r}; valid: "
            f"{', '.join(BIAS_RULES)}"
        )
    bad_kinds = [kind for kind in scheme.applies_to if kind not in LAYER_KINDS]
    if bad_kinds or not scheme.applies_to:
        raise InitlabError(f"scheme {scheme.name}: applies_to must list some of {LAYER_KINDS}")
    for option in scheme.options:
        if option.kind not in OPTION_KINDS:
            raise InitlabError(f"scheme {scheme.name}: option kind {option.kind!r} unknown")
        option.check(option.default)
    if replace and scheme.name in _SCHEMES:
        unregister(scheme.name)
    _SCHEMES[scheme.name] = scheme
    for alias in scheme.aliases:
        _ALIASES[alias] = scheme.name
    return scheme


def unregister(name: str) -> None:
    """Remove a scheme and its aliases (for plugins and tests)."""
    scheme = get_scheme(name)
    del _SCHEMES[scheme.name]
    for alias in scheme.aliases:
        _ALIASES.pop(alias, None)


def get_scheme(name: str) -> Scheme:
    """The scheme registered under ``name`` or an alias; unknown names list the valid ones."""
    canonical = _ALIASES.get(name, name)
    if canonical not in _SCHEMES:
        valid = ", ".join([*_SCHEMES, *_ALIASES])
        raise InitlabError(f"unknown init scheme {name!r}; valid: {valid}")
    return _SCHEMES[canonical]


def list_schemes() -> list[Scheme]:
    """All registered schemes, in registration order."""
    return list(_SCHEMES.values())


def parse_scheme(text: str) -> tuple[Scheme, dict[str, OptionValue]]:
    """Parse ``"name"`` or ``"name:key=value,key=value"`` into a scheme and typed options.

    Only the options written in ``text`` are returned (use :meth:`Scheme.resolve` for the
    full set). Errors are one line and say what is valid.

    >>> scheme, options = parse_scheme("he_normal:mode=fan_out,negative_slope=0.1")
    >>> scheme.name, options
    ('he_normal', {'mode': 'fan_out', 'negative_slope': 0.1})
    """
    if not isinstance(text, str) or not text.strip():
        raise InitlabError(
            f"an init scheme must be a non-empty string like 'normal:std=0.01', got {text!r}"
        )
    name, _, rest = text.strip().partition(":")
    scheme = get_scheme(name.strip())
    options: dict[str, OptionValue] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InitlabError(
                f"bad option {item!r} in {text!r}: write key=value; options of {scheme.name}: "
                f"{', '.join(scheme.option_names) or 'none'}"
            )
        if key in options:
            raise InitlabError(f"option {key} given twice in {text!r}")
        try:
            options[key] = scheme.option(key).parse(value)
        except InitlabError as err:
            raise InitlabError(f"bad init scheme {text!r}: {err}") from None
    return scheme, options


__all__ = [
    "BIAS_RULES",
    "LAYER_KINDS",
    "OPTION_KINDS",
    "BiasRule",
    "LayerKind",
    "Option",
    "OptionKind",
    "OptionValue",
    "Scheme",
    "WeightFn",
    "get_scheme",
    "list_schemes",
    "parse_scheme",
    "register",
    "unregister",
]
