"""Routing by a real Fluent Bit: a FireLens-like main config @INCLUDEs our file, whose AWS outputs become files.

The main config copies what FireLens generates (forward inputs on a unix socket and TCP, a record_modifier that adds
the ECS metadata, then @INCLUDE of our file). Records go in over the forward protocol, encoded by the small msgpack
writer below, as the awsfirelens log driver sends them. Everything in our file is used as written except the outputs
(each becomes a `file` output with the same Alias and Match) and the paths and port that need this machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from api.contract import LIVENESS_PATH, READINESS_PATH, URGENT_LOG_LEVELS

ROOT = Path(__file__).resolve().parents[2]
LOGGING_DIR = ROOT / "logging"
CONTRACT: dict[str, Any] = json.loads((LOGGING_DIR / "contract.json").read_text())
APP = str(CONTRACT["app_container_name"])
TASK_ID = "0123456789abcdef0123456789abcdef"
APP_TAG = f"{APP}-firelens-{TASK_ID}"
APP_TIME = datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
TRACEBACK_LINE = 'Traceback (most recent call last):  File "/app/api/serving/app.py", line 42, in <module>'


# --- a msgpack writer for the forward protocol (maps, arrays, strings, ints, floats, EventTime) ----------------------


@dataclass(frozen=True)
class EventTime:
    """Fluentd's EventTime: msgpack extension type 0 carrying seconds and nanoseconds."""

    seconds: int
    nanoseconds: int


def pack(value: object) -> bytes:  # noqa: PLR0911 - one return per msgpack type reads best
    if value is None:
        return b"\xc0"
    if isinstance(value, bool):
        return b"\xc3" if value else b"\xc2"
    if isinstance(value, int):
        if 0 <= value < 0x80:
            return bytes([value])
        if -32 <= value < 0:
            return struct.pack(">b", value)
        return b"\xcf" + struct.pack(">Q", value) if value >= 0 else b"\xd3" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"\xcb" + struct.pack(">d", value)
    if isinstance(value, EventTime):
        return b"\xd7\x00" + struct.pack(">II", value.seconds, value.nanoseconds)
    if isinstance(value, str):
        data = value.encode()
        return _header(len(data), fix=0xA0, fix_limit=32, codes=(b"\xd9", b"\xda", b"\xdb")) + data
    if isinstance(value, list | tuple):
        return _header(len(value), fix=0x90, fix_limit=16, codes=(None, b"\xdc", b"\xdd")) + b"".join(
            pack(item) for item in value
        )
    if isinstance(value, dict):
        return _header(len(value), fix=0x80, fix_limit=16, codes=(None, b"\xde", b"\xdf")) + b"".join(
            pack(key) + pack(item) for key, item in value.items()
        )
    raise TypeError(f"cannot pack {type(value).__name__}")


def _header(length: int, fix: int, fix_limit: int, codes: tuple[bytes | None, bytes, bytes]) -> bytes:
    one_byte, two_bytes, four_bytes = codes
    if length < fix_limit:
        return bytes([fix | length])
    if one_byte is not None and length < 0x100:
        return one_byte + struct.pack(">B", length)
    if length < 0x10000:
        return two_bytes + struct.pack(">H", length)
    return four_bytes + struct.pack(">I", length)


def test_msgpack_writer_produces_the_bytes_of_the_specification() -> None:
    assert pack({"a": 1}) == b"\x81\xa1a\x01"
    assert pack([-1, 300, None, True]) == b"\x94\xff\xcf" + (300).to_bytes(8, "big") + b"\xc0\xc3"
    assert pack("x" * 40) == b"\xd9\x28" + b"x" * 40
    assert pack("é" * 20000)[:3] == b"\xda\x9c\x40"
    assert pack(list(range(20)))[:3] == b"\xdc\x00\x14"
    assert pack(EventTime(1, 2)) == b"\xd7\x00\x00\x00\x00\x01\x00\x00\x00\x02"
    assert pack(1.5) == b"\xcb?\xf8\x00\x00\x00\x00\x00\x00"


# --- config for this machine ----------------------------------------------------------------------------------------


@dataclass
class Block:
    header: str
    lines: list[str]

    def key(self, name: str) -> str | None:
        for line in self.lines:
            key, _, value = line.strip().partition(" ")
            if key.lower() == name.lower():
                return value.strip()
        return None


def blocks(text: str) -> list[Block]:
    """Our config split into sections, comments dropped."""
    found: list[Block] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if re.fullmatch(r"\[[A-Za-z_]+\]", stripped):
            found.append(Block(stripped.upper(), []))
        else:
            found[-1].lines.append(stripped)
    return found


def local_config(work: Path, http_port: int) -> tuple[str, dict[str, str]]:
    """Our config with file outputs in place of AWS; returns it and the file each Alias writes."""
    overrides = {
        "parsers_file": str(LOGGING_DIR / "parsers.conf"),
        "storage.path": str(work / "storage"),
        "http_port": str(http_port),
    }
    files: dict[str, str] = {}
    rendered: list[str] = []
    for block in blocks((LOGGING_DIR / "extra.conf").read_text()):
        if block.header == "[OUTPUT]":
            alias, match = block.key("alias"), block.key("match")
            assert alias and match, block
            files[alias] = str(work / "out" / f"{alias}.log")
            lines = ["Name file", f"Alias {alias}", f"Match {match}", f"Path {work / 'out'}", f"File {alias}.log"]
        else:
            lines = []
            for line in block.lines:
                key = line.partition(" ")[0].lower()
                lines.append(f"{key} {overrides[key]}" if key in overrides else line)
        rendered += [block.header, *(f"    {line}" for line in lines), ""]
    return "\n".join(rendered), files


