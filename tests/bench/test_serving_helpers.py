"""The benchmark's decisions without a server: when a step saturates, the search for the maximum, the tail ratio and
the verdicts against the targets (medians over repeated runs) and the generated results file."""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.loadgen import BRACKET_TOLERANCE, MAX_BISECTIONS, StepResult, TimedRequest, find_max, sustained
from bench.report import (
    FAIL,
    NOT_MEASURED,
    PASS,
    lookup_bytes,
    median_family_run,
    median_run,
    repeat_summary,
    target_verdicts,
    worst_p999,
    worst_tail_ratio,
    write_results,
)
from bench.serving import _maximum, parse_sizes
from bench.stalls import overlap_share, run_queue_waits
from bench.stalltrace import pauses, summary

MIB = 2**20


def step(
    offered: float, *, achieved: float | None = None, p50: float = 2.0, p99: float = 6.0, errors: int = 0
) -> StepResult:
    served = offered if achieved is None else achieved
    return StepResult(
        offered_rps=offered,
        achieved_rps=served,
        completed=int(served * 3),
        errors=errors,
        p50_ms=p50,
        p99_ms=p99,
        p999_ms=p99 * 1.5,
    )


class Server:
    """Serves everything up to `capacity` req/s; above it, achieves only `capacity` and queues (p99 grows).

    `spikes`: the calls (0 is the first) whose tail is long although the rate is below capacity.
    """

    def __init__(self, capacity: float, *, spikes: tuple[int, ...] = ()) -> None:
        self.capacity = capacity
        self.spikes = spikes
        self.rates: list[float] = []

    def __call__(self, rate: float, phase: str) -> StepResult:
        self.rates.append(rate)
        if rate > self.capacity:
            return step(rate, achieved=self.capacity, p50=40.0, p99=400.0)
        if len(self.rates) - 1 in self.spikes:
            return step(rate, p99=80.0)
        return step(rate)


def test_a_step_that_keeps_up_with_a_short_tail_and_no_errors_is_sustained() -> None:
    assert sustained(step(1000.0, achieved=960.0, p99=24.0, errors=20))


@pytest.mark.parametrize(
    "result",
    [
        step(1000.0, achieved=940.0),
        step(1000.0, p50=33.0, p99=60.0),
        step(1000.0, p99=25.5),
        step(1000.0, errors=31),
        step(1000.0, achieved=0.0, p50=float("nan"), p99=float("nan")),
    ],
    ids=["achieved-below-95-percent", "server-queueing-p50-33ms", "p99-above-25ms", "one-percent-errors", "no-answers"],
)
def test_a_step_that_falls_behind_queues_or_fails_is_saturated(result: StepResult) -> None:
    assert not sustained(result)


@pytest.mark.parametrize("capacity", [150.0, 733.0, 1000.0, 1234.5, 2890.0, 5000.0])
def test_search_finds_the_capacity_within_tolerance_and_never_reports_a_saturated_rate(capacity: float) -> None:
    server = Server(capacity)
    found = find_max(server, 100.0, max_steps=20)
    assert found.max_rps <= capacity
    assert capacity / found.max_rps <= 1 + BRACKET_TOLERANCE
    assert len({result.offered_rps for result in found.bisection}) <= MAX_BISECTIONS
    assert found.bracket is not None and found.bracket[0] == found.max_rps
    assert found.bracket[1] > capacity
    steps = [*found.ramp, *found.bisection]
    assert any(result.offered_rps == found.max_rps and sustained(result) for result in steps)


def test_bisection_runs_between_the_last_sustained_and_first_saturated_ramp_steps() -> None:
    server = Server(1000.0)
    found = find_max(server, 100.0, max_steps=20)
    low = max(result.offered_rps for result in found.ramp if sustained(result))
    high = min(result.offered_rps for result in found.ramp if not sustained(result))
    assert all(low < result.offered_rps < high for result in found.bisection)
    assert server.rates == [result.offered_rps for result in (*found.ramp, *found.bisection)]


def test_one_latency_spike_does_not_end_the_ramp() -> None:
    server = Server(2000.0, spikes=(2,))
    found = find_max(server, 100.0, max_steps=20)
    assert not sustained(found.ramp[2])
    assert found.max_rps > 1900.0


