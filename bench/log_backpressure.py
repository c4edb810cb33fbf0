"""Log back-pressure: what a log router that stops reading for a few seconds does to the app, in each log mode.

The app writes one JSON line per request to stdout. In ECS the log driver carries it to the FireLens router, in the
mode the task definition sets (api.contract.APP_LOG_MODE, APP_LOG_MAX_BUFFER_SIZE). Here real uWSGI serves a
steady open-loop load while its stdout goes (blocking) straight into a pipe to a router stand-in, or (non-blocking)
through a relay with that buffer (bench/log_pipes.py); the router is stopped (SIGSTOP) for `--stall` seconds in the
middle. Reported per mode: latency before, during and after the stall, errors, and request lines read, dropped and
delivered. A 1 MiB buffer (Docker's default) shows what the chosen size buys.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from api.contract import APP_LOG_MAX_BUFFER_SIZE, APP_LOG_MODE, READINESS_PATH
from bench.loadgen import StepResult, run_step, warm_up
from bench.model import cached_model
from bench.server import RESULTS, user_paths
from tools.testkit import uwsgi

ITEMS, USERS = 100_000, 100_000
CONNECTIONS = 64
UNITS = {"k": 2**10, "m": 2**20, "g": 2**30}
DOCKER_DEFAULT_BUFFER = "1m"


def buffer_bytes(size: str) -> int:
    """Docker's size notation as ECS passes it to `max-buffer-size` (e.g. 25m)."""
    return int(size[:-1]) * UNITS[size[-1].lower()] if size[-1].lower() in UNITS else int(size)


def _pipes_process(role: str, counts: Path, stdin: int, stdout: int | None = None, max_bytes: int = 0) -> Any:
    command = [sys.executable, "-m", "bench.log_pipes", role, "--counts", str(counts), "--max-bytes", str(max_bytes)]
    return subprocess.Popen(command, stdin=stdin, stdout=stdout, cwd=Path(__file__).resolve().parents[1])


def run_case(models: Path, mode: str, buffer: str | None, *, rate: float, stall: float, work: Path) -> dict[str, Any]:
    label = f"{mode}" + (f" {buffer}" if buffer else "")
    router_counts, relay_counts = work / f"{label}-router.json", work / f"{label}-relay.json"
    app_out, app_in = os.pipe()
    relay = None
    if buffer is None:
        router = _pipes_process("router", router_counts, stdin=app_out)
    else:
        relay_out, relay_in = os.pipe()
        router = _pipes_process("router", router_counts, stdin=relay_out)
        relay = _pipes_process("relay", relay_counts, stdin=app_out, stdout=relay_in, max_bytes=buffer_bytes(buffer))
        os.close(relay_out)
        os.close(relay_in)
    os.close(app_out)
    server = uwsgi.start(models, work / f"{label}-uwsgi.log", workers=2, stdout=app_in)
    os.close(app_in)
    phases: dict[str, StepResult] = {}
    try:
        uwsgi.wait_until_answers(server, READINESS_PATH)
        paths = user_paths(USERS, 20_000)
        warm_up("127.0.0.1", server.port, paths)

        def step(seconds: float) -> StepResult:
            return run_step("127.0.0.1", server.port, paths, rate=rate, seconds=seconds, connections=CONNECTIONS)

        phases["before"] = step(stall)
        os.kill(router.pid, signal.SIGSTOP)
        try:
            phases["during"] = step(stall)
        finally:
            os.kill(router.pid, signal.SIGCONT)
        phases["after"] = step(stall)
    finally:
        os.kill(router.pid, signal.SIGCONT)
        uwsgi.stop(server)
        for process in (relay, router):
            if process is not None:
                process.wait(timeout=60)
    delivered = json.loads(router_counts.read_text())["delivered"]
    relayed = json.loads(relay_counts.read_text()) if relay is not None else {"read": delivered, "dropped": 0}
    answered = sum(phase.completed + phase.errors for phase in phases.values())
    result = {
        "mode": mode,
        "buffer": buffer,
        "rate": rate,
        "stall_seconds": stall,
        "phases": {name: asdict(phase) for name, phase in phases.items()},
        "request_lines_written": relayed["read"],
        "request_lines_dropped": relayed["dropped"],
        "request_lines_delivered": delivered,
        "requests_measured": answered,
    }
    print(
        f"  {label:<22} p99 before/during/after "
        + " / ".join(f"{phases[name].p99_ms:.1f}" for name in ("before", "during", "after"))
        + f" ms, errors {sum(phase.errors for phase in phases.values())}, lines written {relayed['read']}, "
        f"dropped {relayed['dropped']}, delivered {delivered}",
        flush=True,
    )
    return result


def log_backpressure(*, rate: float, stall: float) -> dict[str, Any]:
    models = cached_model(RESULTS / "models", ITEMS, USERS, ann_min_items=50_000)
    cases = [("blocking", None), (APP_LOG_MODE, APP_LOG_MAX_BUFFER_SIZE), (APP_LOG_MODE, DOCKER_DEFAULT_BUFFER)]
    print(f"log back-pressure: {ITEMS:,} items, {rate:.0f} req/s, router stopped for {stall:g} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="backpressure-", dir=RESULTS) as work:
        runs = [run_case(models, mode, buffer, rate=rate, stall=stall, work=Path(work)) for mode, buffer in cases]
    return {"chosen": {"mode": APP_LOG_MODE, "max_buffer_size": APP_LOG_MAX_BUFFER_SIZE}, "cases": runs}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.log_backpressure", description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0, help="steady load, requests per second")
    parser.add_argument("--stall", type=float, default=5.0, help="seconds the router stops reading")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(json.dumps(log_backpressure(rate=args.rate, stall=args.stall), indent=2))


if __name__ == "__main__":
    main()
