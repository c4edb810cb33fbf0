"""Damaged model table (issue 14, 4-6, 8): every damage is one ModelLoadError naming the file and the problem.

At start: exit 1 with one JSON ERROR line within 5 s, never serving. In the watcher: one ERROR per version (not per
poll), the old version keeps serving, and the same version is taken once it is repaired.
"""

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.contract import CURRENT_POINTER, MODEL_DIR_ENV
from api.model.format import MANIFEST_NAME, array_file, switch_current
from api.model.loader import ModelLoadError, load_model
from api.serving.config import ApiConfig
from api.serving.recommender import Recommender
from api.serving.state import ServingState
from api.serving.swap import ModelWatcher
from tests.api.test_loader import copy_model, rewrite_with_valid_checksum, update_checksum

ROOT = Path(__file__).resolve().parents[2]
START_LIMIT_SECONDS = 5.0
Damage = Callable[[Path], tuple[Path, str]]


def _manifest(version_dir: Path, change: Callable[[dict[str, Any]], None]) -> tuple[Path, dict[str, Any]]:
    path = version_dir / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    return path, manifest


def _set(*keys: str, value: Any, problem: str, named: str = MANIFEST_NAME) -> Damage:
    """Set a manifest key; the error must name the file `named` (the manifest, or the array an entry describes)."""

    def damage(version_dir: Path) -> tuple[Path, str]:
        def change(manifest: dict[str, Any]) -> None:
            target = manifest
            for key in keys[:-1]:
                target = target.setdefault(key, {})
            target[keys[-1]] = value

        _manifest(version_dir, change)
        return version_dir / named, problem

    damage.__name__ = "_".join(keys)
    return damage