def test_a_latency_spike_just_before_the_ramp_saturates_does_not_cap_the_maximum_below_it() -> None:
    # Steps 100 x 1.4^n: the ramp's 11th step (2,893/s) has a spike, its 12th (4,050/s) is past the capacity.
    server = Server(3500.0, spikes=(10,))
    found = find_max(server, 100.0, max_steps=20)
    assert not sustained(found.ramp[-2]) and found.ramp[-2].offered_rps < 3500.0
    assert found.bracket is not None and found.bracket[1] > found.ramp[-2].offered_rps
    assert found.max_rps <= 3500.0 and 3500.0 / found.max_rps <= 1.05


def test_a_bisection_step_with_only_a_long_tail_is_measured_again_before_it_counts() -> None:
    server = Server(2000.0)
    ramp_steps = len(find_max(Server(2000.0), 100.0, max_steps=20).ramp)
    server.spikes = (ramp_steps,)  # the first bisection step, below capacity, has a latency spike
    found = find_max(server, 100.0, max_steps=20)
    first, repeat = found.bisection[0], found.bisection[1]
    assert not sustained(first) and sustained(repeat)
    assert first.offered_rps == repeat.offered_rps
    assert 2000.0 / found.max_rps <= 1.05


def test_a_bisection_step_that_falls_behind_is_not_measured_again() -> None:
    def collapsing(rate: float, phase: str) -> StepResult:
        # Above 1,000 req/s this server serves only half of what it is offered.
        return step(rate, achieved=rate / 2, p99=400.0) if rate > 1000.0 else step(rate)

    found = find_max(collapsing, 100.0, max_steps=20)
    rates = [result.offered_rps for result in found.bisection]
    assert any(rate > 1000.0 for rate in rates)
    assert len(rates) == len(set(rates))


def test_a_bisection_step_whose_median_queued_is_not_measured_again() -> None:
    def queueing(rate: float, phase: str) -> StepResult:
        # Above 1,000 req/s every request is served, but most wait behind others: a queue, not a spike.
        return step(rate, p50=40.0, p99=400.0) if rate > 1000.0 else step(rate)

    found = find_max(queueing, 100.0, max_steps=20)
    rates = [result.offered_rps for result in found.bisection]
    assert any(rate > 1000.0 for rate in rates)
    assert len(rates) == len(set(rates))
    assert 1000.0 / found.max_rps <= 1.05


def test_a_ramp_that_never_saturates_reports_its_last_step_without_a_bracket() -> None:
    found = find_max(Server(1e9), 100.0, max_steps=5)
    assert found.bracket is None
    assert found.bisection == ()
    assert found.max_rps == pytest.approx(100.0 * 1.4**4)


def test_a_maximum_whose_ramp_ran_out_before_two_saturated_steps_stops_the_bench() -> None:
    # The 1M-item recommendation search until 2026-12: from 100 req/s the 14th and last step (7,937) was the first
    # to saturate, and 5,669, the step below it, was reported as the maximum.
    with pytest.raises(SystemExit, match="raise --max-steps"):
        _maximum(Server(7000.0), 100.0, 14, "recommendation")
    found = _maximum(Server(7000.0), 100.0, 20, "recommendation")
    assert 7000.0 / (1 + BRACKET_TOLERANCE) <= found.max_rps <= 7000.0


def test_a_maximum_with_nothing_sustained_stops_the_bench() -> None:
    with pytest.raises(SystemExit, match="no recommendation step was sustained"):
        _maximum(Server(0.0), 100.0, 20, "recommendation")


def test_a_server_saturated_at_the_starting_rate_is_searched_below_it() -> None:
    found = find_max(Server(60.0), 100.0, max_steps=20)
    assert 0 < found.max_rps <= 60.0
    assert all(result.offered_rps < 100.0 for result in found.bisection)


def test_search_record_marks_each_step_sustained_or_not() -> None:
    record = find_max(Server(1000.0), 100.0, max_steps=20).as_json()
    assert record["max_rps"] == record["bracket_rps"][0]
    assert [entry["sustained"] for entry in record["ramp"][-2:]] == [False, False]
    assert record["bisection"]


FRACTIONS = (0.25, 0.5, 0.7, 0.7, 0.7, 0.8, 0.9, 1.0, 1.2)


