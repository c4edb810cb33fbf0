"""GC pauses and each request's time in the app, in every uWSGI process, for `make bench --trace-stalls`.

uWSGI serves `bench.traced_wsgi:application` (`--module`), which imports this module, so the master does so before it
forks and every worker inherits the callback. All times are on the monotonic clock, which the load generator on the
same machine shares, so they can be set against the latency of each request it sent:
- each collection of at least PAUSE_FLOOR_SECONDS is appended to STALL_TRACE_DIR/gc-<pid>.jsonl;
- each request's start and end in the app are appended to STALL_TRACE_DIR/requests-<pid>.txt under the X-Request-Id
  the load generator gave it, so its latency splits into the time before the app (HTTP router, the workers' queue,
  uWSGI's parsing), in the app and after it (uWSGI's write, the router, the client's read).
The callback costs a few microseconds per collection and the request record one write per request; runs with tracing
on are reported apart from the measured ones.
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


_request_trace: dict[int, int] = {}


def record_request(tag: str, started: float, ended: float) -> None:
    """Append one request's start and end in the app, in this process's own file (opened after the fork)."""
    pid = os.getpid()
    if pid not in _request_trace:
        path = Path(os.environ[TRACE_DIR_ENV]) / f"requests-{pid}.txt"
        _request_trace[pid] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_request_trace[pid], f"{tag} {started!r} {ended!r}\n".encode())


def request_times(trace_dir: Path) -> dict[str, tuple[float, float]]:
    """Start and end in the app of every traced request, by the X-Request-Id it carried."""
    times = {}
    for path in trace_dir.glob("requests-*.txt"):
        for line in path.read_text().splitlines():
            tag, started, ended = line.split()
            times[tag] = (float(started), float(ended))
    return times


if os.environ.get(TRACE_DIR_ENV):
    gc.callbacks.append(_record)