def _deep_nesting(version_dir: Path) -> tuple[Path, str]:
    path = version_dir / MANIFEST_NAME
    text = path.read_text().rstrip()
    path.write_text(text[:-1] + ', "evaluation": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return path, "nested too deeply"


def _corrupt_npy_header(version_dir: Path) -> tuple[Path, str]:
    path = version_dir / array_file("item_factors")
    data = bytearray(path.read_bytes())
    start = data.index(b"{")
    data[start : start + 10] = b"{'descr': "[:0] + b"{'shape': "  # a header dict numpy cannot use
    path.write_bytes(bytes(data))
    update_checksum(version_dir, path.name)
    return path, "not a valid .npy array"


def _truncated_array(version_dir: Path) -> tuple[Path, str]:
    path = version_dir / array_file("user_factors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    update_checksum(version_dir, path.name)
    return path, "not a valid .npy array"


def _wrong_dtype(version_dir: Path) -> tuple[Path, str]:
    factors = np.load(version_dir / array_file("item_factors"))
    rewrite_with_valid_checksum(version_dir, "item_factors", factors.astype(">f4"))
    return version_dir / array_file("item_factors"), "dtype >f4"


def _wrong_shape(version_dir: Path) -> tuple[Path, str]:
    factors = np.load(version_dir / array_file("item_factors"))
    rewrite_with_valid_checksum(version_dir, "item_factors", factors[:-1].copy())
    return version_dir / array_file("item_factors"), "shape"


def _checksum_mismatch(version_dir: Path) -> tuple[Path, str]:
    path = version_dir / array_file("seen_indices")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    return path, "checksum mismatch"


def _nan_scores(version_dir: Path) -> tuple[Path, str]:
    scores = np.load(version_dir / array_file("popular_scores"))
    scores[3] = np.nan
    rewrite_with_valid_checksum(version_dir, "popular_scores", scores)
    return version_dir / array_file("popular_scores"), "NaN or infinity"


def _infinite_vector(version_dir: Path) -> tuple[Path, str]:
    factors = np.load(version_dir / array_file("item_factors"))
    factors[7, 0] = np.inf
    rewrite_with_valid_checksum(version_dir, "item_factors", factors)
    return version_dir / array_file("item_factors"), "NaN or infinity"


def _symlink_escape(version_dir: Path) -> tuple[Path, str]:
    path = version_dir / array_file("item_norms")
    outside = version_dir.parent.parent / "elsewhere.npy"
    shutil.copyfile(path, outside)
    path.unlink()
    path.symlink_to(outside)
    return path, "outside"


DAMAGES: list[Damage] = [
    _set("counts", "users", value="1500", problem="counts.users '1500'"),
    _set("counts", value=[1500, 600, 30_000], problem="counts is not an object"),
    _set("counts", "seen", value=-1, problem="counts.seen -1"),
    _set("factors", value=32.0, problem="factors 32.0"),
    _set("files", value=["item_factors.npy"], problem="files is not an object"),
    _set("files", "item_ids.npy", "xxh3_128", value=12, problem="xxh3_128 12", named="item_ids.npy"),
    _set("algorithm", "parameters", "alpha", value="ten", problem="alpha 'ten'"),
    _set("algorithm", value="als", problem="algorithm.parameters is not an object"),
    _set("version", value="v1\r\nSet-Cookie: a=b", problem="version 'v1\\r\\nSet-Cookie: a=b'"),
    _set("version", value="v\u2603", problem="must be 1-128 ASCII"),
    _set("version", value=7, problem="version 7"),
    _deep_nesting,
    _corrupt_npy_header,
    _truncated_array,
    _wrong_dtype,
    _wrong_shape,
    _checksum_mismatch,
    _nan_scores,
    _infinite_vector,
    _symlink_escape,
]


def _damaged_root(model_root: Path, tmp_path: Path, damage: Damage) -> tuple[Path, Path, str]:
    root = copy_model(model_root, tmp_path)
    path, problem = damage(root / "v1")
    return root, path, problem


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda damage: damage.__name__.strip("_"))
def test_damaged_model_is_one_load_error_naming_file_and_problem(
    model_root: Path, tmp_path: Path, damage: Damage
) -> None:
    root, path, problem = _damaged_root(model_root, tmp_path, damage)
    with pytest.raises(ModelLoadError) as raised:
        load_model(root)
    message = str(raised.value)
    assert "\n" not in message and "\r" not in message
    assert message.startswith(f"model file {path}:"), message
    assert problem in message, message


def test_current_pointing_outside_model_dir_is_refused(model_root: Path, tmp_path: Path) -> None:
    root = copy_model(model_root, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(root / "v1", elsewhere / "v9")
    (root / CURRENT_POINTER).unlink()
    (root / CURRENT_POINTER).symlink_to(elsewhere / "v9")
    with pytest.raises(ModelLoadError, match="not a version directory inside") as raised:
        load_model(root)
    assert raised.value.path == root / CURRENT_POINTER


def _start(root: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, MODEL_DIR_ENV: str(root)}
    started = time.monotonic()
    # The uWSGI entry module outside uWSGI: the same start-up path, exit and log line (api/serving/wsgi.py).
    result = subprocess.run(
        [sys.executable, "-c", "import api.serving.wsgi"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, time.monotonic() - started


@pytest.mark.slow
@pytest.mark.parametrize("damage", DAMAGES, ids=lambda damage: damage.__name__.strip("_"))
def test_damaged_model_at_start_exits_1_with_one_json_error_line(
    model_root: Path, tmp_path: Path, damage: Damage
) -> None:
    root, path, problem = _damaged_root(model_root, tmp_path, damage)
    result, seconds = _start(root)
    assert result.returncode == 1, result.stderr[-2000:]
    assert seconds < START_LIMIT_SECONDS
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    record = json.loads(lines[0])
    assert record["level"] == "ERROR"
    assert record["message"].startswith(f"model file {path}:")
    assert problem in record["message"]
    assert "Traceback" not in result.stdout + result.stderr


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda damage: damage.__name__.strip("_"))
def test_damaged_version_in_the_watcher_is_one_error_then_taken_once_repaired(
    model_root: Path, tmp_path: Path, damage: Damage
) -> None:
    root = copy_model(model_root, tmp_path)
    state = ServingState(
        config=ApiConfig(model_dir=root, model_poll_seconds=0), recommender=Recommender(load_model(root))
    )
    watcher = ModelWatcher(state)
    shutil.copytree(root / "v1", root / "v2")
    _manifest(root / "v2", lambda manifest: manifest.update(version="v2"))
    damage(root / "v2")
    switch_current(root, "v2")
    errors = _Errors()
    logger = logging.getLogger("api")
    logger.addHandler(errors)
    try:
        for _ in range(3):
            assert not watcher.check()
        assert state.recommender is not None and state.recommender.version == "v1"
        assert len(errors.messages) == 1, errors.messages
        assert errors.messages[0].endswith("keeping model version v1")
        # Repaired in place (the same version name): the watcher notices the directory changed and takes it.
        shutil.rmtree(root / "v2")
        shutil.copytree(root / "v1", root / "v2", symlinks=True)
        _manifest(root / "v2", lambda manifest: manifest.update(version="v2"))
        assert watcher.check()
        assert state.recommender.version == "v2"
        assert len(errors.messages) == 1
    finally:
        logger.removeHandler(errors)