def sweep(*, worst_tail: float = 2.0, worst_p999: float = 10.0) -> list[dict[str, Any]]:
    """Steps whose worst p99/p50 up to 90 % and worst p99.9 from 50 % to 90 % are the given ones (at 80 %); the
    saturated steps above 90 % have far worse tails, which the targets must not count."""
    steps = []
    for fraction in FRACTIONS:
        saturated = fraction > 0.9
        worst = fraction == 0.8
        steps.append(
            {
                "fraction_of_max": fraction,
                "offered_rps": 1000 * fraction,
                "achieved_rps": 1000 * min(fraction, 0.9),
                "errors": 0,
                "p50_ms": 2.0,
                "p99_ms": 2.0 * (worst_tail if worst else 1.5) * (20 if saturated else 1),
                "p999_ms": (worst_p999 if worst else 5.0) * (20 if saturated else 1),
                "host_steal_ms_per_s": 100 * fraction,
            }
        )
    return steps


def load_run(
    *,
    rec_rps: float = 1500,
    health_rps: float = 2000,
    tail: float = 2.0,
    p999: float = 10.0,
    ready: float = 1.0,
    similar_rps: float = 1900,
    live_tail: float | None = None,
) -> dict[str, Any]:
    live_sweep = [step for step in sweep(worst_tail=live_tail) if step["fraction_of_max"] <= 0.9] if live_tail else None
    return {
        "similar_items": {"max_rps": similar_rps},
        "similar_ratio_max_rps": similar_rps / health_rps,
        "ready_seconds": ready,
        "recommendations": {"max_rps": rec_rps, "sweep": sweep(worst_tail=tail, worst_p999=p999)},
        "health_live": {"max_rps": health_rps, **({"sweep": live_sweep} if live_sweep else {})},
        "recommendations_connection_close": {"max_rps": rec_rps / 2},
        "ratio_max_rps": rec_rps / health_rps,
        "server_cpu": {
            "recommendations": {"cpu_ms_per_request": 0.5},
            "health_live": {"cpu_ms_per_request": 0.4},
            "ratio": 0.8,
        },
    }


def size_entry(
    runs: list[dict[str, Any]],
    *,
    recall: float = 0.99,
    memory_ready: list[float] | None = None,
    pss_totals: dict[int, int] | None = None,
    model_bytes: int = 600 * MIB,
    item_item_rps: float | None = 1450,
    item_item_p99_ms: float = 3.0,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "model_bytes": model_bytes,
        "neighbours": {"count": 100, "metric": "cosine", "weights_dtype": "float16"},
        "ann": {"recall_at_10": recall, "nprobe": 32, "nlist": 4096},
        "load_runs": runs,
        "load": median_run(runs),
    }
    if pss_totals is not None:
        entry["memory"] = [
            {"workers": workers, "total_pss_bytes": total, "ready_seconds": seconds}
            for (workers, total), seconds in zip(pss_totals.items(), memory_ready or [1.0] * 3, strict=True)
        ]
    if item_item_rps is not None:
        entry["item_item"] = {
            "model_bytes": 590 * MIB,
            "recommendations": {"max_rps": item_item_rps},
            "similar_items": {"max_rps": 1900},
        }
        entry["family_latency"] = {
            "offered_rps": 0.7 * 1450,
            "pairs": [
                {
                    "als": {"p50_ms": 1.0, "p99_ms": 3.0, "errors": 0},
                    "item_item": {"p50_ms": 1.0, "p99_ms": item_item_p99_ms, "errors": 0},
                }
            ]
            * 3,
        }
    return entry


def verdicts(sizes: dict[str, Any]) -> dict[str, str]:
    return {row["target"][:3]: row["verdict"] for row in target_verdicts({"sizes": sizes})}


GOOD_PSS = {1: 400 * MIB, 2: 410 * MIB, 4: 430 * MIB}


def test_targets_pass_when_the_median_of_the_runs_meets_every_limit() -> None:
    # One run of three misses every limit; the median of the three still meets them.
    runs = [load_run(), load_run(rec_rps=1000, tail=5.0, p999=40.0), load_run(rec_rps=1450, tail=2.5, p999=20.0)]
    sizes = {"1000000": size_entry(runs, pss_totals=GOOD_PSS)}
    assert verdicts(sizes) == dict.fromkeys(("(a)", "(b)", "(c)", "(d)", "(e)", "(f)", "(g)", "(h)", "(i)"), PASS)


def test_targets_fail_when_the_median_misses_its_limit() -> None:
    runs = [load_run(rec_rps=1300, tail=3.5, p999=30.0, ready=1.6, similar_rps=1700)] * 3
    pss = {1: 400 * MIB, 2: 430 * MIB, 4: 500 * MIB}
    sizes = {"1000000": size_entry(runs, recall=0.94, pss_totals=pss, item_item_rps=1100, item_item_p99_ms=3.5)}
    assert set(verdicts(sizes).values()) == {FAIL}


