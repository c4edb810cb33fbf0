"""Routing by a real Fluent Bit, started through the image's entrypoint, with a FireLens-like main config around our
file (tests/logging/router_harness.py has the set-up). The stop sequence is tested in test_router_shutdown.py.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from api.contract import LIVENESS_PATH, READINESS_PATH, URGENT_LOG_LEVELS
from tests.logging.router_harness import (
    APP,
    APP_TAG,
    CONTRACT,
    NO_FLUENT_BIT,
    TASK_ID,
    EventTime,
    Router,
    fluent_bit_binary,
    forward_message,
    pack,
    read_file_output,
    send_tcp,
    send_unix,
    start_router,
)

APP_TIME = datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
TRACEBACK_LINE = 'Traceback (most recent call last):  File "/app/api/serving/app.py", line 42, in <module>'


def test_msgpack_writer_produces_the_bytes_of_the_specification() -> None:
    assert pack({"a": 1}) == b"\x81\xa1a\x01"
    assert pack([-1, 300, None, True]) == b"\x94\xff\xcf" + (300).to_bytes(8, "big") + b"\xc0\xc3"
    assert pack("x" * 40) == b"\xd9\x28" + b"x" * 40
    assert pack("é" * 20000)[:3] == b"\xda\x9c\x40"
    assert pack(list(range(20)))[:3] == b"\xdc\x00\x14"
    assert pack(EventTime(1, 2)) == b"\xd7\x00\x00\x00\x00\x01\x00\x00\x00\x02"
    assert pack(1.5) == b"\xcb?\xf8\x00\x00\x00\x00\x00\x00"


# --- records --------------------------------------------------------------------------------------------------------


def app_line(level: str, message: str, path: str | None = None) -> str:
    line: dict[str, Any] = {
        "time": APP_TIME.isoformat(timespec="milliseconds"),
        "level": level,
        "logger": "api",
        "message": message,
    }
    if path is not None:
        line |= {"request_id": message, "method": "GET", "path": path, "status": 200, "duration_ms": 2.5}
        line |= {"model_version": "v1"}
    return json.dumps(line)


# message -> (line, expected in S3, expected in CloudWatch)
CASES: dict[str, tuple[str, bool, bool]] = {
    "request": (app_line("INFO", "request", "/recommendations"), True, False),
    "warning": (app_line("WARNING", "warning"), True, False),
    "error": (app_line("ERROR", "error"), True, True),
    "critical": (app_line("CRITICAL", "critical"), True, True),
    "ready-probe": (app_line("INFO", "ready-probe", READINESS_PATH), False, False),
    "live-probe": (app_line("DEBUG", "live-probe", LIVENESS_PATH), False, False),
    "failing-probe": (app_line("ERROR", "failing-probe", READINESS_PATH), True, True),
    "traceback": (TRACEBACK_LINE, True, False),
}


def message_of(record: dict[str, Any]) -> str:
    return (
        str(record["message"]) if "message" in record else "traceback" if record.get("log") == TRACEBACK_LINE else "?"
    )


# --- the run ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    binary = fluent_bit_binary()
    if binary is None:
        pytest.skip(NO_FLUENT_BIT)
    running = start_router(tmp_path, binary, entrypoint=True)
    try:
        yield running
    finally:
        # The entrypoint holds SIGTERM for at least one metrics period before Fluent Bit's own stop.
        running.stop(timeout=20)


def collect(router: Router, s3_count: int, cloudwatch_count: int) -> tuple[list[Any], list[Any]]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        s3 = read_file_output(router.file_of("s3"))
        cloudwatch = read_file_output(router.file_of("cloudwatch"))
        if len(s3) >= s3_count and len(cloudwatch) >= cloudwatch_count:
            break
        time.sleep(0.25)
    # A few more flush intervals: a rewrite loop or a duplicate would show up as extra records.
    time.sleep(3)
    return read_file_output(router.file_of("s3")), read_file_output(router.file_of("cloudwatch"))


@pytest.mark.slow
def test_real_fluent_bit_routes_app_records_as_designed(router: Router) -> None:
    lines = [line for line, _, _ in CASES.values()]
    send_unix(router.unix_path, forward_message(APP_TAG, APP, lines))
    other = f"worker-firelens-{TASK_ID}"
    send_tcp(router.tcp_port, forward_message(other, "worker", [app_line("CRITICAL", "other-container")]))
    send_tcp(router.tcp_port, forward_message("firelens-healthcheck", "healthcheck", ["ping"]))

    expected_s3 = {message for message, (_, to_s3, _) in CASES.items() if to_s3}
    expected_cloudwatch = {message for message, (_, _, to_cloudwatch) in CASES.items() if to_cloudwatch}
    s3, cloudwatch = collect(router, len(expected_s3), len(expected_cloudwatch))
    context = router.output()

    assert sorted(message_of(record) for _, _, record in s3) == sorted(expected_s3), context
    assert sorted(message_of(record) for _, _, record in cloudwatch) == sorted(expected_cloudwatch), context
    assert {tag for tag, _, _ in s3} == {APP_TAG}
    assert {tag for tag, _, _ in cloudwatch} == {f"urgent.{APP_TAG}"}
    assert {record["level"] for _, _, record in cloudwatch} <= set(URGENT_LOG_LEVELS)

    for _, timestamp, record in s3:
        assert record["ecs_task_definition"] == "recsys-test:7"
        assert record["container_name"] == f"/ecs-{APP}"
        if message_of(record) == "traceback":
            assert record["log"] == TRACEBACK_LINE
        else:
            assert "log" not in record
            assert record["time"] == APP_TIME.isoformat(timespec="milliseconds")
            assert timestamp == pytest.approx(APP_TIME.timestamp(), abs=0.001)


@pytest.mark.slow
def test_real_fluent_bit_answers_the_container_health_check(router: Router) -> None:
    url = f"http://127.0.0.1:{router.http_port}{CONTRACT['health_check_path']}"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200, router.output()
