"""The stall sources' comparison: every server gets one step per round, the order rotating, and a source's share
comes from the rounds' paired p99.9 ratios; the unfrozen app really undoes the master's freeze."""

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api.contract import MODEL_DIR_ENV
from bench import stall_sources
from bench.loadgen import StepResult
from bench.report import summary_lines, target_verdicts
from bench.stall_sources import SHIPPED, Source, compare_sources, source_costs
from tests.bench.test_serving_helpers import load_run, size_entry
from tools.testkit import uwsgi as testkit_uwsgi

ROOT = Path(__file__).resolve().parents[2]
RECYCLING = Source("recycling", "often", extra_args=("--max-requests", "10"))
LOGFILE = Source("log file", "into a file", log_into_file=True)


def test_each_round_steps_every_server_once_and_the_first_server_moves_by_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[dict[str, Any]] = []
    steps: list[int] = []

    class FakeServer:
        def __init__(self, port: int) -> None:
            self.port = port
            self.pid = port

    def start(models: Path, log: Path, **options: Any) -> FakeServer:
        started.append({"log": log, **options})
        return FakeServer(1000 + len(started))

    def run_step(host: str, port: int, paths: list[str], *, rate: float, seconds: float, connections: int) -> Any:
        steps.append(port)
        # Each step's p99.9 says which step it was.
        return StepResult(rate, rate, 100, 0, 1.0, 2.0, float(len(steps)))

    pids = iter(range(10_000))
    monkeypatch.setattr(testkit_uwsgi, "start", start)
    monkeypatch.setattr(testkit_uwsgi, "wait_until_answers", lambda server, path: 0.5)
    monkeypatch.setattr(testkit_uwsgi, "stop", lambda server: None)
    monkeypatch.setattr(stall_sources, "warm_up", lambda host, port, paths: None)
    monkeypatch.setattr(stall_sources, "run_step", run_step)
    # The recycling server (port 1002) gets a new worker pid in every step; the others keep theirs.
    monkeypatch.setattr(stall_sources, "worker_pids", lambda pid: {next(pids)} if pid == 1002 else {pid})
    measured = compare_sources(
        Path("models"),
        users=100,
        workers=2,
        rate=1234.0,
        connections=8,
        pause=0.0,
        log=tmp_path / "uwsgi.log",
        sources=(RECYCLING, LOGFILE),
        rounds=3,
        seconds=0.01,
    )
    shipped, recycling, logfile = 1001, 1002, 1003
    # One discarded step per server, then the rounds: 1-2-3, 2-3-1, 3-1-2.
    assert steps == [shipped, recycling, logfile] * 2 + [recycling, logfile, shipped, logfile, shipped, recycling]
    assert [measured_round["order"][0] for measured_round in measured["rounds"]] == [SHIPPED, "recycling", "log file"]
    assert [measured_round["steps"][SHIPPED]["p999_ms"] for measured_round in measured["rounds"]] == [4.0, 9.0, 11.0]
    assert [r["steps"]["recycling"]["workers_replaced"] for r in measured["rounds"]] == [1, 1, 1]
    assert [r["steps"]["log file"]["workers_replaced"] for r in measured["rounds"]] == [0, 0, 0]
    assert [entry["log"].name for entry in started] == [f"uwsgi-source-{index}.log" for index in range(3)]
    # Only the file-logging server writes its whole output to the file; the others pipe it through `tail`.
    assert [entry["tail_lines"] is None for entry in started] == [False, False, True]
    assert started[1]["extra_args"] == ("--max-requests", "10")
    assert measured["offered_rps"] == 1234.0


def rounds_of(p999: dict[str, list[float]]) -> dict[str, Any]:
    count = len(p999[SHIPPED])
    return {
        "offered_rps": 2000.0,
        "step_seconds": 15.0,
        "shipped": {"name": SHIPPED},
        "sources": [{"name": name, "how": f"{name} put back"} for name in p999 if name != SHIPPED],
        "rounds": [
            {
                "order": list(p999),
                "steps": {
                    name: {"p99_ms": values[index] / 2, "p999_ms": values[index], "errors": 0, "workers_replaced": 1}
                    for name, values in p999.items()
                },
            }
            for index in range(count)
        ],
    }


def test_a_source_that_doubles_the_tail_in_every_round_has_half_of_its_p999_despite_a_slow_host() -> None:
    # The host slows round by round; the source doubles the shipped server's p99.9 in every round.
    measured = rounds_of({SHIPPED: [5.0, 10.0, 40.0], "recycling": [10.0, 20.0, 80.0], "noise": [6.0, 8.0, 40.0]})
    recycling, noise = source_costs(measured)
    assert recycling["p999_ratio"] == pytest.approx(2.0)
    assert recycling["p999_share"] == pytest.approx(0.5)
    assert (recycling["p999_ms_with"], recycling["p999_ms_shipped"]) == (20.0, 10.0)
    assert recycling["workers_replaced"] == 3
    assert noise["p999_ratio"] == pytest.approx(1.0)
    assert noise["p999_ratios"] == pytest.approx([1.2, 0.8, 1.0])


def report_lines(measured: dict[str, Any]) -> list[str]:
    entry = size_entry([load_run()] * 3)
    entry["stall_sources"] = measured
    report: dict[str, Any] = {
        "time": "2026-12-01T01:00:00+00:00",
        "commit": "abc1234",
        "machine": {"cpu": "Test CPU", "cpus": 2, "memory_gib": 23.5, "python": "3.11.7", "kernel": "6.1"},
        "settings": {"runs": 3, "workers": 2, "step_seconds": 3.0},
        "sizes": {"1000000": entry},
    }
    report["targets"] = target_verdicts(report)
    lines = summary_lines(report)
    start = next(index for index, line in enumerate(lines) if line.startswith("## Stall sources put back"))
    return [line for line in lines[start:] if line.startswith("| ") and "---" not in line][1:]


def test_the_report_gives_a_share_only_above_the_shipped_server_and_says_when_the_rounds_disagree() -> None:
    measured = rounds_of(
        {SHIPPED: [5.0, 10.0, 40.0], "steady": [10.0, 20.0, 80.0], "mixed": [6.0, 8.0, 48.0], "below": [4.0, 9.0, 30.0]}
    )
    steady, mixed, below = report_lines(measured)
    assert "| 2.00 (2.00, 2.00, 2.00) | 50% |" in steady
    assert "| 1.20 (1.20, 0.80, 1.20) | 17%, within the noise (a round had it below 1) |" in mixed
    assert "none (not above the shipped server's)" in below


def test_a_step_that_answered_nothing_is_not_measured_rather_than_sorted_among_the_numbers() -> None:
    measured = rounds_of({SHIPPED: [5.0, 10.0, 40.0], "broken": [10.0, math.nan, 80.0]})
    (broken,) = source_costs(measured)
    assert math.isnan(broken["p999_ratio"])
    assert "not measured (a step answered nothing)" in report_lines(measured)[0]


def test_the_unfrozen_app_leaves_no_object_frozen_where_the_served_one_freezes_them(small_model: Path) -> None:
    def frozen_after_importing(module: str) -> int:
        code = f"import gc, {module}; print(gc.get_freeze_count())"
        env = {**os.environ, MODEL_DIR_ENV: str(small_model), "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return int(done.stdout.split()[-1])

    assert frozen_after_importing("api.serving.wsgi") > 10_000
    assert frozen_after_importing("bench.unfrozen_wsgi") == 0
