"""Checksums computed ahead in threads change nothing but the time: same order, same errors, no file read that the
sequential loader would refuse to read, and no thread left behind for uWSGI's fork."""

import hashlib
import json
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xxhash

from api.model import checksums, loader
from api.model.format import MANIFEST_NAME, array_file
from api.model.loader import ModelLoadError, load_model
from api.model.neighbours import WEIGHTS
from tests.api.test_loader import copy_model, rewrite_with_valid_checksum


def _hashing_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("model-checksum")]


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, str]]:
    """Every path the loader hashes, in any thread, with the checksum it computes."""
    seen: list[tuple[Path, str]] = []
    real = checksums.digest_of

    def recording(path: Path, algorithm: str) -> str:
        seen.append((path, algorithm))
        return real(path, algorithm)

    monkeypatch.setattr(checksums, "digest_of", recording)
    return seen


def _index_entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry for entry in manifest.values() if isinstance(entry, dict) and "file" in entry]


def _without(version: Path, algorithm: str) -> None:
    """The version as a release that never wrote `algorithm` published it."""
    path = version / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    for entry in [*manifest["files"].values(), *_index_entries(manifest)]:
        entry.pop(algorithm, None)
    path.write_text(json.dumps(manifest))


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_every_file_read_is_hashed_once_with_xxh3_and_no_hashing_thread_outlives_the_load(
    model_root: Path, hashed: list[tuple[Path, str]]
) -> None:
    model = load_model(model_root)
    indexes = [entry["file"] for entry in _index_entries(model.manifest)]
    assert sorted(path.name for path, _ in hashed) == sorted([*model.manifest["files"], *indexes])
    assert {algorithm for _, algorithm in hashed} == {checksums.PREFERRED}
    assert _hashing_threads() == []


def test_the_trainer_writes_both_checksums_and_each_matches_the_file(model_root: Path) -> None:
    version = model_root / "v1"
    manifest = json.loads((version / MANIFEST_NAME).read_text())
    entries = {**manifest["files"], **{entry["file"]: entry for entry in _index_entries(manifest)}}
    assert len(entries) >= 12
    for name, entry in entries.items():
        data = (version / name).read_bytes()
        assert entry["xxh3_128"] == xxhash.xxh3_128(data).hexdigest(), name
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), name


def test_a_version_from_an_earlier_release_loads_on_its_sha256_and_its_damage_is_caught(
    model_root: Path, tmp_path: Path, hashed: list[tuple[Path, str]]
) -> None:
    root = copy_model(model_root, tmp_path)
    _without(root / "v1", checksums.PREFERRED)
    assert load_model(root).version == "v1"
    assert {algorithm for _, algorithm in hashed} == {checksums.LEGACY}
    _flip_last_byte(root / "v1" / array_file("item_norms"))
    with pytest.raises(ModelLoadError, match="checksum mismatch \\(manifest sha256 "):
        load_model(root)


def test_a_damaged_file_is_caught_by_xxh3_whatever_its_sha256_says(model_root: Path, tmp_path: Path) -> None:
    root = copy_model(model_root, tmp_path)
    _flip_last_byte(root / "v1" / array_file("item_norms"))
    with pytest.raises(ModelLoadError, match="checksum mismatch \\(manifest xxh3_128 ") as caught:
        load_model(root)
    assert caught.value.path == root / "v1" / array_file("item_norms")


def test_a_file_without_any_checksum_is_refused_naming_both(model_root: Path, tmp_path: Path) -> None:
    root = copy_model(model_root, tmp_path)
    _without(root / "v1", checksums.PREFERRED)
    _without(root / "v1", checksums.LEGACY)
    with pytest.raises(ModelLoadError, match="no checksum \\(xxh3_128 or sha256\\); retrain"):
        load_model(root)


def test_no_hashing_thread_outlives_a_refused_version(model_root: Path, tmp_path: Path) -> None:
    root = copy_model(model_root, tmp_path)
    factors = np.load(root / "v1" / array_file("item_factors"))
    rewrite_with_valid_checksum(root / "v1", "item_factors", factors.astype(np.float64))
    with pytest.raises(ModelLoadError, match="dtype float64"):
        load_model(root)
    assert _hashing_threads() == []


def test_the_first_damaged_file_in_load_order_is_reported_though_a_later_one_is_hashed_first(
    model_root: Path, tmp_path: Path
) -> None:
    root = copy_model(model_root, tmp_path)
    version = root / "v1"
    # A later file (the neighbour weights) with a bad checksum, an earlier one (item factors) with a bad dtype: the
    # sequential loader named the item factors, and so must this one.
    weights = version / array_file(WEIGHTS)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    factors = np.load(version / array_file("item_factors"))
    rewrite_with_valid_checksum(version, "item_factors", factors.astype(np.float64))
    with pytest.raises(ModelLoadError) as caught:
        load_model(root)
    assert caught.value.path == version / array_file("item_factors")
    assert "dtype float64" in caught.value.problem


def test_a_symlink_out_of_the_version_is_never_read(
    model_root: Path, tmp_path: Path, hashed: list[tuple[Path, str]]
) -> None:
    root = copy_model(model_root, tmp_path)
    version = root / "v1"
    # The last file the loader checks, so that every earlier hash would have had the time to start.
    last, _ = loader._files_to_read(load_model(root).manifest)[-1]
    outside = tmp_path / "elsewhere"
    shutil.move(version / last, outside)
    (version / last).symlink_to(outside)
    hashed.clear()
    with pytest.raises(ModelLoadError, match="outside"):
        load_model(root)
    read = {path for path, _ in hashed}
    assert version / last not in read
    assert outside not in read


def test_a_missing_file_is_reported_missing_not_as_a_hashing_error(model_root: Path, tmp_path: Path) -> None:
    root = copy_model(model_root, tmp_path)
    version = root / "v1"
    (version / array_file("item_norms")).unlink()
    with pytest.raises(ModelLoadError) as caught:
        load_model(root)
    assert caught.value.path == version / array_file("item_norms")
    assert caught.value.problem.startswith("missing")


def test_start_up_hashes_on_every_usable_cpu_and_a_swap_in_one_thread(
    model_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pools: list[int] = []

    class Recording(ThreadPoolExecutor):
        def __init__(self, threads: int, **options: Any) -> None:
            if options["thread_name_prefix"] == "model-checksum":
                pools.append(threads)
            super().__init__(threads, **options)

    monkeypatch.setattr(loader, "ThreadPoolExecutor", Recording)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(64)))
    load_model(model_root)  # as the watcher swaps a version in: memory-mapped, in a serving worker
    load_model(model_root, index_in_memory=True)  # as the master starts
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {3})
    load_model(model_root, index_in_memory=True)
    load_model(model_root, checksum_threads=3)
    assert pools == [1, loader.MAX_CHECKSUM_THREADS, 1, 3]


def test_zero_checksum_threads_is_refused(model_root: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        load_model(model_root, checksum_threads=0)
