"""Open-loop HTTP/1.1 load over keep-alive connections, and the search for the highest rate a server sustains.

Requests leave on a fixed schedule whatever the server does, and latency is measured from the scheduled send time,
so a slow server shows up as latency instead of silently lowering the offered load (no coordinated omission).
"""

import errno
import gc
import math
import select
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench.hostnoise import steal_seconds

TICK_SECONDS = 0.001
MIN_ACHIEVED_SHARE = 0.95
# Well above the service time (a 1M-item recommendation takes 1-4 ms at light load) and well below what a queue in
# front of the workers adds: with the former 100 ms, a 1M-item step at p50 33 ms counted as sustained although every
# request was waiting behind others. A p99 above this means the offered rate exceeds what the workers serve.
P99_LIMIT_MS = 25.0
MAX_ERROR_SHARE = 0.01
# A median above this means most requests waited behind others: a queue, not a spike in the tail (at 1M items the
# median is 1-2 ms up to the maximum; past it, 5-300 ms).
QUEUE_P50_MS = 5.0
RATE_GROWTH = 1.4
# The ramp's bracket (x1.4) is narrowed by geometric bisection until high / low is within this; four steps from 1.4.
# The maximum is the bracket's low end, so each maximum reads up to this much low and a ratio of two maxima moves in
# steps of about this size: at 5 % (until 2026-12) the similar-items ratio of one run could only read 0.85, 0.88 or
# 0.92 around its true value.
BRACKET_TOLERANCE = 0.025
MAX_BISECTIONS = 4
# After the last request is sent, answers still outstanding this long are counted as errors.
ANSWER_WAIT_SECONDS = 30.0
READ_BYTES = 65536
# A response head longer than this is not one this server writes: the connection is dropped and its request failed.
MAX_HEAD_BYTES = 65536


@dataclass(frozen=True)
class TimedRequest:
    """One request on the monotonic clock the server's traces share (bench/stalltrace.py), named by the X-Request-Id
    it carried: when it was due, when it was written (after any wait for a free connection) and when its answer was
    read."""

    tag: str
    scheduled: float
    sent: float
    answered: float


@dataclass(frozen=True)
class StepResult:
    offered_rps: float
    achieved_rps: float
    completed: int
    errors: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    # X-Model-Version of the successful responses: shows when every worker serves a swapped-in version.
    model_versions: dict[str, int] = field(default_factory=dict)
    # How late the load generator itself started requests (its event loop's lag behind the schedule, before any
    # connection was waited for): latency the client added, not the server. 99th percentile, ms.
    p99_send_lag_ms: float = 0.0
    # CPU time the hypervisor took from this machine's cores during the step, summed over the cores, ms per second
    # (bench/hostnoise.py): a tail the host made, not the server.
    host_steal_ms_per_s: float = 0.0
    # With `slowest` asked for: that share of the slowest requests, and as many around the median for contrast.
    slowest: tuple[TimedRequest, ...] = ()
    typical: tuple[TimedRequest, ...] = ()


def sustained(step: StepResult) -> bool:
    """Achieved >= 95 % of offered, p99 <= P99_LIMIT_MS and < 1 % of the requests failed (NaN latency fails)."""
    sent = step.completed + step.errors
    return (
        step.achieved_rps >= MIN_ACHIEVED_SHARE * step.offered_rps
        and step.p99_ms <= P99_LIMIT_MS
        and step.errors < MAX_ERROR_SHARE * max(sent, 1)
    )


def _only_the_tail_was_long(step: StepResult) -> bool:
    sent = step.completed + step.errors
    return (
        step.achieved_rps >= MIN_ACHIEVED_SHARE * step.offered_rps
        and step.p50_ms <= QUEUE_P50_MS
        and step.errors < MAX_ERROR_SHARE * max(sent, 1)
    )


@dataclass(frozen=True)
class MaxSearch:
    # The highest offered rate sustained in any step (0.0 when none was).
    max_rps: float
    # Final (sustained, saturated) offered rates; None when the ramp ran out of steps before saturating twice.
    bracket: tuple[float, float] | None
    ramp: tuple[StepResult, ...]
    bisection: tuple[StepResult, ...]

    def as_json(self) -> dict[str, Any]:
        def steps(found: tuple[StepResult, ...]) -> list[dict[str, Any]]:
            return [{**asdict(step), "sustained": sustained(step)} for step in found]

        return {
            "max_rps": self.max_rps,
            "bracket_rps": list(self.bracket) if self.bracket else None,
            "ramp": steps(self.ramp),
            "bisection": steps(self.bisection),
        }


