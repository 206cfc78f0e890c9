"""Search spaces: the hyperparameters a search varies, their ranges, and narrowing them.

A space is a table of parameters, declared in an experiment's spec or in a TOML file::

    [space]
    lr = {kind = "log_uniform", low = 1e-6, high = 1e-2}      # 10^U(-6, -2)
    weight_decay = {kind = "log_uniform", low = 1e-8, high = 1e-4}
    momentum = {kind = "uniform", low = 0.0, high = 0.99}
    width = {kind = "int", low = 50, high = 200}
    activation = {kind = "categorical", choices = ["relu", "tanh"]}

Kinds: ``log_uniform`` (``exp(U(ln low, ln high))``: the from-scratch book's
``10 ** np.random.uniform(-6, -2)``, sec. 6.5.3), ``uniform``, ``int`` (``log = true`` for
a log scale) and ``categorical``. The parameters are those the search task trains with
(:data:`PARAMETERS`): per-member optimizer settings, the init scheme, and the architecture
(trials that share one are trained together).

Narrowing (the book's "narrow the range" step): the new range of a numeric parameter is
the smallest interval holding the values of the top trials, widened by a margin (a
fraction of the range, on the log scale for log parameters) and clipped to the old range.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from initlab.errors import InitlabError

ParamKind = Literal["log_uniform", "uniform", "int", "categorical"]
KINDS: tuple[str, ...] = get_args(ParamKind)

PARAMETERS: dict[str, str] = {
    "lr": "learning rate of the optimizer (per member)",
    "weight_decay": "L2 coefficient lambda (per member)",
    "momentum": "momentum of SGD (per member)",
    "init": "init scheme, e.g. he_normal (per member)",
    "width": "width of every hidden layer (architecture)",
    "depth": "number of hidden layers (architecture)",
    "activation": "hidden activation (architecture)",
}
"""The parameters a search task knows, with what they set."""

_NUMERIC = {
    "lr": "float",
    "weight_decay": "float",
    "momentum": "float",
    "width": "int",
    "depth": "int",
}
_KEYS = {
    "log_uniform": {"kind", "low", "high"},
    "uniform": {"kind", "low", "high"},
    "int": {"kind", "low", "high", "log"},
    "categorical": {"kind", "choices"},
}


@dataclass(frozen=True)
class Param:
    """One parameter of a space: a range (numeric kinds) or a list of choices."""

    name: str
    kind: ParamKind
    low: float = 0.0
    high: float = 0.0
    log: bool = False  # int kind on a log scale (log_uniform is always log)
    choices: tuple[Any, ...] = ()

    @property
    def is_log(self) -> bool:
        """True when values are drawn on a log scale."""
        return self.kind == "log_uniform" or (self.kind == "int" and self.log)

    def to_dict(self) -> dict[str, Any]:
        """The parameter as written in a space table."""
        if self.kind == "categorical":
            return {"kind": self.kind, "choices": list(self.choices)}
        out: dict[str, Any] = {"kind": self.kind, "low": self.low, "high": self.high}
        if self.kind == "int":
            out = {"kind": "int", "low": int(self.low), "high": int(self.high), "log": self.log}
        return out

    def distribution(self) -> Any:
        """The Optuna distribution of this parameter."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(self.low, self.high, log=self.kind == "log_uniform")

    def grid(self, points: int) -> list[Any]:
        """``points`` values spread over the range (log-spaced on a log scale); all choices
        of a categorical parameter; the distinct integers of an int range."""
        if self.kind == "categorical":
            return list(self.choices)
        lo, hi = (math.log(self.low), math.log(self.high)) if self.is_log else (self.low, self.high)
        values = [lo + (hi - lo) * i / max(points - 1, 1) for i in range(points)]
        values = [math.exp(v) for v in values] if self.is_log else values
        values = [min(max(v, self.low), self.high) for v in values]  # exact ends
        if self.kind == "int":
            return sorted({round(v) for v in values})
        return values


