"""HTTP framing at the edge of the app (issue 14, item 9): oversized request heads and pipelined requests.

The Flask tests check what the app answers; the uWSGI tests check that those answers reach a client through the real
HTTP router -> worker chain of api/uwsgi.ini, over raw sockets with bounded waits.
"""

import contextlib
import itertools
import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from flask.testing import FlaskClient

from api.contract import LIVENESS_PATH, MAX_BODY_BYTES
from api.serving.config import ApiConfig
from tools.testkit.processes import LOOPBACK
from tools.testkit.uwsgi import Uwsgi, running

USER = "/v1/users/u0000001/recommendations"
DEFAULTS = ApiConfig(model_dir=Path("unused"))
HEADER_LIMIT = DEFAULTS.max_header_bytes
TARGET_LIMIT = DEFAULTS.max_request_target_bytes
# uWSGI 2.0's HTTP router re-encodes the request head into one uwsgi packet of at most 64 KiB (api/uwsgi.ini); a head
# it cannot carry closes the connection. This is what the tests below stay under when they expect an answer.
ROUTER_PACKET_BYTES = 65_535
IO_TIMEOUT_SECONDS = 5.0
# status, header fields (lower-case names), body
Response = tuple[int, dict[str, str], bytes]


def _assert_error(response: Any, status: int, field_name: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    assert set(body) == {"model_version", "error", "detail", "request_id"}
    assert [entry["field"] for entry in body["detail"]] == [field_name], body
    return body


def test_header_fields_over_the_limit_are_a_431_naming_the_limit(client: FlaskClient) -> None:
    body = _assert_error(client.get(LIVENESS_PATH, headers={"X-Big": "x" * HEADER_LIMIT}), 431, "headers")
    assert str(HEADER_LIMIT) in body["detail"][0]["message"]


def test_many_small_header_fields_count_towards_the_limit_together(client: FlaskClient) -> None:
    # Each field is small; together they pass the limit (name, ": ", value and CRLF are counted, as on the wire).
    headers = {f"X-Pad-{i}": "y" * 1000 for i in range(HEADER_LIMIT // 1000 + 1)}
    _assert_error(client.get(LIVENESS_PATH, headers=headers), 431, "headers")


def test_header_fields_just_under_the_limit_are_served(client: FlaskClient) -> None:
    # What the test client adds itself (Host, User-Agent) stays well inside the 200 bytes left.
    response = client.get(LIVENESS_PATH, headers={"Cookie": "c=" + "x" * (HEADER_LIMIT - 200)})
    assert response.status_code == 200


def test_request_target_over_the_limit_is_a_414_naming_the_limit(client: FlaskClient) -> None:
    body = _assert_error(client.get(USER + "?exclude=" + "a" * TARGET_LIMIT), 414, "url")
    assert str(TARGET_LIMIT) in body["detail"][0]["message"]


def test_a_long_exclude_list_under_the_target_limit_is_served(client: FlaskClient) -> None:
    ids = ",".join(f"i{n:07d}-{'p' * 20}" for n in range(500))  # the most ids `exclude` takes, 30 bytes each
    assert len(USER) + len("?exclude=") + len(ids) < TARGET_LIMIT
    response = client.get(USER + "?exclude=" + ids)
    assert response.status_code == 200, response.get_data(as_text=True)


def test_an_oversized_head_is_refused_before_anything_else_is_checked(client: FlaskClient) -> None:
    # A chunked body on an unknown path with a huge header: the head is the first thing wrong with it.
    response = client.post(
        "/v2/nothing", data=b"{}", headers={"Transfer-Encoding": "chunked", "X-Big": "x" * HEADER_LIMIT}
    )
    _assert_error(response, 431, "headers")


# Real uWSGI, raw sockets.


@dataclass
class Exchange:
    """What a client saw on one connection: the raw bytes, whether the server closed it, and how fast."""

    data: bytes = b""
    closed: bool = False
    seconds: float = 0.0
    responses: list[Response] = field(default_factory=list)


def _exchange(server: Uwsgi, request: bytes, *, until_closed: bool, timeout: float = IO_TIMEOUT_SECONDS) -> Exchange:
    """Sends `request` at once, then reads until the server closes (or the first answer is complete) or `timeout`."""
    outcome = Exchange()
    started = time.monotonic()
    with socket.create_connection((LOOPBACK, server.port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except OSError:  # the router may close (reset) before it has read all of an oversized head
            outcome.closed = True
        while not outcome.closed and time.monotonic() - started < timeout:
            sock.settimeout(max(0.01, timeout - (time.monotonic() - started)))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                outcome.closed = True
                break
            if not chunk:
                outcome.closed = True
                break
            outcome.data += chunk
            outcome.responses = _parse_responses(outcome.data)
            if outcome.responses and not until_closed:
                break
    outcome.seconds = time.monotonic() - started
    outcome.responses = _parse_responses(outcome.data)
    return outcome


def _parse_responses(data: bytes) -> list[Response]:
    """Complete responses framed by Content-Length, in order; an incomplete tail is left out."""
    responses = []
    while b"\r\n\r\n" in data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            break
        responses.append((int(status_line.split()[1]), headers, rest[:length]))
        data = rest[length:]
    return responses


def _get(target: str, extra_headers: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: test\r\n{extra_headers}\r\n".encode("latin-1")


def _assert_json_error(exchange: Exchange, status: int, field_name: str) -> None:
    assert exchange.responses, f"no answer in {exchange.seconds:.1f} s (closed: {exchange.closed}): {exchange.data!r}"
    answer_status, headers, body = exchange.responses[0]
    assert answer_status == status, body
    assert headers["content-type"] == "application/json"
    assert [entry["field"] for entry in json.loads(body)["detail"]] == [field_name]


@pytest.fixture(scope="module")
def server(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running(model_root, tmp_path_factory.mktemp("protocol") / "uwsgi.log") as started:
        yield started


def _small_fields(count: int, total: int) -> str:
    """`count` header fields of about `total` bytes together, as on the wire."""
    return "".join(f"X-{i:05d}: {'v' * (total // count - 13)}\r\n" for i in range(count))


@pytest.mark.slow
@pytest.mark.parametrize(
    "fields",
    [
        f"X-Big: {'x' * (HEADER_LIMIT + 1)}\r\n",
        f"X-Big: {'x' * 32 * 1024}\r\n",
        f"X-Big: {'x' * 56 * 1024}\r\n",
        # More fields than a worker took with uWSGI's default max-vars (it then left the client waiting, uwsgi.ini).
        _small_fields(3000, 2 * HEADER_LIMIT),
        "".join(f"{i:x}:\r\n" for i in range(5000)),
    ],
    ids=["just-over", "32KiB", "56KiB", "3000-fields", "5000-empty-fields"],
)
def test_uwsgi_answers_an_oversized_header_with_a_431_json(server: Uwsgi, fields: str) -> None:
    exchange = _exchange(server, _get(LIVENESS_PATH, fields), until_closed=False)
    _assert_json_error(exchange, 431, "headers")


@pytest.mark.slow
@pytest.mark.parametrize("length", [TARGET_LIMIT + 1, 24 * 1024, 28 * 1024])
def test_uwsgi_answers_an_oversized_url_with_a_414_json(server: Uwsgi, length: int) -> None:
    target = USER + "?exclude=" + "a" * (length - len(USER) - len("?exclude="))
    exchange = _exchange(server, _get(target), until_closed=False)
    _assert_json_error(exchange, 414, "url")


@pytest.mark.slow
@pytest.mark.parametrize(
    "fields",
    [f"Cookie: c={'x' * (HEADER_LIMIT - 200)}\r\n", _small_fields(1000, HEADER_LIMIT - 200)],
    ids=["one-cookie", "1000-fields"],
)
def test_uwsgi_serves_a_head_just_under_both_limits(server: Uwsgi, fields: str) -> None:
    ids = ",".join(f"i{n:07d}-{'p' * 20}" for n in range(500))
    exchange = _exchange(server, _get(USER + "?exclude=" + ids, fields), until_closed=False)
    assert exchange.responses, exchange.data
    assert exchange.responses[0][0] == 200, exchange.responses[0][2]


@pytest.mark.slow
def test_uwsgi_serves_a_post_whose_head_is_at_the_limit_and_body_arrives_with_it(server: Uwsgi) -> None:
    # The router appends the body bytes read with the head to the head's packet (api/uwsgi.ini): that must still fit.
    ids = [f"i{n:07d}-{'p' * 20}" for n in range(500)]
    body = json.dumps({"recent_items": ["i0000007"], "exclude": ids, "k": 2}).encode()
    head = (
        "POST /v1/recommendations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCookie: c={'x' * (HEADER_LIMIT - 200)}\r\n\r\n"
    )
    exchange = _exchange(server, head.encode() + body, until_closed=False)
    assert exchange.responses, exchange.data
    assert exchange.responses[0][0] == 200, exchange.responses[0][2]


@pytest.mark.slow
def test_uwsgi_closes_a_head_beyond_the_router_packet_promptly_and_keeps_serving(server: Uwsgi) -> None:
    # Above what the router can carry (uwsgi.ini: its 64 KiB packet) uWSGI 2.0 closes the connection without an
    # answer. It must do so at once, not hold the client until a timeout, and the server must stay healthy.
    for request in (
        _get(LIVENESS_PATH, f"X-Big: {'x' * ROUTER_PACKET_BYTES}\r\n"),
        _get(LIVENESS_PATH + "?" + "a" * (ROUTER_PACKET_BYTES // 2)),
    ):
        exchange = _exchange(server, request, until_closed=True)
        assert exchange.closed, f"still open after {exchange.seconds:.1f} s"
        assert exchange.seconds < 2.0
        assert exchange.data == b""
    assert _exchange(server, _get(LIVENESS_PATH), until_closed=False).responses[0][0] == 200


SESSION_BODY = json.dumps({"recent_items": ["i0000007"], "k": 2}).encode()
SESSION_POST = (
    "POST /v1/recommendations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    f"Content-Length: {len(SESSION_BODY)}\r\n\r\n"
).encode() + SESSION_BODY


# Pipelining (RFC 9112 section 9.3.2): the project's uWSGI carries api/uwsgi/pipelining.patch (built by
# tools/uwsgi_build.py); stock 2.0.31 answers the first request and closes. Requests are told apart by the user id
# their answer echoes.


def _user_get(number: int, extra_headers: str = "") -> bytes:
    return _get(f"/v1/users/p{number:06d}/recommendations?k=1", extra_headers)


def _users(responses: list[Response]) -> list[str]:
    return [json.loads(body).get("user_id", "-") if status == 200 else str(status) for status, _, body in responses]


def _expected(numbers: range | list[int]) -> list[str]:
    return [f"p{number:06d}" for number in numbers]


class _Connection:
    """One client connection: sends bytes as separate segments (TCP_NODELAY, a pause between) and reads answers."""

    def __init__(self, server: Uwsgi) -> None:
        self.sock = socket.create_connection((LOOPBACK, server.port), timeout=IO_TIMEOUT_SECONDS)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.data = b""
        self.closed = False

    def __enter__(self) -> "_Connection":
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    def send(self, *segments: bytes, pause: float = 0.05) -> None:
        for index, segment in enumerate(segments):
            if index:
                time.sleep(pause)
            self.sock.sendall(segment)

    def answers(self, count: int | None, timeout: float = IO_TIMEOUT_SECONDS) -> list[Response]:
        """Every complete answer so far, once there are `count` of them (None: once the server closes)."""
        deadline = time.monotonic() + timeout
        while not self.closed and (count is None or len(_parse_responses(self.data)) < count):
            if time.monotonic() > deadline:
                break
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                chunk = b""
            self.closed = not chunk
            self.data += chunk
        return _parse_responses(self.data)


@pytest.mark.slow
@pytest.mark.parametrize("count", [2, 3, 50])
def test_uwsgi_answers_pipelined_gets_in_order_and_keeps_the_connection(server: Uwsgi, count: int) -> None:
    with _Connection(server) as connection:
        connection.send(b"".join(_user_get(number) for number in range(count)))
        responses = connection.answers(count)
        assert _users(responses) == _expected(range(count)), connection.data[-300:]
        assert not connection.closed
        # Nothing after the last answer (no partial or extra one), and the connection still serves.
        assert connection.data.endswith(responses[-1][2])
        connection.send(_user_get(count))
        assert _users(connection.answers(count + 1)) == _expected(range(count + 1))
        assert not connection.closed


@pytest.mark.slow
def test_uwsgi_answers_gets_pipelined_after_posts_with_bodies(server: Uwsgi) -> None:
    with _Connection(server) as connection:
        connection.send(SESSION_POST + _user_get(1) + SESSION_POST + _user_get(2))
        responses = connection.answers(4)
        assert _users(responses) == ["-", "p000001", "-", "p000002"], connection.data
        assert all("items" in json.loads(body) for _, _, body in responses)
        assert not connection.closed


# Where the router's reads split a POST, a GET and another GET: inside the POST's head, inside its body, right at the
# end of its body, inside the GET's head, and the second GET a byte at a time.
STREAM = SESSION_POST + _user_get(1) + _user_get(2)
POST_HEAD = len(SESSION_POST) - len(SESSION_BODY)
SPLITS = {
    "in-post-head": [20],
    "in-post-body": [POST_HEAD + 7],
    "at-post-body-end": [len(SESSION_POST)],
    "in-get-head": [len(SESSION_POST) + 9, len(SESSION_POST) + 30],
    "body-end-and-next-head": [POST_HEAD + 3, len(SESSION_POST) + 4],
    "bytewise-second-get": list(range(len(SESSION_POST) + len(_user_get(1)), len(STREAM))),
}


@pytest.mark.slow
@pytest.mark.parametrize("cuts", SPLITS.values(), ids=SPLITS.keys())
def test_uwsgi_answers_pipelined_requests_split_across_segments(server: Uwsgi, cuts: list[int]) -> None:
    bounds = [0, *cuts, len(STREAM)]
    with _Connection(server) as connection:
        connection.send(*(STREAM[start:stop] for start, stop in itertools.pairwise(bounds)), pause=0.02)
        assert _users(connection.answers(3)) == ["-", "p000001", "p000002"], connection.data
        assert not connection.closed


@pytest.mark.slow
def test_uwsgi_answers_a_pipelined_connection_close_request_then_closes_and_drops_the_rest(server: Uwsgi) -> None:
    with _Connection(server) as connection:
        connection.send(_user_get(0) + _user_get(1, "Connection: close\r\n") + _user_get(2))
        started = time.monotonic()
        assert _users(connection.answers(None)) == _expected([0, 1]), connection.data
        assert connection.closed
        assert time.monotonic() - started < 2.0


@pytest.mark.slow
def test_uwsgi_ends_a_pipeline_at_an_http_1_0_request_after_answering_it(server: Uwsgi) -> None:
    # Keep-alive is decided per request: an HTTP/1.0 request (no keep-alive here) after an HTTP/1.1 one ends it.
    http_1_0 = _user_get(1).replace(b"HTTP/1.1", b"HTTP/1.0")
    with _Connection(server) as connection:
        connection.send(_user_get(0) + http_1_0 + _user_get(2))
        assert _users(connection.answers(None)) == _expected([0, 1]), connection.data
        assert connection.closed


@pytest.mark.slow
def test_uwsgi_sends_100_continue_to_a_pipelined_post_and_keeps_order(server: Uwsgi) -> None:
    head = SESSION_POST[:POST_HEAD].replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
    with _Connection(server) as connection:
        connection.send(_user_get(0) + head)
        assert _users(connection.answers(2)) == ["p000000", "100"], connection.data
        connection.send(SESSION_BODY + _user_get(1))
        assert _users(connection.answers(4)) == ["p000000", "100", "-", "p000001"], connection.data
        assert not connection.closed


@pytest.mark.slow
def test_uwsgi_sends_no_100_continue_to_a_later_request_on_the_connection(server: Uwsgi) -> None:
    # Stock 2.0.31 kept the Expect flag for the connection: the next request got a stray 100 Continue.
    head = SESSION_POST[:POST_HEAD].replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
    with _Connection(server) as connection:
        connection.send(head)
        assert _users(connection.answers(1)) == ["100"], connection.data
        connection.send(SESSION_BODY)
        assert _users(connection.answers(2)) == ["100", "-"], connection.data
        connection.send(_user_get(1))
        assert _users(connection.answers(3)) == ["100", "-", "p000001"], connection.data


@pytest.mark.slow
def test_uwsgi_refuses_a_pipelined_body_over_the_limit_after_answering_what_came_before(server: Uwsgi) -> None:
    too_big = (
        b"POST /v1/recommendations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: 10000000\r\n\r\n"
    )
    with _Connection(server) as connection:
        connection.send(_user_get(0) + too_big)
        assert _users(connection.answers(None)) == ["p000000", "413"], connection.data
        assert connection.closed


@pytest.mark.slow
def test_uwsgi_answers_pipelined_requests_with_heads_and_bodies_near_the_router_limits(server: Uwsgi) -> None:
    # A 60 KiB head grows the router's read buffer to its 64 KiB limit; the next request's 36 KiB head and 26 KiB
    # body follow in the same stream, and their bytes are held and read across that grown buffer.
    body = SESSION_BODY + b" " * 26_000
    post = (
        "POST /v1/recommendations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCookie: c={'x' * 36_000}\r\n\r\n"
    ).encode() + body
    first = _user_get(0, f"X-Big: {'x' * 60_000}\r\n")
    with _Connection(server) as connection:
        connection.send(first + post + _user_get(1))
        assert _users(connection.answers(3)) == ["431", "431", "p000001"], connection.data[:500]
        assert not connection.closed


def _router(server: Uwsgi) -> psutil.Process:
    (router,) = [child for child in psutil.Process(server.pid).children() if "uWSGI http" in " ".join(child.cmdline())]
    return router


@pytest.mark.slow
def test_a_pipelining_flood_neither_grows_the_router_nor_slows_other_clients(server: Uwsgi) -> None:
    """One client sends 12 MB of pipelined requests without reading; the router reads no more than one request
    ahead (TCP holds the rest back), so its memory stays flat and a second client's liveness stays fast."""
    router = _router(server)
    flood = b"".join(_user_get(number % 1000) for number in range(200_000))
    rss_before = router.memory_info().rss
    with _Connection(server) as flooder, requests.Session() as other:
        sender = threading.Thread(target=_send_ignoring_close, args=(flooder.sock, flood), daemon=True)
        sender.start()
        time.sleep(0.5)
        latencies = []
        for _ in range(100):
            started = time.monotonic()
            assert other.get(server.url + LIVENESS_PATH, timeout=IO_TIMEOUT_SECONDS).status_code == 200
            latencies.append(time.monotonic() - started)
        rss_during = router.memory_info().rss
        # The flood is answered in order all along.
        assert _users(flooder.answers(500)[:500]) == _expected([n % 1000 for n in range(500)])
        assert not flooder.closed
        flooder.sock.shutdown(socket.SHUT_RDWR)
        sender.join(timeout=IO_TIMEOUT_SECONDS)
    # A client queued behind the flood would wait seconds; CPU contention from other tests slows only the odd probe.
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.05, latencies
    assert latencies[int(len(latencies) * 0.95)] < 0.25, latencies
    assert rss_during - rss_before < 1024 * 1024, (rss_before, rss_during)


def _send_ignoring_close(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)


@pytest.mark.slow
def test_uwsgi_serves_requests_one_after_another_on_one_keep_alive_connection(server: Uwsgi) -> None:
    with socket.create_connection((LOOPBACK, server.port), timeout=IO_TIMEOUT_SECONDS) as sock:
        for target in (LIVENESS_PATH, USER + "?k=2", LIVENESS_PATH):
            sock.sendall(_get(target))
            data = b""
            while not _parse_responses(data):
                chunk = sock.recv(65536)
                assert chunk, f"closed before answering {target}"
                data += chunk
            assert _parse_responses(data)[0][0] == 200


def _session_post(request_id: str, size: int, extra_headers: str = "") -> bytes:
    """A session POST whose JSON body is padded with spaces to `size` bytes (JSON allows trailing whitespace)."""
    body = SESSION_BODY + b" " * max(0, size - len(SESSION_BODY))
    head = (
        "POST /v1/recommendations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-Id: {request_id}\r\n{extra_headers}\r\n"
    )
    return head.encode() + body


@pytest.mark.slow
def test_random_mixes_of_pipelined_gets_and_bodies_cut_anywhere_are_answered_in_order(server: Uwsgi) -> None:
    """The router's body buffering and pipelining together (api/uwsgi/*.patch), attacked with what a client may send:
    bodies from empty to over the limit, requests split at random points, `Connection: close` midway. Every request
    before the first that ends the connection is answered, in order; nothing after it is; the router never restarts."""
    rng = random.Random(20261130)
    router_pid = _router(server).pid
    for connection_number in range(150):
        requests_sent: list[tuple[str, int]] = []  # (request id, expected status)
        stream = b""
        ends_connection = False
        for index in range(rng.randint(1, 4)):
            request_id = f"mix-{connection_number}-{index}"
            kind = rng.choice(["get", "small", "medium", "large", "limit", "over", "close"])
            if kind == "get":
                stream += _get(LIVENESS_PATH, f"X-Request-Id: {request_id}\r\n")
            elif kind == "over":
                stream += _session_post(request_id, MAX_BODY_BYTES + 1)
            elif kind == "close":
                stream += _get(LIVENESS_PATH, f"X-Request-Id: {request_id}\r\nConnection: close\r\n")
            else:
                size = {"small": 0, "medium": 40_000, "large": 100_000, "limit": MAX_BODY_BYTES}[kind]
                stream += _session_post(request_id, size)
            requests_sent.append((request_id, 413 if kind == "over" else 200))
            ends_connection = kind in ("over", "close")
            if ends_connection:
                break
        cuts = sorted(rng.sample(range(1, len(stream)), k=min(rng.randint(0, 5), len(stream) - 1)))
        segments = [stream[start:end] for start, end in itertools.pairwise([0, *cuts, len(stream)])]
        with _Connection(server) as connection:
            connection.send(*segments, pause=rng.choice([0.0, 0.005, 0.02]))
            answers = connection.answers(None if ends_connection else len(requests_sent), timeout=10)
        statuses = [status for status, _, _ in answers]
        assert statuses == [status for _, status in requests_sent], (connection_number, requests_sent, answers)
        echoed = [headers.get("x-request-id") for status, headers, _ in answers if status == 200]
        assert echoed == [request_id for request_id, status in requests_sent if status == 200], connection_number
    assert _router(server).pid == router_pid, "the HTTP router restarted (crashed) during the mix"
    assert _exchange(server, _get(LIVENESS_PATH), until_closed=False).responses[0][0] == 200
