"""`make test`'s stage runner: what waits for synth, and the closing line CI reads."""

import threading
import time
from pathlib import Path

import pytest

from tools import check


def _junit(path: Path, tests: int, failures: int, errors: int, skipped: int) -> None:
    path.write_text(
        f'<testsuites><testsuite name="pytest" tests="{tests}" failures="{failures}" errors="{errors}" '
        f'skipped="{skipped}"/></testsuites>'
    )


def test_the_closing_line_adds_up_every_test_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check, "LOGS", tmp_path)
    _junit(tmp_path / "pytest.xml", tests=700, failures=1, errors=1, skipped=3)
    _junit(tmp_path / "deploy.xml", tests=20, failures=0, errors=0, skipped=0)
    _junit(tmp_path / "images.xml", tests=9, failures=0, errors=0, skipped=9)
    results = [check.Result(stage, 0, 1.0) for stage in ("lint", "pytest", "deploy", "images")]
    assert check.test_counts(results) == "total: 715 passed, 2 failed, 12 skipped"


def test_stages_that_read_the_synthesized_stacks_start_only_after_synth(monkeypatch: pytest.MonkeyPatch) -> None:
    started: dict[str, float] = {}
    synth_done = threading.Event()

    def fake_run(stage: str) -> check.Result:
        started[stage] = time.monotonic()
        if stage == "synth":
            time.sleep(0.3)
            synth_done.set()
        return check.Result(stage, 0, 0.0)

    monkeypatch.setattr(check, "run_stage", fake_run)
    results = check.run_stages(check.FULL_RUN)
    assert [result.stage for result in results] == list(check.FULL_RUN)
    synth_end = started["synth"] + 0.3
    assert all(started[stage] >= synth_end for stage in check.NEEDS_SYNTH)
    assert all(started[stage] < synth_end for stage in ("lint", "pytest"))


def test_nothing_that_reads_the_stacks_runs_when_synth_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check, "run_stage", lambda stage: check.Result(stage, 1 if stage == "synth" else 0, 0.0))
    assert [result.stage for result in check.run_stages(check.FULL_RUN)] == ["synth", "lint", "pytest"]
