"""The benchmark's report: verdicts against the targets, the plot and the printed summary."""

import os
import platform
import statistics
from pathlib import Path
from typing import Any

import psutil

from bench.memory import worker_values

TAIL_FRACTION = 0.7
MIB = 2**20
# The targets, stated for the 1M-item model.
TARGET_ITEMS = 1_000_000
MIN_RATE_RATIO = 0.5
MIN_RECALL = 0.95
MAX_TAIL_RATIO = 3.0
MAX_EXTRA_PSS_SHARE = 0.05
MAX_READY_SECONDS = 2.0
PASS, FAIL, NOT_MEASURED = "PASS", "FAIL", "not measured"


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
                f"{load['recommendations']['max_rps']:.0f} / {load['health_live']['max_rps']:.0f} req/s; "
                f"server CPU per request {_cpu_text(load['server_cpu'])}"
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


def _cpu_text(cpu: dict[str, Any]) -> str:
    uncached = cpu.get("recommendations_uncached")
    without = f", rec. {uncached['cpu_ms_per_request']:.3f} ms with the answer cache off" if uncached else ""
    return (
        f"{cpu['recommendations']['cpu_ms_per_request']:.3f} / {cpu['health_live']['cpu_ms_per_request']:.3f} ms "
        f"(ratio {cpu['ratio']:.2f}{without})"
    )


def _mib(values: list[int]) -> str:
    return ", ".join(f"{value / MIB:.1f}" for value in values)


def print_summary(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\n{m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB (load generator on the same cores)")
    print(
        "| items | ANN recall@10 | max rec req/s | `/health/live` req/s | ratio "
        "| server CPU per request, rec / health | p99/p50 at 70 %: median (repeats) | ready s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for items, entry in report["sizes"].items():
        load = entry["load"]
        tail = load["p99_over_p50_at_70_percent"]
        recall = entry["ann"]["recall_at_10"] if entry["ann"] else "exact"
        print(
            f"| {int(items):,} | {recall} | {load['recommendations']['max_rps']:.0f} "
            f"| {load['health_live']['max_rps']:.0f} | {load['ratio_max_rps']:.2f} | {_cpu_text(load['server_cpu'])} "
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
            f"workers [{_mib(worker_values(before))}] -> [{_mib(worker_values(after))}] MiB, "
            f"total {swap['total_pss_before_bytes'] / MIB:.1f} -> {swap['total_pss_after_bytes'] / MIB:.1f} MiB; "
            f"worker USS [{_mib(swap['worker_uss_before_bytes'])}] -> "
            f"[{_mib(swap['worker_uss_after_bytes'])}] MiB\n"
            f"    extra PSS per worker after the swap {swap['extra_pss_per_worker_bytes'] / MIB:.1f} MiB = "
            f"{swap['extra_pss_per_worker_share']:.1%} of the model's bytes"
        )
    print("\nTargets:\n| target | items | measured | verdict | detail |\n|---|---|---|---|---|")
    for row in report["targets"]:
        print(f"| {row['target']} | {row['items']:,} | {row['measured']} | {row['verdict']} | {row['detail']} |")