def test_the_tail_targets_ignore_steps_above_90_percent_of_the_maximum() -> None:
    steps = sweep()
    assert worst_tail_ratio(steps) == pytest.approx(2.0)
    assert worst_p999(steps) == pytest.approx(10.0)


def test_repeats_at_one_fraction_count_with_their_median() -> None:
    steps = [
        {"fraction_of_max": 0.7, "p50_ms": 2.0, "p99_ms": ratio * 2.0, "p999_ms": p999}
        for ratio, p999 in ((9.0, 90.0), (2.0, 8.0), (2.5, 9.0))
    ]
    assert worst_tail_ratio(steps) == pytest.approx(2.5)
    assert worst_p999(steps) == pytest.approx(9.0)


def test_the_tail_target_shows_the_liveness_routes_own_worst_tail_without_counting_it() -> None:
    runs = [load_run(tail=2.5, live_tail=live) for live in (6.0, 4.0, 9.0)]
    row = next(row for row in target_verdicts({"sizes": {"1000000": size_entry(runs)}}) if row["target"][:3] == "(c)")
    assert row["value"] == pytest.approx(2.5)
    assert row["verdict"] == PASS
    assert row["detail"] == (
        "runs 2.50, 2.50, 2.50; /health/live, the same stack with no model work, at the same shares of its own max: "
        "6.00 (runs 6.00, 4.00, 9.00; UNSTEADY: spread 83%)"
    )


def test_runs_from_before_the_liveness_sweep_leave_the_tail_target_as_it_was() -> None:
    rows = target_verdicts({"sizes": {"1000000": size_entry([load_run(tail=2.5), load_run(tail=2.5, live_tail=9.0)])}})
    row = next(row for row in rows if row["target"][:3] == "(c)")
    assert row["detail"] == "runs 2.50, 2.50"


def test_a_figure_that_varies_over_15_percent_between_runs_is_flagged_unsteady() -> None:
    summary = repeat_summary([load_run(rec_rps=1000), load_run(rec_rps=1100), load_run(rec_rps=1400)])
    assert summary["rec_max_rps"]["median"] == 1100
    assert summary["rec_max_rps"]["spread"] == pytest.approx(400 / 1100)
    assert summary["rec_max_rps"]["unsteady"]
    assert not summary["health_max_rps"]["unsteady"]


def test_similar_items_target_is_the_median_ratio_to_liveness_over_the_runs() -> None:
    runs = [load_run(similar_rps=1760), load_run(similar_rps=1820), load_run(similar_rps=1900)]
    row = next(row for row in target_verdicts({"sizes": {"1000000": size_entry(runs)}}) if row["target"][:3] == "(g)")
    assert row["value"] == pytest.approx(0.91)
    assert row["verdict"] == PASS
    assert row["detail"] == "runs 0.88, 0.91, 0.95"


def test_runs_from_before_the_similar_items_maximum_leave_its_target_unmeasured() -> None:
    old = load_run()
    del old["similar_items"], old["similar_ratio_max_rps"]
    rows = target_verdicts({"sizes": {"1000000": size_entry([old, load_run()])}})
    row = next(row for row in rows if row["target"][:3] == "(g)")
    assert row["verdict"] == NOT_MEASURED
    assert row["detail"] == "no similar-items maximum in these runs"


def test_item_item_target_compares_its_maximum_with_the_als_median() -> None:
    runs = [load_run(rec_rps=1000), load_run(rec_rps=1200), load_run(rec_rps=2000)]
    rows = target_verdicts({"sizes": {"1000000": size_entry(runs, item_item_rps=1050)}})
    row = next(row for row in rows if row["target"][:3] == "(h)")
    assert row["value"] == pytest.approx(1050 / 1200)
    assert row["verdict"] == FAIL
    assert row["detail"] == "1050 / 1200 req/s; similar items 1900 req/s"
    skipped = target_verdicts({"sizes": {"1000000": size_entry(runs, item_item_rps=None)}})
    row = next(row for row in skipped if row["target"][:3] == "(h)")
    assert (row["verdict"], row["detail"]) == (NOT_MEASURED, "item-item version not run (--skip-item-item)")


