"""Who runs a run: the owner tag ``host:pid:start`` and whether that process is still alive.

``start`` is the process start time from ``/proc/PID/stat`` (field 22, clock ticks since
boot) where the system has it, else ``-``; it tells a live owner from an unrelated process
that reused its pid. A run marked "running" by a process that is gone (killed, crashed,
power cut) is restarted by the next :meth:`RunStore.start_run`; an owner on another host
cannot be checked, so it counts as gone once its last write is older than ``stale_after``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/PID/stat`` (state, ppid, ...), or None where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()  # after "pid (comm) "


def process_start(pid: int) -> str | None:
    """Return the start time of process ``pid`` (``/proc`` clock ticks) or None if unknown."""
    fields = _proc_stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def current_owner() -> str:
    """The owner tag of this process: ``host:pid:start``."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid) or '-'}"


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(owner: str, heartbeat_at: float, now: float, stale_after: float) -> bool:
    """Whether the process tagged ``owner`` may still be running its run.

    This process itself counts as gone (a run it left "running" was abandoned by it).
    """
    try:
        host, pid_text, start = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return now - heartbeat_at < stale_after
    if host != socket.gethostname():
        return now - heartbeat_at < stale_after
    if pid == os.getpid() or not _pid_exists(pid):
        return False
    fields = _proc_stat(pid)
    if fields is None:  # no /proc: the pid exists, trust it
        return True
    if fields[0] in ("Z", "X"):  # zombie or dead, waiting to be reaped
        return False
    return start == "-" or (len(fields) > 19 and fields[19] == start)