def _number(name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InitlabError(
            f"space parameter {name!r}: {key} must be a finite number, got {value!r}"
        )
    return float(value)


def parse_param(name: str, table: Any) -> Param:
    """One parameter from its table ``{kind = ..., low = ..., high = ...}``; bad input raises
    a one-line InitlabError (unknown name or kind, empty or inverted range, log range with
    a non-positive bound)."""
    if name not in PARAMETERS:
        raise InitlabError(f"unknown search parameter {name!r}; valid: {', '.join(PARAMETERS)}")
    if not isinstance(table, Mapping) or "kind" not in table:
        raise InitlabError(
            f"space parameter {name!r} must be a table such as "
            f'{{kind = "log_uniform", low = 1e-6, high = 1e-2}}, got {table!r}'
        )
    kind = table["kind"]
    if kind not in KINDS:
        raise InitlabError(
            f"space parameter {name!r}: unknown kind {kind!r}; valid: {', '.join(KINDS)}"
        )
    extra = sorted(set(table) - _KEYS[kind])
    if extra:
        raise InitlabError(
            f"space parameter {name!r} ({kind}): unknown key(s) {', '.join(extra)}; "
            f"valid: {', '.join(sorted(_KEYS[kind]))}"
        )
    if kind == "categorical":
        choices = table.get("choices")
        if not isinstance(choices, list | tuple) or not choices:
            raise InitlabError(f"space parameter {name!r}: choices must be a non-empty list")
        if len(set(map(repr, choices))) != len(choices):
            raise InitlabError(f"space parameter {name!r}: choices repeat a value: {choices}")
        return Param(name, "categorical", choices=tuple(choices))
    if name not in _NUMERIC:
        raise InitlabError(f'space parameter {name!r} takes names: use kind = "categorical"')
    if "low" not in table or "high" not in table:
        raise InitlabError(f"space parameter {name!r} ({kind}) needs low and high")
    low, high = _number(name, "low", table["low"]), _number(name, "high", table["high"])
    if not low < high:
        word = "empty" if low == high else "inverted"
        raise InitlabError(
            f"space parameter {name!r}: {word} range [{low:g}, {high:g}]; give low < high"
        )
    log = bool(table.get("log", False))
    if (kind == "log_uniform" or log) and low <= 0:
        raise InitlabError(
            f"space parameter {name!r}: a log range needs low > 0, got [{low:g}, {high:g}]"
        )
    if kind == "int" and not (low.is_integer() and high.is_integer()):
        raise InitlabError(f"space parameter {name!r}: int bounds must be integers")
    if (kind == "int") != (_NUMERIC[name] == "int"):
        want = "int" if _NUMERIC[name] == "int" else "log_uniform or uniform"
        raise InitlabError(f"space parameter {name!r} is {_NUMERIC[name]}: use kind {want}")
    return Param(name, kind, low=low, high=high, log=log)


@dataclass(frozen=True)
class SearchSpace:
    """The parameters a search varies, in declaration order."""

    params: tuple[Param, ...]

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> SearchSpace:
        """A space from a table of parameter tables (see the module docstring)."""
        if not isinstance(table, Mapping) or not table:
            raise InitlabError(
                "the search space is empty; declare at least one parameter, e.g. "
                'lr = {kind = "log_uniform", low = 1e-6, high = 1e-2}'
            )
        return cls(tuple(parse_param(str(k), v) for k, v in table.items()))

    @property
    def names(self) -> list[str]:
        """The parameter names."""
        return [p.name for p in self.params]

    def __getitem__(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The space as a table (the inverse of :meth:`from_dict`)."""
        return {p.name: p.to_dict() for p in self.params}

    def distributions(self) -> dict[str, Any]:
        """The Optuna distributions, for ``study.ask(fixed_distributions=...)``."""
        return {p.name: p.distribution() for p in self.params}

    def fingerprint(self) -> str:
        """A short hash of the space: a study made with another space has another one."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def grid(self, points: int) -> dict[str, list[Any]]:
        """The grid sampler's values: ``points`` per numeric parameter."""
        if points < 1:
            raise InitlabError(f"grid_points must be positive, got {points}")
        return {p.name: p.grid(points) for p in self.params}

    def describe(self) -> str:
        """One line per parameter, e.g. ``lr: 10^U(-6, -2)``."""
        return "\n".join(f"{p.name}: {describe_param(p)}" for p in self.params)

    def narrow(
        self, top: Sequence[Mapping[str, Any]], margin: float = 0.1
    ) -> dict[str, dict[str, Any]]:
        """The narrowed space from the parameters of the top trials (see the module
        docstring); categorical parameters keep the choices the top trials used."""
        if not top:
            return self.to_dict()
        out: dict[str, dict[str, Any]] = {}
        for p in self.params:
            values = [t[p.name] for t in top if p.name in t]
            if not values:
                out[p.name] = p.to_dict()
            elif p.kind == "categorical":
                used = [c for c in p.choices if c in values]
                out[p.name] = {"kind": "categorical", "choices": used}
            else:
                out[p.name] = _narrowed(p, [float(v) for v in values], margin)
        return out


def _narrowed(p: Param, values: list[float], margin: float) -> dict[str, Any]:
    scale = math.log if p.is_log else float
    unscale = math.exp if p.is_log else float
    lo, hi = scale(min(values)), scale(max(values))
    pad = margin * (scale(p.high) - scale(p.low))
    low = max(unscale(lo - pad), p.low)
    high = min(unscale(hi + pad), p.high)
    table: dict[str, Any] = {"kind": p.kind, "low": low, "high": high}
    if p.kind == "int":
        low_i, high_i = math.floor(low), math.ceil(high)
        table = {"kind": "int", "low": low_i, "high": max(high_i, low_i + 1), "log": p.log}
    return table


def describe_param(p: Param) -> str:
    """How a parameter's distribution reads: ``10^U(-6, -2)``, ``U(0, 0.9)``, ``{relu, tanh}``."""
    if p.kind == "categorical":
        return "{" + ", ".join(str(c) for c in p.choices) + "}"
    if p.kind == "log_uniform":
        return f"10^U({math.log10(p.low):.3g}, {math.log10(p.high):.3g})"
    if p.kind == "int":
        return f"int [{int(p.low)}, {int(p.high)}]" + (" (log)" if p.log else "")
    return f"U({p.low:g}, {p.high:g})"


def load_space(path: str | Path) -> SearchSpace:
    """A space from a TOML file: its ``[space]`` table, or its top-level tables."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text("utf-8"))
    except FileNotFoundError:
        raise InitlabError(f"no space file {file}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise InitlabError(f"cannot read space file {file}: {err}") from None
    table = data.get("space", data)
    return SearchSpace.from_dict(table)
