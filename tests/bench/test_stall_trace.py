"""The traced run's split of each latency, against real uWSGI serving bench/traced_wsgi.py."""

from collections import namedtuple
from pathlib import Path

import pytest
import requests

from api.contract import LIVENESS_PATH
from bench.loadgen import TimedRequest, run_step
from bench.report import _stall_lines
from bench.stalls import LATENCY_PARTS, busy_share, latency_parts
from bench.stalltrace import TRACE_DIR_ENV, request_times
from tools.testkit.uwsgi import running

pytestmark = pytest.mark.slow


def test_parts_are_each_parts_mean_over_the_requests_the_app_saw() -> None:
    requests_sent = (
        TimedRequest("a", scheduled=10.0, sent=10.001, answered=10.010),
        TimedRequest("b", scheduled=20.0, sent=20.003, answered=20.030),
        TimedRequest("refused", scheduled=30.0, sent=30.0, answered=30.5),  # the app never saw it
    )
    in_app = {"a": (10.004, 10.006), "b": (20.010, 20.020)}
    parts = latency_parts(requests_sent, in_app)
    assert parts == pytest.approx(
        {"client": 2.0, "before the app": 5.0, "in the app": 6.0, "after the app": 7.0, "traced": 2}
    )
    assert latency_parts((), in_app)["traced"] == 0


def test_busy_share_counts_all_but_idle_and_io_wait() -> None:
    times = namedtuple("times", "user system idle iowait")
    before, after = times(10.0, 5.0, 100.0, 1.0), times(13.0, 6.0, 101.5, 1.5)  # 6 s in all, 2 s of it idle
    assert busy_share(before, after) == pytest.approx(4 / 6)
    assert busy_share(after, after) == 0.0


def test_a_traced_step_finds_the_apps_own_times_for_its_slowest_and_median_requests(
    small_model: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    trace.mkdir()
    env = {TRACE_DIR_ENV: str(trace)}
    with running(small_model, tmp_path / "uwsgi.log", module="bench.traced_wsgi:application", extra_env=env) as server:
        plain = requests.get(server.url + LIVENESS_PATH, timeout=10)
        step = run_step("127.0.0.1", server.port, [LIVENESS_PATH], rate=100, seconds=1.0, connections=4, slowest=0.1)
    assert plain.status_code == 200 and step.completed == 100 and step.errors == 0
    in_app = request_times(trace)
    assert len(in_app) == 100, "every request the load generator named is recorded once, the unnamed one is not"
    for group in (step.slowest, step.typical):
        assert len(group) == 10
        parts = latency_parts(group, in_app)
        assert parts["traced"] == 10
        assert all(parts[name] >= 0 for name in LATENCY_PARTS)
        assert parts["before the app"] > 0 and parts["in the app"] > 0 and parts["after the app"] > 0
        mean_latency = sum(r.answered - r.scheduled for r in group) * 1000 / len(group)
        assert sum(parts[name] for name in LATENCY_PARTS) == pytest.approx(mean_latency)
    assert min(r.answered - r.scheduled for r in step.slowest) >= max(r.answered - r.scheduled for r in step.typical)


def test_the_report_shows_each_part_of_the_slowest_and_median_latency_how_busy_the_cores_were_and_the_steal() -> None:
    parts = {"client": 1.0, "before the app": 12.5, "in the app": 0.4, "after the app": 1.25, "traced": 40}
    step = {
        "fraction_of_max": 0.9,
        "p99_ms": 15.0,
        "p999_ms": 20.0,
        "gc": {"count": 0, "full_collections": 0, "max_ms": 0.0},
        "slowest_share_overlapping_gc": 0.0,
        "worker_recycled": False,
        "slowest_parts_ms": parts,
        "typical_parts_ms": {**parts, "traced": 0},  # none of them found in the server's trace
        "cpu_busy_share": 0.93,
        "run_queue_ms_per_s": {"http": 250.0, "worker": 500.0, "load generator": 80.0},
        "host_steal_ms_per_s": 41.6,
    }
    row = _stall_lines(1_000_000, [step])[-1]
    assert row.endswith("| 1.00 / 12.50 / 0.40 / 1.25 | not traced | 93% | 250 / 500 / 80 | 42 |")
    del step["host_steal_ms_per_s"]  # a report from before the column
    assert _stall_lines(1_000_000, [step])[-1].endswith("| 250 / 500 / 80 | not measured |")
