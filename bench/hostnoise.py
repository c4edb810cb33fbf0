"""What the machine itself takes from the cores: the hypervisor's steal, and the pauses a busy loop on each core sees.

The bench machines are 2-vCPU virtual machines. On one of them (2026-12-01, kernel 6.18, nothing else running) a
busy Python loop lost 1.7-3.7 % of its time in gaps of up to 7-15 ms, 25-55 of them over 1 ms in 10 s, and the
kernel counted 0.15-0.30 s of steal per core in 10 s (/proc/stat). A gap freezes whatever runs on that core: the
HTTP router, a worker or the load generator; with two cores busy 65-86 % of the time the other core cannot take
over, so every request in flight waits it out. A p99 of a few ms can be the host's, not the server's, so the report
shows the host's share beside the latency targets (docs/api.md, "What the host takes from the cores", which also
has a full run whose tail stayed with no steal at all).
"""

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

# Below this a gap is the loop's own jitter (a clock read and a comparison take well under a microsecond).
GAP_SECONDS = 50e-6
LONG_GAP_SECONDS = 0.001
PROBE_SECONDS = 5.0
_STAT = Path("/proc/stat")
# /proc/stat's unit (USER_HZ), not the kernel's tick: the kernel converts steal to it (proc(5)).
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def steal_seconds() -> float:
    """Steal of all cores so far: time the hypervisor ran something else while this VM's vCPU wanted to run
    (proc(5), the eighth number of the `cpu` line). 0.0 where /proc/stat is missing or has no such column."""
    try:
        fields = _STAT.read_text().split("\n", 1)[0].split()
        return int(fields[8]) / _TICKS_PER_SECOND if fields[0] == "cpu" else 0.0
    except (OSError, IndexError, ValueError):
        return 0.0


def busy_gaps(seconds: float) -> list[float]:
    """Spin for `seconds`; every gap between two clock reads above GAP_SECONDS is time the core was taken away."""
    clock = time.perf_counter
    last = clock()
    end = last + seconds
    gaps: list[float] = []
    while last < end:
        now = clock()
        if now - last > GAP_SECONDS:
            # Only the part inside the window: a loop taken away just before the end (a busy machine) would
            # otherwise count time past it, and report more than all of the window lost.
            gaps.append(min(now, end) - last)
        last = now
    return gaps


def gap_summary(gaps: list[float], seconds: float) -> dict[str, float]:
    """One core's loss: the share of `seconds` in gaps, the longest, and how many a second were over 1 ms."""
    return {
        "lost_share": sum(gaps) / seconds,
        "max_gap_ms": max(gaps, default=0.0) * 1000,
        "long_gaps_per_s": sum(1 for gap in gaps if gap > LONG_GAP_SECONDS) / seconds,
    }


def probe(seconds: float = PROBE_SECONDS, cores: int | None = None) -> dict[str, Any]:
    """A busy loop on every core at once (separate processes, so that no interpreter lock is shared) and the steal
    the kernel counted meanwhile. Run on an otherwise idle machine: the loops compete with anything else running."""
    cores = cores or os.cpu_count() or 1
    stolen = steal_seconds()
    started = time.monotonic()
    # spawn: the probe may run in a process that already has threads, where fork is unsafe.
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        per_core = pool.map(busy_gaps, [seconds] * cores)
    elapsed = time.monotonic() - started
    summaries = [gap_summary(gaps, seconds) for gaps in per_core]
    return {
        "seconds": seconds,
        "cores": cores,
        "lost_share": [summary["lost_share"] for summary in summaries],
        "max_gap_ms": max(summary["max_gap_ms"] for summary in summaries),
        "long_gaps_per_s": sum(summary["long_gaps_per_s"] for summary in summaries),
        "steal_ms_per_s": (steal_seconds() - stolen) * 1000 / elapsed,
    }
