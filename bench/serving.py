"""`make bench`: open-loop load against real uWSGI on loopback with 100k- and 1M-item models, checked against targets.

For each model (synthetic clustered factors with an IVF ANN index, cached in bench/results/models): start uWSGI
(2 workers), warm up, and find the maximum sustained recommendation throughput: a rising open-loop ramp (x1.4 a step)
brackets it between the last sustained step and the first of two saturated ones in a row, then geometric bisection
narrows the bracket to 5 %. A step is sustained with achieved >= 95 % of offered, p99 <= 25 ms and < 1 % errors
(bench/loadgen.py). Then sweep 25 %-120 % of that maximum (achieved vs offered req/s, p50/p99/p99.9 from the
scheduled send time, errors; the 70 % step three times, since one short step's tail is noisy) and find `/health/live`'s
maximum the same way in the same run. User ids are Zipf-distributed over the known users, 10 % are unknown.

With the largest model requested (--sizes), uWSGI is also started with 1, 2 and 4 workers for start-to-ready time and
the PSS of the master and of every worker, and once more with 2 workers on a private model root whose `current`
pointer is switched to a copy of the version during the run, for the PSS after a model swap. The results are checked
against the targets, which are stated for the 1M-item model. Client and server share this machine's cores, so
throughput figures are a floor.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import requests

from api.contract import LIVENESS_PATH, MODEL_DIR_ENV, READINESS_PATH
from api.loader import load_model
from api.model_format import CURRENT_POINTER, MANIFEST_NAME, switch_current
from api.synthetic import user_id
from bench.loadgen import StepResult, find_max, run_step, sustained, warm_up
from bench.model import cached_model, manifest_of, model_bytes

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODEL_CACHE = RESULTS / "models"
TAIL_FRACTION = 0.7
TAIL_REPEATS = 3
SWEEP_FRACTIONS = (0.25, 0.5, *(TAIL_FRACTION,) * TAIL_REPEATS, 0.85, 1.0, 1.2)
ZIPF_EXPONENT = 1.1
UNKNOWN_SHARE = 0.1
CONNECTIONS = 64
# After every step, so that a queue left by an overloaded step does not spill into the next one.
PAUSE_SECONDS = 1.5
USERS_BY_ITEMS = {100_000: 100_000, 1_000_000: 200_000}
MEMORY_WORKERS = (1, 2, 4)
SWAP_WORKERS = 2
SWAP_VERSION = "bench-swap"
# Every response and every worker on the new version for this long: no worker is still loading it.
SWAP_SETTLE_SECONDS = 3.0
SWAP_TIMEOUT_SECONDS = 120.0
MIB = 2**20

# The targets, stated for the 1M-item model.
TARGET_ITEMS = 1_000_000
MIN_RATE_RATIO = 0.5
MIN_RECALL = 0.95
MAX_TAIL_RATIO = 3.0
MAX_EXTRA_PSS_SHARE = 0.05
MAX_READY_SECONDS = 2.0
PASS, FAIL, NOT_MEASURED = "PASS", "FAIL", "not measured"


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


def _say(step: StepResult, label: str) -> None:
    print(
        f"  {label:6} offered {step.offered_rps:7.0f}/s  achieved {step.achieved_rps:7.0f}/s  p50 {step.p50_ms:7.2f}  "
        f"p99 {step.p99_ms:8.2f}  p99.9 {step.p999_ms:8.2f} ms  errors {step.errors}"
        f"{'' if sustained(step) else '  saturated'}",
        flush=True,
    )


def _measurer(port: int, paths: list[str], seconds: float) -> Callable[[float, str], StepResult]:
    def measure(rate: float, phase: str) -> StepResult:
        step = run_step("127.0.0.1", port, paths, rate=rate, seconds=seconds, connections=CONNECTIONS)
        _say(step, phase)
        time.sleep(PAUSE_SECONDS)
        return step

    return measure


def sweep(port: int, paths: list[str], max_rps: float, seconds: float) -> list[dict[str, Any]]:
    measure = _measurer(port, paths, seconds)
    return [
        {"fraction_of_max": fraction, **asdict(measure(fraction * max_rps, f"{fraction:.0%}"))}
        for fraction in SWEEP_FRACTIONS
    ]


def tail_ratio(sweep_steps: list[dict[str, Any]]) -> dict[str, Any]:
    """p99 / p50 of every repeat at TAIL_FRACTION of the maximum, and their median."""
    ratios = [step["p99_ms"] / step["p50_ms"] for step in sweep_steps if step["fraction_of_max"] == TAIL_FRACTION]
    return {"median": statistics.median(ratios), "repeats": ratios}


def load_run(models: Path, users: int, workers: int, *, seconds: float, max_steps: int, log: Path) -> dict[str, Any]:
    port = free_port()
    process, ready_seconds = start_uwsgi(models, port, workers, log)
    try:
        paths = user_paths(users, 20_000)
        warm_up("127.0.0.1", port, paths)
        recommendations = find_max(_measurer(port, paths, seconds), 100.0, max_steps=max_steps)
        if recommendations.max_rps == 0:
            raise SystemExit("no recommendation step was sustained, not even the halved ones; is the machine busy?")
        steps = sweep(port, paths, recommendations.max_rps, seconds)
        warm_up("127.0.0.1", port, [LIVENESS_PATH])
        health = find_max(_measurer(port, [LIVENESS_PATH], seconds), 400.0, max_steps=max_steps)
        if health.max_rps == 0:
            raise SystemExit("no /health/live step was sustained, not even the halved ones; is the machine busy?")
    finally:
        stop(process)
    return {
        "workers": workers,
        "ready_seconds": round(ready_seconds, 3),
        "recommendations": {**recommendations.as_json(), "sweep": steps},
        "health_live": health.as_json(),
        "ratio_max_rps": recommendations.max_rps / health.max_rps,
        "p99_over_p50_at_70_percent": tail_ratio(steps),
    }


def _role(process: psutil.Process) -> str:
    text = " ".join(process.cmdline())
    for role in ("worker", "http", "mule"):
        if role in text:
            return role
    return "other"


def memory_snapshot(master_pid: int) -> tuple[dict[str, int], dict[str, int]]:
    """PSS and USS (private bytes) of the uWSGI master and of each child, keyed `master` and `<role>-<pid>`."""
    master = psutil.Process(master_pid)
    infos = {"master": master.memory_full_info()}
    for child in master.children():
        infos[f"{_role(child)}-{child.pid}"] = child.memory_full_info()
    return {key: info.pss for key, info in infos.items()}, {key: info.uss for key, info in infos.items()}


def _worker_values(by_process: dict[str, int]) -> list[int]:
    return [value for key, value in by_process.items() if key.startswith("worker")]


def _touch_model(port: int, users: int) -> None:
    # Enough requests that every worker has touched the arrays and index pages it needs.
    run_step("127.0.0.1", port, user_paths(users, 5_000, seed=1), rate=150, seconds=4.0, connections=16)


def memory_run(models: Path, users: int, workers: int, log: Path) -> dict[str, Any]:
    port = free_port()
    process, ready_seconds = start_uwsgi(models, port, workers, log)
    try:
        _touch_model(port, users)
        pss, _ = memory_snapshot(process.pid)
    finally:
        stop(process)
    return {
        "workers": workers,
        "ready_seconds": round(ready_seconds, 3),
        "pss_bytes": pss,
        "worker_pss_bytes": _worker_values(pss),
        "total_pss_bytes": sum(pss.values()),
    }


def _copy_version(source: Path, target: Path, version: str) -> None:
    """Same arrays and index under another version name: the checksums in the manifest stay valid."""
    target.mkdir()
    for path in source.iterdir():
        # New inodes, not links: the copy must not share the serving version's page cache.
        shutil.copyfile(path, target / path.name)
    manifest = json.loads((target / MANIFEST_NAME).read_text())
    manifest["version"] = version
    (target / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _maps_files_under(pid: int, directory: Path) -> bool:
    return str(directory) in Path(f"/proc/{pid}/maps").read_text()


def _wait_for_version(port: int, master_pid: int, version_dir: Path, users: int) -> tuple[float, int]:
    """Seconds from now until every response and every worker is on the new version, and errors meanwhile."""
    paths = user_paths(users, 2_000, seed=2)
    started = time.monotonic()
    settled_since: float | None = None
    errors = 0
    while time.monotonic() - started < SWAP_TIMEOUT_SECONDS:
        step = run_step("127.0.0.1", port, paths, rate=100, seconds=0.5, connections=8)
        errors += step.errors
        workers = [child.pid for child in psutil.Process(master_pid).children() if _role(child) == "worker"]
        if set(step.model_versions) == {version_dir.name} and all(
            _maps_files_under(pid, version_dir) for pid in workers
        ):
            settled_since = settled_since or time.monotonic()
            if time.monotonic() - settled_since >= SWAP_SETTLE_SECONDS:
                return settled_since - started, errors
        else:
            settled_since = None
    raise SystemExit(f"the workers did not all serve {version_dir.name} within {SWAP_TIMEOUT_SECONDS:.0f} s")


def swap_memory_run(models: Path, users: int, workers: int, log: Path) -> dict[str, Any]:
    """PSS before and after the workers swap in a new version (api/swap.py), under load both times.

    The extra PSS per worker is the mean rise of a worker's PSS, as a share of the bytes of one version on disk.
    """
    serving = (models / CURRENT_POINTER).resolve()
    root = RESULTS / f"swap-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    try:
        # The serving version is only read, so a link to the cached one will do (and halves the disk used).
        (root / serving.name).symlink_to(serving, target_is_directory=True)
        _copy_version(serving, root / SWAP_VERSION, SWAP_VERSION)
        switch_current(root, serving.name)
        port = free_port()
        process, ready_seconds = start_uwsgi(root, port, workers, log)
        try:
            _touch_model(port, users)
            before, uss_before = memory_snapshot(process.pid)
            switch_current(root, SWAP_VERSION)
            swap_seconds, errors = _wait_for_version(port, process.pid, root / SWAP_VERSION, users)
            _touch_model(port, users)
            after, uss_after = memory_snapshot(process.pid)
        finally:
            stop(process)
    finally:
        shutil.rmtree(root)
    extra = statistics.fmean(_worker_values(after)) - statistics.fmean(_worker_values(before))
    return {
        "workers": workers,
        "ready_seconds": round(ready_seconds, 3),
        "versions": [serving.name, SWAP_VERSION],
        "swap_seconds": round(swap_seconds, 2),
        "errors_during_swap": errors,
        "pss_before_bytes": before,
        "pss_after_bytes": after,
        "total_pss_before_bytes": sum(before.values()),
        "total_pss_after_bytes": sum(after.values()),
        # USS counts the pages no other process maps (page-cache pages only this worker touched as well): it
        # separates what a worker gains on its own from what it shares with the other workers.
        "worker_uss_before_bytes": _worker_values(uss_before),
        "worker_uss_after_bytes": _worker_values(uss_after),
        "extra_pss_per_worker_bytes": extra,
        "extra_pss_per_worker_share": extra / model_bytes(models),
    }


def _row(
    target: str,
    items: int,
    value: float | None,
    limit: float,
    *,
    at_most: bool,
    fmt: str,
    detail: str,
    unit: str = "",
) -> dict[str, Any]:
    met = value is not None and (value <= limit if at_most else value >= limit)
    verdict = NOT_MEASURED if value is None else PASS if met else FAIL
    return {
        "target": target,
        "items": items,
        "value": value,
        "limit": limit,
        "measured": NOT_MEASURED if value is None else f"{value:{fmt}}{unit}",
        "detail": detail,
        "verdict": verdict,
    }


def target_verdicts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target with the measured value and PASS, FAIL or `not measured`, computed from the report."""
    sizes: dict[str, Any] = report["sizes"]
    entry = sizes.get(str(TARGET_ITEMS))
    missing = f"{TARGET_ITEMS:,} items not run"
    rows = []

    load = entry["load"] if entry else None
    ratio = load["ratio_max_rps"] if load else None
    rows.append(
        _row(
            "(a) rec max req/s >= 50 % of /health/live max, same run",
            TARGET_ITEMS,
            ratio,
            MIN_RATE_RATIO,
            at_most=False,
            fmt=".2f",
            detail=(
                f"{load['recommendations']['max_rps']:.0f} / {load['health_live']['max_rps']:.0f} req/s"
                if load
                else missing
            ),
        )
    )

    ann = entry["ann"] if entry else None
    recall = ann["recall_at_10"] if ann else None
    rows.append(
        _row(
            "(b) ANN recall@10 >= 0.95",
            TARGET_ITEMS,
            recall,
            MIN_RECALL,
            at_most=False,
            fmt=".4f",
            detail=f"nprobe {ann['nprobe']} of {ann['nlist']} lists" if ann else missing if entry is None else "exact",
        )
    )

    # The target is stated at 1M items; the other sizes run show the same figure for comparison.
    for items in [TARGET_ITEMS, *sorted(int(key) for key in sizes if int(key) != TARGET_ITEMS)]:
        measured = sizes.get(str(items))
        tail = measured["load"]["p99_over_p50_at_70_percent"] if measured else None
        rows.append(
            _row(
                "(c) p99 <= 3 x p50 at 70 % of max, median of repeats",
                items,
                tail["median"] if tail else None,
                MAX_TAIL_RATIO,
                at_most=True,
                fmt=".2f",
                detail=f"repeats {', '.join(f'{value:.2f}' for value in tail['repeats'])}" if tail else missing,
            )
        )

    totals = {run["workers"]: run["total_pss_bytes"] for run in entry.get("memory", [])} if entry else {}
    share = None
    detail = missing if entry is None else "memory not measured (--skip-memory)"
    if entry and 1 in totals and 4 in totals:
        per_worker = (totals[4] - totals[1]) / 3
        share = per_worker / entry["model_bytes"]
        detail = f"(total PSS 4 - 1 workers) / 3 = {per_worker / MIB:.1f} of {entry['model_bytes'] / MIB:.0f} MiB"
    rows.append(
        _row(
            "(d) extra PSS per added worker <= 5 % of model bytes",
            TARGET_ITEMS,
            share,
            MAX_EXTRA_PSS_SHARE,
            at_most=True,
            fmt=".1%",
            detail=detail,
        )
    )

    starts = []
    if entry:
        starts = [entry["load"]["ready_seconds"], *(run["ready_seconds"] for run in entry.get("memory", []))]
        if "swap_memory" in entry:
            starts.append(entry["swap_memory"]["ready_seconds"])
    worst = max(starts) if starts else None
    rows.append(
        _row(
            "(e) ready <= 2 s, worst start",
            TARGET_ITEMS,
            worst,
            MAX_READY_SECONDS,
            at_most=True,
            fmt=".2f",
            unit=" s",
            detail=f"worst of {len(starts)} starts" if starts else missing,
        )
    )
    return rows


def parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of item counts") from None
    if not set(sizes) <= set(USERS_BY_ITEMS):
        raise argparse.ArgumentTypeError(f"item counts must be among {', '.join(map(str, USERS_BY_ITEMS))}")
    return sizes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__)
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=tuple(USERS_BY_ITEMS),
        help=f"comma-separated item counts (default {','.join(map(str, USERS_BY_ITEMS))}); memory runs use the largest",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--step-seconds", type=float, default=3.0)
    parser.add_argument("--max-steps", type=int, default=14, help="ramp steps at most (bisection steps come on top)")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "sizes": list(args.sizes),
            "workers": args.workers,
            "step_seconds": args.step_seconds,
            "max_ramp_steps": args.max_steps,
            "skip_memory": args.skip_memory,
        },
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
            "model_bytes": model_bytes(models),
            "model_load_seconds": round(time.perf_counter() - load_started, 3),
        }
        print(f"  ANN: {entry['ann']}", flush=True)
        entry["load"] = load_run(
            models, users, args.workers, seconds=args.step_seconds, max_steps=args.max_steps, log=log
        )
        if items == args.sizes[-1] and not args.skip_memory:
            entry["memory"] = [memory_run(models, users, n, log) for n in MEMORY_WORKERS]
            entry["swap_memory"] = swap_memory_run(models, users, SWAP_WORKERS, log)
        report["sizes"][str(items)] = entry
    report["targets"] = target_verdicts(report)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"serving-{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, RESULTS / f"serving-{stamp}.png")
    print_summary(report)
    print(f"\nwritten to {out.relative_to(ROOT)} and {out.with_suffix('.png').relative_to(ROOT)}")


