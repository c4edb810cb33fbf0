"""Runs a real Fluent Bit the way FireLens does, with our custom file @INCLUDEd and its AWS outputs turned into files.

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modules.router_contract import read_router_contract
from tools.testkit.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
LOGGING_DIR = ROOT / "logging"
CONTRACT: dict[str, Any] = read_router_contract()
APP = str(CONTRACT["app_container_name"])
TASK_ID = "0123456789abcdef0123456789abcdef"
APP_TAG = f"{APP}-firelens-{TASK_ID}"
ENTRYPOINT = LOGGING_DIR / "entrypoint.sh"

NO_FLUENT_BIT = (
    "fluent-bit not on PATH (nor in /opt/fluent-bit/bin): no Fluent Bit binary is packaged for these machines "
    "(Debian bookworm, PyPI, npm); install Fluent Bit 5.0.x (../shared/tools/build-fluent-bit.sh builds it) or run "
    "inside the aws-for-fluent-bit image to run this test"
)


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


def forward_message(tag: str, container: str, lines: Sequence[str], chunk: str | None = None) -> bytes:
    """Forward mode `[tag, [[time, record], ...], options]`; with `chunk`, Fluent Bit acknowledges the message after
    every record in it has passed the filters and been appended to a chunk."""
    now = time.time_ns()
    entries = [
        [
            EventTime(now // 10**9, now % 10**9),
            {"container_id": "f" * 64, "container_name": f"/ecs-{container}", "source": "stdout", "log": line},
        ]
        for line in lines
    ]
    return pack([tag, entries] if chunk is None else [tag, entries, {"chunk": chunk}])


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


# --- the run --------------------------------------------------------------------------------------------------------


def fluent_bit_binary() -> str | None:
    for candidate in (shutil.which("fluent-bit"), "/opt/fluent-bit/bin/fluent-bit", "/fluent-bit/bin/fluent-bit"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


class RouterError(AssertionError):
    pass


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

    def file_of(self, plugin: str) -> Path:
        (alias,) = [alias for alias in self.files if plugin in alias]
        return Path(self.files[alias])

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM as ECS sends it; the exit status, or a kill and RouterError when it outlives `timeout`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise RouterError(f"router still running {timeout} s after SIGTERM:\n{self.output()}") from None


def start_router(work: Path, binary: str, *, entrypoint: bool, env: dict[str, str] | None = None) -> Router:
    """Fluent Bit under the FireLens-like main config; with `entrypoint`, started through logging/entrypoint.sh as the
    image starts it, the metrics URL pointed at this run's port."""
    (work / "out").mkdir(parents=True)
    http_port, tcp_port = free_port(), free_port()
    included, files = local_config(work, http_port)
    (work / "extra.conf").write_text(included)
    unix_path = work / "fluent.sock"
    main = work / "fluent-bit.conf"
    main.write_text(firelens_main_config(work / "extra.conf", unix_path, tcp_port))
    command = [binary, "-c", str(main)]
    environment = dict(os.environ)
    if entrypoint:
        command = ["bash", str(ENTRYPOINT), *command]
        environment["ROUTER_METRICS_URL"] = f"http://127.0.0.1:{http_port}/api/v1/metrics/prometheus"
    environment.update(env or {})
    log = work / "fluent-bit.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=environment)
    router = Router(process, log, unix_path, tcp_port, http_port, files)
    try:
        wait_until_listening(router)
    except BaseException:
        process.kill()
        process.wait(timeout=5)
        raise
    return router


def wait_until_listening(router: Router) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if router.process.poll() is not None:
            raise RouterError(f"fluent-bit exited with {router.process.returncode}:\n{router.output()}")
        if router.unix_path.exists():
            try:
                socket.create_connection(("127.0.0.1", router.tcp_port), timeout=1).close()
                socket.create_connection(("127.0.0.1", router.http_port), timeout=1).close()
                return
            except OSError:
                pass
        time.sleep(0.05)
    raise RouterError(f"fluent-bit did not listen within 15 s:\n{router.output()}")


def send_unix(path: Path, payload: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(str(path))
        connection.sendall(payload)


def send_tcp(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(payload)


def send_acknowledged(connection: socket.socket, payload: bytes, chunk: str) -> None:
    """Sends one forward message carrying `chunk` and returns once Fluent Bit has acknowledged it."""
    connection.sendall(payload)
    expected = pack({"ack": chunk})
    received = b""
    while len(received) < len(expected):
        data = connection.recv(len(expected) - len(received))
        if not data:
            raise RouterError(f"connection closed before the ack of {chunk}")
        received += data
    assert received == expected, (received, expected)


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
