"""Slow clients against real uWSGI: the HTTP router buffers bodies (api/uwsgi/post-buffering.patch), so they never
hold a synchronous worker."""

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import requests

from api.contract import LIVENESS_PATH, MAX_BODY_BYTES
from tools.testkit.load import SteadyLoad
from tools.testkit.processes import LOOPBACK
from tools.testkit.uwsgi import Uwsgi, running

pytestmark = pytest.mark.slow
WORKERS = 2
SLOW_CLIENTS = 5 * WORKERS
# A loaded 2-core machine (pytest-xdist runs another test beside this one) still answers liveness in a few ms.
LIVENESS_P99_MS = 50.0
SESSION_BODY = json.dumps({"recent_items": ["i0000007"], "k": 3}).encode()


def _post_head(length: int) -> bytes:
    return (
        "POST /v1/recommendations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _dribble_body(sock: socket.socket, stop: threading.Event) -> None:
    """Declares the whole body, then sends it a byte every 0.3 s (under the router's idle timeout)."""
    sock.sendall(_post_head(len(SESSION_BODY)))
    for byte in SESSION_BODY:
        if stop.wait(0.3):
            return
        sock.sendall(bytes([byte]))


def _stall_after_short_body(sock: socket.socket, stop: threading.Event) -> None:
    sock.sendall(_post_head(100) + SESSION_BODY[:2])
    stop.wait(30)


def _dribble_headers(sock: socket.socket, stop: threading.Event) -> None:
    for byte in f"GET {LIVENESS_PATH} HTTP/1.1\r\nHost: test\r\nX-Slow: {'x' * 200}\r\n".encode():
        if stop.wait(0.3):
            return
        sock.sendall(bytes([byte]))


def _hold(server: Uwsgi, behaviour: Callable[[socket.socket, threading.Event], None], stop: threading.Event) -> None:
    # The server may drop an idle client; that is its right.
    with socket.create_connection((LOOPBACK, server.port), timeout=40) as sock, contextlib.suppress(OSError):
        behaviour(sock, stop)


# A worker held by a slow client makes liveness wait seconds (0.3 s per dribbled byte, up to harakiri) in every
# attempt; CPU contention from make test's other stages (cold mypy, podman builds, the emulated deploy) only comes and
# goes. So the 50 ms objective is judged on up to ATTEMPTS measurements and must hold in one of them; a failed normal
# request fails at once.
ATTEMPTS = 3


def test_slow_bodies_hold_no_worker_while_normal_traffic_flows(model_root: Path, tmp_path: Path) -> None:
    behaviours = [_dribble_body, _stall_after_short_body] * (SLOW_CLIENTS // 2) + [_dribble_headers] * 2
    p99s = []
    with running(model_root, tmp_path / "uwsgi.log", workers=WORKERS) as server:
        for _ in range(ATTEMPTS):
            latencies = _liveness_beside_slow_clients(server, behaviours)
            p99 = latencies[int(len(latencies) * 0.99) - 1]
            p99s.append(p99)
            print(
                f"slow clients: {len(behaviours)}; liveness p50 {latencies[len(latencies) // 2]:.2f} ms, "
                f"p99 {p99:.2f} ms"
            )
            if p99 < LIVENESS_P99_MS:
                break
    assert min(p99s) < LIVENESS_P99_MS, f"liveness p99 per attempt: {[round(p, 1) for p in p99s]} ms"


def _liveness_beside_slow_clients(
    server: Uwsgi, behaviours: Sequence[Callable[[socket.socket, threading.Event], None]]
) -> list[float]:
    """Liveness latencies (ms, sorted) while the slow clients hold their connections and normal traffic flows;
    asserts that no normal request failed."""
    stop = threading.Event()
    slow = [threading.Thread(target=_hold, args=(server, b, stop), daemon=True) for b in behaviours]
    for thread in slow:
        thread.start()
    time.sleep(1.0)  # every slow client has connected and sent its head
    latencies = []
    normal = ["/v1/users/u0000001/recommendations?k=5"]
    try:
        with SteadyLoad(server.url, normal, clients=1) as load, requests.Session() as session:
            for _ in range(300):
                started = time.perf_counter()
                response = session.get(server.url + LIVENESS_PATH, timeout=10)
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
                session_answer = session.post(
                    server.url + "/v1/recommendations",
                    data=SESSION_BODY,
                    headers={"Content-Type": "application/json"},
                    timeout=10,
                )
                assert session_answer.status_code == 200, session_answer.text
    finally:
        stop.set()
        for thread in slow:
            thread.join(timeout=10)
    assert len(load.outcomes) > 50
    assert not load.failures(), load.failures()[:3]
    return sorted(latencies)


# The router's own handling of bodies (api/uwsgi/post-buffering.patch), each on the real router and workers.
BUFFERING_TIMEOUT_SECONDS = 2


@pytest.fixture(scope="module")
def buffering_server(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uwsgi]:
    # A short body deadline, so that the timeout tests take seconds; everything else as in api/uwsgi.ini.
    extra_args = ("--http-post-buffering-timeout", str(BUFFERING_TIMEOUT_SECONDS))
    log = tmp_path_factory.mktemp("buffering") / "uwsgi.log"
    with running(model_root, log, extra_args=extra_args) as server:
        yield server


def _tagged_post_head(length: int, request_id: str, extra: str = "") -> bytes:
    return _post_head(length).replace(b"\r\n\r\n", f"\r\nX-Request-Id: {request_id}\r\n{extra}\r\n".encode())


def _logged(server: Uwsgi, request_id: str) -> bool:
    """Whether a worker logged a request with this id (the app writes one JSON line per request)."""
    records = (json.loads(line) for line in server.output().splitlines() if line.startswith("{"))
    return any(record.get("request_id") == request_id for record in records)


def _read_until_closed(sock: socket.socket, deadline_seconds: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and the seconds that took (raises if it stays open)."""
    started = time.monotonic()
    data = b""
    sock.settimeout(deadline_seconds)
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data, time.monotonic() - started


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of one Content-Length-framed answer."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    fields = [line.partition(b":") for line in head.split(b"\r\n")[1:]]
    length = int(next(value for name, _, value in fields if name.lower() == b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), body


@pytest.mark.slow
def test_bodies_in_progress_stay_in_the_router_until_they_are_whole(buffering_server: Uwsgi) -> None:
    half = len(SESSION_BODY) // 2
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.create_connection((LOOPBACK, buffering_server.port))) for _ in range(3)]
        for number, sock in enumerate(socks):
            sock.sendall(_tagged_post_head(len(SESSION_BODY), f"half-body-{number}") + SESSION_BODY[:half])
        time.sleep(0.5)
        # More half-sent bodies than workers, and a worker still answers at once: none of them holds one.
        started = time.monotonic()
        assert requests.get(buffering_server.url + LIVENESS_PATH, timeout=5).status_code == 200
        assert time.monotonic() - started < 1.0
        assert not any(_logged(buffering_server, f"half-body-{number}") for number in range(len(socks)))
        for sock in socks:
            sock.sendall(SESSION_BODY[half:])
        answers = [_answer(sock) for sock in socks]
    assert [status for status, _ in answers] == [200] * len(socks), answers
    assert all(json.loads(body)["strategy"] == "session" for _, body in answers)
    # Once whole they reach a worker, which logs them: the "not logged" checks in these tests can fail.
    assert all(_logged(buffering_server, f"half-body-{number}") for number in range(len(socks)))


@pytest.mark.slow
def test_a_body_at_the_limit_arriving_in_pieces_reaches_the_app_whole(buffering_server: Uwsgi) -> None:
    # JSON allows trailing whitespace, so the app parses the padded body and answers from it.
    body = SESSION_BODY + b" " * (MAX_BODY_BYTES - len(SESSION_BODY))
    pieces = [body[start : start + 40_000] for start in range(0, len(body), 40_000)]
    with socket.create_connection((LOOPBACK, buffering_server.port)) as sock:
        sock.sendall(_post_head(len(body)))
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.05)
        status, answer = _answer(sock)
    assert status == 200, answer
    assert json.loads(answer)["k"] == 3


@pytest.mark.slow
def test_a_body_declared_over_the_limit_gets_the_routers_413_before_it_is_sent(buffering_server: Uwsgi) -> None:
    with socket.create_connection((LOOPBACK, buffering_server.port)) as sock:
        sock.sendall(_tagged_post_head(MAX_BODY_BYTES + 1, "over-limit-1"))
        data, seconds = _read_until_closed(sock, 5)
    assert data.startswith(b"HTTP/1.1 413 "), data
    assert seconds < 2
    assert not _logged(buffering_server, "over-limit-1")


@pytest.mark.slow
def test_expect_100_continue_within_the_limit_gets_the_100_then_the_answer(buffering_server: Uwsgi) -> None:
    with socket.create_connection((LOOPBACK, buffering_server.port)) as sock:
        sock.sendall(_tagged_post_head(len(SESSION_BODY), "expect-1", "Expect: 100-continue\r\n"))
        sock.settimeout(5)
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(SESSION_BODY)
        status, body = _answer(sock)
    assert status == 200, body


@pytest.mark.slow
@pytest.mark.parametrize("behaviour", ["stalls", "trickles"])
def test_a_body_not_whole_within_the_buffering_timeout_is_closed_without_reaching_a_worker(
    buffering_server: Uwsgi, behaviour: str
) -> None:
    """The deadline runs from the head: a client that keeps sending a byte now and then is cut off as well."""
    request_id = f"late-body-{behaviour}"
    with socket.create_connection((LOOPBACK, buffering_server.port)) as sock:
        sock.sendall(_tagged_post_head(len(SESSION_BODY), request_id) + SESSION_BODY[:2])
        started = time.monotonic()
        if behaviour == "trickles":
            for byte in SESSION_BODY[2:-1]:
                time.sleep(0.25)
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
        data, _ = _read_until_closed(sock, 10)
        seconds = time.monotonic() - started
    assert data == b""
    assert BUFFERING_TIMEOUT_SECONDS - 0.5 < seconds < BUFFERING_TIMEOUT_SECONDS + 3
    assert not _logged(buffering_server, request_id)
    assert requests.get(buffering_server.url + LIVENESS_PATH, timeout=5).status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("size", [MAX_BODY_BYTES + 1, 8 * MAX_BODY_BYTES])
def test_a_client_that_sends_an_over_limit_body_without_waiting_still_reads_the_413(
    buffering_server: Uwsgi, size: int
) -> None:
    # The router answers and closes while body bytes are still arriving; the answer must reach the client first.
    response = requests.post(
        buffering_server.url + "/v1/recommendations",
        data=b"{" + b" " * (size - 2) + b"}",
        headers={"Content-Type": "application/json", "X-Request-Id": f"eager-{size}"},
        timeout=10,
    )
    assert response.status_code == 413
    assert not _logged(buffering_server, f"eager-{size}")
