"""Stopping a real Fluent Bit right after a burst loses no urgent copy and no S3 record, when started as the image
starts it (through logging/entrypoint.sh).

Each run sends a burst of app records over the FireLens unix socket in acknowledged forward messages (Fluent Bit acks
a message once every record in it has passed the filters and been appended), then sends SIGTERM `gap` ms after the
last ack, as ECS does once the app has stopped, and counts what reached the CloudWatch and S3 stand-ins (file
outputs) by each record's unique message. Runs go in parallel, each with its own router.

A control run without the entrypoint shows the loss this guards against (Fluent Bit 5.0.x frees the copies still
queued in rewrite_tag's emitter at SIGTERM), so a harness that could not see a loss would fail here.

Longer soak (opt-in): ROUTER_SHUTDOWN_RUNS=200 ROUTER_SHUTDOWN_RECORDS=3000 pytest tests/logging/test_router_shutdown.py
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.contract import LOG_LEVELS, READINESS_PATH, URGENT_LOG_LEVELS
from tests.logging.router_harness import (
    APP,
    APP_TAG,
    CONTRACT,
    NO_FLUENT_BIT,
    Router,
    fluent_bit_binary,
    forward_message,
    read_file_output,
    send_acknowledged,
    start_router,
)


def positive_setting(name: str, default: int) -> int:
    text = os.environ.get(name, str(default))
    if not text.isdigit() or int(text) < 1:
        raise pytest.UsageError(f"{name}={text!r}: expected a whole number of at least 1 (default {default})")
    return int(text)


RUNS_AT_ZERO_GAP = positive_setting("ROUTER_SHUTDOWN_RUNS", 20)
RECORDS = positive_setting("ROUTER_SHUTDOWN_RECORDS", 3000)
OTHER_GAPS_MS = (2, 10, 30, 100, 300, 1000)
CONTROL_ATTEMPTS = 5
MESSAGE_SIZE = 100
# Two cores are shared; each run is mostly waiting (the entrypoint's poll, Fluent Bit's Grace ticks).
PARALLEL_RUNS = 4


@dataclass(frozen=True)
class Burst:
    lines: list[str]
    urgent: frozenset[str]
    to_s3: frozenset[str]


def burst(run: str, records: int) -> Burst:
    """Every level in turn; every 50th record a readiness-probe access record, which the router drops."""
    lines, urgent, to_s3 = [], set(), set()
    for index in range(records):
        level = LOG_LEVELS[index % len(LOG_LEVELS)]
        message = f"{run}-{index}"
        line: dict[str, object] = {
            "time": "2026-05-01T12:00:00.123+00:00",
            "level": level,
            "logger": "api",
            "message": message,
        }
        probe = index % 50 == 49 and level not in URGENT_LOG_LEVELS
        if probe:
            line |= {"request_id": message, "method": "GET", "path": READINESS_PATH, "status": 200}
        else:
            to_s3.add(message)
            if level in URGENT_LOG_LEVELS:
                urgent.add(message)
        lines.append(json.dumps(line))
    return Burst(lines, frozenset(urgent), frozenset(to_s3))


@dataclass(frozen=True)
class Outcome:
    run: str
    gap_ms: int
    urgent_sent: int
    urgent_lost: int
    s3_lost: int
    duplicated: int
    unexpected: int
    exit_status: int
    stop_seconds: float
    log_tail: str

    def summary(self) -> str:
        return (
            f"{self.run}: gap {self.gap_ms} ms, urgent lost {self.urgent_lost}/{self.urgent_sent}, "
            f"S3 lost {self.s3_lost}, duplicated {self.duplicated}, unexpected {self.unexpected}, "
            f"exit {self.exit_status}, stopped in {self.stop_seconds:.1f} s"
        )


def messages(router: Router, plugin: str) -> Counter[str]:
    return Counter(str(record.get("message")) for _, _, record in read_file_output(router.file_of(plugin)))


def stop_after_burst(work: Path, binary: str, gap_ms: int, *, entrypoint: bool) -> Outcome:
    sent = burst(work.name, RECORDS)
    router = start_router(work, binary, entrypoint=entrypoint)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(str(router.unix_path))
            for number, first in enumerate(range(0, len(sent.lines), MESSAGE_SIZE)):
                chunk = f"{work.name}-{number}"
                lines = sent.lines[first : first + MESSAGE_SIZE]
                send_acknowledged(connection, forward_message(APP_TAG, APP, lines, chunk=chunk), chunk)
            if gap_ms:
                time.sleep(gap_ms / 1000)
            stopping = time.monotonic()
            # A stop that outlives the stopTimeout ECS needs for it would end in SIGKILL there.
            status = router.stop(timeout=CONTRACT["min_stop_timeout_seconds"])
            stop_seconds = time.monotonic() - stopping
    finally:
        if router.process.poll() is None:
            router.process.kill()
            router.process.wait(timeout=5)
    cloudwatch, s3 = messages(router, "cloudwatch"), messages(router, "s3")
    return Outcome(
        run=work.name,
        gap_ms=gap_ms,
        urgent_sent=len(sent.urgent),
        urgent_lost=len(sent.urgent - cloudwatch.keys()),
        s3_lost=len(sent.to_s3 - s3.keys()),
        duplicated=sum(count - 1 for output in (cloudwatch, s3) for count in output.values()),
        unexpected=len((cloudwatch.keys() - sent.urgent) | (s3.keys() - sent.to_s3)),
        exit_status=status,
        stop_seconds=stop_seconds,
        log_tail=router.output()[-1500:],
    )


@pytest.fixture
def binary() -> str:
    found = fluent_bit_binary()
    if found is None:
        pytest.skip(NO_FLUENT_BIT)
    return found


def run_all(tmp_path: Path, binary: str, gaps: list[int], *, entrypoint: bool) -> list[Outcome]:
    with ThreadPoolExecutor(PARALLEL_RUNS) as pool:
        futures = [
            pool.submit(stop_after_burst, tmp_path / f"run{index:03d}-gap{gap}ms", binary, gap, entrypoint=entrypoint)
            for index, gap in enumerate(gaps)
        ]
        return [future.result() for future in futures]


def assert_nothing_lost(outcomes: list[Outcome]) -> None:
    report = "\n".join(outcome.summary() for outcome in outcomes)
    print(f"\n{report}")
    for outcome in outcomes:
        assert outcome.urgent_lost == 0, f"{report}\n\n{outcome.run}:\n{outcome.log_tail}"
        assert outcome.s3_lost == 0, f"{report}\n\n{outcome.run}:\n{outcome.log_tail}"
        assert outcome.duplicated == 0, report
        assert outcome.unexpected == 0, report
        assert outcome.exit_status == 0, f"{report}\n\n{outcome.run}:\n{outcome.log_tail}"


@pytest.mark.slow
def test_no_urgent_copy_is_lost_when_the_router_is_stopped_right_after_the_last_record(
    tmp_path: Path, binary: str
) -> None:
    assert_nothing_lost(run_all(tmp_path, binary, [0] * RUNS_AT_ZERO_GAP, entrypoint=True))


@pytest.mark.slow
def test_no_urgent_copy_is_lost_whatever_the_gap_before_the_stop(tmp_path: Path, binary: str) -> None:
    assert_nothing_lost(run_all(tmp_path, binary, list(OTHER_GAPS_MS), entrypoint=True))


@pytest.mark.slow
def test_without_the_entrypoint_fluent_bit_drops_queued_urgent_copies_at_sigterm(tmp_path: Path, binary: str) -> None:
    outcomes = []
    for attempt in range(CONTROL_ATTEMPTS):
        outcome = stop_after_burst(tmp_path / f"control{attempt}", binary, 0, entrypoint=False)
        outcomes.append(outcome)
        if outcome.urgent_lost:
            break
    report = "\n".join(outcome.summary() for outcome in outcomes)
    print(f"\n{report}")
    assert any(outcome.urgent_lost for outcome in outcomes), (
        f"{report}\n\nFluent Bit kept every urgent copy at SIGTERM without the entrypoint: either this harness can no "
        "longer see the loss, or this Fluent Bit no longer frees rewrite_tag's emitter queue at stop (then the "
        "entrypoint's hold may be unnecessary; docs/logging.md)"
    )