def _sweep_medians(steps: list[dict[str, Any]]) -> list[dict[str, float]]:
    """One point per fraction of the maximum: the median of its repeats."""
    keys = ("offered_rps", "achieved_rps", "p50_ms", "p99_ms", "p999_ms")
    return [
        {key: statistics.median(step[key] for step in steps if step["fraction_of_max"] == fraction) for key in keys}
        for fraction in sorted({step["fraction_of_max"] for step in steps})
    ]


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(12, 4.5))
    for items, entry in report["sizes"].items():
        points = _sweep_medians(entry["load"]["recommendations"]["sweep"])
        offered = [point["offered_rps"] for point in points]
        for key, style in (("p50_ms", "-o"), ("p99_ms", "--s"), ("p999_ms", ":^")):
            latency.plot(offered, [point[key] for point in points], style, label=f"{int(items):,} items {key[:-3]}")
        throughput.plot(offered, [point["achieved_rps"] for point in points], "-o", label=f"{int(items):,} items")
    top = max(
        step["offered_rps"] for entry in report["sizes"].values() for step in entry["load"]["recommendations"]["sweep"]
    )
    throughput.plot([0, top], [0, top], color="grey", linewidth=0.8, label="achieved = offered")
    latency.set(xlabel="offered req/s", ylabel="latency ms (from scheduled send)", yscale="log", title="latency")
    throughput.set(xlabel="offered req/s", ylabel="achieved req/s", title="throughput")
    latency.legend(fontsize=7)
    throughput.legend(fontsize=8)
    figure.suptitle(
        f"recommendations, {report['machine']['cpus']} CPUs shared with the load generator "
        f"(median of the repeats at {TAIL_FRACTION:.0%})"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _mib(values: list[int]) -> str:
    return ", ".join(f"{value / MIB:.1f}" for value in values)


def print_summary(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\n{m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB (load generator on the same cores)")
    print(
        "| items | ANN recall@10 | max rec req/s | `/health/live` req/s | ratio "
        "| p99/p50 at 70 %: median (repeats) | ready s |"
    )
    print("|---|---|---|---|---|---|---|")
    for items, entry in report["sizes"].items():
        load = entry["load"]
        tail = load["p99_over_p50_at_70_percent"]
        recall = entry["ann"]["recall_at_10"] if entry["ann"] else "exact"
        print(
            f"| {int(items):,} | {recall} | {load['recommendations']['max_rps']:.0f} "
            f"| {load['health_live']['max_rps']:.0f} | {load['ratio_max_rps']:.2f} "
            f"| {tail['median']:.2f} ({', '.join(f'{value:.2f}' for value in tail['repeats'])}) "
            f"| {load['ready_seconds']:.2f} |"
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
        print(f"\nPSS with the {int(items):,}-item model ({entry['model_bytes'] / MIB:.0f} MiB on disk):")
        for run in entry["memory"]:
            print(
                f"  {run['workers']} workers: ready {run['ready_seconds']:.2f} s, "
                f"master {run['pss_bytes']['master'] / MIB:.1f} MiB,"
                f" workers [{_mib(run['worker_pss_bytes'])}] MiB, total {run['total_pss_bytes'] / MIB:.1f} MiB"
            )
        swap = entry["swap_memory"]
        before, after = swap["pss_before_bytes"], swap["pss_after_bytes"]
        print(
            f"  swap {' -> '.join(swap['versions'])} with {swap['workers']} workers (every worker on the new version "
            f"{swap['swap_seconds']:.1f} s after the switch, {swap['errors_during_swap']} errors meanwhile):\n"
            f"    master {before['master'] / MIB:.1f} -> {after['master'] / MIB:.1f} MiB, "
            f"workers [{_mib(_worker_values(before))}] -> [{_mib(_worker_values(after))}] MiB, "
            f"total {swap['total_pss_before_bytes'] / MIB:.1f} -> {swap['total_pss_after_bytes'] / MIB:.1f} MiB; "
            f"worker USS [{_mib(swap['worker_uss_before_bytes'])}] -> "
            f"[{_mib(swap['worker_uss_after_bytes'])}] MiB\n"
            f"    extra PSS per worker after the swap {swap['extra_pss_per_worker_bytes'] / MIB:.1f} MiB = "
            f"{swap['extra_pss_per_worker_share']:.1%} of the model's bytes"
        )
    print("\nTargets:\n| target | items | measured | verdict | detail |\n|---|---|---|---|---|")
    for row in report["targets"]:
        print(f"| {row['target']} | {row['items']:,} | {row['measured']} | {row['verdict']} | {row['detail']} |")


if __name__ == "__main__":
    main()
