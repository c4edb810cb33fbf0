"""Neighbour lists and the model family are validated like every array: damage is refused naming the file."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.model import answers as answer_files
from api.model.format import MANIFEST_NAME, array_file
from api.model.loader import ModelLoadError, load_model
from api.model.neighbours import INDICES, WEIGHTS, Neighbours
from api.training.cli import TrainResult
from tests.api.test_loader import copy_model, rewrite_with_valid_checksum


@pytest.fixture
def item_item_copy(item_item_trained: TrainResult, tmp_path: Path) -> Path:
    return copy_model(item_item_trained.version_dir.parent, tmp_path / "item_item") / "ii1"


@pytest.fixture
def als_copy(model_root: Path, tmp_path: Path) -> Path:
    return copy_model(model_root, tmp_path / "als") / "v1"


def edit_manifest(version_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = version_dir / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def refused(version_dir: Path) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as caught:
        load_model(version_dir.parent)
    return caught.value


def test_both_families_load_with_their_neighbours(item_item_copy: Path, als_copy: Path) -> None:
    item_item = load_model(item_item_copy.parent)
    assert item_item.family == "item_item"
    assert item_item.neighbours is not None and item_item.neighbours.metric == "ease"
    assert isinstance(item_item.neighbours.indices.base, np.memmap)
    als = load_model(als_copy.parent)
    assert als.family == "als" and als.neighbours is not None


def test_a_version_without_a_family_is_als(als_copy: Path) -> None:
    edit_manifest(als_copy, lambda manifest: manifest.pop("family"))
    assert load_model(als_copy.parent).family == "als"


def test_an_unknown_family_is_refused(als_copy: Path) -> None:
    edit_manifest(als_copy, lambda manifest: manifest.update(family="deep"))
    error = refused(als_copy)
    assert error.path == als_copy / MANIFEST_NAME
    assert "family 'deep' is not one of als, item_item" in error.problem


def test_an_item_item_version_without_neighbours_is_refused(item_item_copy: Path) -> None:
    edit_manifest(item_item_copy, lambda manifest: manifest.pop("neighbours"))
    assert "family item_item but no neighbours entry" in refused(item_item_copy).problem


def test_a_flipped_byte_in_the_neighbour_weights_is_a_checksum_mismatch(item_item_copy: Path) -> None:
    path = item_item_copy / array_file(WEIGHTS)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    error = refused(item_item_copy)
    assert error.path == path
    assert error.problem.startswith("checksum mismatch")


def test_a_missing_neighbour_file_is_refused(als_copy: Path) -> None:
    (als_copy / array_file(INDICES)).unlink()
    error = refused(als_copy)
    assert error.path == als_copy / array_file(INDICES)
    assert error.problem.startswith("missing")


def _loaded(version_dir: Path, name: str) -> np.ndarray[Any, Any]:
    return np.array(np.load(version_dir / array_file(name)))


@pytest.mark.parametrize(
    ("name", "damage", "problem"),
    [
        (INDICES, lambda a: a.astype(np.int64), "dtype int64 but the format needs int32"),
        (INDICES, lambda a: a[:, :-1], "shape (600, 99) but the manifest counts imply (600, 100)"),
        (INDICES, lambda a: np.where(a == a[0, 0], 600, a).astype(np.int32), "neighbour index outside 0..599"),
        (INDICES, lambda a: np.where(a == a[0, 0], -1, a).astype(np.int32), "neighbour index outside 0..599"),
        (INDICES, lambda a: np.concatenate([np.arange(600, dtype=np.int32)[:, None], a[:, 1:]], axis=1), "own"),
        (WEIGHTS, lambda a: np.where(np.arange(a.shape[1]) == 3, np.nan, a).astype(a.dtype), "not all finite"),
        (WEIGHTS, lambda a: np.where(np.arange(a.shape[1]) == 50, np.inf, a).astype(a.dtype), "not all finite"),
        (WEIGHTS, lambda a: a[:, ::-1].copy(), "not in non-increasing order"),
        (WEIGHTS, lambda a: a.astype(np.float64), "dtype float64 but the format needs float32"),
    ],
    ids=["int64-ids", "short-rows", "id-too-high", "id-negative", "self", "nan", "inf", "unsorted", "float64"],
)
def test_damaged_neighbour_arrays_with_valid_checksums_are_refused(
    item_item_copy: Path, name: str, damage: Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]], problem: str
) -> None:
    rewrite_with_valid_checksum(item_item_copy, name, damage(_loaded(item_item_copy, name)))
    error = refused(item_item_copy)
    assert error.path == item_item_copy / array_file(name)
    assert problem in error.problem
    assert error.problem.endswith("retrain")


def test_float16_weights_load_when_the_manifest_says_so(als_copy: Path) -> None:
    half = _loaded(als_copy, WEIGHTS).astype(np.float16)
    rewrite_with_valid_checksum(als_copy, WEIGHTS, half)
    edit_manifest(als_copy, lambda manifest: manifest["neighbours"].update(weights_dtype="float16"))
    # The stored answers follow the weights they are written from (api.model.answers).
    lists = Neighbours(indices=_loaded(als_copy, INDICES), weights=half, metric="cosine")
    stored = answer_files.build(_loaded(als_copy, "item_ids"), lists, answer_files.answer_count(lists))
    rewrite_with_valid_checksum(als_copy, answer_files.OFFSETS, stored.offsets)
    rewrite_with_valid_checksum(als_copy, answer_files.TEXT, stored.text)
    assert load_model(als_copy.parent).neighbours.weights.dtype == np.float16  # type: ignore[union-attr]


def test_float16_weights_without_their_answers_rewritten_are_refused(als_copy: Path) -> None:
    rewrite_with_valid_checksum(als_copy, WEIGHTS, _loaded(als_copy, WEIGHTS).astype(np.float16))
    edit_manifest(als_copy, lambda manifest: manifest["neighbours"].update(weights_dtype="float16"))
    error = refused(als_copy)
    assert error.path == als_copy / array_file(answer_files.TEXT)


def test_an_unsupported_weight_dtype_in_the_manifest_is_refused(als_copy: Path) -> None:
    edit_manifest(als_copy, lambda manifest: manifest["neighbours"].update(weights_dtype="int8"))
    error = refused(als_copy)
    assert error.path == als_copy / MANIFEST_NAME
    assert "weights_dtype 'int8' is not float32, float16" in error.problem


def test_an_item_item_version_copied_next_to_an_als_one_loads_after_the_switch(
    item_item_copy: Path, als_copy: Path
) -> None:
    from api.model.format import switch_current

    shutil.copytree(item_item_copy, als_copy.parent / "ii1")
    switch_current(als_copy.parent, "ii1")
    assert load_model(als_copy.parent).family == "item_item"


def test_zero_factors_are_accepted_for_item_item_only(item_item_copy: Path, als_copy: Path) -> None:
    assert load_model(item_item_copy.parent).manifest["factors"] == 0
    edit_manifest(als_copy, lambda manifest: manifest.update(factors=0))
    error = refused(als_copy)
    assert error.path == als_copy / MANIFEST_NAME
    assert "factors 0 is not a whole number >= 1" in error.problem
