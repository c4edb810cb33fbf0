"""The uWSGI server under test and the requests sent to it: start on a free loopback port, wait until ready, stop."""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import requests

from api.contract import MODEL_DIR_ENV, READINESS_PATH
from api.synthetic import user_id

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ZIPF_EXPONENT = 1.1
UNKNOWN_SHARE = 0.1
# Enough of the server's output to see why it failed; the per-request lines of a run are not kept.
LOG_TAIL_LINES = 2_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    # Keeps the last lines of the server's output and writes them to the log file when the server exits.
    log_tail: subprocess.Popen[bytes]
    ready_seconds: float

    @property
    def pid(self) -> int:
        return self.process.pid


def start_uwsgi(models: Path, port: int, workers: int, log: Path, extra_env: dict[str, str] | None = None) -> Server:
    """uWSGI on loopback, its output through a pipe as in production (to the log router), not into a file.

    The app logs a line per request. Written to a file on this machine's ext4, those writes stalled workers now and
    then (journal commits): at 1,900 req/s p99/p50 averaged 2.87 against 2.54 with the log in memory, 8 steps each.
    """
    env = {
        **os.environ,
        "APP_BIND": f"127.0.0.1:{port}",
        "APP_WORKERS": str(workers),
        MODEL_DIR_ENV: str(models),
        **(extra_env or {}),
    }
    started = time.monotonic()
    with log.open("wb") as sink:
        log_tail = subprocess.Popen(["tail", "-n", str(LOG_TAIL_LINES)], stdin=subprocess.PIPE, stdout=sink)
    assert log_tail.stdin is not None
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("uwsgi")), "--ini", str(ROOT / "api" / "uwsgi.ini")],
        cwd=ROOT,
        env=env,
        stdout=log_tail.stdin,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log_tail.stdin.close()  # uWSGI holds the only write end: its exit ends `tail`
    try:
        while time.monotonic() - started < 60:
            if process.poll() is not None:
                log_tail.wait(timeout=10)
                raise SystemExit(f"uWSGI exited {process.returncode}; see {log}")
            try:
                if requests.get(f"http://127.0.0.1:{port}{READINESS_PATH}", timeout=0.5).status_code == 200:
                    return Server(process, log_tail, time.monotonic() - started)
            except requests.RequestException:  # refused before the router binds; no answer before the workers exist
                time.sleep(0.02)
    except BaseException:
        stop(Server(process, log_tail, 0.0))
        raise
    stop(Server(process, log_tail, 0.0))
    raise SystemExit(f"uWSGI not ready after 60 s; see {log}")


def stop(server: Server) -> None:
    process = server.process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    server.log_tail.wait(timeout=10)


def user_paths(users: int, count: int, seed: int = 0) -> list[str]:
    """Zipf-distributed known users (rank r has weight r^-s over a shuffled order) and UNKNOWN_SHARE unknown ones."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, users + 1) ** ZIPF_EXPONENT
    order = rng.permutation(users)
    chosen = order[rng.choice(users, size=count, p=weights / weights.sum())]
    unknown = rng.random(count) < UNKNOWN_SHARE
    return [
        f"/v1/users/{'new-visitor-' + str(index) if unknown[index] else user_id(int(user))}/recommendations?k=10"
        for index, user in enumerate(chosen)
    ]


def cpu_seconds(master_pid: int) -> float:
    """User + system CPU of the uWSGI master and all its children (workers, HTTP router, mule) so far."""
    master = psutil.Process(master_pid)
    processes = [master, *master.children()]
    return sum(times.user + times.system for times in (process.cpu_times() for process in processes))
