"""Version retention: the newest N stay, and never the current version or the one serving before it."""

import json
import os
from pathlib import Path

import pytest

from api.model.loader import load_model
from api.training import cli as train_cli
from api.training.assessment import Budget
from api.training.cli import train
from api.training.models import AlsParameters
from api.training.retention import RetentionError, prune, published_versions
from api.training.synthetic import SyntheticSpec, generate, write


def fake_version(root: Path, name: str, created: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "manifest.json").write_text(json.dumps({"created_at": created}))


def point_current(root: Path, name: str) -> None:
    (root / "current").unlink(missing_ok=True)
    (root / "current").symlink_to(name)


def names(root: Path) -> list[str]:
    return [path.name for path in published_versions(root)]


def test_only_the_newest_versions_stay(tmp_path: Path) -> None:
    for day in range(1, 7):
        fake_version(tmp_path, f"v{day}", f"2026-01-0{day}T00:00:00+00:00")
    point_current(tmp_path, "v6")
    removed = prune(tmp_path, keep=3, protect={"v5"})
    assert sorted(removed) == ["v1", "v2", "v3"]
    assert names(tmp_path) == ["v4", "v5", "v6"]
    assert not list(tmp_path.glob(".deleting*"))


def test_current_and_the_previous_version_stay_however_old(tmp_path: Path) -> None:
    for day in range(1, 7):
        fake_version(tmp_path, f"v{day}", f"2026-01-0{day}T00:00:00+00:00")
    # An operator rolled current back to v1; the version serving before this run was v2.
    point_current(tmp_path, "v1")
    prune(tmp_path, keep=2, protect={"v2"})
    assert names(tmp_path) == ["v1", "v2", "v5", "v6"]


def test_order_follows_creation_time_not_names(tmp_path: Path) -> None:
    fake_version(tmp_path, "zzz-old", "2026-01-01T00:00:00+00:00")
    fake_version(tmp_path, "aaa-new", "2026-03-01T00:00:00+00:00")
    fake_version(tmp_path, "mmm-newer", "2026-04-01T00:00:00+00:00")
    point_current(tmp_path, "mmm-newer")
    assert prune(tmp_path, keep=2, protect=set()) == ["zzz-old"]


def test_staging_directories_and_unrelated_files_are_left_alone(tmp_path: Path) -> None:
    fake_version(tmp_path, "v1", "2026-01-01T00:00:00+00:00")
    fake_version(tmp_path, "v2", "2026-01-02T00:00:00+00:00")
    fake_version(tmp_path, "v3", "2026-01-03T00:00:00+00:00")
    (tmp_path / ".v4.abc123").mkdir()  # a training still writing
    (tmp_path / "notes").mkdir()  # no manifest: not a version
    point_current(tmp_path, "v3")
    prune(tmp_path, keep=2, protect={"v2"})
    assert sorted(os.listdir(tmp_path)) == [".v4.abc123", "current", "notes", "v2", "v3"]


def test_keeping_fewer_than_two_versions_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RetentionError, match="current version and the one before it always stay"):
        prune(tmp_path, keep=1, protect=set())


def test_training_prunes_after_publishing_and_the_model_still_loads(tmp_path: Path) -> None:
    data = tmp_path / "interactions.parquet"
    write(generate(SyntheticSpec(users=150, items=60, segments=3, seed=2)), data)
    models = tmp_path / "models"
    quick = AlsParameters(factors=4, iterations=2)
    for index in range(4):
        result = train(
            data, models, quick, version=f"r{index}", budget=Budget(tune_seconds=0, ease=False), keep_versions=2
        )
    assert names(models) == ["r2", "r3"]
    assert result.removed_versions == ("r1",)
    assert load_model(models).version == "r3"


def test_cli_refuses_keep_versions_below_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        train_cli.main(["--interactions", "x.csv", "--model-dir", str(tmp_path), "--keep-versions", "1"])
    assert raised.value.code == 2
    error = json.loads(capsys.readouterr().err)
    assert error["level"] == "ERROR"
    assert "--keep-versions 1 is below 2" in error["message"]


def test_an_unusable_keep_count_stops_training_before_anything_is_published(tmp_path: Path) -> None:
    with pytest.raises(RetentionError):
        train(tmp_path / "absent.parquet", tmp_path / "models", AlsParameters(), keep_versions=1)
    assert not (tmp_path / "models").exists()
