"""Checksums computed ahead in threads change nothing but the time: same order, same errors, no file read that the
sequential loader would refuse to read, and no thread left behind for uWSGI's fork."""

import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.model import loader
from api.model.format import array_file, sha256_of
from api.model.loader import ModelLoadError, load_model
from api.model.neighbours import WEIGHTS
from tests.api.test_loader import copy_model, rewrite_with_valid_checksum


def _hashing_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("model-sha256")]


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path the loader hashes, in any thread."""
    seen: list[Path] = []
    real = sha256_of

    def recording(path: Path) -> str:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(loader, "sha256_of", recording)
    return seen


def test_every_file_read_is_hashed_once_and_no_hashing_thread_outlives_the_load(
    model_root: Path, hashed: list[Path]
) -> None:
    model = load_model(model_root)
    manifest_files = set(model.manifest["files"])
    assert sorted(path.name for path in hashed) == sorted(manifest_files)
    assert _hashing_threads() == []


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


def test_a_symlink_out_of_the_version_is_never_read(model_root: Path, tmp_path: Path, hashed: list[Path]) -> None:
    root = copy_model(model_root, tmp_path)
    version = root / "v1"
    # The last file the loader checks, so that every earlier hash would have had the time to start.
    last = loader._files_to_read(load_model(root).manifest)[-1]
    outside = tmp_path / "elsewhere"
    shutil.move(version / last, outside)
    (version / last).symlink_to(outside)
    hashed.clear()
    with pytest.raises(ModelLoadError, match="outside"):
        load_model(root)
    assert version / last not in hashed
    assert outside not in hashed


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