def find_max(
    measure: Callable[[float, str], StepResult],
    start_rate: float,
    *,
    max_steps: int,
    growth: float = RATE_GROWTH,
    tolerance: float = BRACKET_TOLERANCE,
    max_bisections: int = MAX_BISECTIONS,
) -> MaxSearch:
    """Ramp the offered rate by `growth` until two steps in a row saturate, then bisect the bracket it leaves.

    `measure(rate, phase)` runs one step at `rate`. Two saturated steps end the ramp because one latency spike on a
    shared machine is noise; the bracket is the highest sustained rate and the first step of that saturated pair,
    or the second when the first kept up and failed only on its tail (a spike: the maximum may lie above it, and the
    bisection's own repeat rule then decides). Without any sustained step, the saturated rate is halved until one is.
    """
    ramp: list[StepResult] = []
    rate = start_rate
    for _ in range(max_steps):
        ramp.append(measure(rate, "ramp"))
        if len(ramp) >= 2 and not sustained(ramp[-1]) and not sustained(ramp[-2]):
            break
        rate *= growth
    low = max((step.offered_rps for step in ramp if sustained(step)), default=0.0)
    if len(ramp) < 2 or sustained(ramp[-1]) or sustained(ramp[-2]):
        return MaxSearch(max_rps=low, bracket=None, ramp=tuple(ramp), bisection=())
    high = ramp[-1].offered_rps if _only_the_tail_was_long(ramp[-2]) else ramp[-2].offered_rps
    bisection: list[StepResult] = []
    while len({step.offered_rps for step in bisection}) < max_bisections and not (
        low > 0 and high <= low * (1 + tolerance)
    ):
        rate = math.sqrt(low * high) if low > 0 else high / 2
        step = measure(rate, "bisect")
        bisection.append(step)
        if not sustained(step) and _only_the_tail_was_long(step):
            # As in the ramp, one latency spike is noise on a shared machine: the same rate again decides. A real
            # queue fails again (and raises p50 too); a lone stall had understated the maximum by up to 20 %.
            step = measure(rate, "repeat")
            bisection.append(step)
        if sustained(step):
            low = rate
        else:
            high = rate
    return MaxSearch(max_rps=low, bracket=(low, high), ramp=tuple(ramp), bisection=tuple(bisection))


class _Connection:
    """One client socket: the request in flight on it (number, scheduled time, bytes), when that request was written,
    and its answer's bytes so far."""

    __slots__ = ("answer_end", "buffer", "connecting", "request", "sock", "status", "version", "written")

    def __init__(self, sock: socket.socket, request: tuple[int, float, bytes]) -> None:
        self.sock = sock
        self.connecting = True
        self.request: tuple[int, float, bytes] | None = request
        self.written = 0.0
        self.buffer = b""
        self.answer_end = -1
        self.status = 0
        self.version: str | None = None


