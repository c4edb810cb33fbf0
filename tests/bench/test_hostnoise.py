"""What the host takes from the cores: the steal counter, and pauses a busy loop sees (a real stopped process)."""

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from bench import hostnoise, loadgen
from bench.report import _host_lines


def test_gaps_add_up_to_the_share_lost_the_longest_and_those_over_a_millisecond() -> None:
    summary = hostnoise.gap_summary([0.0002, 0.003, 0.0015, 0.0005], seconds=2.0)
    assert summary == pytest.approx({"lost_share": 0.0052 / 2, "max_gap_ms": 3.0, "long_gaps_per_s": 1.0})
    assert hostnoise.gap_summary([], seconds=1.0) == {"lost_share": 0.0, "max_gap_ms": 0.0, "long_gaps_per_s": 0.0}


def test_steal_is_the_eighth_number_of_the_cpu_line_in_user_hz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  4705 150 1120 16250 520 0 30 250 0 0\ncpu0 4705 150 1120 16250 520 0 30 250 0 0\n")
    monkeypatch.setattr(hostnoise, "_STAT", stat)
    assert hostnoise.steal_seconds() == pytest.approx(250 / os.sysconf("SC_CLK_TCK"))
    stat.write_text("cpu  4705 150 1120 16250\n")  # a kernel without the column
    assert hostnoise.steal_seconds() == 0.0
    monkeypatch.setattr(hostnoise, "_STAT", tmp_path / "missing")
    assert hostnoise.steal_seconds() == 0.0


def _spin(seconds: float, results: "multiprocessing.Queue[list[float]]") -> None:
    results.put([])  # started: the loop runs from here on
    results.put(hostnoise.busy_gaps(seconds))


def test_a_busy_loop_reports_the_time_its_process_was_stopped_for() -> None:
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[list[float]] = context.Queue()
    spinner = context.Process(target=_spin, args=(3.0, results))  # long enough for a slow parent under load
    spinner.start()
    try:
        assert results.get(timeout=60) == []
        time.sleep(0.3)
        assert spinner.pid is not None
        os.kill(spinner.pid, signal.SIGSTOP)
        time.sleep(0.3)
        os.kill(spinner.pid, signal.SIGCONT)
        gaps = results.get(timeout=30)
    finally:
        spinner.join(timeout=30)
    assert max(gaps) >= 0.25, f"the 0.3 s stop was not seen: longest gap {max(gaps) * 1000:.1f} ms"


def test_the_probe_runs_a_loop_on_each_core_and_reports_what_it_lost() -> None:
    found = hostnoise.probe(seconds=0.3, cores=2)
    assert found["cores"] == 2 and len(found["lost_share"]) == 2
    assert all(0.0 <= share <= 1.0 for share in found["lost_share"])
    assert found["max_gap_ms"] >= 0.0 and found["long_gaps_per_s"] >= 0.0 and found["steal_ms_per_s"] >= 0.0
    line = _host_lines(found)[0]
    assert "a busy loop on each of the 2 cores for 0.3 s lost" in line and "ms of steal per second" in line


def test_a_step_reports_the_steal_counted_while_it_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter([10.0, 10.5])  # 0.5 s stolen over a step of about 0.3 s
    monkeypatch.setattr(loadgen, "steal_seconds", lambda: next(readings))
    # Nothing listens on the discard port: every request fails at once and the step still ends.
    step = loadgen.run_step("127.0.0.1", 9, ["/"], rate=100, seconds=0.25, connections=2)
    assert step.errors == 25
    assert 1000 <= step.host_steal_ms_per_s <= 2000


def test_a_gap_that_runs_past_the_window_counts_only_up_to_its_end(monkeypatch: pytest.MonkeyPatch) -> None:
    # The loop reads the clock at 0, then at 0.1 s, then is taken away until 0.5 s, past its 0.3 s window.
    readings = iter([0.0, 0.1, 0.5])
    monkeypatch.setattr(time, "perf_counter", lambda: next(readings))
    gaps = hostnoise.busy_gaps(0.3)
    assert gaps == pytest.approx([0.1, 0.2])
    assert hostnoise.gap_summary(gaps, 0.3)["lost_share"] == pytest.approx(1.0)
