"""The load generator against a tiny keep-alive HTTP server: what it counts, and the lag it owns up to."""

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from bench import loadgen


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Head and body leave in two writes: without TCP_NODELAY the body waits for the client's delayed ACK (40 ms).
    disable_nagle_algorithm = True

    # Every request's client address: a new port is a new connection.
    clients: ClassVar[list[tuple[str, int]]] = []

    def do_GET(self) -> None:
        _Ok.clients.append(self.client_address)
        if self.path == "/slow":
            time.sleep(0.5)
        if self.path == "/hang-up":
            self.close_connection = True  # no answer at all
            return
        body = b'{"status":"ok"}'
        self.send_response(500 if self.path == "/fail" else 200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Model-Version", "v1")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_a_step_counts_answers_and_versions(port: int) -> None:
    step = loadgen.run_step("127.0.0.1", port, ["/a", "/b"], rate=200, seconds=0.5, connections=4)
    assert step.completed == 100 and step.errors == 0
    assert step.model_versions == {"v1": 100}


def test_a_client_whose_loop_stalls_reports_its_own_send_lag(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    serve = loadgen._Client.serve

    def stalled(client: loadgen._Client, timeout: float) -> None:
        time.sleep(0.03)  # the client's own loop falls 30 ms behind its schedule at every turn
        serve(client, timeout)

    monkeypatch.setattr(loadgen._Client, "serve", stalled)
    step = loadgen.run_step("127.0.0.1", port, ["/a"], rate=200, seconds=0.5, connections=4, slowest=0.1)
    assert step.completed == 100
    assert step.p99_send_lag_ms >= 20, "the lag the client caused must be reported, not left in the server's latency"
    client_lag = sum(r.sent - r.scheduled for r in step.slowest)
    latency = sum(r.answered - r.scheduled for r in step.slowest)
    assert client_lag > 0.3 * latency, "much of the slowest requests' latency was the client's own lag"


def test_a_traced_step_names_each_request_and_times_its_send(port: int) -> None:
    step = loadgen.run_step("127.0.0.1", port, ["/a", "/b"], rate=200, seconds=0.5, connections=4, slowest=0.1)
    timed = step.slowest + step.typical
    assert len(step.slowest) == len(step.typical) == 10
    assert len({request.tag for request in timed}) == 20
    assert all(r.scheduled <= r.sent <= r.answered for r in timed)


def test_an_untraced_step_keeps_no_request_times(port: int) -> None:
    step = loadgen.run_step("127.0.0.1", port, ["/a"], rate=200, seconds=0.2, connections=4)
    assert step.slowest == () and step.typical == ()


def test_a_closing_step_opens_a_connection_per_request(port: int) -> None:
    _Ok.clients.clear()
    step = loadgen.run_step("127.0.0.1", port, ["/a"], rate=200, seconds=0.5, connections=4, keep_alive=False)
    assert step.completed == 100 and step.errors == 0
    assert len(_Ok.clients) == 100 and len(set(_Ok.clients)) == 100


def test_a_keep_alive_step_reuses_its_connections(port: int) -> None:
    _Ok.clients.clear()
    step = loadgen.run_step("127.0.0.1", port, ["/a"], rate=200, seconds=0.5, connections=4)
    assert step.completed == 100
    assert len(set(_Ok.clients)) <= 4


def test_error_answers_and_hang_ups_count_as_errors_and_the_step_still_ends(port: int) -> None:
    started = time.monotonic()
    step = loadgen.run_step("127.0.0.1", port, ["/a", "/fail", "/hang-up", "/a"], rate=200, seconds=0.5, connections=4)
    assert time.monotonic() - started < 15, "it must not wait out the 30 s allowed for answers"
    assert step.completed == 50 and step.errors == 50


def test_requests_still_unanswered_when_the_wait_ends_count_once_as_errors(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loadgen, "ANSWER_WAIT_SECONDS", 0.1)
    # 10 requests on 4 connections: 4 in flight and 6 waiting for a connection when the wait ends.
    step = loadgen.run_step("127.0.0.1", port, ["/slow"], rate=100, seconds=0.1, connections=4)
    assert step.completed == 0 and step.errors == 10
