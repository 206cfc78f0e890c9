"""Small helpers shared by the experiment modules: seeds, labels, formatting, colours."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch

from initlab.activations import ACTIVATION_NAMES
from initlab.errors import InitlabError, check_choice

INIT_LABELS: dict[str, str] = {
    "normal:std=1": "std 1",
    "normal:std=1.0": "std 1",
    "normal:std=0.01": "std 0.01",
    "lecun_normal": "√(1/n) LeCun",
    "he_normal": "√(2/n) He",
    "xavier_normal": "Glorot",
    "critical": "critical",
    "orthogonal": "orthogonal",
    "variance_scaling:scale=0.25": "0.5/√n",
    "zeros": "zeros",
}
"""Readable names for the scheme strings the presets use; others are shown as written."""

COLORS: tuple[str, ...] = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:gray",
    "tab:olive",
    "tab:cyan",
)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run a block on one intra-op thread (restored after).

    For loops of tiny tensor ops (quadrature over a few thousand points, layer after layer):
    they gain nothing from parallel threads, and on a busy machine the threads' hand-offs
    make each op 100x slower.
    """
    with intra_op_threads(1):
        yield


@contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """Run a block on ``count`` intra-op threads (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def machine_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def init_label(scheme: str) -> str:
    """A readable label for an init scheme string (the string itself when unknown)."""
    return INIT_LABELS.get(scheme, scheme)


def color(i: int) -> str:
    """The i-th colour of the shared cycle."""
    return COLORS[i % len(COLORS)]


def run_seeds(base: int, count: int) -> list[int]:
    """The seeds of ``count`` repetitions: ``base, base + 1, ...``."""
    if count < 1:
        raise InitlabError(f"seeds must be at least 1, got {count}")
    return [base + i for i in range(count)]


def check_activations(names: Sequence[str]) -> None:
    """Every name must be in the activation vocabulary."""
    if not names:
        raise InitlabError(f"activations is empty; valid: {', '.join(ACTIVATION_NAMES)}")
    for name in names:
        check_choice(name, ACTIVATION_NAMES, "activation")


def check_inits(schemes: Sequence[str]) -> None:
    """Every scheme string must parse (unknown scheme or option: one-line error)."""
    from initlab.init import parse_scheme

    if not schemes:
        raise InitlabError("inits is empty; give at least one scheme, e.g. he_normal")
    for scheme in schemes:
        parse_scheme(scheme)


def check_positive(**values: float) -> None:
    """Every value must be > 0."""
    for key, value in values.items():
        if not value > 0:
            raise InitlabError(f"{key} must be positive, got {value}")


def fmt(value: float, digits: int = 3) -> str:
    """A number in a short readable form: 0.5, 2.3e-05, 1.2e+08, nan."""
    if value is None or not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.{max(digits - 1, 1)}e}"
    return f"{value:.{digits}g}"


def pct(fraction: float) -> str:
    """A fraction as a percentage: 0.873 -> '87%'."""
    return f"{100 * fraction:.0f}%"


def ranking(
    values: Mapping[str, float],
    *,
    digits: int = 3,
    label: Callable[[str], str] = str,
    sep: str = " < ",
    diverged: Iterable[str] = (),
    number: Callable[[float], str] | None = None,
) -> str:
    """Runs ranked by a number, smallest first (``"Adam 0.081 < SGD 0.31"``); runs that
    diverged (NaN/Inf value, or named in ``diverged``) are not ranked but listed after it
    as ``"; diverged: SGD"``, so that no sentence ranks a NaN as a value. Numbers are
    written by ``number`` (default: :func:`fmt` with ``digits``)."""
    gone = set(diverged)
    bad = [k for k in values if k in gone or values[k] is None or not math.isfinite(values[k])]
    good = sorted((k for k in values if k not in bad), key=lambda k: values[k])
    show = number or (lambda v: fmt(v, digits))
    text = sep.join(f"{label(k)} {show(values[k])}" for k in good)
    if bad:
        text += ("; " if text else "") + f"diverged: {', '.join(label(k) for k in bad)}"
    return text
