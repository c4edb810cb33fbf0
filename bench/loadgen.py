"""Open-loop HTTP/1.1 load over keep-alive connections.

Requests leave on a fixed schedule whatever the server does, and latency is measured from the scheduled send time,
so a slow server shows up as latency instead of silently lowering the offered load (no coordinated omission).
"""

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TICK_SECONDS = 0.001


@dataclass(frozen=True)
class StepResult:
    offered_rps: float
    achieved_rps: float
    completed: int
    errors: int
    p50_ms: float
    p99_ms: float
    p999_ms: float


class _Connections:
    def __init__(self, host: str, port: int, limit: int) -> None:
        self._host, self._port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(limit)

    async def request(self, raw: bytes) -> int:
        async with self._slots:
            reader, writer = self._idle.pop() if self._idle else await asyncio.open_connection(self._host, self._port)
            try:
                writer.write(raw)
                status = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                writer.close()
                raise
            self._idle.append((reader, writer))
            return status

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return status


async def _run_step(
    host: str, port: int, paths: Sequence[str], *, rate: float, seconds: float, connections: int
) -> StepResult:
    pool = _Connections(host, port, connections)
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    requests = [f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode() for path in paths]

    async def one(raw: bytes, scheduled: float) -> None:
        nonlocal errors
        try:
            status = await pool.request(raw)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            return
        if status == 200:
            latencies.append(loop.time() - scheduled)
        else:
            errors += 1

    total = int(rate * seconds)
    start = loop.time() + 0.05
    tasks: list[asyncio.Task[None]] = []
    cycle = itertools.cycle(requests)
    sent = 0
    while sent < total:
        now = loop.time()
        due = min(total, int((now - start) * rate) + 1) if now >= start else 0
        for index in range(sent, due):
            tasks.append(asyncio.create_task(one(next(cycle), start + index / rate)))
        sent = max(sent, due)
        await asyncio.sleep(TICK_SECONDS)
    await asyncio.wait(tasks, timeout=30)
    finished = loop.time()
    pool.close()
    elapsed = max(finished - start, 1e-9)
    values = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
    return StepResult(
        offered_rps=rate,
        achieved_rps=len(latencies) / elapsed,
        completed=len(latencies),
        errors=errors + sum(1 for task in tasks if not task.done()),
        p50_ms=float(np.percentile(values, 50)),
        p99_ms=float(np.percentile(values, 99)),
        p999_ms=float(np.percentile(values, 99.9)),
    )


def run_step(
    host: str, port: int, paths: Sequence[str], *, rate: float, seconds: float, connections: int
) -> StepResult:
    return asyncio.run(_run_step(host, port, paths, rate=rate, seconds=seconds, connections=connections))


def warm_up(host: str, port: int, paths: Sequence[str]) -> None:
    started = time.monotonic()
    run_step(host, port, paths, rate=100, seconds=1.0, connections=8)
    if time.monotonic() - started > 30:
        raise RuntimeError("warm-up took over 30 s; is the server overloaded?")
