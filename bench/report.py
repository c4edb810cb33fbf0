"""The benchmark's report: verdicts against the targets, the plot and the printed summary."""

import math
import os
import platform
import statistics
from pathlib import Path
from typing import Any

import psutil

from bench.family_latency import LATENCIES, paired_ratios
from bench.memory import worker_values
from bench.stall_sources import source_costs
from bench.stalls import LATENCY_PARTS

TAIL_FRACTION = 0.7
MIB = 2**20
# The targets, stated for the 1M-item model.
TARGET_ITEMS = 1_000_000
MIN_RATE_RATIO = 0.7
MIN_RECALL = 0.95
MAX_TAIL_RATIO = 3.0
# Steps up to this share of the maximum must keep the tail; between the two shares p99.9 must also stay low.
TAIL_UP_TO = 0.9
P999_FROM = 0.5
MAX_P999_MS = 25.0
MAX_EXTRA_PSS_SHARE = 0.05
MAX_READY_SECONDS = 1.5
# Similar items answered from the neighbour lookup (issue 15) against the liveness maximum.
MIN_SIMILAR_RATIO = 0.9
# An item-item version's recommendation maximum against the ALS model's at the same catalogue size ("within 10 %").
MIN_FAMILY_RATIO = 0.9
# Its latency against ALS's at the same offered rate: the median round's item-item / ALS, for p50 and for p99.
MAX_FAMILY_LATENCY_RATIO = 1.1
SKIPPED_FAMILY = "item-item version not run (--skip-item-item)"
OLD_RESULTS = "no interleaved latency run in these results (before 2026-12-01)"
# A figure whose runs differ by more than this share of their median is flagged as unsteady in the report.
MAX_STEADY_SPREAD = 0.15
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
        # Anything else running shares the cores with the server and the load generator: a busy machine lowers
        # every throughput figure, so the report says how busy it was when the benchmark started.
        "load_average_1_5_15": [round(value, 2) for value in os.getloadavg()],
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


def _median_of_fractions(steps: list[dict[str, Any]], key: str) -> dict[float, float]:
    """Per fraction of the maximum, the median of `key` over that fraction's repeats."""
    fractions = sorted({step["fraction_of_max"] for step in steps})
    return {f: statistics.median(s[key] for s in steps if s["fraction_of_max"] == f) for f in fractions}


def worst_tail_ratio(steps: list[dict[str, Any]]) -> float:
    """The largest p99 / p50 over the steps up to TAIL_UP_TO of the maximum (repeats of a step: their median)."""
    fractions = sorted({step["fraction_of_max"] for step in steps if step["fraction_of_max"] <= TAIL_UP_TO})
    return max(
        float(statistics.median(s["p99_ms"] / s["p50_ms"] for s in steps if s["fraction_of_max"] == f))
        for f in fractions
    )


def worst_p999(steps: list[dict[str, Any]]) -> float:
    """The largest p99.9 over the steps from P999_FROM to TAIL_UP_TO of the maximum."""
    medians = _median_of_fractions(steps, "p999_ms")
    return max(value for f, value in medians.items() if P999_FROM <= f <= TAIL_UP_TO)


def run_figures(load: dict[str, Any]) -> dict[str, float]:
    """The figures of one load run that the targets and the spread report use."""
    steps = load["recommendations"]["sweep"]
    return {
        "rec_max_rps": load["recommendations"]["max_rps"],
        "health_max_rps": load["health_live"]["max_rps"],
        "ratio": load["ratio_max_rps"],
        "worst_tail_ratio": worst_tail_ratio(steps),
        # Runs from before 2026-12-01 (1dd03e6) swept only the recommendations.
        **(
            {"liveness_worst_tail_ratio": worst_tail_ratio(load["health_live"]["sweep"])}
            if "sweep" in load["health_live"]
            else {}
        ),
        "worst_p999_ms": worst_p999(steps),
        "ready_seconds": load["ready_seconds"],
        "rec_max_rps_connection_close": load["recommendations_connection_close"]["max_rps"],
        # Runs from before the similar-items maximum existed have none.
        **(
            {"similar_max_rps": load["similar_items"]["max_rps"], "similar_ratio": load["similar_ratio_max_rps"]}
            if "similar_items" in load
            else {}
        ),
    }


