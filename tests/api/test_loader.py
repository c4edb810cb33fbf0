"""The loader serves only complete, consistent versions; anything else fails with one line naming file and problem."""

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from api.contract import CURRENT_POINTER
from api.model.checksums import WRITTEN, digests_of
from api.model.format import MANIFEST_NAME, array_file, publish_model
from api.model.loader import ModelLoadError, load_model


def copy_model(model_root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "models"
    shutil.copytree(model_root, copy, symlinks=True)
    return copy


def rewrite_with_valid_checksum(version_dir: Path, name: str, array: NDArray[Any]) -> None:
    """Replace an array and fix the manifest's checksum, so only the deeper checks can catch it."""
    np.save(version_dir / array_file(name), array)
    update_checksum(version_dir, array_file(name))


def update_checksum(version_dir: Path, filename: str) -> None:
    manifest_path = version_dir / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][filename].update(digests_of(version_dir / filename, WRITTEN))
    manifest_path.write_text(json.dumps(manifest))


def test_published_model_loads_memory_mapped(model_root: Path) -> None:
    model = load_model(model_root)
    assert model.version == "v1"
    # A plain ndarray whose memory is the mapped file (shared page cache), not a copy.
    assert type(model.arrays.item_factors) is np.ndarray
    assert isinstance(model.arrays.item_factors.base, np.memmap)
    assert not model.arrays.item_factors.flags.owndata
    assert model.arrays.item_factors.dtype == np.float32
    assert model.arrays.user_ids.dtype.kind == "S"


def test_publishing_keeps_old_versions_and_switches_current(model_root: Path, tmp_path: Path) -> None:
    root = copy_model(model_root, tmp_path)
    arrays = load_model(root).arrays
    publish_model(root, "v2", arrays, {"created_at": "2026-01-01T00:00:00+00:00"})
    assert os.readlink(root / CURRENT_POINTER) == "v2"
    assert (root / "v1" / MANIFEST_NAME).is_file()
    assert load_model(root).version == "v2"
    assert not [path.name for path in root.iterdir() if path.name.startswith(".")]


def test_publishing_an_existing_version_is_refused(model_root: Path, tmp_path: Path) -> None:
    root = copy_model(model_root, tmp_path)
    with pytest.raises(FileExistsError, match="already exists"):
        publish_model(root, "v1", load_model(root).arrays, {})
    assert os.readlink(root / CURRENT_POINTER) == "v1"


def _remove_root(root: Path) -> Path:
    shutil.rmtree(root)
    return root


def _remove_pointer(root: Path) -> Path:
    (root / CURRENT_POINTER).unlink()
    return root / CURRENT_POINTER


def _remove_file(root: Path) -> Path:
    (root / "v1" / "item_factors.npy").unlink()
    return root / "v1" / "item_factors.npy"


def _flip_a_byte(root: Path) -> Path:
    path = root / "v1" / "user_factors.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _garbage_array(root: Path) -> Path:
    path = root / "v1" / "item_norms.npy"
    path.write_bytes(b"this is not an npy file")
    update_checksum(root / "v1", path.name)
    return path


def _wrong_shape(root: Path) -> Path:
    rewrite_with_valid_checksum(root / "v1", "item_factors", np.zeros((600, 8), dtype=np.float32))
    return root / "v1" / "item_factors.npy"


def _wrong_dtype(root: Path) -> Path:
    rewrite_with_valid_checksum(root / "v1", "item_factors", np.zeros((600, 32), dtype=np.float64))
    return root / "v1" / "item_factors.npy"


def _unsorted_ids(root: Path) -> Path:
    ids = np.load(root / "v1" / "item_ids.npy")
    rewrite_with_valid_checksum(root / "v1", "item_ids", ids[::-1].copy())
    return root / "v1" / "item_ids.npy"


def _index_out_of_range(root: Path) -> Path:
    popular = np.load(root / "v1" / "popular_items.npy")
    popular[0] = 10_000
    rewrite_with_valid_checksum(root / "v1", "popular_items", popular)
    return root / "v1" / "popular_items.npy"


def _broken_manifest(root: Path) -> Path:
    (root / "v1" / MANIFEST_NAME).write_text("{not json")
    return root / "v1" / MANIFEST_NAME


def _old_format(root: Path) -> Path:
    path = root / "v1" / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 0
    path.write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_remove_root, "model directory does not exist"),
        (_remove_pointer, "no current version"),
        (_remove_file, "missing"),
        (_flip_a_byte, "checksum mismatch"),
        (_garbage_array, "not a valid .npy array"),
        (_wrong_shape, "shape (600, 8)"),
        (_wrong_dtype, "dtype float64"),
        (_unsorted_ids, "not sorted"),
        (_index_out_of_range, "item index outside"),
        (_broken_manifest, "unreadable JSON"),
        (_old_format, "format_version"),
    ],
)
def test_damaged_model_is_refused_naming_file_and_problem(
    model_root: Path, tmp_path: Path, damage: Callable[[Path], Path], problem: str
) -> None:
    root = copy_model(model_root, tmp_path)
    damaged_path = damage(root)
    with pytest.raises(ModelLoadError) as raised:
        load_model(root)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"model file {damaged_path}:")
    assert problem in message
