"""Read the numpy-array pickles that classic datasets ship in, without running their code.

``mnist.pkl.gz`` (deeplearning.net's 50k/10k/10k split) and CIFAR-10's python batches are
pickles. Unpickling calls whatever global the file names, so an untrusted pickle can run
``os.system``. :class:`RestrictedUnpickler` resolves only the globals that rebuild numpy
arrays (``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``,
``numpy.ndarray``, ``numpy.dtype``, ``numpy._core.numeric._frombuffer`` for protocol 5, and
``_codecs.encode`` restricted to latin-1 for bytes written by Python 3 at protocol 2), and
refuses every other one with an :class:`~initlab.errors.InitlabError`. Lists, dicts, tuples,
strings, bytes and numbers need no global. Callers still verify a checksum first where one
is known.
"""

from __future__ import annotations

import codecs
import pickle
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from initlab.errors import InitlabError


def _numpy_module(new: str, old: str) -> Any:
    """``numpy._core.X`` on numpy >= 2, ``numpy.core.X`` before (without the 2.x shim warning)."""
    import importlib

    try:
        return importlib.import_module(new)
    except ImportError:  # numpy < 2
        return importlib.import_module(old)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes at protocol 2, for latin-1 only."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        name = encoding
    if name != "iso8859-1":
        raise InitlabError(f"refusing _codecs.encode with encoding {encoding!r} in a pickle")
    return text.encode("latin-1")


def _allowed_globals() -> dict[tuple[str, str], Callable[..., Any]]:
    multiarray = _numpy_module("numpy._core.multiarray", "numpy.core.multiarray")
    numeric = _numpy_module("numpy._core.numeric", "numpy.core.numeric")
    allowed: dict[tuple[str, str], Callable[..., Any]] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = numeric._frombuffer
    return allowed


ALLOWED_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only build numpy arrays and plain Python containers.

    ``find_class`` is the single place where a pickle can reach code; it returns only the
    entries of :data:`ALLOWED_GLOBALS` and raises for anything else. Persistent ids are
    refused too (the base class raises for them).
    """

    def __init__(self, file: IO[bytes], *, what: str, encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding)
        self.what = what

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise InitlabError(
                f"refusing to unpickle {module}.{name} from {self.what}: only numpy arrays "
                "are allowed in a data file; the file is not what it claims to be, delete it"
            ) from None


def safe_unpickle(file: IO[bytes], *, what: str, encoding: str = "latin1") -> Any:
    """Unpickle ``file`` with :class:`RestrictedUnpickler`; any failure is one-line.

    ``what`` names the file in error messages. ``encoding="latin1"`` reads Python 2 pickles
    (both classic datasets were written by Python 2) with their numpy arrays intact.
    """
    try:
        return RestrictedUnpickler(file, what=what, encoding=encoding).load()
    except InitlabError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise InitlabError(
            f"cannot read {what}: not a valid array pickle ({type(exc).__name__}: {exc}); "
            "delete it and fetch it again"
        ) from None
    except (OSError, MemoryError) as exc:
        raise InitlabError(f"cannot read {what}: {exc}; delete it and fetch it again") from None
