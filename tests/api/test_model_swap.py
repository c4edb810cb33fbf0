"""Zero-downtime model swap: workers follow `current`; a corrupt new version is refused and the old one serves on."""

import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from api.model.format import MANIFEST_NAME, array_file, switch_current
from api.model.loader import load_model
from api.serving.config import ApiConfig
from api.serving.logs import APP_LOGGER
from api.serving.recommender import Recommender
from api.serving.state import ServingState
from api.serving.swap import ModelWatcher
from tests.api.test_loader import copy_model
from tools.testkit.load import SteadyLoad
from tools.testkit.uwsgi import running

PATHS = [f"/v1/users/u{index:07d}/recommendations?k=5" for index in range(200)]


def publish_copy(root: Path, source: str, version: str, *, corrupt: bool = False) -> Path:
    """A new version with the same arrays under another name (optionally with one flipped byte), then switch."""
    target = root / version
    shutil.copytree(root / source, target)
    manifest = json.loads((target / MANIFEST_NAME).read_text())
    manifest["version"] = version
    (target / MANIFEST_NAME).write_text(json.dumps(manifest))
    damaged = target / array_file("item_factors")
    if corrupt:
        data = bytearray(damaged.read_bytes())
        data[-1] ^= 0xFF
        damaged.write_bytes(bytes(data))
    switch_current(root, version)
    return damaged


def _state(root: Path) -> ServingState:
    config = ApiConfig(model_dir=root, model_poll_seconds=0)
    return ServingState(config=config, recommender=Recommender(load_model(root)))


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def api_records() -> Iterator[list[logging.LogRecord]]:
    """Records of the app's logger, whether or not configure_logging has stopped it propagating."""
    handler = _Records()
    logger = logging.getLogger(APP_LOGGER)
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def test_watcher_swaps_to_a_new_version_and_refuses_a_corrupt_one(
    model_root: Path, tmp_path: Path, api_records: list[logging.LogRecord]
) -> None:
    root = copy_model(model_root, tmp_path)
    state = _state(root)
    watcher = ModelWatcher(state)
    assert not watcher.check()
    publish_copy(root, "v1", "v2")
    assert watcher.check()
    assert state.recommender is not None and state.recommender.version == "v2"
    damaged = publish_copy(root, "v2", "v3", corrupt=True)
    assert not watcher.check()
    assert not watcher.check(), "a refused version is not retried until the pointer moves"
    assert state.recommender.version == "v2"
    errors = [record for record in api_records if record.levelname == "ERROR"]
    assert len(errors) == 1
    assert errors[0].getMessage().startswith(f"model file {damaged}: checksum mismatch")
    assert errors[0].getMessage().endswith("keeping model version v2")
    switch_current(root, "v1")
    assert watcher.check()
    assert state.recommender.version == "v1"


def _wait_for_version(load: SteadyLoad, version: str, timeout: float = 20.0) -> None:
    """Until the last 30 answers all come from `version` (every worker has switched)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recent = load.versions()[-30:]
        if len(recent) == 30 and set(recent) == {version}:
            return
        time.sleep(0.1)
    raise AssertionError(f"still not all {version} after {timeout}s: {load.versions()[-30:]}")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_swap_under_steady_load_fails_no_request_and_changes_the_version(model_root: Path, tmp_path: Path) -> None:
    root = copy_model(model_root, tmp_path)
    with running(root, tmp_path / "uwsgi.log", workers=2) as server:
        with SteadyLoad(server.url, PATHS, clients=4) as load:
            load.wait_for(100)
            publish_copy(root, "v1", "v2")
            _wait_for_version(load, "v2")
            count = len(load.outcomes)
            load.wait_for(count + 100)
        versions = load.versions()
    assert load.failures() == [], load.failures()[:5]
    assert versions[0] == "v1"
    assert set(versions) == {"v1", "v2"}
    assert "model v2 loaded from" in server.output()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_corrupt_new_version_under_steady_load_is_refused_and_the_old_one_serves(
    model_root: Path, tmp_path: Path
) -> None:
    root = copy_model(model_root, tmp_path)
    with running(root, tmp_path / "uwsgi.log", workers=2) as server:
        with SteadyLoad(server.url, PATHS, clients=4) as load:
            load.wait_for(100)
            damaged = publish_copy(root, "v1", "v2", corrupt=True)
            deadline = time.monotonic() + 20
            while server.output().count("checksum mismatch") < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            count = len(load.outcomes)
            load.wait_for(count + 100)
        versions = load.versions()
    assert load.failures() == [], load.failures()[:5]
    assert set(versions) == {"v1"}
    errors = [json.loads(line) for line in server.output().splitlines() if "checksum mismatch" in line]
    assert len(errors) == 2, errors  # one per worker, not one per poll
    for record in errors:
        assert record["level"] == "ERROR"
        assert record["message"].startswith(f"model file {damaged}: checksum mismatch")
        assert record["model_version"] == "v1"


def _worker_pids(master: int) -> list[int]:
    children = psutil.Process(master).children()
    return [child.pid for child in children if "uWSGI worker" in " ".join(child.cmdline())]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_worker_respawned_after_a_swap_serves_the_new_version(model_root: Path, tmp_path: Path) -> None:
    # The master still holds v1: a worker it forks after the swap must catch up before its first request.
    root = copy_model(model_root, tmp_path)
    with running(root, tmp_path / "uwsgi.log", workers=2) as server:
        with SteadyLoad(server.url, PATHS, clients=2) as load:
            load.wait_for(10)
            publish_copy(root, "v1", "v2")
            _wait_for_version(load, "v2")
        before = _worker_pids(server.process.pid)
        assert len(before) == 2
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + 20
        while "Respawned uWSGI worker" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert set(_worker_pids(server.process.pid)) - set(before), "no worker was respawned"
        with SteadyLoad(server.url, PATHS, clients=2) as load:
            load.wait_for(200)
        assert load.failures() == [], load.failures()[:5]
        assert set(load.versions()) == {"v2"}
