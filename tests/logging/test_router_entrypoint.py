"""The router entrypoint's stop sequence against stand-ins: a child process that records when it gets SIGTERM (in place
of Fluent Bit) and a loopback HTTP server answering the metrics the entrypoint reads. Every case runs without a Fluent
Bit binary; test_router_shutdown.py runs the real one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.logging.router_harness import ENTRYPOINT

BASH = shutil.which("bash")
CURL = shutil.which("curl")

# Stands in for Fluent Bit: at SIGTERM writes when it got it (CLOCK_MONOTONIC is system-wide), flushes for the seconds
# given as its third argument, and exits 0.
CHILD = """
import pathlib, signal, sys, time
stopped = pathlib.Path(sys.argv[1])
def stop(*_):
    stopped.write_text(repr(time.monotonic()))
    time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
pathlib.Path(sys.argv[2]).write_text("")
while True:
    time.sleep(0.02)
"""


@dataclass
class Counters:
    """What the stand-in metrics say; `arriving` makes every read see one more received record."""

    emitted: int = 0
    appended: int = 0
    received: int = 0
    arriving: bool = False


class MetricsServer:
    def __init__(self) -> None:
        self.counters = Counters()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer.lock:
                    if outer.counters.arriving:
                        outer.counters.received += 1
                    c = outer.counters
                    # The shape of Fluent Bit 5.0's /api/v1/metrics/prometheus: name{labels} value timestamp
                    body = (
                        f'fluentbit_input_records_total{{name="forward.0"}} {c.received} 1796000000000\n'
                        f'fluentbit_input_records_total{{name="urgent_emitter"}} {c.appended} 1796000000000\n'
                        f'fluentbit_filter_emit_records_total{{name="copy_urgent"}} {c.emitted} 1796000000000\n'
                    ).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/metrics/prometheus"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def set(self, **values: int | bool) -> None:
        with self.lock:
            for name, value in values.items():
                setattr(self.counters, name, value)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Started:
    process: subprocess.Popen[str]
    stopped_file: Path

    def signaled_at(self) -> float | None:
        text = self.stopped_file.read_text() if self.stopped_file.exists() else ""
        return float(text) if text else None

    def finish(self, timeout: float) -> tuple[int, str]:
        try:
            _, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate(timeout=5)
            pytest.fail(f"the entrypoint did not exit within {timeout} s:\n{stderr}")
        return self.process.returncode, stderr


@pytest.fixture
def metrics() -> Iterator[MetricsServer]:
    if BASH is None or CURL is None:
        pytest.skip("bash or curl not on PATH: the router entrypoint needs both (the router image carries them)")
    server = MetricsServer()
    try:
        yield server
    finally:
        server.close()


def start(tmp_path: Path, metrics: MetricsServer, *, through_shell: bool = False, **env: str) -> Started:
    """The entrypoint running the stand-in; `through_shell`: from a start script that runs it as a child and flushes
    for one second, instead of exec'ing it."""
    assert BASH is not None
    stopped, ready = tmp_path / "stopped", tmp_path / "ready"
    command = [sys.executable, "-c", CHILD, str(stopped), str(ready)]
    if through_shell:
        # The stand-in's stderr leaves the pipe, so that reading the entrypoint's log ends when the entrypoint does.
        command = ["sh", "-c", '"$@" 2>/dev/null; echo start script done', "start-script", *command, "1"]
    process = subprocess.Popen(
        [BASH, str(ENTRYPOINT), *command],
        env={**os.environ, "ROUTER_METRICS_URL": metrics.url, **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 10
    while not ready.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the stand-in child did not start"
        time.sleep(0.02)
    return Started(process, stopped)


@pytest.mark.slow
def test_stop_signal_waits_until_the_emitter_has_appended_every_copy(tmp_path: Path, metrics: MetricsServer) -> None:
    metrics.set(emitted=5, appended=2, received=9)
    started = start(tmp_path, metrics)
    sent = time.monotonic()
    started.process.send_signal(signal.SIGTERM)
    time.sleep(2.6)
    assert started.signaled_at() is None, "SIGTERM passed on while 3 copies were still queued in the emitter"
    metrics.set(appended=5)
    status, log = started.finish(timeout=8)
    signaled = started.signaled_at()
    assert status == 0, log
    assert signaled is not None, log
    assert signaled - sent >= 2.6
    assert "emitter drained: 5 of 5 urgent copies" in log


@pytest.mark.slow
def test_stop_signal_waits_while_records_keep_arriving(tmp_path: Path, metrics: MetricsServer) -> None:
    metrics.set(emitted=3, appended=3, received=7, arriving=True)
    started = start(tmp_path, metrics)
    started.process.send_signal(signal.SIGTERM)
    time.sleep(2.6)
    assert started.signaled_at() is None, "SIGTERM passed on while records were still arriving"
    metrics.set(arriving=False)
    status, log = started.finish(timeout=8)
    assert status == 0, log
    assert started.signaled_at() is not None, log


@pytest.mark.slow
def test_stop_signal_is_passed_on_at_the_drain_timeout_when_the_emitter_never_drains(
    tmp_path: Path, metrics: MetricsServer
) -> None:
    metrics.set(emitted=4, appended=1)
    started = start(tmp_path, metrics, ROUTER_DRAIN_TIMEOUT_SECONDS="2")
    sent = time.monotonic()
    started.process.send_signal(signal.SIGTERM)
    status, log = started.finish(timeout=8)
    signaled = started.signaled_at()
    assert status == 0, log
    assert signaled is not None, log
    assert 2 <= signaled - sent < 2 + 1.2 + 1, "the hold ends at the first poll after the timeout"
    assert "still not drained after 2 s" in log


@pytest.mark.slow
def test_second_stop_signal_is_passed_on_at_once(tmp_path: Path, metrics: MetricsServer) -> None:
    metrics.set(emitted=4, appended=1)
    started = start(tmp_path, metrics, ROUTER_DRAIN_TIMEOUT_SECONDS="60")
    started.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    second = time.monotonic()
    started.process.send_signal(signal.SIGTERM)
    status, log = started.finish(timeout=8)
    signaled = started.signaled_at()
    assert status == 0, log
    assert signaled is not None, log
    assert signaled - second < 1.2 + 0.5, "at most one poll interval after the second signal"
    assert "second stop signal" in log


@pytest.mark.slow
def test_filter_name_missing_from_the_metrics_is_reported_and_the_hold_still_ends(
    tmp_path: Path, metrics: MetricsServer
) -> None:
    metrics.set(emitted=2, appended=2)
    started = start(tmp_path, metrics, ROUTER_URGENT_FILTER="renamed_filter", ROUTER_DRAIN_TIMEOUT_SECONDS="1")
    started.process.send_signal(signal.SIGTERM)
    status, log = started.finish(timeout=8)
    assert status == 0, log
    assert started.signaled_at() is not None, log
    assert "no counter for filter 'renamed_filter'" in log
    assert "ROUTER_URGENT_FILTER" in log


@pytest.mark.slow
def test_stop_signal_reaches_fluent_bit_started_as_a_child_and_the_entrypoint_outlasts_its_flush(
    tmp_path: Path, metrics: MetricsServer
) -> None:
    metrics.set(emitted=1, appended=1)
    started = start(tmp_path, metrics, through_shell=True)
    started.process.send_signal(signal.SIGTERM)
    status, log = started.finish(timeout=8)
    finished = time.monotonic()
    signaled = started.signaled_at()
    assert signaled is not None, f"the stop signal never reached the process under the start script:\n{log}"
    assert finished - signaled >= 1, "the entrypoint exited while the process under the start script still flushed"
    assert status != 0, "the start script itself was stopped by the signal"


@pytest.mark.slow
def test_exit_status_of_the_command_is_the_entrypoints(metrics: MetricsServer) -> None:
    assert BASH is not None
    result = subprocess.run([BASH, str(ENTRYPOINT), "sh", "-c", "exit 3"], capture_output=True, text=True, check=False)
    assert result.returncode == 3, result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ROUTER_DRAIN_TIMEOUT_SECONDS", "ten"),
        ("ROUTER_DRAIN_TIMEOUT_SECONDS", "500"),
        ("ROUTER_DRAIN_POLL_MS", "200"),
        ("ROUTER_DRAIN_POLL_MS", "1.5"),
    ],
)
def test_unusable_setting_stops_the_start_naming_the_variable(variable: str, value: str) -> None:
    if BASH is None:
        pytest.skip("bash not on PATH: the router entrypoint is a bash script")
    result = subprocess.run(
        [BASH, str(ENTRYPOINT), "true"],
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 64
    assert f"{variable}={value}: expected" in result.stderr


def test_entrypoint_without_a_command_says_what_to_pass() -> None:
    if BASH is None:
        pytest.skip("bash not on PATH: the router entrypoint is a bash script")
    result = subprocess.run([BASH, str(ENTRYPOINT)], capture_output=True, text=True, check=False)
    assert result.returncode == 64
    assert "no command given" in result.stderr
    assert "/entrypoint.sh" in result.stderr
