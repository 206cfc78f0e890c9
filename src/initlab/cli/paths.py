"""Checks of the paths a command will write, made before anything is computed or stored.

Each check raises :class:`~initlab.errors.InitlabError` with one line naming the option, the
path and what is wrong with it (a file where a folder belongs, a missing or read-only
folder), so that a long run does not end in a traceback when it finally writes.
"""

from __future__ import annotations

import os
from pathlib import Path

from initlab.errors import InitlabError


def _existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of ``path`` (or ``path`` itself) that exists."""
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def check_folder(path: Path, option: str) -> Path:
    """``path`` is, or can be made, a writable folder (missing parents are created later)."""
    if path.exists() and not path.is_dir():
        raise InitlabError(f"{option} {path}: is a file, not a folder; give a folder")
    base = _existing_ancestor(path)
    if not base.is_dir():
        raise InitlabError(f"{option} {path}: {base} is a file, not a folder")
    if not _writable(base):
        what = "folder" if base == path.absolute() else f"parent folder {base}"
        raise InitlabError(f"{option} {path}: the {what} is read-only")
    return path


def check_file(path: Path, option: str, suffix: str | None = None) -> Path:
    """``path`` can be written as a file: not a folder, and its folder exists or can be made
    (the nearest existing ancestor is a writable folder)."""
    if path.is_dir():
        hint = f"; give a file name such as {path / ('samples' + (suffix or ''))}"
        raise InitlabError(f"{option} {path}: is a folder, not a file{hint}")
    if suffix is not None and path.suffix.lower() != suffix:
        raise InitlabError(f"{option} {path}: the file name must end in {suffix}")
    base = _existing_ancestor(path.absolute().parent)
    if not base.is_dir():
        raise InitlabError(f"{option} {path}: {base} is a file, not a folder")
    if not _writable(base) or (path.exists() and not os.access(path, os.W_OK)):
        raise InitlabError(f"{option} {path}: cannot write there (read-only)")
    return path
