"""The log back-pressure benchmark's stand-ins: the non-blocking relay drops only what its buffer cannot hold."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.log_backpressure import buffer_bytes

ROOT = Path(__file__).resolve().parents[2]
LINE = b'{"level":"INFO","request_id":"r","path":"/v1/users/u/recommendations"}\n'


def relay(tmp_path: Path, max_bytes: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bench.log_pipes", "relay", "--counts", str(tmp_path / "relay.json")]
    return subprocess.Popen(
        [*command, "--max-bytes", str(max_bytes)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT
    )


def test_a_relay_whose_reader_keeps_up_loses_nothing(tmp_path: Path) -> None:
    process = relay(tmp_path, max_bytes=1_000_000)
    out, _ = process.communicate(LINE * 5_000, timeout=60)
    assert out.count(b"\n") == 5_000
    assert json.loads((tmp_path / "relay.json").read_text()) == {"read": 5_000, "dropped": 0}


def test_a_relay_whose_reader_stops_drops_new_lines_once_its_buffer_is_full(tmp_path: Path) -> None:
    process = relay(tmp_path, max_bytes=10_000)
    assert process.stdin is not None and process.stdout is not None
    # Nobody reads the relay's output while 20,000 lines (1.4 MB) arrive: the pipe (64 KiB) and the buffer fill up.
    process.stdin.write(LINE * 20_000)
    process.stdin.close()
    time.sleep(1.0)
    delivered = []
    reader = threading.Thread(target=lambda: delivered.append(process.stdout.read() if process.stdout else b""))
    reader.start()
    process.wait(timeout=60)
    reader.join(timeout=60)
    counts = json.loads((tmp_path / "relay.json").read_text())
    lines = delivered[0].count(b"\n")
    assert counts["read"] == 20_000
    assert counts["dropped"] > 0
    assert lines + counts["dropped"] == 20_000
    assert lines < 20_000 * 0.5  # what the pipe and the 10 kB buffer hold, not the whole burst


def test_buffer_sizes_read_as_ecs_passes_them_to_the_log_driver() -> None:
    assert buffer_bytes("25m") == 25 * 2**20
    assert buffer_bytes("1m") == 2**20
    assert buffer_bytes("512k") == 512 * 2**10
    assert buffer_bytes("4096") == 4096
