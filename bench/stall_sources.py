"""Each stall source the bench can put back, served beside the server as shipped and measured in the same rounds.

Issue 16 names the candidates for the tail: garbage-collection pauses, the model watcher's work per poll, worker
recycling, the HTTP router and writes to stdout. The traced run (bench/stalls.py) sets the slowest requests against
what it can see happen; this part measures what each source costs: one uWSGI server as shipped and one per source,
identical except for that source, all started at once. In each round every server gets one step at the same offered
rate, the order rotating by one server per round, so a slow stretch of the host is spread over all of them. A
source's cost is each round's p99.9 with it over the shipped server's p99.9, the median over the rounds.

A source is put back where that is a setting (the master's gc.freeze() undone, the log into a file instead of a
pipe) and forced where it is rare as shipped (a worker recycled every 10,000 requests instead of 500,000, the
watcher polling every 10 ms instead of every second). What could not be put back (stock uWSGI's late respawn, the
fastrouter hop, the old load generator) is measured in docs/api.md against the code of the time.
"""

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from api.contract import READINESS_PATH
from api.serving.config import MODEL_POLL_SECONDS_ENV
from bench.loadgen import run_step, warm_up
from bench.server import LOG_TAIL_LINES, user_paths
from bench.stalls import worker_pids
from tools.testkit import uwsgi

ROUNDS = 3
# Long enough for the forced recycling to replace each worker at least once a step at 70 % of the maximum.
STEP_SECONDS = 15.0
SHIPPED = "as shipped"


@dataclass(frozen=True)
class Source:
    """A server that differs from the shipped one by one stall source: `how` says what was changed."""

    name: str
    how: str
    module: str | None = None
    extra_args: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)
    log_into_file: bool = False


SHIPPED_SERVER = Source(SHIPPED, "api/serving/wsgi.py and api/uwsgi.ini, the output through a pipe")
SOURCES = (
    Source(
        "worker recycling",
        "max-requests 10,000 (+5,000 per worker number) instead of 500,000 (+50,000)",
        extra_args=("--max-requests", "10000", "--max-requests-delta", "5000"),
    ),
    Source(
        "collections over the app's and the model's objects",
        "gc.unfreeze() once the app is loaded: the master's gc.freeze() undone (bench/unfrozen_wsgi.py)",
        module="bench.unfrozen_wsgi:application",
    ),
    Source(
        "the model watcher's polls",
        "MODEL_POLL_SECONDS 0.01 instead of 1: a hundred polls a second in each worker",
        extra_env={MODEL_POLL_SECONDS_ENV: "0.01"},
    ),
    Source(
        "request log lines written to a file",
        "the server's output into a file on this machine's ext4 disk instead of a pipe (the log router's end)",
        log_into_file=True,
    ),
)


def _start(models: Path, workers: int, source: Source, log: Path) -> uwsgi.Uwsgi:
    server = uwsgi.start(
        models,
        log,
        workers=workers,
        module=source.module,
        extra_args=source.extra_args,
        extra_env=source.extra_env,
        tail_lines=None if source.log_into_file else LOG_TAIL_LINES,
    )
    uwsgi.wait_until_answers(server, READINESS_PATH)
    return server


def compare_sources(
    models: Path,
    users: int,
    workers: int,
    *,
    rate: float,
    connections: int,
    pause: float,
    log: Path,
    sources: tuple[Source, ...] = SOURCES,
    rounds: int = ROUNDS,
    seconds: float = STEP_SECONDS,
) -> dict[str, Any]:
    """`rounds` rounds of one step at `rate` on each server; the first server moves by one each round."""
    paths = user_paths(users, 20_000)
    variants = (SHIPPED_SERVER, *sources)
    servers: dict[str, uwsgi.Uwsgi] = {}
    try:
        for index, source in enumerate(variants):
            servers[source.name] = _start(models, workers, source, log.with_name(f"{log.stem}-source-{index}.log"))
        for server in servers.values():
            warm_up("127.0.0.1", server.port, paths)
            # Discarded: the first step at the rate fills each worker's answer cache from empty.
            run_step("127.0.0.1", server.port, paths, rate=rate, seconds=3.0, connections=connections)
            time.sleep(pause)
        measured = []
        names = [source.name for source in variants]
        for index in range(rounds):
            order = names[index % len(names) :] + names[: index % len(names)]
            steps = {}
            for name in order:
                before = worker_pids(servers[name].pid)
                step = run_step(
                    "127.0.0.1", servers[name].port, paths, rate=rate, seconds=seconds, connections=connections
                )
                figures = {key: value for key, value in asdict(step).items() if key not in ("slowest", "typical")}
                steps[name] = {**figures, "workers_replaced": len(worker_pids(servers[name].pid) - before)}
                time.sleep(pause)
            print(
                f"  round {index + 1}: p99 / p99.9 ms "
                + ", ".join(f"{name} {steps[name]['p99_ms']:.1f} / {steps[name]['p999_ms']:.1f}" for name in names),
                flush=True,
            )
            measured.append({"order": order, "steps": steps})
    finally:
        for server in servers.values():
            uwsgi.stop(server)
    return {
        "offered_rps": rate,
        "step_seconds": seconds,
        "shipped": asdict(SHIPPED_SERVER),
        "sources": [asdict(source) for source in sources],
        "rounds": measured,
    }


def source_costs(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per source: each figure's median over the rounds with it and as shipped, the median of the per-round p99.9
    ratios (with ÷ shipped), and the share of its p99.9 the source adds (1 - 1/ratio; NaN when a step answered
    nothing, which then shows as not measured rather than sorting among the numbers)."""
    rounds = [measured["steps"] for measured in result["rounds"]]
    costs = []
    for source in result["sources"]:
        name = source["name"]
        ratios = [steps[name]["p999_ms"] / steps[SHIPPED]["p999_ms"] for steps in rounds]
        ratio = math.nan if any(math.isnan(value) for value in ratios) else statistics.median(ratios)
        costs.append(
            {
                "name": name,
                "how": source["how"],
                **{
                    f"{key}_{side}": statistics.median(steps[server][key] for steps in rounds)
                    for key in ("p99_ms", "p999_ms")
                    for side, server in (("with", name), ("shipped", SHIPPED))
                },
                "p999_ratio": ratio,
                "p999_ratios": ratios,
                "p999_share": 1 - 1 / ratio if ratio > 0 else math.nan,
                "workers_replaced": sum(steps[name]["workers_replaced"] for steps in rounds),
                "errors": sum(steps[name]["errors"] for steps in rounds),
            }
        )
    return costs
