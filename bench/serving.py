"""`make bench`: open-loop load against real uWSGI on loopback with 100k- and 1M-item models, checked against targets.

For each model (synthetic clustered factors with an IVF ANN index, cached in bench/results/models): start uWSGI
(2 workers), warm up, and find the maximum sustained recommendation throughput: a rising open-loop ramp (x1.4 a step)
brackets it between the last sustained step and the first of two saturated ones in a row, then geometric bisection
narrows the bracket to 2.5 %. A step is sustained with achieved >= 95 % of offered, p99 <= 25 ms and < 1 % errors
(bench/loadgen.py). Then sweep 25 %-120 % of that maximum (achieved vs offered req/s, p50/p99/p99.9 from the
scheduled send time, errors; the 70 % step three times, since one short step's tail is noisy) and find `/health/live`'s
maximum the same way in the same run, then similar items' maximum (items drawn uniformly; answered from the
neighbour lookup). User ids are Zipf-distributed over the known users, 10 % are unknown.

Each size is also served as an item-item version (bench/model.py: the same catalogue's neighbour lists as item-item
weights) for `--runs` runs of the recommendation maximum and the similar-items maximum, which the report compares with
the ALS model's, and then both versions at once for their latency at 70 % of the ALS maximum, in steps that alternate
between them (bench/family_latency.py; `--skip-item-item` leaves all of it out).

With the largest model requested (--sizes), uWSGI is also started with 1, 2 and 4 workers for start-to-ready time and
the PSS of the master and of every worker, and once more with 2 workers on a private model root whose `current`
pointer is switched to a copy of the version during the run, for the PSS after a model swap. The results are checked
against the targets, which are stated for the 1M-item model. Client and server share this machine's cores, so
throughput figures are a floor.
"""

import argparse
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.contract import LIVENESS_PATH
from api.model.loader import load_model
from api.serving.config import ANSWER_CACHE_SIZE_ENV
from bench.family_latency import ROUNDS as FAMILY_ROUNDS
from bench.family_latency import interleaved_latency
from bench.hostnoise import probe
from bench.loadgen import MaxSearch, StepResult, find_max, run_step, sustained, warm_up
from bench.log_backpressure import log_backpressure
from bench.memory import MEMORY_WORKERS, SWAP_WORKERS, memory_run, swap_memory_run
from bench.model import answer_bytes, cached_model, manifest_of, model_bytes
from bench.report import (
    TAIL_FRACTION,
    TAIL_UP_TO,
    machine,
    median_family_run,
    median_run,
    plot,
    repeat_summary,
    summary_lines,
    target_verdicts,
    write_results,
)
from bench.server import RESULTS, ROOT, compile_like_the_image, cpu_seconds, item_paths, start_uwsgi, stop, user_paths
from bench.stall_sources import compare_sources
from bench.stalls import stall_trace

MODEL_CACHE = RESULTS / "models"
# The log back-pressure run: a steady load well below the 100k model's maximum, a router that stops for 5 s.
BACKPRESSURE_RATE = 1000.0
BACKPRESSURE_STALL_SECONDS = 5.0
# The one generated file that README and docs link to (bench/results/ itself is ignored).
RESULTS_FILE = ROOT / "docs" / "bench-results.md"
TAIL_REPEATS = 3
SWEEP_FRACTIONS = (0.25, 0.5, *(TAIL_FRACTION,) * TAIL_REPEATS, 0.8, 0.9, 1.0, 1.2)
# /health/live's own sweep, the tail target's steps only: the same server and stack with no model work, so that (c)
# can be read against what the stack itself allows on these cores.
LIVENESS_SWEEP_FRACTIONS = tuple(fraction for fraction in SWEEP_FRACTIONS if fraction <= TAIL_UP_TO)
CONNECTIONS = 64
# After every step, so that a queue left by an overloaded step does not spill into the next one.
PAUSE_SECONDS = 1.5
CPU_SAMPLE_FRACTION = 0.5
USERS_BY_ITEMS = {100_000: 100_000, 1_000_000: 200_000}


def _say(step: StepResult, label: str) -> None:
    print(
        f"  {label:6} offered {step.offered_rps:7.0f}/s  achieved {step.achieved_rps:7.0f}/s  p50 {step.p50_ms:7.2f}  "
        f"p99 {step.p99_ms:8.2f}  p99.9 {step.p999_ms:8.2f} ms  errors {step.errors}  "
        f"client send lag p99 {step.p99_send_lag_ms:.2f} ms  host steal {step.host_steal_ms_per_s:.0f} ms/s"
        f"{'' if sustained(step) else '  saturated'}",
        flush=True,
    )


