"""The item-item against ALS latency comparison: steps alternate between the two servers in ABBA order, and the
verdict pairs each round's two steps instead of comparing each family's figures over the whole run."""

import math
from pathlib import Path
from typing import Any

import pytest

from bench import family_latency
from bench.family_latency import interleaved_latency, paired_ratios
from bench.loadgen import StepResult
from bench.report import FAIL, NOT_MEASURED, PASS, target_verdicts
from tests.bench.test_serving_helpers import load_run, size_entry


def pairs(
    als_p99: list[float], item_p99: list[float], *, als_p50: float = 1.0, item_p50: float = 1.0
) -> list[dict[str, Any]]:
    return [
        {
            "first": "als" if index % 2 == 0 else "item_item",
            "als": {"p50_ms": als_p50, "p99_ms": als, "errors": 0},
            "item_item": {"p50_ms": item_p50, "p99_ms": item, "errors": index},
        }
        for index, (als, item) in enumerate(zip(als_p99, item_p99, strict=True))
    ]


def latency_row(measured: dict[str, Any] | None, *, item_item: bool = True) -> dict[str, Any]:
    entry = size_entry([load_run()] * 3, item_item_rps=1450 if item_item else None)
    entry.pop("family_latency", None)
    if measured is not None:
        entry["family_latency"] = measured
    rows = target_verdicts({"sizes": {"1000000": entry}})
    return next(row for row in rows if row["target"][:3] == "(i)")


def test_a_host_that_slows_during_the_run_hits_both_steps_of_a_round_and_leaves_the_ratio_alone() -> None:
    # The host slows round by round; item-item is 5 % slower than ALS in every round.
    als = [2.0, 4.0, 8.0, 16.0, 32.0]
    summary = paired_ratios(pairs(als, [value * 1.05 for value in als], als_p50=0.8, item_p50=0.76))
    assert summary["p99_ms"]["ratio"] == pytest.approx(1.05)
    assert summary["p50_ms"]["ratio"] == pytest.approx(0.95)
    assert (summary["p99_ms"]["als"], summary["p99_ms"]["item_item"]) == (8.0, pytest.approx(8.4))
    assert summary["errors"] == {"als": 0, "item_item": 0 + 1 + 2 + 3 + 4}


def test_the_verdict_is_the_worse_of_p50_and_p99_and_fails_above_110_percent() -> None:
    slow_tail = {"offered_rps": 2000.0, "pairs": pairs([4.0, 5.0, 6.0], [4.8, 6.0, 7.2])}
    row = latency_row(slow_tail)
    assert (row["value"], row["verdict"]) == (pytest.approx(1.2), FAIL)
    assert row["detail"] == (
        "p50 1.00 (quartiles 1.00-1.00; ALS 1.00 ms, item-item 1.00 ms); "
        "p99 1.20 (quartiles 1.20-1.20; ALS 5.00 ms, item-item 6.00 ms); 3 rounds at 2000 req/s; "
        "errors ALS 0, item-item 3"
    )
    slow_median = {"offered_rps": 2000.0, "pairs": pairs([4.0, 5.0, 6.0], [4.0, 5.0, 6.0], item_p50=1.15)}
    assert latency_row(slow_median)["verdict"] == FAIL
    within = {"offered_rps": 2000.0, "pairs": pairs([4.0, 5.0, 6.0], [4.2, 4.0, 6.5], item_p50=0.9)}
    assert (latency_row(within)["value"], latency_row(within)["verdict"]) == (pytest.approx(1.05), PASS)


def test_one_wild_round_does_not_decide_the_verdict() -> None:
    measured = {"offered_rps": 2000.0, "pairs": pairs([4.0, 4.0, 4.0, 4.0, 4.0], [4.0, 40.0, 4.0, 4.1, 3.9])}
    row = latency_row(measured)
    assert (row["value"], row["verdict"]) == (pytest.approx(1.0), PASS)
    # Comparing each family's median p99 instead would read 6.0 / 3.0: the wild round is item-item's median step.
    measured = {"offered_rps": 2000.0, "pairs": pairs([10.0, 2.0, 3.0], [10.5, 2.1, 6.0])}
    assert latency_row(measured)["value"] == pytest.approx(1.05)


def test_a_step_that_answered_nothing_fails_the_target() -> None:
    measured = {"offered_rps": 2000.0, "pairs": pairs([4.0, 4.0, 4.0], [4.0, math.nan, 4.0])}
    row = latency_row(measured)
    assert math.isnan(row["value"])
    assert row["verdict"] == FAIL


def test_results_without_the_interleaved_run_say_why() -> None:
    assert latency_row(None)["verdict"] == NOT_MEASURED
    assert latency_row(None)["detail"].startswith("no interleaved latency run in these results")
    skipped = latency_row(None, item_item=False)
    assert (skipped["verdict"], skipped["detail"]) == (NOT_MEASURED, "item-item version not run (--skip-item-item)")


def test_steps_alternate_between_the_servers_with_the_first_family_flipping_each_round(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ports = {"als-version": 1001, "item-version": 1002}
    started: list[Path] = []
    stopped: list[int] = []
    steps: list[tuple[int, float]] = []

    class FakeServer:
        def __init__(self, models: Path) -> None:
            self.port = ports[models.name]

    def start(models: Path, workers: int, log: Path) -> FakeServer:
        started.append(log)
        return FakeServer(models)

    def run_step(host: str, port: int, paths: list[str], *, rate: float, seconds: float, connections: int) -> Any:
        steps.append((port, rate))
        # Each step's p99 says which step it was, so the test can see which steps the pairs hold.
        return StepResult(rate, rate, 100, 0, 1.0, float(len(steps)), 9.0)

    monkeypatch.setattr(family_latency, "start_uwsgi", start)
    monkeypatch.setattr(family_latency, "stop", lambda server: stopped.append(server.port))
    monkeypatch.setattr(family_latency, "warm_up", lambda host, port, paths: None)
    monkeypatch.setattr(family_latency, "run_step", run_step)
    measured = interleaved_latency(
        {"als": Path("als-version"), "item_item": Path("item-version")},
        users=100,
        workers=2,
        rate=1234.0,
        seconds=0.01,
        rounds=4,
        connections=8,
        pause=0.0,
        log=tmp_path / "uwsgi.log",
    )
    als, item = ports["als-version"], ports["item-version"]
    # One discarded step per server first, then ALS-first and item-item-first rounds in turn.
    assert [port for port, _ in steps] == [als, item, als, item, item, als, als, item, item, als]
    assert {rate for _, rate in steps} == {1234.0}
    assert [pair["first"] for pair in measured["pairs"]] == ["als", "item_item", "als", "item_item"]
    assert [(pair["als"]["p99_ms"], pair["item_item"]["p99_ms"]) for pair in measured["pairs"]] == [
        (3.0, 4.0),
        (6.0, 5.0),
        (7.0, 8.0),
        (10.0, 9.0),
    ]
    assert measured["offered_rps"] == 1234.0
    assert started == [tmp_path / "uwsgi-als.log", tmp_path / "uwsgi-item_item.log"]
    assert sorted(stopped) == [als, item]
