"""Memory of the served model: PSS per process with 1, 2 and 4 workers, and before and after a model swap."""

import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import psutil

from api.contract import CURRENT_POINTER
from api.model.format import MANIFEST_NAME, switch_current
from bench.loadgen import run_step
from bench.model import model_bytes
from bench.server import RESULTS, start_uwsgi, stop, user_paths

MEMORY_WORKERS = (1, 2, 4)
SWAP_WORKERS = 2
SWAP_VERSION = "bench-swap"
# Every response and every worker on the new version for this long: no worker is still loading it.
SWAP_SETTLE_SECONDS = 3.0
SWAP_TIMEOUT_SECONDS = 120.0


def _role(process: psutil.Process) -> str:
    text = " ".join(process.cmdline())
    for role in ("worker", "http", "mule"):
        if role in text:
            return role
    return "other"


def memory_snapshot(master_pid: int) -> tuple[dict[str, int], dict[str, int]]:
    """PSS and USS (private bytes) of the uWSGI master and of each child, keyed `master` and `<role>-<pid>`."""
    master = psutil.Process(master_pid)
    infos = {"master": master.memory_full_info()}
    for child in master.children():
        infos[f"{_role(child)}-{child.pid}"] = child.memory_full_info()
    return {key: info.pss for key, info in infos.items()}, {key: info.uss for key, info in infos.items()}


def worker_values(by_process: dict[str, int]) -> list[int]:
    return [value for key, value in by_process.items() if key.startswith("worker")]


def _touch_model(port: int, users: int) -> None:
    # Enough requests that every worker has touched the arrays and index pages it needs.
    run_step("127.0.0.1", port, user_paths(users, 5_000, seed=1), rate=150, seconds=4.0, connections=16)


def memory_run(models: Path, users: int, workers: int, log: Path) -> dict[str, Any]:
    server = start_uwsgi(models, workers, log)
    port = server.port
    try:
        _touch_model(port, users)
        pss, _ = memory_snapshot(server.pid)
    finally:
        stop(server)
    return {
        "workers": workers,
        "ready_seconds": round(server.ready_seconds, 3),
        "pss_bytes": pss,
        "worker_pss_bytes": worker_values(pss),
        "total_pss_bytes": sum(pss.values()),
    }


def _copy_version(source: Path, target: Path, version: str) -> None:
    """Same arrays and index under another version name: the checksums in the manifest stay valid."""
    target.mkdir()
    for path in source.iterdir():
        # New inodes, not links: the copy must not share the serving version's page cache.
        shutil.copyfile(path, target / path.name)
    manifest = json.loads((target / MANIFEST_NAME).read_text())
    manifest["version"] = version
    (target / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _maps_files_under(pid: int, directory: Path) -> bool:
    return str(directory) in Path(f"/proc/{pid}/maps").read_text()


def _wait_for_version(port: int, master_pid: int, version_dir: Path, users: int) -> tuple[float, int]:
    """Seconds from now until every response and every worker is on the new version, and errors meanwhile."""
    paths = user_paths(users, 2_000, seed=2)
    started = time.monotonic()
    settled_since: float | None = None
    errors = 0
    while time.monotonic() - started < SWAP_TIMEOUT_SECONDS:
        step = run_step("127.0.0.1", port, paths, rate=100, seconds=0.5, connections=8)
        errors += step.errors
        workers = [child.pid for child in psutil.Process(master_pid).children() if _role(child) == "worker"]
        if set(step.model_versions) == {version_dir.name} and all(
            _maps_files_under(pid, version_dir) for pid in workers
        ):
            settled_since = settled_since or time.monotonic()
            if time.monotonic() - settled_since >= SWAP_SETTLE_SECONDS:
                return settled_since - started, errors
        else:
            settled_since = None
    raise SystemExit(f"the workers did not all serve {version_dir.name} within {SWAP_TIMEOUT_SECONDS:.0f} s")


def swap_memory_run(models: Path, users: int, workers: int, log: Path) -> dict[str, Any]:
    """PSS before and after the workers swap in a new version (api/serving/swap.py), under load both times.

    The extra PSS per worker is the mean rise of a worker's PSS, as a share of the bytes of one version on disk.
    """
    serving = (models / CURRENT_POINTER).resolve()
    root = RESULTS / f"swap-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    try:
        # The serving version is only read: hard links (same inodes, no extra disk) keep it inside the private root,
        # where the loader requires every version to be (a symlink leading out of MODEL_DIR is refused).
        shutil.copytree(serving, root / serving.name, copy_function=os.link)
        _copy_version(serving, root / SWAP_VERSION, SWAP_VERSION)
        switch_current(root, serving.name)
        server = start_uwsgi(root, workers, log)
        port = server.port
        try:
            _touch_model(port, users)
            before, uss_before = memory_snapshot(server.pid)
            switch_current(root, SWAP_VERSION)
            swap_seconds, errors = _wait_for_version(port, server.pid, root / SWAP_VERSION, users)
            _touch_model(port, users)
            after, uss_after = memory_snapshot(server.pid)
        finally:
            stop(server)
    finally:
        shutil.rmtree(root)
    extra = statistics.fmean(worker_values(after)) - statistics.fmean(worker_values(before))
    return {
        "workers": workers,
        "ready_seconds": round(server.ready_seconds, 3),
        "versions": [serving.name, SWAP_VERSION],
        "swap_seconds": round(swap_seconds, 2),
        "errors_during_swap": errors,
        "pss_before_bytes": before,
        "pss_after_bytes": after,
        "total_pss_before_bytes": sum(before.values()),
        "total_pss_after_bytes": sum(after.values()),
        # USS counts the pages no other process maps (page-cache pages only this worker touched as well): it
        # separates what a worker gains on its own from what it shares with the other workers.
        "worker_uss_before_bytes": worker_values(uss_before),
        "worker_uss_after_bytes": worker_values(uss_after),
        "extra_pss_per_worker_bytes": extra,
        "extra_pss_per_worker_share": extra / model_bytes(models),
    }