def test_item_item_target_is_the_median_of_its_repeated_maxima() -> None:
    runs = [load_run(rec_rps=1000), load_run(rec_rps=1200), load_run(rec_rps=2000)]
    entry = size_entry(runs, item_item_rps=1050)
    entry["item_item_runs"] = [
        {**entry["item_item"], "recommendations": {"max_rps": rps}} for rps in (900.0, 1140.0, 1300.0)
    ]
    row = next(row for row in target_verdicts({"sizes": {"1000000": entry}}) if row["target"][:3] == "(h)")
    assert row["value"] == pytest.approx(0.95)
    assert row["verdict"] == PASS
    assert row["detail"].startswith("1140 / 1200 req/s;")
    assert row["detail"].endswith("; runs 0.75, 0.95, 1.08; UNSTEADY: spread 35%")
    assert median_family_run(entry["item_item_runs"])["recommendations"]["max_rps"] == 1140.0


def test_the_lookup_memory_is_items_times_n_times_id_and_weight_bytes() -> None:
    assert lookup_bytes(1_000_000, {"count": 100, "weights_dtype": "float16"}) == 600_000_000
    assert lookup_bytes(20_000, {"count": 100, "weights_dtype": "float32"}) == 16_000_000


def test_the_median_run_is_the_one_with_the_median_throughput_ratio() -> None:
    runs = [load_run(rec_rps=1000), load_run(rec_rps=1800), load_run(rec_rps=1400)]
    assert median_run(runs)["recommendations"]["max_rps"] == 1400


def test_extra_pss_per_worker_is_a_third_of_the_growth_from_one_to_four_workers() -> None:
    entry = size_entry([load_run()], pss_totals={1: 400 * MIB, 2: 410 * MIB, 4: 445 * MIB}, model_bytes=300 * MIB)
    row = next(row for row in target_verdicts({"sizes": {"1000000": entry}}) if row["target"].startswith("(e)"))
    assert row["value"] == pytest.approx(15 / 300)
    assert row["verdict"] == PASS


def test_targets_not_run_are_reported_as_not_measured() -> None:
    rows = target_verdicts({"sizes": {"100000": size_entry([load_run()])}})
    assert {row["verdict"] for row in rows} == {NOT_MEASURED}
    assert all(row["value"] is None for row in rows)


def test_ready_target_takes_the_slowest_start_of_every_run_including_the_swap_run() -> None:
    entry = size_entry([load_run(ready=1.0), load_run(ready=1.2)], pss_totals=GOOD_PSS, memory_ready=[1.1, 1.2, 1.3])
    entry["swap_memory"] = {"ready_seconds": 1.7}
    row = next(row for row in target_verdicts({"sizes": {"1000000": entry}}) if row["target"].startswith("(f)"))
    assert (row["value"], row["verdict"], row["detail"]) == (1.7, FAIL, "worst of 6 starts")


def test_memory_skipped_at_1m_leaves_only_the_pss_target_unmeasured() -> None:
    result = verdicts({"1000000": size_entry([load_run()])})
    assert result.pop("(e)") == NOT_MEASURED
    assert set(result.values()) == {PASS}


