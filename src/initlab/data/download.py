"""Network fetches for the data cache: one URL with a progress bar, or a wheel through pip.

Failures are fast and quiet: name resolution is bounded by a thread with a deadline (the
system resolver has no timeout of its own), the connection and every read by a socket
timeout, so an unreachable mirror costs a few seconds, not minutes. Any failure raises
:class:`FetchError` with a one-line reason, which the source chain records and moves on.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

CONNECT_TIMEOUT_S = 5.0  # name resolution, connection and each read
PIP_TIMEOUT_S = 600.0  # the whole `pip download` subprocess


class FetchError(Exception):
    """A source could not deliver (unreachable, refused, wrong checksum); a one-line reason."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def check_host(url: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Resolve the URL's host within ``timeout`` seconds, else raise :class:`FetchError`.

    The lookup runs in a daemon thread, so a resolver that hangs delays neither this call
    beyond ``timeout`` nor the exit of the process.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[OSError | None] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo(host, port)
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=resolve, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise FetchError(f"cannot resolve {host} within {timeout:g} s")
    if outcome[0] is not None:
        raise FetchError(f"cannot resolve {host}: {_one_line(outcome[0])}")


def download_bytes(
    url: str,
    *,
    md5: str | None = None,
    timeout: float = CONNECT_TIMEOUT_S,
    progress: bool = True,
    console: Console | None = None,
) -> bytes:
    """GET ``url`` into memory with a rich progress bar, checking its MD5 when given."""
    check_host(url, timeout)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            chunks: list[bytes] = []
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console or Console(stderr=True),
                disable=not progress,
                transient=True,
            ) as bar:
                task = bar.add_task(Path(urlsplit(url).path).name, total=total)
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    chunks.append(chunk)
                    bar.advance(task, len(chunk))
    except urllib.error.HTTPError as exc:
        raise FetchError(f"HTTP {exc.code} {_one_line(exc.reason)}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise FetchError(_one_line(reason)) from None
    data = b"".join(chunks)
    if md5 is not None and hashlib.md5(data).hexdigest() != md5:
        raise FetchError(f"md5 {hashlib.md5(data).hexdigest()} of {url} is not the known {md5}")
    return data


def _stderr_fd() -> int:
    """The process's stderr file descriptor (pip's progress goes there, not to stdout)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stream without a descriptor
        return subprocess.DEVNULL


def pip_download(requirement: str, dest: str | Path, *, progress: bool = True) -> Path:
    """Download one wheel with ``python -m pip download --no-deps`` into ``dest``; its path.

    pip talks to the package index the user configured (proxies, mirrors included). With
    ``progress`` pip's own (rich) download bar is shown on stderr.
    """
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--timeout",
        str(int(CONNECT_TIMEOUT_S * 3)),
        requirement,
        "-d",
        str(dest),
    ]
    if not progress:
        cmd.insert(cmd.index("--no-deps"), "--quiet")
    try:
        done = subprocess.run(
            cmd,
            stdout=_stderr_fd() if progress else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=PIP_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FetchError(f"pip download {requirement} failed: {_one_line(exc)}") from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {done.returncode}"
        raise FetchError(f"pip download {requirement} failed: {_one_line(last)}")
    wheels = sorted(Path(dest).glob("*.whl"))
    if not wheels:
        raise FetchError(f"pip download {requirement} left no wheel in {dest}")
    return wheels[0]
