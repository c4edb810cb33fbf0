"""Garbage-collection pauses of every uWSGI process, for `make bench --trace-stalls`.

uWSGI imports this module in the master (`--import bench.stalltrace`) before it forks, so every worker inherits the
callback. Each collection of at least PAUSE_FLOOR_SECONDS is appended to STALL_TRACE_DIR/gc-<pid>.jsonl with its
start on the monotonic clock, which the load generator on the same machine shares, so a pause can be set against the
latency of the requests in flight. The callback costs a few microseconds per collection; runs with tracing on are
reported apart from the measured ones.
"""

import gc
import json
import os
import time
from pathlib import Path
from typing import Any

TRACE_DIR_ENV = "STALL_TRACE_DIR"
PAUSE_FLOOR_SECONDS = 0.0005
_started: list[float] = []


def _record(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[:] = [time.monotonic()]
        return
    if not _started:
        return
    started = _started.pop()
    seconds = time.monotonic() - started
    if seconds >= PAUSE_FLOOR_SECONDS:
        record = {"start": started, "seconds": seconds, "generation": info.get("generation"), "pid": os.getpid()}
        with (Path(os.environ[TRACE_DIR_ENV]) / f"gc-{os.getpid()}.jsonl").open("a") as trace:
            trace.write(json.dumps(record) + "\n")


def pauses(trace_dir: Path, start: float, end: float) -> list[dict[str, Any]]:
    """Every recorded pause that began between `start` and `end` (monotonic seconds), in any process."""
    found = []
    for path in trace_dir.glob("gc-*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if start <= record["start"] <= end:
                found.append(record)
    return sorted(found, key=lambda record: record["start"])


def summary(found: list[dict[str, Any]]) -> dict[str, Any]:
    durations = [record["seconds"] * 1000 for record in found]
    return {
        "count": len(durations),
        "total_ms": round(sum(durations), 2),
        "max_ms": round(max(durations, default=0.0), 2),
        "over_5_ms": sum(1 for duration in durations if duration > 5),
        "full_collections": sum(1 for record in found if record["generation"] == 2),
    }


if os.environ.get(TRACE_DIR_ENV):
    gc.callbacks.append(_record)
