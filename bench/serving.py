"""`make bench`: open-loop load against real uWSGI serving a 100k-item model on loopback.

For recommendations and for /health/live, in the same run: the offered rate climbs until the server saturates;
the table shows the highest sustained rate (p50, p99) and the saturation throughput, and recommendations' share
of the liveness throughput. Client and server share this machine's cores, so the figures are a floor.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import requests

from api.contract import LIVENESS_PATH, MODEL_DIR_ENV, READINESS_PATH
from api.loader import load_model
from api.synthetic import SyntheticSpec, generate, user_id, write
from api.train import AlsParameters, train
from bench.loadgen import StepResult, run_step, warm_up

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
P99_LIMIT_MS = 100.0
RATE_GROWTH = 1.5


def build_model(workdir: Path, items: int, users: int) -> Path:
    data = workdir / "interactions.parquet"
    write(generate(SyntheticSpec(users=users, items=items, segments=50, mean_interactions=40.0, seed=1)), data)
    models = workdir / "models"
    train(data, models, AlsParameters(factors=64, iterations=8), version="bench", test_fraction=0.0)
    return models


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
    while time.monotonic() - started < 60:
        if process.poll() is not None:
            raise SystemExit(f"uWSGI exited {process.returncode}; see {log}")
        try:
            if requests.get(f"http://127.0.0.1:{port}{READINESS_PATH}", timeout=1).status_code == 200:
                return process, time.monotonic() - started
        except requests.ConnectionError:
            time.sleep(0.05)
    stop(process)
    raise SystemExit(f"uWSGI not ready after 60 s; see {log}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def saturated(step: StepResult) -> bool:
    return (
        step.achieved_rps < 0.9 * step.offered_rps
        or step.p99_ms > P99_LIMIT_MS
        or step.errors > 0.01 * max(step.completed, 1)
    )


def ramp(port: int, paths: list[str], start_rate: float, seconds: float, max_steps: int) -> dict[str, Any]:
    steps: list[StepResult] = []
    rate = start_rate
    for _ in range(max_steps):
        step = run_step("127.0.0.1", port, paths, rate=rate, seconds=seconds, connections=64)
        steps.append(step)
        print(
            f"  offered {step.offered_rps:7.0f}/s  achieved {step.achieved_rps:7.0f}/s  "
            f"p50 {step.p50_ms:7.2f} ms  p99 {step.p99_ms:8.2f} ms  errors {step.errors}",
            flush=True,
        )
        if saturated(step):
            break
        rate *= RATE_GROWTH
    sustained = [step for step in steps if not saturated(step)]
    best = sustained[-1] if sustained else None
    return {
        "sustained": asdict(best) if best else None,
        "saturation_rps": max(step.achieved_rps for step in steps),
        "steps": [asdict(step) for step in steps],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--step-seconds", type=float, default=4.0)
    parser.add_argument("--max-steps", type=int, default=12)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="recsys-bench-") as scratch:
        workdir = Path(scratch)
        print(f"building a {args.items}-item model ...", flush=True)
        models = build_model(workdir, args.items, args.users)
        load_started = time.perf_counter()
        load_model(models)
        load_seconds = time.perf_counter() - load_started
        port = free_port()
        process, ready_seconds = start_uwsgi(models, port, args.workers, workdir / "uwsgi.log")
        try:
            rng = np.random.default_rng(0)
            users = rng.integers(0, args.users, size=2000)
            rec_paths = [f"/v1/users/{user_id(int(user))}/recommendations?k=10" for user in users]
            targets = {"recommendations": (rec_paths, 50.0), "health_live": ([LIVENESS_PATH], 200.0)}
            results: dict[str, Any] = {}
            for name, (paths, start_rate) in targets.items():
                warm_up("127.0.0.1", port, paths)
                print(f"{name}:", flush=True)
                results[name] = ramp(port, paths, start_rate, args.step_seconds, args.max_steps)
        finally:
            stop(process)

    report = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "items": args.items,
        "users": args.users,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "model_load_seconds": round(load_seconds, 3),
        "uwsgi_ready_seconds": round(ready_seconds, 3),
        "p99_limit_ms": P99_LIMIT_MS,
        **results,
        "ratio_saturation": results["recommendations"]["saturation_rps"] / results["health_live"]["saturation_rps"],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"serving-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwritten to {out.relative_to(ROOT)}")


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{report['items']} items, {report['workers']} uWSGI workers, {report['cpus']} CPUs (client included)")
    print(
        f"model load {report['model_load_seconds']:.2f} s, uWSGI start to ready {report['uwsgi_ready_seconds']:.2f} s"
    )
    print(f"{'endpoint':<16}{'sustained req/s':>16}{'p50 ms':>9}{'p99 ms':>9}{'saturation req/s':>18}")
    for name in ("recommendations", "health_live"):
        entry = report[name]
        sustained = entry["sustained"] or {"achieved_rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan")}
        print(
            f"{name:<16}{sustained['achieved_rps']:>16.0f}{sustained['p50_ms']:>9.2f}"
            f"{sustained['p99_ms']:>9.2f}{entry['saturation_rps']:>18.0f}"
        )
    print(f"recommendations / health_live (saturation throughput): {report['ratio_saturation']:.2f}")


if __name__ == "__main__":
    main()