def firelens_main_config(included: Path, unix_path: Path, tcp_port: int) -> str:
    """The shape of the config FireLens generates around a custom file."""
    return f"""[INPUT]
    Name forward
    unix_path {unix_path}

[INPUT]
    Name forward
    Listen 127.0.0.1
    Port {tcp_port}

[FILTER]
    Name record_modifier
    Match *
    Record ecs_cluster recsys-test
    Record ecs_task_arn arn:aws:ecs:region:account:task/recsys-test/{TASK_ID}
    Record ecs_task_definition recsys-test:7

@INCLUDE {included}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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


def forward_message(tag: str, container: str, lines: Sequence[str]) -> bytes:
    now = time.time_ns()
    entries = [
        [
            EventTime(now // 10**9, now % 10**9),
            {"container_id": "f" * 64, "container_name": f"/ecs-{container}", "source": "stdout", "log": line},
        ]
        for line in lines
    ]
    return pack([tag, entries])


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys in a record: {keys}"
    return dict(pairs)


def read_file_output(path: Path) -> list[tuple[str, float, dict[str, Any]]]:
    """Lines of the `file` output's default format: `<tag>: [<time>, <record>]` (or `[[<time>, <metadata>], ...]`)."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        tag, separator, rest = line.partition(": ")
        event = json.loads(rest, object_pairs_hook=unique_keys) if separator else None
        assert isinstance(event, list) and len(event) == 2, f"unexpected line in {path.name}: {line!r}"
        timestamp, record = event
        if isinstance(timestamp, list):
            timestamp = timestamp[0]
        events.append((tag, float(timestamp), record))
    return events


def message_of(record: dict[str, Any]) -> str:
    return (
        str(record["message"]) if "message" in record else "traceback" if record.get("log") == TRACEBACK_LINE else "?"
    )


# --- the run --------------------------------------------------------------------------------------------------------


def fluent_bit_binary() -> str | None:
    for candidate in (shutil.which("fluent-bit"), "/opt/fluent-bit/bin/fluent-bit", "/fluent-bit/bin/fluent-bit"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass
class Router:
    process: subprocess.Popen[bytes]
    log: Path
    unix_path: Path
    tcp_port: int
    http_port: int
    files: dict[str, str]

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    binary = fluent_bit_binary()
    if binary is None:
        pytest.skip(
            "fluent-bit not on PATH (nor in /opt/fluent-bit/bin): no Fluent Bit binary is packaged for these machines "
            "(Debian bookworm, PyPI, npm); install Fluent Bit 5.0.x or run inside the aws-for-fluent-bit image to run "
            "this routing test"
        )
    (tmp_path / "out").mkdir()
    http_port, tcp_port = free_port(), free_port()
    included, files = local_config(tmp_path, http_port)
    (tmp_path / "extra.conf").write_text(included)
    unix_path = tmp_path / "fluent.sock"
    main = tmp_path / "fluent-bit.conf"
    main.write_text(firelens_main_config(tmp_path / "extra.conf", unix_path, tcp_port))
    log = tmp_path / "fluent-bit.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([binary, "-c", str(main)], stdout=sink, stderr=subprocess.STDOUT)
    running = Router(process, log, unix_path, tcp_port, http_port, files)
    try:
        wait_until_listening(running)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            # Grace is 30 s in our config; the test has read what it needs by now.
            process.kill()
            process.wait(timeout=5)


def wait_until_listening(running: Router) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            pytest.fail(f"fluent-bit exited with {running.process.returncode}:\n{running.output()}")
        if running.unix_path.exists():
            try:
                socket.create_connection(("127.0.0.1", running.tcp_port), timeout=1).close()
                return
            except OSError:
                pass
        time.sleep(0.1)
    pytest.fail(f"fluent-bit did not listen within 15 s:\n{running.output()}")


def send_unix(path: Path, payload: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(str(path))
        connection.sendall(payload)


def send_tcp(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(payload)


def collect(router: Router, s3_count: int, cloudwatch_count: int) -> tuple[list[Any], list[Any]]:
    (cloudwatch_alias,) = [alias for alias in router.files if "cloudwatch" in alias]
    (s3_alias,) = [alias for alias in router.files if "s3" in alias]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        s3 = read_file_output(Path(router.files[s3_alias]))
        cloudwatch = read_file_output(Path(router.files[cloudwatch_alias]))
        if len(s3) >= s3_count and len(cloudwatch) >= cloudwatch_count:
            break
        time.sleep(0.25)
    # A few more flush intervals: a rewrite loop or a duplicate would show up as extra records.
    time.sleep(3)
    return read_file_output(Path(router.files[s3_alias])), read_file_output(Path(router.files[cloudwatch_alias]))


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
