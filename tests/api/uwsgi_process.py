"""Start real uWSGI with api/uwsgi.ini on a free loopback port; always bounded in time and always killed."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from api.contract import LIVENESS_PATH, MODEL_DIR_ENV

ROOT = Path(__file__).resolve().parents[2]
UWSGI = Path(sys.executable).with_name("uwsgi")
INI = ROOT / "api" / "uwsgi.ini"
START_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(model_dir: Path, log: Path, *, module: str | None = None, workers: int = 2) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "APP_BIND": f"127.0.0.1:{port}",
        "APP_WORKERS": str(workers),
        MODEL_DIR_ENV: str(model_dir),
    }
    command = [str(UWSGI), "--ini", str(INI)]
    if module is not None:
        # Later options override earlier ones, so this replaces the ini's module for the test only.
        command += ["--module", module]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Server(process=process, url=f"http://127.0.0.1:{port}", log=log)


def wait_until_live(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"uWSGI exited {server.process.returncode}:\n{server.output()}")
        try:
            if requests.get(server.url + LIVENESS_PATH, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"uWSGI not live after {START_TIMEOUT_SECONDS}s:\n{server.output()}")


def kill(server: Server) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)


@contextmanager
def running(model_dir: Path, log: Path, *, module: str | None = None, workers: int = 2) -> Iterator[Server]:
    server = start(model_dir, log, module=module, workers=workers)
    try:
        wait_until_live(server)
        yield server
    finally:
        kill(server)