def test_results_file_holds_the_date_commit_machine_and_every_target(tmp_path: Path) -> None:
    report: dict[str, Any] = {
        "time": "2026-11-30T01:00:00+00:00",
        "commit": "abc1234",
        "machine": {"cpu": "Test CPU", "cpus": 2, "memory_gib": 23.5, "python": "3.11.7", "kernel": "6.1"},
        "settings": {"runs": 3, "workers": 2, "step_seconds": 3.0},
        "host_probe": {
            "seconds": 5.0,
            "cores": 2,
            "lost_share": [0.021, 0.034],
            "max_gap_ms": 13.2,
            "long_gaps_per_s": 8.4,
            "steal_ms_per_s": 45.0,
        },
        "sizes": {
            "1000000": size_entry(
                [load_run(live_tail=4.0), load_run(rec_rps=1000, live_tail=4.0), load_run(live_tail=4.0)],
                pss_totals=None,
            )
        },
    }
    report["sizes"]["1000000"]["ann"] = None
    phase = {"p99_ms": 3.0, "errors": 0}
    report["log_backpressure"] = {
        "chosen": {"mode": "non-blocking", "max_buffer_size": "25m"},
        "cases": [
            {
                "mode": "blocking",
                "buffer": None,
                "rate": 1000.0,
                "stall_seconds": 5.0,
                "phases": {"before": phase, "during": {"p99_ms": 4000.0, "errors": 17}, "after": phase},
                "request_lines_written": 15000,
                "request_lines_dropped": 0,
                "request_lines_delivered": 15000,
            }
        ],
    }
    report["targets"] = target_verdicts(report)
    path = tmp_path / "results.md"
    write_results(report, path)
    text = path.read_text()
    assert "2026-11-30T01:00:00+00:00" in text and "`abc1234`" in text and "Test CPU" in text
    assert all(f"| {row['target']} |" in text for row in report["targets"])
    assert "unsteady" in text  # rec max 1000 vs 1500 in the runs
    assert "lost 2.1%, 3.4% of its time in pauses, the longest 13.2 ms, 8.4 a second over 1 ms" in text
    assert "the kernel counted 45 ms of steal per second" in text
    assert "p99.9     5.0 ms errors 0 host steal 50 ms/s" in text  # the 50 % step of the median run's sweep
    assert "1,000,000 items   80%: offered    800 achieved    800 p50    2.0 p99     4.0 p99.9" in text
    assert "1,000,000 items live   80%: offered    800 achieved    800 p50    2.0 p99     8.0 p99.9" in text
    assert "1,000,000 items live  100%" not in text  # the liveness sweep stops at the tail targets' 90 %
    assert "- 1,000,000 items: 100 neighbours per item, float16 weights = 572 MiB of the model's 600 MiB" in text
    assert "the item-item version is 590 MiB" in text
    assert "| blocking (router stopped 5 s at 1000 req/s) | 3.0 / 4000.0 / 3.0 | 17 | 15000 | 0 | 15000 |" in text


def test_sizes_option_accepts_the_known_item_counts_in_any_order() -> None:
    assert parse_sizes("1000000,100000") == (100_000, 1_000_000)
    assert parse_sizes("100000") == (100_000,)


@pytest.mark.parametrize("text", ["", "100k", "100000,5"])
def test_sizes_option_refuses_anything_else(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_sizes(text)


def test_a_slow_request_counts_against_a_gc_pause_only_when_their_times_overlap() -> None:
    found = [
        {"start": 10.0, "seconds": 0.004, "generation": 2},
        {"start": 20.0, "seconds": 0.0006, "generation": 0},  # too short to count
    ]
    windows = ((9.99, 10.001), (10.005, 10.02), (19.99, 20.01), (30.0, 30.1))
    slowest = tuple(TimedRequest(f"r{i}", due, due, answered) for i, (due, answered) in enumerate(windows))
    assert overlap_share(slowest, found) == pytest.approx(1 / 4)
    assert overlap_share((), found) == 0.0


def test_gc_summary_counts_pauses_full_collections_and_the_longest(tmp_path: Path) -> None:
    trace = tmp_path / "gc-1.jsonl"
    records = [
        {"start": 1.0, "seconds": 0.001, "generation": 0, "pid": 1},
        {"start": 2.0, "seconds": 0.008, "generation": 2, "pid": 1},
        {"start": 9.0, "seconds": 0.050, "generation": 2, "pid": 1},  # outside the window
    ]
    trace.write_text("".join(json.dumps(record) + "\n" for record in records))
    assert summary(pauses(tmp_path, 0.5, 5.0)) == {
        "count": 2,
        "total_ms": 9.0,
        "max_ms": 8.0,
        "over_5_ms": 1,
        "full_collections": 1,
    }


def test_run_queue_wait_grows_for_processes_that_share_one_core() -> None:
    """/proc/<pid>/schedstat's wait, summed per uWSGI role (by process name): two busy "workers" pinned to one core
    each wait about half the time."""
    busy = "import time\nend = time.monotonic() + 1.0\nwhile time.monotonic() < end: pass\n"
    # Children of this process (the stand-in master), named as uWSGI names its workers (exec -a sets argv[0]).
    workers = [
        subprocess.Popen(["bash", "-c", f'exec -a "recsys uWSGI worker" {sys.executable} -c "$0"', busy])
        for _ in range(2)
    ]
    try:
        for worker in workers:
            os.sched_setaffinity(worker.pid, {0})
        time.sleep(0.8)
        waits = run_queue_waits(os.getpid())
    finally:
        for process in workers:
            process.kill()
            process.wait()
    assert waits["worker"] > 0.3, waits
    assert waits["http"] == 0.0
    assert "load generator" in waits
