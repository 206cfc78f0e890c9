"""Peak memory of a block of work: resident set on the CPU, allocator peak on CUDA.

``with PeakMemory(device) as peak: ...; peak.bytes`` is the largest memory the process held
while the block ran. On Linux the kernel's high-water mark of the resident set (``VmHWM``
in ``/proc/self/status``) is reset at the start by writing ``5`` to
``/proc/self/clear_refs``; where that is not allowed (or not Linux), the process-lifetime
maximum ``ru_maxrss`` is used instead and :attr:`PeakMemory.scope` says so ("process").
On CUDA the allocator's own peak (``torch.cuda.max_memory_allocated``) is reset and read.
For a clean number per configuration, measure in a fresh subprocess (as
``benchmarks/bench_depth.py`` does).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from types import TracebackType
from typing import Literal

import torch

MemoryScope = Literal["block", "process", "cuda"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def current_rss() -> int:
    """The resident set size now, in bytes (0 where /proc is missing)."""
    return _status_field("VmRSS")


def _status_field(name: str) -> int:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    return 0


def _reset_high_water_mark() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _status_field("VmHWM") > 0


def max_rss() -> int:
    """The process-lifetime peak resident set (``ru_maxrss``), in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # bytes vs kB


class PeakMemory:
    """Context manager measuring the peak memory of its block (see module doc)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.bytes = 0
        self.scope: MemoryScope = "cuda" if self.device.type == "cuda" else "process"

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif _reset_high_water_mark():
            self.scope = "block"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = int(torch.cuda.max_memory_allocated(self.device))
        elif self.scope == "block":
            self.bytes = _status_field("VmHWM")
        else:
            self.bytes = max_rss()


__all__ = ["MemoryScope", "PeakMemory", "current_rss", "max_rss"]