class _Client:
    """Up to `limit` connections on raw non-blocking sockets under one epoll, with no task, future or stream per
    request: a request costs the client one send, one or two reads and the parsing of the answer's head.

    Until 2026-12 the client ran on asyncio streams with a task per request. It used 47-88 us of CPU per request on
    the cores the server shares (this one 35-49 us), and it wrote new requests only at its 1 ms tick, so every request
    left up to a tick late (send lag p99 1.8-2.0 ms against 0.5-1.1 ms here) and the step's p50 at 1M items read
    1.4-1.8 ms where the server answered in 0.5-0.9 ms (docs/api.md, "The load generator").
    """

    def __init__(self, host: str, port: int, limit: int, *, keep_alive: bool) -> None:
        self._address = (host, port)
        self._limit = limit
        self._keep_alive = keep_alive
        self._poller = select.epoll()
        self._open: dict[int, _Connection] = {}
        self._idle: list[_Connection] = []
        self._waiting: deque[tuple[int, float, bytes]] = deque()
        self.outstanding = 0
        self.errors = 0
        self.versions: Counter[str] = Counter()
        # One entry per 200 answer, in the order answered.
        self.numbers: list[int] = []
        self.scheduled: list[float] = []
        self.written: list[float] = []
        self.answered: list[float] = []

    def submit(self, number: int, scheduled: float, raw: bytes) -> None:
        """Write the request now on an idle connection or a new one; with all `limit` busy, once one is free."""
        self.outstanding += 1
        request = (number, scheduled, raw)
        if self._idle:
            self._send(self._idle.pop(), request)
        elif len(self._open) < self._limit:
            self._connect(request)
        else:
            self._waiting.append(request)

    def serve(self, timeout: float) -> None:
        """Handle what the sockets have ready, waiting up to `timeout` seconds for the first of it."""
        for descriptor, _ in self._poller.poll(timeout):
            connection = self._open.get(descriptor)
            if connection is None:
                continue
            if connection.connecting:
                self._connected(connection)
            else:
                self._read(connection)

    def close(self) -> None:
        """Close every connection. Requests still unanswered are the caller's to count (`outstanding`), not errors
        here as well."""
        self._waiting.clear()
        for connection in list(self._open.values()):
            connection.request = None
            self._drop(connection)
        self._poller.close()

    def _connect(self, request: tuple[int, float, bytes]) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        # A head and a body written apart must not wait for a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if sock.connect_ex(self._address) not in (0, errno.EINPROGRESS):
            sock.close()
            self._failed()
            return
        connection = _Connection(sock, request)
        self._open[sock.fileno()] = connection
        self._poller.register(sock, select.EPOLLOUT)  # writable once connected

    def _connected(self, connection: _Connection) -> None:
        request = connection.request
        if request is None or connection.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self._drop(connection)
            return
        connection.connecting = False
        self._poller.modify(connection.sock, select.EPOLLIN)
        self._send(connection, request)

    def _send(self, connection: _Connection, request: tuple[int, float, bytes]) -> None:
        connection.request = request
        connection.buffer = b""
        connection.answer_end = -1
        connection.written = time.monotonic()
        raw = request[2]
        try:
            # A connection with nothing in flight has an empty send buffer, so a request head goes in one call.
            if connection.sock.send(raw) != len(raw):
                raise OSError("the request was written in part")
        except OSError:
            self._drop(connection)

    def _read(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data or connection.request is None:
            # Closed by the server, or bytes no request asked for: either way the connection is done.
            self._drop(connection)
            return
        buffer = connection.buffer + data if connection.buffer else data
        if connection.answer_end < 0:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                connection.buffer = buffer
                if len(buffer) > MAX_HEAD_BYTES:
                    self._drop(connection)
                return
            try:
                connection.status, length, connection.version = _parse_head(buffer[:head_end])
            except ValueError:
                self._drop(connection)
                return
            connection.answer_end = head_end + 4 + length
        if len(buffer) < connection.answer_end:
            connection.buffer = buffer
            return
        if len(buffer) > connection.answer_end:  # more than the answer: nothing this client asked for
            self._drop(connection)
            return
        self._answered(connection)

    def _answered(self, connection: _Connection) -> None:
        request = connection.request
        assert request is not None
        connection.request = None
        self.outstanding -= 1
        if connection.status == 200:
            self.numbers.append(request[0])
            self.scheduled.append(request[1])
            self.written.append(connection.written)
            self.answered.append(time.monotonic())
            if connection.version is not None:
                self.versions[connection.version] += 1
        else:
            self.errors += 1
        if not self._keep_alive:
            self._drop(connection)
        elif self._waiting:
            self._send(connection, self._waiting.popleft())
        else:
            self._idle.append(connection)

    def _drop(self, connection: _Connection) -> None:
        """Close the connection; a request still on it failed, and a request waiting for a connection gets one."""
        self._open.pop(connection.sock.fileno(), None)
        if connection in self._idle:
            self._idle.remove(connection)
        self._poller.unregister(connection.sock)
        connection.sock.close()
        if connection.request is not None:
            connection.request = None
            self._failed()
        if self._waiting and len(self._open) < self._limit:
            self._connect(self._waiting.popleft())

    def _failed(self) -> None:
        self.outstanding -= 1
        self.errors += 1


def _parse_head(head: bytes) -> tuple[int, int, str | None]:
    """Status, Content-Length and X-Model-Version of a response head; ValueError without a Content-Length."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length: int | None = None
    version = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "x-model-version":
            version = value.strip()
    if length is None:
        raise ValueError("response without Content-Length")
    return status, length, version


def _run_step(
    host: str,
    port: int,
    paths: Sequence[str],
    *,
    rate: float,
    seconds: float,
    connections: int,
    keep_alive: bool,
    slowest: float,
) -> StepResult:
    client = _Client(host, port, connections, keep_alive=keep_alive)
    lags: list[float] = []
    # Keep-alive as the ALB does towards its targets; `Connection: close` as clients behind some other proxies do.
    connection = "" if keep_alive else "Connection: close\r\n"
    heads = [f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{connection}" for path in paths]
    # Traced steps name every request, so that the server's own times for it (bench/stalltrace.py) can be found.
    tag_prefix = f"bench-{uuid.uuid4().hex[:8]}-"

    untraced = [f"{head}\r\n".encode() for head in heads]

    def raw_request(number: int) -> bytes:
        if not slowest:
            return untraced[number % len(untraced)]
        return f"{heads[number % len(heads)]}X-Request-Id: {tag_prefix}{number}\r\n\r\n".encode()

    total = int(rate * seconds)
    stolen, steal_from = steal_seconds(), time.monotonic()
    start = steal_from + 0.05
    sent = 0
    try:
        while sent < total:
            now = time.monotonic()
            # Every wake-up (an answer or the tick) sends what has fallen due, so requests leave close to schedule.
            due = min(total, int((now - start) * rate) + 1) if now >= start else 0
            for number in range(sent, due):
                scheduled = start + number / rate
                lags.append(now - scheduled)
                client.submit(number, scheduled, raw_request(number))
            sent = max(sent, due)
            client.serve(TICK_SECONDS)
        deadline = time.monotonic() + ANSWER_WAIT_SECONDS
        while client.outstanding and time.monotonic() < deadline:
            client.serve(TICK_SECONDS)
        finished = time.monotonic()
        stolen = steal_seconds() - stolen
        unanswered = client.outstanding
    finally:
        client.close()
    latencies = [answered - scheduled for answered, scheduled in zip(client.answered, client.scheduled, strict=True)]
    elapsed = max(finished - start, 1e-9)
    values = np.array(latencies) * 1000 if latencies else np.array([float("nan")])

    def timed(chosen: list[int]) -> tuple[TimedRequest, ...]:
        # time.monotonic() is the clock the server-side traces use.
        return tuple(
            TimedRequest(f"{tag_prefix}{client.numbers[i]}", client.scheduled[i], client.written[i], client.answered[i])
            for i in chosen
        )

    slowest_ones, typical_ones = _slowest_and_typical(latencies, slowest)
    return StepResult(
        offered_rps=rate,
        achieved_rps=len(latencies) / elapsed,
        completed=len(latencies),
        errors=client.errors + unanswered,
        p50_ms=float(np.percentile(values, 50)),
        p99_ms=float(np.percentile(values, 99)),
        p999_ms=float(np.percentile(values, 99.9)),
        model_versions=dict(client.versions),
        p99_send_lag_ms=float(np.percentile(lags, 99) * 1000) if lags else 0.0,
        host_steal_ms_per_s=stolen * 1000 / max(finished - steal_from, 1e-9),
        slowest=timed(slowest_ones),
        typical=timed(typical_ones),
    )


def _slowest_and_typical(latencies: list[float], share: float) -> tuple[list[int], list[int]]:
    """Indices of that share of the slowest latencies, and of as many around the median."""
    if not share or not latencies:
        return [], []
    order = np.argsort(latencies)
    count = max(1, int(len(latencies) * share))
    middle = max(0, len(order) // 2 - count // 2)
    return order[-count:].tolist(), order[middle : middle + count].tolist()


def run_step(
    host: str,
    port: int,
    paths: Sequence[str],
    *,
    rate: float,
    seconds: float,
    connections: int,
    keep_alive: bool = True,
    slowest: float = 0.0,
) -> StepResult:
    # A step keeps a record of every request until it ends. With a task per request (until 2026-12) the client's own
    # full collections grew to 13-19 ms pauses (one or two per 5 s step at 2,000 req/s); sends due during such a pause
    # leave late and their latency is counted against the server. A separate client machine would not pause the
    # server's clock, so collection stays off while a step runs.
    gc.collect()
    gc.disable()
    try:
        return _run_step(
            host,
            port,
            paths,
            rate=rate,
            seconds=seconds,
            connections=connections,
            keep_alive=keep_alive,
            slowest=slowest,
        )
    finally:
        gc.enable()


def warm_up(host: str, port: int, paths: Sequence[str]) -> None:
    started = time.monotonic()
    run_step(host, port, paths, rate=100, seconds=1.0, connections=8)
    if time.monotonic() - started > 30:
        raise RuntimeError("warm-up took over 30 s; is the server overloaded?")