def repeat_summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Median, range and relative spread of each figure over the repeated load runs; unsteady ones flagged."""
    figures = [run_figures(run) for run in runs]
    summary = {}
    for key in [key for key in figures[0] if all(key in figure for figure in figures)]:
        values = [figure[key] for figure in figures]
        median, spread = _median_and_spread(values)
        summary[key] = {
            "median": median,
            "min": min(values),
            "max": max(values),
            "values": values,
            "spread": spread,
            "unsteady": spread > MAX_STEADY_SPREAD,
        }
    return summary


def _median_and_spread(values: list[float]) -> tuple[float, float]:
    """The median and the range relative to it."""
    median = statistics.median(values)
    return median, (max(values) - min(values)) / median if median else 0.0


def median_family_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The item-item run whose recommendation maximum is the median one."""
    return sorted(runs, key=lambda run: run["recommendations"]["max_rps"])[len(runs) // 2]


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose throughput ratio is the median one: the run the plot and the sweep table show."""
    return sorted(runs, key=lambda run: run["ratio_max_rps"])[len(runs) // 2]


def _values_text(figure: dict[str, Any], fmt: str) -> str:
    text = f"runs {', '.join(f'{value:{fmt}}' for value in figure['values'])}"
    return text + (f"; UNSTEADY: spread {figure['spread']:.0%}" if figure["unsteady"] else "")


def target_verdicts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target with the median over the repeated runs and PASS, FAIL or `not measured`."""
    sizes: dict[str, Any] = report["sizes"]
    entry = sizes.get(str(TARGET_ITEMS))
    missing = f"{TARGET_ITEMS:,} items not run"
    rows = []
    repeats = repeat_summary(entry["load_runs"]) if entry else None

    def median_row(
        target: str, key: str, limit: float, *, at_most: bool, fmt: str, unit: str = "", absent: str = ""
    ) -> None:
        figure = repeats.get(key) if repeats else None
        rows.append(
            _row(
                target,
                TARGET_ITEMS,
                figure["median"] if figure else None,
                limit,
                at_most=at_most,
                fmt=fmt,
                unit=unit,
                detail=_values_text(figure, fmt) if figure else absent if repeats else missing,
            )
        )

    median_row(
        f"(a) rec max req/s >= {MIN_RATE_RATIO:.0%} of /health/live max",
        "ratio",
        MIN_RATE_RATIO,
        at_most=False,
        fmt=".2f",
    )
    ann = entry["ann"] if entry else None
    recall = ann["recall_at_10"] if ann else None
    rows.append(
        _row(
            f"(b) ANN recall@10 >= {MIN_RECALL}",
            TARGET_ITEMS,
            recall,
            MIN_RECALL,
            at_most=False,
            fmt=".4f",
            detail=f"nprobe {ann['nprobe']} of {ann['nlist']} lists" if ann else missing if entry is None else "exact",
        )
    )
    median_row(
        f"(c) p99 <= {MAX_TAIL_RATIO:g} x p50 at every step up to {TAIL_UP_TO:.0%} of max",
        "worst_tail_ratio",
        MAX_TAIL_RATIO,
        at_most=True,
        fmt=".2f",
    )
    liveness_tail = repeats.get("liveness_worst_tail_ratio") if repeats else None
    if liveness_tail:
        rows[-1]["detail"] += (
            f"; /health/live, the same stack with no model work, at the same shares of its own max: "
            f"{liveness_tail['median']:.2f} ({_values_text(liveness_tail, '.2f')})"
        )
    median_row(
        f"(d) p99.9 <= {MAX_P999_MS:g} ms from {P999_FROM:.0%} to {TAIL_UP_TO:.0%} of max",
        "worst_p999_ms",
        MAX_P999_MS,
        at_most=True,
        fmt=".1f",
        unit=" ms",
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
            f"(e) extra PSS per added worker <= {MAX_EXTRA_PSS_SHARE:.0%} of model bytes",
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
        starts = [
            *(run["ready_seconds"] for run in entry["load_runs"]),
            *(run["ready_seconds"] for run in entry.get("memory", [])),
        ]
        if "swap_memory" in entry:
            starts.append(entry["swap_memory"]["ready_seconds"])
    worst = max(starts) if starts else None
    rows.append(
        _row(
            f"(f) ready <= {MAX_READY_SECONDS:g} s, worst start",
            TARGET_ITEMS,
            worst,
            MAX_READY_SECONDS,
            at_most=True,
            fmt=".2f",
            unit=" s",
            detail=f"worst of {len(starts)} starts" if starts else missing,
        )
    )
    median_row(
        f"(g) similar items max req/s >= {MIN_SIMILAR_RATIO:.0%} of /health/live max",
        "similar_ratio",
        MIN_SIMILAR_RATIO,
        at_most=False,
        fmt=".2f",
        absent="no similar-items maximum in these runs",
    )
    rows.append(_family_row(entry, repeats, missing))
    rows.append(_family_latency_row(entry, missing))
    return rows


def _family_row(entry: dict[str, Any] | None, repeats: dict[str, Any] | None, missing: str) -> dict[str, Any]:
    """The median of the item-item version's recommendation maxima over the ALS model's."""
    family = entry.get("item_item") if entry else None
    value, detail = None, missing if entry is None else SKIPPED_FAMILY
    if entry is not None and family is not None and repeats is not None:
        als_max = repeats["rec_max_rps"]["median"]
        # Results from before the item-item maximum was repeated hold one run.
        maxima = [run["recommendations"]["max_rps"] for run in entry.get("item_item_runs", [family])]
        median, spread = _median_and_spread(maxima)
        value = median / als_max
        detail = f"{median:.0f} / {als_max:.0f} req/s; similar items {family['similar_items']['max_rps']:.0f} req/s"
        if len(maxima) > 1:
            detail += f"; runs {', '.join(f'{maximum / als_max:.2f}' for maximum in maxima)}" + (
                f"; UNSTEADY: spread {spread:.0%}" if spread > MAX_STEADY_SPREAD else ""
            )
    return _row(
        f"(h) item-item rec max req/s >= {MIN_FAMILY_RATIO:.0%} of ALS's",
        TARGET_ITEMS,
        value,
        MIN_FAMILY_RATIO,
        at_most=False,
        fmt=".2f",
        detail=detail,
    )


def _family_latency_row(entry: dict[str, Any] | None, missing: str) -> dict[str, Any]:
    """The worse of item-item's p50 and p99 over ALS's, each the median of the interleaved rounds' ratios."""
    measured = entry.get("family_latency") if entry else None
    value, detail = None, missing if entry is None else SKIPPED_FAMILY if "item_item" not in entry else OLD_RESULTS
    if measured is not None:
        ratios = paired_ratios(measured["pairs"])
        worst = [ratios[key]["ratio"] for key in LATENCIES]
        # max() would pass over a NaN (an unmeasured round) as it compares False with everything.
        value = math.nan if any(math.isnan(ratio) for ratio in worst) else max(worst)
        parts = [
            f"{key[:-3]} {figure['ratio']:.2f} (quartiles {figure['quartiles'][0]:.2f}-{figure['quartiles'][1]:.2f}; "
            f"ALS {figure['als']:.2f} ms, item-item {figure['item_item']:.2f} ms)"
            for key, figure in ((key, ratios[key]) for key in LATENCIES)
        ]
        errors = ratios["errors"]
        detail = (
            f"{'; '.join(parts)}; {len(measured['pairs'])} rounds at {measured['offered_rps']:.0f} req/s; "
            f"errors ALS {errors['als']}, item-item {errors['item_item']}"
        )
    return _row(
        f"(i) item-item p50 and p99 <= {MAX_FAMILY_LATENCY_RATIO:.0%} of ALS's at {TAIL_FRACTION:.0%}, interleaved",
        TARGET_ITEMS,
        value,
        MAX_FAMILY_LATENCY_RATIO,
        at_most=True,
        fmt=".2f",
        detail=detail,
    )


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
    similar = cpu.get("similar_items")
    without += f", similar items {similar['cpu_ms_per_request']:.3f} ms" if similar else ""
    return (
        f"{cpu['recommendations']['cpu_ms_per_request']:.3f} / {cpu['health_live']['cpu_ms_per_request']:.3f} ms "
        f"(ratio {cpu['ratio']:.2f}{without})"
    )


def lookup_bytes(items: int, neighbours: dict[str, Any]) -> int:
    """What the neighbour lists take: items x N x (4 bytes of id + the weight's bytes)."""
    weight = 2 if neighbours["weights_dtype"] == "float16" else 4
    return int(items) * int(neighbours["count"]) * (4 + weight)


def _lookup_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        "Memory of the similar-items lookup (memory-mapped, shared by the workers) and of the item-item version:",
        "",
    ]
    for items, entry in report["sizes"].items():
        neighbours = entry.get("neighbours")
        if not neighbours:
            lines.append(f"- {int(items):,} items: no neighbour lists in this model")
            continue
        size = lookup_bytes(int(items), neighbours)
        text = (
            f"- {int(items):,} items: {neighbours['count']} neighbours per item, {neighbours['weights_dtype']} "
            f"weights = {size / MIB:.0f} MiB of the model's {entry['model_bytes'] / MIB:.0f} MiB"
        )
        if entry.get("answer_bytes"):
            count = neighbours.get("answer_count")
            text += f", and the answers stored for k up to {count} {entry['answer_bytes'] / MIB:.0f} MiB"
        if "item_item" in entry:
            text += f"; the item-item version is {entry['item_item']['model_bytes'] / MIB:.0f} MiB"
        lines.append(text)
    return lines


def _similar_text(load: dict[str, Any]) -> str:
    if "similar_items" not in load:
        return "not measured"
    return f"{load['similar_items']['max_rps']:.0f} ({load['similar_ratio_max_rps']:.2f})"


def _mib(values: list[int]) -> str:
    return ", ".join(f"{value / MIB:.1f}" for value in values)


def _repeats_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        "| items | figure | median | min | max | spread | runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for items, entry in report["sizes"].items():
        for key, figure in repeat_summary(entry["load_runs"]).items():
            flag = " (over 15 %: unsteady)" if figure["unsteady"] else ""
            lines.append(
                f"| {int(items):,} | {key} | {figure['median']:.2f} | {figure['min']:.2f} | {figure['max']:.2f} "
                f"| {figure['spread']:.0%}{flag} | {', '.join(f'{value:.2f}' for value in figure['values'])} |"
            )
    return lines


def _memory_lines(items: str, entry: dict[str, Any]) -> list[str]:
    lines = [f"PSS with the {int(items):,}-item model ({entry['model_bytes'] / MIB:.0f} MiB on disk):"]
    for run in entry["memory"]:
        lines.append(
            f"  {run['workers']} workers: ready {run['ready_seconds']:.2f} s, "
            f"master {run['pss_bytes']['master'] / MIB:.1f} MiB,"
            f" workers [{_mib(run['worker_pss_bytes'])}] MiB, total {run['total_pss_bytes'] / MIB:.1f} MiB"
        )
    swap = entry["swap_memory"]
    before, after = swap["pss_before_bytes"], swap["pss_after_bytes"]
    lines += [
        f"  swap {' -> '.join(swap['versions'])} with {swap['workers']} workers (every worker on the new version "
        f"{swap['swap_seconds']:.1f} s after the switch, {swap['errors_during_swap']} errors meanwhile):",
        f"    master {before['master'] / MIB:.1f} -> {after['master'] / MIB:.1f} MiB, "
        f"workers [{_mib(worker_values(before))}] -> [{_mib(worker_values(after))}] MiB, "
        f"total {swap['total_pss_before_bytes'] / MIB:.1f} -> {swap['total_pss_after_bytes'] / MIB:.1f} MiB; "
        f"worker USS [{_mib(swap['worker_uss_before_bytes'])}] -> [{_mib(swap['worker_uss_after_bytes'])}] MiB",
        f"    extra PSS per worker after the swap {swap['extra_pss_per_worker_bytes'] / MIB:.1f} MiB = "
        f"{swap['extra_pss_per_worker_share']:.1%} of the model's bytes",
    ]
    return lines


def _host_lines(found: dict[str, Any] | None) -> list[str]:
    """The host's own pauses (bench/hostnoise.py), read before the runs: a floor under every tail figure below."""
    if found is None:
        return []
    lost = ", ".join(f"{share:.1%}" for share in found["lost_share"])
    return [
        f"The host, before the runs: a busy loop on each of the {found['cores']} cores for {found['seconds']:g} s lost "
        f"{lost} of its time in pauses, the longest {found['max_gap_ms']:.1f} ms, "
        f"{found['long_gaps_per_s']:.1f} a second over 1 ms (all cores); the kernel counted "
        f"{found['steal_ms_per_s']:.0f} ms of steal per second. Each sweep and traced step below gives the steal "
        "during it: a request in flight on a core the host has taken waits the pause out.",
        "",
    ]


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The report as Markdown: machine, targets (medians of the runs), spread of every figure, the median run."""
    m = report["machine"]
    settings = report["settings"]
    lines = [
        f"Measured {report['time']} at commit `{report.get('commit', 'unknown')}` on {m['cpu']}, {m['cpus']} CPUs, "
        f"{m['memory_gib']} GiB, Python {m['python']}, kernel {m['kernel']}, load average at the start "
        f"{', '.join(map(str, m.get('load_average_1_5_15', [])))}; the load generator shares the cores, so "
        f"throughput is a floor. {settings['runs']} load run(s) per size, {settings['workers']} uWSGI workers, "
        f"{settings['step_seconds']:g} s steps.",
        "",
        *_host_lines(report.get("host_probe")),
        "## Targets (1M items, median of the runs)",
        "",
        "| target | items | measured | verdict | detail |",
        "|---|---|---|---|---|",
        *(
            f"| {row['target']} | {row['items']:,} | {row['measured']} | {row['verdict']} | {row['detail']} |"
            for row in report["targets"]
        ),
        "",
        "## Every figure over the runs",
        "",
        *_repeats_lines(report),
        "",
        "## The median run",
        "",
        "| items | ANN recall@10 | max rec req/s | `/health/live` req/s | ratio | similar items req/s (ratio) "
        "| server CPU per request, rec / health | ready s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for items, entry in report["sizes"].items():
        load = entry["load"]
        recall = entry["ann"]["recall_at_10"] if entry["ann"] else "exact"
        lines.append(
            f"| {int(items):,} | {recall} | {load['recommendations']['max_rps']:.0f} "
            f"| {load['health_live']['max_rps']:.0f} | {load['ratio_max_rps']:.2f} | {_similar_text(load)} "
            f"| {_cpu_text(load['server_cpu'])} | {load['ready_seconds']:.2f} |"
        )
    lines += [
        "",
        *_lookup_lines(report),
        "",
        "The median run's sweep: recommendations, then (`live`) `/health/live` at the tail targets' shares of its own "
        "maximum, the same server and stack without the model's work.",
        "",
        "```",
    ]
    for items, entry in report["sizes"].items():
        liveness = entry["load"]["health_live"].get("sweep", [])
        for route, steps in (("", entry["load"]["recommendations"]["sweep"]), (" live", liveness)):
            lines += [_sweep_line(int(items), route, step) for step in steps]
        if "memory" in entry:
            lines += ["", *_memory_lines(items, entry)]
    lines.append("```")
    for items, entry in report["sizes"].items():
        if "stall_trace" in entry:
            lines += ["", *_stall_lines(int(items), entry["stall_trace"])]
        if "stall_sources" in entry:
            lines += ["", *_source_lines(int(items), entry["stall_sources"])]
    if "log_backpressure" in report:
        lines += ["", *_backpressure_lines(report["log_backpressure"])]
    return lines


def _sweep_line(items: int, route: str, step: dict[str, Any]) -> str:
    return (
        f"{items:>9,} items{route} {step['fraction_of_max']:5.0%}: offered {step['offered_rps']:6.0f} achieved "
        f"{step['achieved_rps']:6.0f} p50 {step['p50_ms']:6.1f} p99 {step['p99_ms']:7.1f} "
        f"p99.9 {step['p999_ms']:7.1f} ms errors {step['errors']} host steal "
        f"{_steal(step.get('host_steal_ms_per_s'))} ms/s"
    )


RUN_QUEUE_ROLES = ("http", "worker", "load generator")


def _stall_lines(items: int, steps: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"## Stall sources, traced run ({items:,} items; tracing costs CPU, so these latencies are not the targets')",
        "",
        "Each request's latency is split into the client's lag before it wrote the request, the time before the app "
        "(HTTP router, the workers' queue, uWSGI's parsing), in the app, and after it (uWSGI's write, the router, the "
        "client's read), from the app's own start and end for that request (bench/traced_wsgi.py).",
        "",
        "| share of max | p99 / p99.9 ms | GC pauses >= 0.5 ms (full) | longest GC pause | slowest 1 % overlapping "
        "a GC pause >= 1 ms | worker recycled | slowest 1 %, mean ms: client / before the app / in the app / after it "
        "| the same for as many requests around the median | cores busy | waiting for a core, ms per s: HTTP router / "
        "workers / load generator | host steal, ms per s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for step in steps:
        gc = step["gc"]
        waits = step.get("run_queue_ms_per_s")
        waited = " / ".join(f"{waits[role]:.0f}" for role in RUN_QUEUE_ROLES) if waits else "not traced"
        lines.append(
            f"| {step['fraction_of_max']:.0%} | {step['p99_ms']:.1f} / {step['p999_ms']:.1f} "
            f"| {gc['count']} ({gc['full_collections']}) | {gc['max_ms']:.1f} ms "
            f"| {step['slowest_share_overlapping_gc']:.0%} | {'yes' if step['worker_recycled'] else 'no'} "
            f"| {_parts(step.get('slowest_parts_ms'))} | {_parts(step.get('typical_parts_ms'))} "
            f"| {_share(step.get('cpu_busy_share'))} | {waited} | {_steal(step.get('host_steal_ms_per_s'))} |"
        )
    return lines


def _source_lines(items: int, result: dict[str, Any]) -> list[str]:
    rounds = len(result["rounds"])
    lines = [
        f"## Stall sources put back ({items:,} items, {rounds} rounds at {result['offered_rps']:.0f} req/s)",
        "",
        "One server as shipped and one per source, differing only by that source, all running at once; each round "
        f"gives every server one {result['step_seconds']:g} s step at the same rate, the first server moving by one "
        "each round (bench/stall_sources.py). A source's share is the part of its p99.9 that the shipped server's "
        "p99.9 in the same round does not have, from the median of the rounds' ratios. Measured against the code of "
        "their time instead (docs/api.md): stock uWSGI's late respawn of a recycled worker, the fastrouter hop, "
        "the asyncio load generator.",
        "",
        "| source | how it is put back | p99 ms, with it / as shipped | p99.9 ms, with it / as shipped "
        "| p99.9 with it ÷ as shipped, median (rounds) | share of its p99.9 | workers replaced | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cost in source_costs(result):
        ratios = ", ".join(f"{ratio:.2f}" for ratio in cost["p999_ratios"])
        lines.append(
            f"| {cost['name']} | {cost['how']} | {cost['p99_ms_with']:.1f} / {cost['p99_ms_shipped']:.1f} "
            f"| {cost['p999_ms_with']:.1f} / {cost['p999_ms_shipped']:.1f} | {cost['p999_ratio']:.2f} ({ratios}) "
            f"| {_source_share(cost['p999_share'], cost['p999_ratios'])} | {cost['workers_replaced']} "
            f"| {cost['errors']} |"
        )
    return lines


def _source_share(share: float, ratios: list[float]) -> str:
    if math.isnan(share):
        return "not measured (a step answered nothing)"
    if share <= 0:
        return "none (not above the shipped server's)"
    return f"{share:.0%}" if min(ratios) > 1 else f"{share:.0%}, within the noise (a round had it below 1)"


def _steal(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.0f}"


def _share(value: float | None) -> str:
    return "not traced" if value is None else f"{value:.0%}"


def _parts(parts: dict[str, float] | None) -> str:
    if not parts or not parts["traced"]:
        return "not traced"
    return " / ".join(f"{parts[name]:.2f}" for name in LATENCY_PARTS)


def _backpressure_lines(result: dict[str, Any]) -> list[str]:
    chosen = result["chosen"]
    lines = [
        "## Log back-pressure (a router that stops reading)",
        "",
        f"The task definition's choice: `mode` {chosen['mode']}, `max-buffer-size` {chosen['max_buffer_size']}. "
        "Failed requests include those still unanswered 30 s after their send time.",
        "",
        "| log path | p99 before / during / after the stall, ms | failed requests | request lines written "
        "| dropped | delivered |",
        "|---|---|---|---|---|---|",
    ]
    for case in result["cases"]:
        phases = case["phases"]
        label = case["mode"] + (f", buffer {case['buffer']}" if case["buffer"] else "")
        lines.append(
            f"| {label} (router stopped {case['stall_seconds']:g} s at {case['rate']:.0f} req/s) | "
            + " / ".join(f"{phases[name]['p99_ms']:.1f}" for name in ("before", "during", "after"))
            + f" | {sum(phase['errors'] for phase in phases.values())} | {case['request_lines_written']} "
            f"| {case['request_lines_dropped']} | {case['request_lines_delivered']} |"
        )
    return lines


def write_results(report: dict[str, Any], path: Path) -> None:
    """The one generated results file that README and docs link to; never edited by hand."""
    header = [
        "# `make bench` results",
        "",
        "Generated by `make bench` (bench/serving.py); do not edit by hand: rerun the benchmark instead.",
        "",
    ]
    path.write_text("\n".join([*header, *summary_lines(report)]) + "\n")