def _measurer(
    port: int, paths: list[str], seconds: float, *, keep_alive: bool = True
) -> Callable[[float, str], StepResult]:
    def measure(rate: float, phase: str) -> StepResult:
        step = run_step(
            "127.0.0.1", port, paths, rate=rate, seconds=seconds, connections=CONNECTIONS, keep_alive=keep_alive
        )
        _say(step, phase)
        time.sleep(PAUSE_SECONDS)
        return step

    return measure


def sweep(
    port: int, paths: list[str], max_rps: float, seconds: float, fractions: tuple[float, ...] = SWEEP_FRACTIONS
) -> list[dict[str, Any]]:
    measure = _measurer(port, paths, seconds)
    return [
        {"fraction_of_max": fraction, **asdict(measure(fraction * max_rps, f"{fraction:.0%}"))}
        for fraction in fractions
    ]


def cpu_per_request(port: int, master_pid: int, paths: list[str], rate: float, seconds: float) -> dict[str, float]:
    """Server CPU (all uWSGI processes) per answered request at a rate the server sustains.

    Unlike the maximum rates, this does not depend on what else shares the cores (the load generator included), so
    it compares the endpoints' costs more steadily on a busy machine.
    """
    before = cpu_seconds(master_pid)
    step = run_step("127.0.0.1", port, paths, rate=rate, seconds=seconds, connections=CONNECTIONS)
    used = cpu_seconds(master_pid) - before
    time.sleep(PAUSE_SECONDS)
    per_request = 1000 * used / max(step.completed, 1)
    return {"offered_rps": rate, "completed": step.completed, "cpu_ms_per_request": per_request}


def uncached_cpu_per_request(
    models: Path, workers: int, paths: list[str], *, rate: float, seconds: float, log: Path
) -> dict[str, float]:
    """The same measurement on a server without the answer cache: what the index search and the rest cost."""
    server = start_uwsgi(models, workers, log, {ANSWER_CACHE_SIZE_ENV: "0"})
    port = server.port
    try:
        warm_up("127.0.0.1", port, paths)
        return cpu_per_request(port, server.pid, paths, rate, seconds)
    finally:
        stop(server)


def load_run(
    models: Path, items: int, users: int, workers: int, *, seconds: float, max_steps: int, log: Path
) -> dict[str, Any]:
    server = start_uwsgi(models, workers, log)
    port = server.port
    try:
        paths = user_paths(users, 20_000)
        warm_up("127.0.0.1", port, paths)
        recommendations = _maximum(_measurer(port, paths, seconds), 100.0, max_steps, "recommendation")
        steps = sweep(port, paths, recommendations.max_rps, seconds)
        warm_up("127.0.0.1", port, [LIVENESS_PATH])
        health = _maximum(_measurer(port, [LIVENESS_PATH], seconds), 400.0, max_steps, "/health/live")
        print("  /health/live at the tail target's shares of its own maximum", flush=True)
        health_steps = sweep(port, [LIVENESS_PATH], health.max_rps, seconds, LIVENESS_SWEEP_FRACTIONS)
        print("  similar items, uniform over the catalogue", flush=True)
        similar = _similar_max(port, items, seconds, max_steps)
        print("  recommendations with Connection: close (a new connection per request)", flush=True)
        closing = _maximum(
            _measurer(port, paths, seconds, keep_alive=False), 100.0, max_steps, "Connection: close recommendation"
        )
        # Both endpoints at the same rate, half the recommendation maximum: below saturation for both.
        rate = CPU_SAMPLE_FRACTION * recommendations.max_rps
        cpu = {
            "recommendations": cpu_per_request(port, server.pid, paths, rate, seconds),
            "health_live": cpu_per_request(port, server.pid, [LIVENESS_PATH], rate, seconds),
            # The steadier comparison on a shared machine: the maxima are measured minutes apart.
            "similar_items": cpu_per_request(port, server.pid, item_paths(items, 20_000), rate, seconds),
        }
    finally:
        stop(server)
    cpu["recommendations_uncached"] = uncached_cpu_per_request(
        models, workers, paths, rate=rate, seconds=seconds, log=log
    )
    print(
        f"  server CPU per request at {rate:.0f}/s: recommendations "
        f"{cpu['recommendations']['cpu_ms_per_request']:.3f} ms "
        f"({cpu['recommendations_uncached']['cpu_ms_per_request']:.3f} ms with the answer cache off), /health/live "
        f"{cpu['health_live']['cpu_ms_per_request']:.3f} ms, similar items "
        f"{cpu['similar_items']['cpu_ms_per_request']:.3f} ms",
        flush=True,
    )
    return {
        "workers": workers,
        "ready_seconds": round(server.ready_seconds, 3),
        "recommendations": {**recommendations.as_json(), "sweep": steps},
        "health_live": {**health.as_json(), "sweep": health_steps},
        "recommendations_connection_close": closing.as_json(),
        "ratio_max_rps": recommendations.max_rps / health.max_rps,
        "similar_items": similar.as_json(),
        "similar_ratio_max_rps": similar.max_rps / health.max_rps,
        "server_cpu": {
            **cpu,
            "ratio": cpu["health_live"]["cpu_ms_per_request"] / cpu["recommendations"]["cpu_ms_per_request"],
        },
    }


