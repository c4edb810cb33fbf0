"""`make bench`: open-loop load against real uWSGI on loopback with 100k- and 1M-item models.

For each model (synthetic clustered factors with an IVF ANN index, cached in bench/results/models): start uWSGI
(2 workers), warm up, find the maximum sustained recommendation throughput (the highest step of a rising open-loop
ramp with achieved >= 90 % of offered and p99 <= 100 ms), then sweep 25 %-120 %
of it (achieved vs offered req/s, p50/p99/p99.9 from the scheduled send time, errors) and measure `/health/live`'s
maximum in the same run. User ids are Zipf-distributed over the known users, 10 % are unknown. With the 1M-item
model, uWSGI is also started with 1, 2 and 4 workers for start-to-ready time and the PSS of the master and of every
worker. Client and server share this machine's cores, so throughput figures are a floor.
"""

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import requests

from api.contract import LIVENESS_PATH, MODEL_DIR_ENV, READINESS_PATH
from api.loader import load_model
from api.synthetic import user_id
from bench.loadgen import StepResult, run_step, warm_up
from bench.model import cached_model, manifest_of, model_bytes

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODEL_CACHE = RESULTS / "models"
P99_LIMIT_MS = 100.0
RATE_GROWTH = 1.4
SWEEP_FRACTIONS = (0.25, 0.5, 0.7, 0.85, 1.0, 1.2)
ZIPF_EXPONENT = 1.1
UNKNOWN_SHARE = 0.1
CONNECTIONS = 64
# Between steps, so that a queue left by an overloaded step does not spill into the next one.
PAUSE_SECONDS = 1.5
SIZES = ((100_000, 100_000), (1_000_000, 200_000))
MEMORY_WORKERS = (1, 2, 4)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_uwsgi(models: Path, port: int, workers: int, log: Path) -> tuple[subprocess.Popen[bytes], float]:
    env = {**os.environ, "APP_BIND": f"127.0.0.1:{port}", "APP_WORKERS": str(workers), MODEL_DIR_ENV: str(models)}
    started = time.monotonic()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("uwsgi")), "--ini", str(ROOT / "api" / "uwsgi.ini")],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while time.monotonic() - started < 60:
            if process.poll() is not None:
                raise SystemExit(f"uWSGI exited {process.returncode}; see {log}")
            try:
                if requests.get(f"http://127.0.0.1:{port}{READINESS_PATH}", timeout=0.5).status_code == 200:
                    return process, time.monotonic() - started
            except requests.RequestException:  # refused before the router binds; no answer before the workers exist
                time.sleep(0.02)
    except BaseException:
        stop(process)
        raise
    stop(process)
    raise SystemExit(f"uWSGI not ready after 60 s; see {log}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def user_paths(users: int, count: int, seed: int = 0) -> list[str]:
    """Zipf-distributed known users (rank r has weight r^-s over a shuffled order) and UNKNOWN_SHARE unknown ones."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, users + 1) ** ZIPF_EXPONENT
    order = rng.permutation(users)
    chosen = order[rng.choice(users, size=count, p=weights / weights.sum())]
    unknown = rng.random(count) < UNKNOWN_SHARE
    return [
        f"/v1/users/{'new-visitor-' + str(index) if unknown[index] else user_id(int(user))}/recommendations?k=10"
        for index, user in enumerate(chosen)
    ]


def saturated(step: StepResult) -> bool:
    return (
        step.achieved_rps < 0.9 * step.offered_rps
        or step.p99_ms > P99_LIMIT_MS
        or step.errors > 0.01 * max(step.completed, 1)
    )


def _say(step: StepResult, label: str = "") -> None:
    print(
        f"  {label}offered {step.offered_rps:7.0f}/s  achieved {step.achieved_rps:7.0f}/s  p50 {step.p50_ms:7.2f}  "
        f"p99 {step.p99_ms:8.2f}  p99.9 {step.p999_ms:8.2f} ms  errors {step.errors}",
        flush=True,
    )


def find_max(port: int, paths: list[str], start_rate: float, seconds: float, max_steps: int) -> dict[str, Any]:
    """Raise the offered rate until two steps in a row saturate (one latency spike on a shared machine is noise)."""
    steps: list[StepResult] = []
    rate = start_rate
    for _ in range(max_steps):
        step = run_step("127.0.0.1", port, paths, rate=rate, seconds=seconds, connections=CONNECTIONS)
        steps.append(step)
        _say(step, "ramp ")
        if len(steps) >= 2 and saturated(steps[-1]) and saturated(steps[-2]):
            break
        time.sleep(PAUSE_SECONDS)
        rate *= RATE_GROWTH
    sustained = [step.achieved_rps for step in steps if not saturated(step)]
    return {
        # The highest rate served without saturating (achieved >= 90 % of offered, p99 <= P99_LIMIT_MS, < 1 % errors).
        "max_rps": max(sustained) if sustained else steps[0].achieved_rps,
        "peak_achieved_rps": max(step.achieved_rps for step in steps),
        "ramp": [asdict(step) for step in steps],
    }


def sweep(port: int, paths: list[str], max_rps: float, seconds: float) -> list[dict[str, Any]]:
    steps = []
    for fraction in SWEEP_FRACTIONS:
        step = run_step("127.0.0.1", port, paths, rate=fraction * max_rps, seconds=seconds, connections=CONNECTIONS)
        _say(step, f"{fraction:4.0%} ")
        steps.append({"fraction_of_max": fraction, **asdict(step)})
        time.sleep(PAUSE_SECONDS)
    return steps


def load_run(models: Path, users: int, workers: int, *, seconds: float, max_steps: int, log: Path) -> dict[str, Any]:
    port = free_port()
    process, ready_seconds = start_uwsgi(models, port, workers, log)
    try:
        paths = user_paths(users, 20_000)
        warm_up("127.0.0.1", port, paths)
        max_found = find_max(port, paths, 100.0, seconds, max_steps)
        steps = sweep(port, paths, max_found["max_rps"], seconds)
        warm_up("127.0.0.1", port, [LIVENESS_PATH])
        health = find_max(port, [LIVENESS_PATH], 400.0, seconds, max_steps)
    finally:
        stop(process)
    at_70 = next(step for step in steps if step["fraction_of_max"] == 0.7)
    return {
        "workers": workers,
        "ready_seconds": round(ready_seconds, 3),
        "recommendations": {**max_found, "sweep": steps},
        "health_live": health,
        "ratio_max_rps": max_found["max_rps"] / health["max_rps"],
        "p99_over_p50_at_70_percent": at_70["p99_ms"] / at_70["p50_ms"],
    }


def _role(process: psutil.Process) -> str:
    text = " ".join(process.cmdline())
    for role in ("worker", "http", "mule"):
        if role in text:
            return role
    return "other"


def memory_run(models: Path, users: int, workers: int, log: Path) -> dict[str, Any]:
    port = free_port()
    process, ready_seconds = start_uwsgi(models, port, workers, log)
    try:
        # Enough requests that every worker has touched the arrays and index pages it needs.
        run_step("127.0.0.1", port, user_paths(users, 5_000, seed=1), rate=150, seconds=4.0, connections=16)
        master = psutil.Process(process.pid)
        children = master.children()
        pss = {"master": master.memory_full_info().pss}
        for child in children:
            role = _role(child)
            key = f"{role}-{child.pid}"
            pss[key] = child.memory_full_info().pss
    finally:
        stop(process)
    worker_pss = [value for key, value in pss.items() if key.startswith("worker")]
    return {
        "workers": workers,
        "ready_seconds": round(ready_seconds, 3),
        "pss_bytes": pss,
        "worker_pss_bytes": worker_pss,
        "total_pss_bytes": sum(pss.values()),
    }


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--step-seconds", type=float, default=3.0)
    parser.add_argument("--max-steps", type=int, default=14)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "sizes": {},
    }
    for items, users in SIZES:
        print(f"model with {items} items, {users} users ...", flush=True)
        models = cached_model(MODEL_CACHE, items, users, ann_min_items=50_000)
        load_started = time.perf_counter()
        load_model(models)
        entry: dict[str, Any] = {
            "items": items,
            "users": users,
            "ann": manifest_of(models).get("ann"),
            "model_bytes": model_bytes(models),
            "model_load_seconds": round(time.perf_counter() - load_started, 3),
        }
        print(f"  ANN: {entry['ann']}", flush=True)
        entry["load"] = load_run(
            models, users, args.workers, seconds=args.step_seconds, max_steps=args.max_steps, log=RESULTS / "uwsgi.log"
        )
        if items == SIZES[-1][0] and not args.skip_memory:
            entry["memory"] = [memory_run(models, users, n, RESULTS / "uwsgi.log") for n in MEMORY_WORKERS]
        report["sizes"][str(items)] = entry
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"serving-{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, RESULTS / f"serving-{stamp}.png")
    print_summary(report)
    print(f"\nwritten to {out.relative_to(ROOT)} and {out.with_suffix('.png').relative_to(ROOT)}")


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(12, 4.5))
    for items, entry in report["sizes"].items():
        steps = entry["load"]["recommendations"]["sweep"]
        offered = [step["offered_rps"] for step in steps]
        for key, style in (("p50_ms", "-o"), ("p99_ms", "--s"), ("p999_ms", ":^")):
            latency.plot(offered, [step[key] for step in steps], style, label=f"{int(items):,} items {key[:-3]}")
        throughput.plot(offered, [step["achieved_rps"] for step in steps], "-o", label=f"{int(items):,} items")
    top = max(
        step["offered_rps"] for entry in report["sizes"].values() for step in entry["load"]["recommendations"]["sweep"]
    )
    throughput.plot([0, top], [0, top], color="grey", linewidth=0.8, label="achieved = offered")
    latency.set(xlabel="offered req/s", ylabel="latency ms (from scheduled send)", yscale="log", title="latency")
    throughput.set(xlabel="offered req/s", ylabel="achieved req/s", title="throughput")
    latency.legend(fontsize=7)
    throughput.legend(fontsize=8)
    figure.suptitle(f"recommendations, {report['machine']['cpus']} CPUs shared with the load generator")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def print_summary(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\n{m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB (load generator on the same cores)")
    print(
        "| items | ANN recall@10 | max rec req/s | `/health/live` req/s | ratio "
        "| p50 / p99 / p99.9 ms at 70 % | p99/p50 | ready s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for items, entry in report["sizes"].items():
        load = entry["load"]
        at_70 = next(step for step in load["recommendations"]["sweep"] if step["fraction_of_max"] == 0.7)
        recall = entry["ann"]["recall_at_10"] if entry["ann"] else "exact"
        print(
            f"| {int(items):,} | {recall} | {load['recommendations']['max_rps']:.0f} "
            f"| {load['health_live']['max_rps']:.0f} "
            f"| {load['ratio_max_rps']:.2f} | {at_70['p50_ms']:.1f} / {at_70['p99_ms']:.1f} / {at_70['p999_ms']:.1f} "
            f"| {load['p99_over_p50_at_70_percent']:.2f} | {load['ready_seconds']:.2f} |"
        )
    for items, entry in report["sizes"].items():
        for step in entry["load"]["recommendations"]["sweep"]:
            print(
                f"  {int(items):>9,} items {step['fraction_of_max']:5.0%}: offered {step['offered_rps']:6.0f} achieved "
                f"{step['achieved_rps']:6.0f} p50 {step['p50_ms']:6.1f} p99 {step['p99_ms']:7.1f} "
                f"p99.9 {step['p999_ms']:7.1f} ms errors {step['errors']}"
            )
        if "memory" not in entry:
            continue
        mib = 2**20
        print(f"\nPSS with the {int(items):,}-item model ({entry['model_bytes'] / mib:.0f} MiB on disk):")
        for run in entry["memory"]:
            workers = ", ".join(f"{value / mib:.1f}" for value in run["worker_pss_bytes"])
            print(
                f"  {run['workers']} workers: ready {run['ready_seconds']:.2f} s, "
                f"master {run['pss_bytes']['master'] / mib:.1f} MiB,"
                f" workers [{workers}] MiB, total {run['total_pss_bytes'] / mib:.1f} MiB"
            )
        runs = {run["workers"]: run["total_pss_bytes"] for run in entry["memory"]}
        if 1 in runs and 4 in runs:
            per_worker = (runs[4] - runs[1]) / 3
            print(
                f"  extra PSS per added worker {per_worker / mib:.1f} MiB = "
                f"{per_worker / entry['model_bytes']:.1%} of the model's bytes"
            )


if __name__ == "__main__":
    main()
