"""Stored similar-items answers are the general path's answers for every k they cover, are refused by the loader when
they disagree with the lists, and are optional: a version without them answers the same."""

import json
from pathlib import Path

import numpy as np
import pytest

from api.model import answers as answer_files
from api.model.answers import AnswerReader, Answers
from api.model.format import MANIFEST_NAME, array_file
from api.model.loader import load_model
from api.model.neighbours import Neighbours
from api.serving.app import create_app
from api.serving.config import ApiConfig
from api.serving.recommender import Recommender
from api.serving.state import STATE_KEY
from api.training.cli import TrainResult
from tests.api.test_loader import copy_model, rewrite_with_valid_checksum
from tests.api.test_neighbour_loading import edit_manifest, refused
from tests.api.test_neighbour_text import general_text


@pytest.fixture
def als_copy(model_root: Path, tmp_path: Path) -> Path:
    return copy_model(model_root, tmp_path / "als") / "v1"


@pytest.mark.parametrize("family", ["als", "item_item"])
def test_every_stored_answer_is_the_lists_answer_for_every_k_it_covers(
    family: str, trained: TrainResult, item_item_trained: TrainResult
) -> None:
    model = load_model((trained if family == "als" else item_item_trained).version_dir.parent)
    assert model.neighbours is not None and model.answers is not None
    assert model.answers.count == min(answer_files.DEFAULT_COUNT, model.neighbours.count)
    reader = AnswerReader(model.answers)
    ids = model.arrays.item_ids
    for item in range(len(ids)):
        for k in range(model.answers.count + 1):
            assert reader.items(item, k) == general_text(ids, model.neighbours, item, k)
        assert reader.items(item, model.answers.count + 1) is None


HOSTILE_IDS = ['q"uote', "back\\slash", '},{"item_id":"x', "caf\u00e9", "tab\t", "]", "plain"]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_ids_that_json_escapes_and_separators_inside_ids_cut_at_the_right_item(dtype: str) -> None:
    ids = np.asarray([name.encode("utf-8") for name in HOSTILE_IDS], dtype=np.bytes_)
    items = len(ids)
    indices = np.asarray([[(row + step) % items for step in range(1, items)] for row in range(items)], np.int32)
    weights = np.tile(np.linspace(0.9, -0.3, items - 1), (items, 1)).astype(dtype)
    lists = Neighbours(indices=indices, weights=weights, metric="cosine")
    stored = answer_files.build(ids, lists, 4)
    reader = AnswerReader(stored)
    for item in range(items):
        for k in range(1, 5):
            text = reader.items(item, k)
            assert text == general_text(ids, lists, item, k)
            assert len(json.loads(text or "null")) == k


def test_a_catalogue_smaller_than_the_count_stores_whole_rows() -> None:
    lists = Neighbours(indices=np.asarray([[1], [0]], np.int32), weights=np.full((2, 1), 0.5, np.float32), metric="x")
    ids = np.asarray([b"a", b"b"])
    assert answer_files.answer_count(lists) == 1
    reader = AnswerReader(answer_files.build(ids, lists, answer_files.answer_count(lists)))
    assert reader.items(0, 1) == '[{"item_id":"b","score":0.5}]'
    assert reader.items(0, 2) is None


def _stored(version_dir: Path) -> Answers:
    model = load_model(version_dir.parent)
    assert model.answers is not None
    return model.answers


def test_offsets_that_go_backwards_are_refused_naming_the_file(als_copy: Path) -> None:
    offsets = np.array(_stored(als_copy).offsets)
    offsets[5], offsets[6] = offsets[6], offsets[5]
    rewrite_with_valid_checksum(als_copy, answer_files.OFFSETS, offsets)
    error = refused(als_copy)
    assert error.path == als_copy / array_file(answer_files.OFFSETS)
    assert "never decrease; retrain" in error.problem


def test_an_answer_that_differs_from_the_lists_is_refused_naming_its_row(als_copy: Path) -> None:
    stored = _stored(als_copy)
    text = np.array(stored.text)
    row = 3
    # Same length, valid checksum: a score digit changed, as a writer that rounds differently would.
    start, stop = int(stored.offsets[row]), int(stored.offsets[row + 1])
    digit = start + bytes(text[start:stop]).index(b'"score":') + len('"score":') + 3
    text[digit] = ord("7") if text[digit] != ord("7") else ord("8")
    rewrite_with_valid_checksum(als_copy, answer_files.TEXT, text)
    error = refused(als_copy)
    assert error.path == als_copy / array_file(answer_files.TEXT)
    assert error.problem == f"item row {row}'s answer differs from its neighbour lists; retrain"


def test_a_text_cut_short_is_refused_by_its_shape(als_copy: Path) -> None:
    rewrite_with_valid_checksum(als_copy, answer_files.TEXT, np.array(_stored(als_copy).text)[:-1])
    error = refused(als_copy)
    assert error.path == als_copy / array_file(answer_files.TEXT)
    assert "shape" in error.problem and error.problem.endswith("retrain")


@pytest.mark.parametrize("count", [-1, 10_000, "10", True, 2.0])
def test_an_answer_count_outside_the_lists_is_refused_naming_the_manifest(als_copy: Path, count: object) -> None:
    edit_manifest(als_copy, lambda manifest: manifest["neighbours"].update(answer_count=count))
    error = refused(als_copy)
    assert error.path == als_copy / MANIFEST_NAME
    assert f"neighbours.answer_count {count!r} is not a whole number" in error.problem


def test_a_damaged_answer_file_is_refused_by_its_checksum(als_copy: Path) -> None:
    path = als_copy / array_file(answer_files.TEXT)
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))
    error = refused(als_copy)
    assert error.path == path
    assert error.problem.startswith("checksum mismatch")


def test_a_version_written_before_stored_answers_answers_the_same_over_http(als_copy: Path, tmp_path: Path) -> None:
    older = copy_model(als_copy.parent, tmp_path / "older") / "v1"
    for name in answer_files.NAMES:
        (older / array_file(name)).unlink()

    def forget_answers(manifest: dict[str, dict[str, object]]) -> None:
        manifest["neighbours"].pop(answer_files.COUNT_KEY)
        for name in answer_files.NAMES:
            manifest["files"].pop(array_file(name))

    edit_manifest(older, forget_answers)
    assert load_model(older.parent).answers is None
    with_answers = create_app(ApiConfig(model_dir=als_copy.parent)).test_client()
    without = create_app(ApiConfig(model_dir=older.parent)).test_client()
    recommender: Recommender = with_answers.application.extensions[STATE_KEY].recommender
    count = recommender.model.answers.count  # type: ignore[union-attr]
    for item in range(0, len(recommender.items), 37):
        name = recommender.items.id_at(item)
        for k in (1, count, count + 1):
            path = f"/v1/items/{name}/similar?k={k}"
            stored, general = with_answers.get(path), without.get(path)
            assert stored.status_code == general.status_code == 200
            assert stored.get_json()["items"] == general.get_json()["items"]
            assert len(stored.get_json()["items"]) == k


def test_the_trainer_records_the_answer_count_and_lists_the_files_with_checksums(trained: TrainResult) -> None:
    manifest = json.loads((trained.version_dir / MANIFEST_NAME).read_text())
    assert manifest["neighbours"][answer_files.COUNT_KEY] == answer_files.DEFAULT_COUNT
    for name in answer_files.NAMES:
        entry = manifest["files"][array_file(name)]
        assert (len(entry["xxh3_128"]), len(entry["sha256"])) == (32, 64)
