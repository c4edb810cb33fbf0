"""Where the tail comes from: one traced load run that sets each slow request against the stall sources.

uWSGI serves bench/traced_wsgi.py, which records every garbage-collection pause of at least 0.5 ms, per process, and
each request's start and end in the app, on the monotonic clock the load generator shares. At each step up to 90 % of
the maximum:
- the slowest 1 % of requests are checked for overlap with a collection pause of at least 1 ms in any process;
- the worker pids before and after the step show whether a worker was recycled meanwhile;
- the slowest 1 %'s latency, and for contrast that of as many requests around the median, is split into its parts
  (`latency_parts`): the client's own lag before it wrote the request, the time before the app (HTTP router, the
  workers' queue, uWSGI's parsing), in the app, and after it (uWSGI's write, the router, the client's read);
- each process's run-queue wait (/proc/<pid>/schedstat: time runnable but waiting for a core), summed per role
  (HTTP router, workers, load generator), shows how much of the step everything spent queued for the
  two cores that server and client share;
- the hypervisor's steal during the step (bench/hostnoise.py): time the host took the cores away.
Tracing costs a little CPU, so this run's latencies are reported apart from the measured runs.
"""

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from api.contract import READINESS_PATH
from bench.loadgen import TimedRequest, run_step, warm_up
from bench.server import LOG_TAIL_LINES, RESULTS, user_paths
from bench.stalltrace import TRACE_DIR_ENV, pauses, request_times, summary
from tools.testkit import uwsgi

TRACE_FRACTIONS = (0.5, 0.7, 0.8, 0.9)
SLOWEST_SHARE = 0.01
PAUSE_THAT_COUNTS_SECONDS = 0.001
CONNECTIONS = 64


def worker_pids(master: int) -> set[int]:
    return {child.pid for child in psutil.Process(master).children() if "worker" in " ".join(child.cmdline())}


ROLES = ("http", "worker")


def process_role(process: psutil.Process) -> str | None:
    """uWSGI's process names (auto-procname): "recsys uWSGI worker 1", "recsys uWSGI http 1", ..."""
    name = " ".join(process.cmdline())
    return next((role for role in ROLES if f"uWSGI {role}" in name), None)


def _run_queue_seconds(pid: int) -> float:
    # The second field: nanoseconds spent runnable on a run queue, not running (Documentation/scheduler/sched-stats).
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def run_queue_waits(master: int) -> dict[str, float]:
    """Seconds spent waiting for a core so far, summed per uWSGI role, and by this process (the load generator)."""
    waits = dict.fromkeys(ROLES, 0.0)
    for process in psutil.Process(master).children():
        role = process_role(process)
        if role is not None:
            waits[role] += _run_queue_seconds(process.pid)
    waits["load generator"] = _run_queue_seconds(os.getpid())
    return waits


def busy_share(before: Any, after: Any) -> float:
    """Share of the machine's CPU time between two `psutil.cpu_times()` readings that was not idle."""
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0))
    return 1 - idle / total if total > 0 else 0.0


def overlap_share(requests: tuple[TimedRequest, ...], found: list[dict[str, Any]]) -> float:
    """Share of the requests (due to answered) that overlap at least one pause of PAUSE_THAT_COUNTS_SECONDS."""
    spans = [(p["start"], p["start"] + p["seconds"]) for p in found if p["seconds"] >= PAUSE_THAT_COUNTS_SECONDS]
    hit = sum(1 for r in requests if any(start < r.answered and end > r.scheduled for start, end in spans))
    return hit / len(requests) if requests else 0.0


LATENCY_PARTS = ("client", "before the app", "in the app", "after the app")


def latency_parts(requests: tuple[TimedRequest, ...], in_app: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Mean ms of each part of these requests' latency (LATENCY_PARTS), over those the server's trace holds, with
    their count ("traced"): a request the app never saw (refused by the router) has no parts."""
    parts = [
        (r.sent - r.scheduled, start - r.sent, end - start, r.answered - end)
        for r in requests
        for start, end in (in_app.get(r.tag, (None, None)),)
        if start is not None and end is not None
    ]
    means = {
        name: sum(p[i] for p in parts) * 1000 / len(parts) if parts else 0.0 for i, name in enumerate(LATENCY_PARTS)
    }
    return {**means, "traced": len(parts)}


def stall_trace(
    models: Path, users: int, workers: int, *, max_rps: float, seconds: float, log: Path
) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="stalls-", dir=RESULTS) as trace:
        server = uwsgi.start(
            models,
            log,
            workers=workers,
            module="bench.traced_wsgi:application",
            extra_env={TRACE_DIR_ENV: trace},
            tail_lines=LOG_TAIL_LINES,
        )
        steps = []
        try:
            uwsgi.wait_until_answers(server, READINESS_PATH)
            paths = user_paths(users, 20_000)
            warm_up("127.0.0.1", server.port, paths)
            for fraction in TRACE_FRACTIONS:
                before = worker_pids(server.pid)
                waits_before = run_queue_waits(server.pid)
                cpu_before = psutil.cpu_times()
                started = time.monotonic()
                step = run_step(
                    "127.0.0.1",
                    server.port,
                    paths,
                    rate=fraction * max_rps,
                    seconds=seconds,
                    connections=CONNECTIONS,
                    slowest=SLOWEST_SHARE,
                )
                elapsed = time.monotonic() - started
                busy = busy_share(cpu_before, psutil.cpu_times())
                waits_after = run_queue_waits(server.pid)
                waited = {role: (waits_after[role] - waits_before[role]) * 1000 / elapsed for role in waits_after}
                found = pauses(Path(trace), started - 0.1, time.monotonic() + 0.1)
                collections = summary(found)
                share = overlap_share(step.slowest, found)
                recycled = worker_pids(server.pid) != before
                in_app = request_times(Path(trace))
                slowest_parts, typical_parts = (latency_parts(group, in_app) for group in (step.slowest, step.typical))
                steps.append(
                    {
                        "fraction_of_max": fraction,
                        "p50_ms": step.p50_ms,
                        "p99_ms": step.p99_ms,
                        "p999_ms": step.p999_ms,
                        "gc": collections,
                        "slowest_share_overlapping_gc": share,
                        "worker_recycled": recycled,
                        "slowest_parts_ms": slowest_parts,
                        "typical_parts_ms": typical_parts,
                        "run_queue_ms_per_s": waited,
                        "cpu_busy_share": busy,
                        "host_steal_ms_per_s": step.host_steal_ms_per_s,
                    }
                )
                print(
                    f"  traced {fraction:4.0%}: p99.9 {step.p999_ms:6.1f} ms, GC pauses {collections['count']} "
                    f"(max {collections['max_ms']:.1f} ms, {collections['full_collections']} full), slowest 1 % "
                    f"overlapping one: {share:.0%}, worker recycled: {recycled}, slowest 1 % (median requests) in "
                    f"ms: "
                    + ", ".join(
                        f"{name} {slowest_parts[name]:.2f} ({typical_parts[name]:.2f})" for name in LATENCY_PARTS
                    )
                    + f", cores busy {busy:.0%}, waiting for a core (ms per s): "
                    + ", ".join(f"{role} {ms:.0f}" for role, ms in waited.items())
                    + f", host steal {step.host_steal_ms_per_s:.0f} ms per s",
                    flush=True,
                )
                time.sleep(1.5)
        finally:
            uwsgi.stop(server)
    return steps
