"""Open-loop HTTP/1.1 load over keep-alive connections, and the search for the highest rate a server sustains.

Requests leave on a fixed schedule whatever the server does, and latency is measured from the scheduled send time,
so a slow server shows up as latency instead of silently lowering the offered load (no coordinated omission).
"""

import asyncio
import gc
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

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


class _Connections:
    def __init__(self, host: str, port: int, limit: int, *, keep_alive: bool) -> None:
        self._host, self._port, self._keep_alive = host, port, keep_alive
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(limit)
        self._loop = asyncio.get_running_loop()

    async def request(self, raw: bytes) -> tuple[int, str | None, float]:
        """Status, X-Model-Version and when the request was written."""
        async with self._slots:
            reader, writer = self._idle.pop() if self._idle else await asyncio.open_connection(self._host, self._port)
            sent = self._loop.time()
            try:
                writer.write(raw)
                response = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                writer.close()
                raise
            if self._keep_alive:
                self._idle.append((reader, writer))
            else:
                writer.close()
            return (*response, sent)

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, str | None]:
    """Status and X-Model-Version of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    if "content-length" not in headers:
        raise ValueError("response without Content-Length")
    await reader.readexactly(int(headers["content-length"]))
    return status, headers.get("x-model-version")


async def _run_step(
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
    pool = _Connections(host, port, connections, keep_alive=keep_alive)
    latencies: list[float] = []
    answered: list[float] = []
    written: list[float] = []
    numbers: list[int] = []
    lags: list[float] = []
    versions: Counter[str] = Counter()
    errors = 0
    loop = asyncio.get_running_loop()
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

    async def one(number: int, scheduled: float) -> None:
        nonlocal errors
        lags.append(loop.time() - scheduled)
        try:
            status, version, written_at = await pool.request(raw_request(number))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            return
        if status == 200:
            now = loop.time()
            latencies.append(now - scheduled)
            answered.append(now)
            written.append(written_at)
            numbers.append(number)
            if version is not None:
                versions[version] += 1
        else:
            errors += 1

    total = int(rate * seconds)
    start = loop.time() + 0.05
    tasks: list[asyncio.Task[None]] = []
    sent = 0
    while sent < total:
        now = loop.time()
        due = min(total, int((now - start) * rate) + 1) if now >= start else 0
        for index in range(sent, due):
            tasks.append(asyncio.create_task(one(index, start + index / rate)))
        sent = max(sent, due)
        await asyncio.sleep(TICK_SECONDS)
    await asyncio.wait(tasks, timeout=30)
    finished = loop.time()
    pool.close()
    elapsed = max(finished - start, 1e-9)
    values = np.array(latencies) * 1000 if latencies else np.array([float("nan")])

    def timed(chosen: list[int]) -> tuple[TimedRequest, ...]:
        # asyncio's loop.time() is time.monotonic(), the clock the server-side traces use.
        return tuple(
            TimedRequest(f"{tag_prefix}{numbers[i]}", answered[i] - latencies[i], written[i], answered[i])
            for i in chosen
        )

    slowest_ones, typical_ones = _slowest_and_typical(latencies, slowest)
    return StepResult(
        offered_rps=rate,
        achieved_rps=len(latencies) / elapsed,
        completed=len(latencies),
        errors=errors + sum(1 for task in tasks if not task.done()),
        p50_ms=float(np.percentile(values, 50)),
        p99_ms=float(np.percentile(values, 99)),
        p999_ms=float(np.percentile(values, 99.9)),
        model_versions=dict(versions),
        p99_send_lag_ms=float(np.percentile(lags, 99) * 1000) if lags else 0.0,
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
    # The step keeps a task per request alive, so the client's own full collections grew to 13-19 ms pauses (one or
    # two per 5 s step at 2,000 req/s). Sends due during such a pause leave late and their latency counted against
    # the server, a third of the p99 at 70 % load. A separate client machine would not pause the server's clock.
    gc.collect()
    gc.disable()
    try:
        return asyncio.run(
            _run_step(
                host,
                port,
                paths,
                rate=rate,
                seconds=seconds,
                connections=connections,
                keep_alive=keep_alive,
                slowest=slowest,
            )
        )
    finally:
        gc.enable()


def warm_up(host: str, port: int, paths: Sequence[str]) -> None:
    started = time.monotonic()
    run_step(host, port, paths, rate=100, seconds=1.0, connections=8)
    if time.monotonic() - started > 30:
        raise RuntimeError("warm-up took over 30 s; is the server overloaded?")
