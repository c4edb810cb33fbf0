"""HTTP framing at the edge of the app (issue 14, item 9): oversized request heads and pipelined requests.

The Flask tests check what the app answers; the uWSGI tests check that those answers reach a client through the real
HTTP router -> fastrouter -> worker chain of api/uwsgi.ini, over raw sockets with bounded waits.
"""

import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from api.contract import LIVENESS_PATH
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
    responses: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)


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


def _parse_responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
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


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pipelined", "first_answer_key"),
    [
        (_get(LIVENESS_PATH) + _get(USER + "?k=2") + _get(LIVENESS_PATH), "status"),
        # The first request's body is kept whole; only what follows it is dropped.
        (SESSION_POST + _get(LIVENESS_PATH), "items"),
    ],
    ids=["three-gets", "post-with-body-then-get"],
)
def test_uwsgi_answers_the_first_of_pipelined_requests_completely_then_closes(
    server: Uwsgi, pipelined: bytes, first_answer_key: str
) -> None:
    # uWSGI 2.0's HTTP router drops bytes after the first request and turns keep-alive off (uwsgi.ini): the first
    # answer must still be whole, and the close must come at once so the client retries the rest (RFC 9112
    # section 9.3.2). Behind the ALB this does not arise: the ALB does not pipeline to its targets.
    exchange = _exchange(server, pipelined, until_closed=True)
    assert exchange.closed, f"still open after {exchange.seconds:.1f} s: {exchange.data!r}"
    assert exchange.seconds < 2.0
    assert len(exchange.responses) == 1, exchange.data
    status, _, body = exchange.responses[0]
    assert status == 200, body
    assert first_answer_key in json.loads(body)
    # Nothing after the complete first answer: no partial second one for the client to misread.
    assert exchange.data.endswith(body)
    retried = _exchange(server, _get(USER + "?k=2"), until_closed=False)
    assert retried.responses[0][0] == 200


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
