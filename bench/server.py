"""The uWSGI server under test and the requests sent to it: start on a free loopback port, wait until ready, stop."""

import compileall
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from api.contract import READINESS_PATH
from api.training.synthetic import item_id, user_id
from tools.testkit import uwsgi
from tools.testkit.uwsgi import Uwsgi

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ZIPF_EXPONENT = 1.1
UNKNOWN_SHARE = 0.1
# Enough of the server's output to see why it failed; the per-request lines of a run are not kept.
LOG_TAIL_LINES = 2_000


@dataclass(frozen=True)
class Server:
    uwsgi: Uwsgi
    ready_seconds: float

    @property
    def pid(self) -> int:
        return self.uwsgi.pid

    @property
    def port(self) -> int:
        return self.uwsgi.port


def compile_like_the_image(sources: Path = ROOT / "api") -> bool:
    """Byte-compile the app as the image does (api/Dockerfile, `compileall`), so that ready times what a task starts.

    uwsgi.ini sets PYTHONDONTWRITEBYTECODE, so without .pyc files every start compiles the app's sources again (the
    libraries' come from `make setup`, `--compile-bytecode`). False when a source does not compile.
    """
    return bool(compileall.compile_dir(sources, quiet=1))


def start_uwsgi(models: Path, workers: int, log: Path, extra_env: dict[str, str] | None = None) -> Server:
    """uWSGI on loopback until ready, its output through a pipe as in production (to the log router)."""
    server = uwsgi.start(models, log, workers=workers, extra_env=extra_env, tail_lines=LOG_TAIL_LINES)
    try:
        return Server(server, uwsgi.wait_until_answers(server, READINESS_PATH))
    except AssertionError as error:
        raise SystemExit(f"{error}; see {log}") from None


def stop(server: Server) -> None:
    uwsgi.stop(server.uwsgi)


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


def item_paths(items: int, count: int, k: int = 10, seed: int = 0) -> list[str]:
    """Similar-items requests for items drawn uniformly: every answer is a different row, no hot set in the caches."""
    rng = np.random.default_rng(seed)
    return [f"/v1/items/{item_id(int(item))}/similar?k={k}" for item in rng.integers(0, items, count)]


def cpu_seconds(master_pid: int) -> float:
    """User + system CPU of the uWSGI master and all its children (workers, HTTP router, mule) so far."""
    master = psutil.Process(master_pid)
    processes = [master, *master.children()]
    return sum(times.user + times.system for times in (process.cpu_times() for process in processes))
