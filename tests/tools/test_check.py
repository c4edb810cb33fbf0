"""`make test`'s stage runner: what waits for synth, and the closing line CI reads."""

import sys
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


def _stamp(path: Path, sleep: float = 0.0, exit_code: int = 0) -> list[str]:
    """A command that sleeps, then writes the time it started into `path` and exits with `exit_code`."""
    code = f"import sys, time; s = time.monotonic(); time.sleep({sleep}); open({str(path)!r}, 'w').write(str(s))"
    return [sys.executable, "-c", f"{code}; sys.exit({exit_code})"]


# Long enough that the stages which must not wait have started before it ends, even on a busy machine.
SYNTH_SECONDS = 1.5


def _fake_stages(tmp_path: Path, synth_exit: int) -> dict[str, list[list[str]]]:
    stages = {stage: [_stamp(tmp_path / stage)] for stage in check.FULL_RUN}
    stages["synth"] = [_stamp(tmp_path / "synth", sleep=SYNTH_SECONDS, exit_code=synth_exit)]
    stages["images"] = [_stamp(tmp_path / "image-build"), _stamp(tmp_path / "images")]
    return stages


def _started(path: Path) -> float:
    return float(path.read_text())


def test_only_the_commands_that_read_synths_output_wait_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check, "LOGS", tmp_path)
    monkeypatch.setattr(check, "STAGES", _fake_stages(tmp_path, synth_exit=0))
    results = check.run_stages(check.FULL_RUN)
    assert [result.stage for result in results] == list(check.FULL_RUN)
    synth_end = _started(tmp_path / "synth") + SYNTH_SECONDS
    assert all(_started(tmp_path / stage) >= synth_end for stage in ("validate", "checkov", "deploy", "images"))
    assert all(_started(tmp_path / stage) < synth_end for stage in ("lint", "pytest", "image-build"))


def test_nothing_that_reads_the_stacks_runs_when_synth_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check, "LOGS", tmp_path)
    monkeypatch.setattr(check, "STAGES", _fake_stages(tmp_path, synth_exit=1))
    results = check.run_stages(check.FULL_RUN)
    assert [(result.stage, result.returncode) for result in results] == [("synth", 1), ("lint", 0), ("pytest", 0)]
    assert (tmp_path / "image-build").is_file()
    assert not any((tmp_path / stage).is_file() for stage in ("validate", "checkov", "deploy", "images"))
    assert "not run: synth failed" in (tmp_path / "images.log").read_text()


def test_the_image_stage_says_how_far_it_ran_past_the_others() -> None:
    results = [check.Result("pytest", 0, 300.0), check.Result("deploy", 0, 250.0), check.Result("images", 0, 330.0)]
    assert (
        check.images_margin(results)
        == "  images ended 30 s after the last other stage (its build runs niced beside them)"
    )
    results[2] = check.Result("images", 0, 200.0)
    assert "100 s before" in (check.images_margin(results) or "")
    assert check.images_margin(results[:2]) is None
