"""Slow clients against real uWSGI: bodies are buffered by the fastrouter, so they never hold a synchronous worker."""

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import requests

from api.contract import LIVENESS_PATH
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
    """Declares the whole body, then sends it a byte every 0.3 s (under the fastrouter's idle timeout)."""
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