def _similar_max(port: int, items: int, seconds: float, max_steps: int) -> Any:
    paths = item_paths(items, 20_000)
    warm_up("127.0.0.1", port, paths)
    return _maximum(_measurer(port, paths, seconds), 400.0, max_steps, "similar-items")


def _maximum(measure: Callable[[float, str], StepResult], start_rate: float, max_steps: int, what: str) -> MaxSearch:
    """find_max's result, or SystemExit when it is no maximum: nothing sustained, or a ramp that ran out of steps
    before two saturated in a row (until 2026-12 that went unnoticed: the 1M-item recommendation ramp from 100 req/s
    ended at its 14th step, 7,937 req/s, the first saturated one, so the maximum read 5,669, the last step below it,
    in most runs, and the item-item ratio (h) compared two such caps)."""
    search = find_max(measure, start_rate, max_steps=max_steps)
    if search.max_rps == 0:
        raise SystemExit(f"no {what} step was sustained, not even the halved ones; is the machine busy?")
    if search.bracket is None:
        raise SystemExit(
            f"the {what} ramp ran out of its {max_steps} steps before two in a row saturated, so its maximum is "
            "unknown: raise --max-steps"
        )
    return search


def family_run(
    models: Path, items: int, users: int, workers: int, *, seconds: float, max_steps: int, log: Path
) -> dict[str, Any]:
    """The item-item version's recommendation maximum and its similar-items maximum (its latency: family_latency)."""
    server = start_uwsgi(models, workers, log)
    port = server.port
    try:
        paths = user_paths(users, 20_000)
        warm_up("127.0.0.1", port, paths)
        recommendations = _maximum(_measurer(port, paths, seconds), 100.0, max_steps, "item-item recommendation")
        similar = _similar_max(port, items, seconds, max_steps)
    finally:
        stop(server)
    return {
        "workers": workers,
        "ready_seconds": round(server.ready_seconds, 3),
        "recommendations": recommendations.as_json(),
        "similar_items": similar.as_json(),
    }


def _commit() -> str:
    described = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return described.stdout.strip() or "unknown"


def parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of item counts") from None
    if not set(sizes) <= set(USERS_BY_ITEMS):
        raise argparse.ArgumentTypeError(f"item counts must be among {', '.join(map(str, USERS_BY_ITEMS))}")
    return sizes


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__)
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=tuple(USERS_BY_ITEMS),
        help=f"comma-separated item counts (default {','.join(map(str, USERS_BY_ITEMS))}); memory runs use the largest",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--step-seconds", type=float, default=3.0)
    parser.add_argument("--max-steps", type=int, default=20, help="ramp steps at most (bisection steps come on top)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--trace-stalls",
        action="store_true",
        help="one more run per size with garbage-collection pauses and worker recycling set against the slowest 1 %%, "
        "and with the largest size each stall source put back beside the shipped server (bench/stall_sources.py)",
    )
    parser.add_argument("--skip-backpressure", action="store_true", help="leave out the log back-pressure run")
    parser.add_argument("--skip-item-item", action="store_true", help="leave out the item-item version's run")
    parser.add_argument(
        "--runs", type=int, default=3, help="load runs per size (maximum, sweep, CPU); figures are their median"
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS_FILE, help=f"the generated results file (default {RESULTS_FILE.name})"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not compile_like_the_image():
        raise SystemExit("api/ does not compile; see the lines above")
    report: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        # Before anything else runs: what the host takes from the cores, beside which the latency targets are read.
        "host_probe": probe(),
        "settings": {
            "sizes": list(args.sizes),
            "workers": args.workers,
            "step_seconds": args.step_seconds,
            "max_ramp_steps": args.max_steps,
            "skip_memory": args.skip_memory,
            "runs": args.runs,
        },
        "commit": _commit(),
        "sizes": {},
    }
    log = RESULTS / "uwsgi.log"
    for items in args.sizes:
        users = USERS_BY_ITEMS[items]
        print(f"model with {items} items, {users} users ...", flush=True)
        models = cached_model(MODEL_CACHE, items, users, ann_min_items=50_000)
        load_started = time.perf_counter()
        load_model(models)
        entry: dict[str, Any] = {
            "items": items,
            "users": users,
            "ann": manifest_of(models).get("ann"),
            "neighbours": manifest_of(models).get("neighbours"),
            "answer_bytes": answer_bytes(models),
            "model_bytes": model_bytes(models),
            "model_load_seconds": round(time.perf_counter() - load_started, 3),
        }
        print(f"  ANN: {entry['ann']}", flush=True)
        entry["load_runs"] = []
        for run in range(1, args.runs + 1):
            print(f"  load run {run} of {args.runs}", flush=True)
            entry["load_runs"].append(
                load_run(
                    models, items, users, args.workers, seconds=args.step_seconds, max_steps=args.max_steps, log=log
                )
            )
        entry["load"] = median_run(entry["load_runs"])
        # 70 % of the median recommendation maximum: the rate of the interleaved comparisons below.
        tail_rate = TAIL_FRACTION * repeat_summary(entry["load_runs"])["rec_max_rps"]["median"]
        if not args.skip_item_item:
            item_item = cached_model(MODEL_CACHE, items, users, ann_min_items=50_000, family="item_item")
            print(f"  item-item version ({model_bytes(item_item)} bytes)", flush=True)
            # Repeated like the ALS load runs: one item-item maximum moved target (h) from 1.04 to 0.88 between two
            # full runs of the same code.
            entry["item_item_runs"] = []
            for run in range(1, args.runs + 1):
                print(f"  item-item run {run} of {args.runs}", flush=True)
                entry["item_item_runs"].append(
                    family_run(
                        item_item,
                        items,
                        users,
                        args.workers,
                        seconds=args.step_seconds,
                        max_steps=args.max_steps,
                        log=log,
                    )
                )
            entry["item_item"] = {"model_bytes": model_bytes(item_item), **median_family_run(entry["item_item_runs"])}
            print(f"  ALS and item-item latency, interleaved at {tail_rate:.0f} req/s", flush=True)
            entry["family_latency"] = interleaved_latency(
                {"als": models, "item_item": item_item},
                users,
                args.workers,
                rate=tail_rate,
                seconds=args.step_seconds,
                rounds=FAMILY_ROUNDS,
                connections=CONNECTIONS,
                pause=PAUSE_SECONDS,
                log=log,
            )
        if args.trace_stalls:
            entry["stall_trace"] = stall_trace(
                models,
                users,
                args.workers,
                max_rps=entry["load"]["recommendations"]["max_rps"],
                seconds=args.step_seconds,
                log=log,
            )
        if args.trace_stalls and items == args.sizes[-1]:
            print(f"  stall sources put back, interleaved at {tail_rate:.0f} req/s", flush=True)
            entry["stall_sources"] = compare_sources(
                models, users, args.workers, rate=tail_rate, connections=CONNECTIONS, pause=PAUSE_SECONDS, log=log
            )
        if items == args.sizes[-1] and not args.skip_memory:
            entry["memory"] = [memory_run(models, users, n, log) for n in MEMORY_WORKERS]
            entry["swap_memory"] = swap_memory_run(models, users, SWAP_WORKERS, log)
        report["sizes"][str(items)] = entry
        # Saved after every size, so that a failure later in a long run keeps what was measured.
        (RESULTS / "serving-partial.json").write_text(json.dumps(report, indent=2) + "\n")
    if not args.skip_backpressure:
        report["log_backpressure"] = log_backpressure(rate=BACKPRESSURE_RATE, stall=BACKPRESSURE_STALL_SECONDS)
    report["targets"] = target_verdicts(report)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"serving-{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, RESULTS / f"serving-{stamp}.png")
    write_results(report, args.results)
    print("\n".join(summary_lines(report)))
    print(f"\nwritten to {args.results}, {out.relative_to(ROOT)} and {out.with_suffix('.png').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
