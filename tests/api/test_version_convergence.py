"""All workers converge on one version (issue 14, 3): a version refused while half-written is taken once complete."""

import json
import os
import random
import shutil
import signal
import time
from pathlib import Path

import psutil
import pytest

from api.model.format import MANIFEST_NAME, array_file, switch_current
from tests.api.test_loader import copy_model
from tools.testkit.load import SteadyLoad
from tools.testkit.uwsgi import running

pytestmark = pytest.mark.slow
WORKERS = 3
PATHS = [f"/v1/users/u{index:07d}/recommendations?k=5" for index in range(200)]
# The production poll interval (config DEFAULT_MODEL_POLL_SECONDS = 1 s) plus a load and a swap.
CONVERGENCE_SECONDS = 2.0


def _workers(master: int) -> list[psutil.Process]:
    return [child for child in psutil.Process(master).children() if "uWSGI worker" in " ".join(child.cmdline())]


@pytest.mark.timeout(120)
def test_a_half_written_version_completed_in_place_is_served_by_every_worker_within_2_s(
    model_root: Path, tmp_path: Path
) -> None:
    root = copy_model(model_root, tmp_path)
    missing = array_file("item_factors")
    with running(root, tmp_path / "uwsgi.log", workers=WORKERS) as server:
        with SteadyLoad(server.url, PATHS, clients=4) as load:
            load.wait_for(50)
            # Half-written: every file but one, and `current` already switched to it.
            shutil.copytree(root / "v1", root / "v2", ignore=shutil.ignore_patterns(missing))
            manifest = json.loads((root / "v2" / MANIFEST_NAME).read_text())
            (root / "v2" / MANIFEST_NAME).write_text(json.dumps({**manifest, "version": "v2"}))
            switch_current(root, "v2")
            deadline = time.monotonic() + 20
            while server.output().count(f"v2/{missing}: missing") < WORKERS and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(2.5)  # a few more polls: a refused version must not be re-read or re-logged each second
            # Complete it in place (atomic rename of the last file), then kill a worker at random.
            shutil.copyfile(root / "v1" / missing, root / "v2" / f".{missing}.part")
            os.replace(root / "v2" / f".{missing}.part", root / "v2" / missing)
            valid_at = time.monotonic()
            victim = random.choice(_workers(server.process.pid))
            victim.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            time.sleep(CONVERGENCE_SECONDS + 3.0)
        outcomes = sorted(load.outcomes, key=lambda outcome: outcome.started)
    refusals = [line for line in server.output().splitlines() if f"v2/{missing}: missing" in line]
    assert len(refusals) == WORKERS, refusals  # one per worker, not one per poll
    after = [outcome for outcome in outcomes if outcome.started >= valid_at + CONVERGENCE_SECONDS]
    assert len(after) > 50
    assert {outcome.model_version for outcome in after if outcome.status == 200} == {"v2"}
    last_v1 = max(o.finished for o in outcomes if o.model_version == "v1")
    print(f"convergence: last v1 answer {last_v1 - valid_at:.2f} s after the version became valid")
    # SIGKILL drops the request the killed worker was answering; nothing else may fail.
    failures = [outcome for outcome in outcomes if outcome.status != 200]
    assert all(killed_at - 1.0 <= outcome.started <= killed_at + 1.0 for outcome in failures), failures
    assert len(failures) <= 1, failures
