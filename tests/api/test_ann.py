"""The ANN index: built and measured at training time, checked by the loader, used for large catalogues only."""

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask

from api.model import ann
from api.model.format import MANIFEST_NAME, array_file
from api.model.loader import ModelLoadError, load_model
from api.serving.app import create_app
from api.serving.config import ApiConfig
from api.serving.recommender import NOTHING, Recommender
from api.serving.state import ServingState
from api.serving.swap import ModelWatcher
from api.training.cli import AlsParameters, TrainResult, train
from api.training.synthetic import SyntheticSpec, generate, user_id, write
from tests.api.test_loader import copy_model, rewrite_with_valid_checksum
from tests.api.test_model_swap import publish_copy

SPEC = SyntheticSpec(users=2_000, items=4_000, segments=16, mean_interactions=15.0, seed=5)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    data = tmp_path_factory.mktemp("ann-data") / "interactions.parquet"
    write(generate(SPEC), data)
    models = tmp_path_factory.mktemp("ann-models")
    return train(
        data, models, AlsParameters(factors=32, iterations=6), version="ann", test_fraction=0.0, ann_min_items=1_000
    )


@pytest.mark.parametrize(
    ("spec", "queries"), [(ann.USER_INDEX, SPEC.users), (ann.SIMILAR_INDEX, SPEC.items)], ids=["user", "similar"]
)
def test_training_stores_each_index_with_its_recall_against_exact_scoring(
    indexed: TrainResult, spec: ann.IndexSpec, queries: int
) -> None:
    manifest = json.loads((indexed.version_dir / MANIFEST_NAME).read_text())
    entry = manifest[spec.manifest_key]
    assert entry["kind"] == spec.kind
    assert entry["file"] == spec.file
    assert (indexed.version_dir / spec.file).is_file()
    assert entry["recall_at_10"] >= ann.TARGET_RECALL
    assert entry["evaluated_queries"] == min(ann.EVALUATION_QUERIES, queries)
    assert entry["rerank_factor"] == spec.rerank_factor
    assert 1 <= entry["nprobe"] <= entry["nlist"]


def test_small_catalogues_get_no_index(trained: TrainResult) -> None:
    manifest = json.loads((trained.version_dir / MANIFEST_NAME).read_text())
    for spec in ann.INDEX_SPECS:
        assert spec.manifest_key not in manifest
        assert not (trained.version_dir / spec.file).exists()


def test_ann_answers_match_exact_scoring_and_respect_exclusions(indexed: TrainResult) -> None:
    model = load_model(indexed.version_dir.parent)
    assert model.ann_index is not None
    approximate = Recommender(model, ann_min_items=1_000)
    exact = Recommender(model, ann_min_items=10**9)
    assert approximate.uses_ann and not exact.uses_ann
    overlap = []
    for user in range(0, SPEC.users, 10):
        seen = approximate.seen_by(user)
        got = approximate.for_user(user, 10, seen)
        want = exact.for_user(user, 10, seen)
        assert len(got.indices) == 10
        assert not np.isin(got.indices, seen).any()
        assert np.all(np.diff(got.scores) <= 1e-6), "scores are ranked"
        factors = np.asarray(model.arrays.item_factors[got.indices]) @ np.asarray(model.arrays.user_factors[user])
        np.testing.assert_allclose(got.scores, factors, rtol=1e-4, atol=1e-4)
        overlap.append(len(np.intersect1d(got.indices, want.indices)) / 10)
    assert float(np.mean(overlap)) >= 0.9


def test_similar_items_from_the_index_match_exact_cosine_and_leave_out_the_item(indexed: TrainResult) -> None:
    model = load_model(indexed.version_dir.parent)
    assert model.similar_index is not None
    approximate = Recommender(model, ann_min_items=1_000)
    exact = Recommender(model, ann_min_items=10**9)
    assert approximate.uses_similar_ann and not exact.uses_similar_ann
    factors = np.asarray(model.arrays.item_factors)
    norms = np.linalg.norm(factors, axis=1)
    items = len(factors)
    overlap = []
    for item in range(0, items, 40):
        excluded = np.array([(item + 1) % items], dtype=np.int64)
        got = approximate.similar_items(item, 10, excluded)
        want = exact.similar_items(item, 10, excluded)
        assert len(got.indices) == 10
        assert item not in got.indices and excluded[0] not in got.indices
        assert np.all(np.diff(got.scores) <= 1e-6), "scores are ranked"
        cosine = factors[got.indices] @ factors[item] / (norms[got.indices] * norms[item])
        np.testing.assert_allclose(got.scores, cosine, rtol=1e-4, atol=1e-4)
        overlap.append(len(np.intersect1d(got.indices, want.indices)) / 10)
    assert float(np.mean(overlap)) >= 0.9


def test_many_exclusions_fall_back_to_exact_scoring(indexed: TrainResult) -> None:
    model = load_model(indexed.version_dir.parent)
    recommender = Recommender(model, ann_min_items=1_000)
    excluded = np.arange(0, 3_000, dtype=np.int64)
    got = recommender.for_user(0, 10, excluded)
    assert len(got.indices) == 10
    assert not np.isin(got.indices, excluded).any()
    similar = recommender.similar_items(3_100, 10, excluded)
    assert len(similar.indices) == 10
    assert not np.isin(similar.indices, np.append(excluded, 3_100)).any()


def test_the_app_serves_from_the_index_above_the_configured_threshold(indexed: TrainResult) -> None:
    app: Flask = create_app(ApiConfig(model_dir=indexed.version_dir.parent, ann_min_items=1_000))
    with app.test_client() as client:
        response = client.get(f"/v1/users/{user_id(3)}/recommendations?k=7")
        session = client.post("/v1/recommendations", json={"recent_items": ["i0000001", "i0000002"], "k": 5})
        similar = client.get("/v1/items/i0000003/similar?k=6")
    assert response.status_code == 200
    assert response.get_json()["strategy"] == "personalized"
    assert len(response.get_json()["items"]) == 7
    assert session.status_code == 200
    assert len(session.get_json()["items"]) == 5
    assert similar.status_code == 200
    assert len(similar.get_json()["items"]) == 6


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("in_memory", [False, True], ids=["swap", "start-up"])
@pytest.mark.parametrize("spec", ann.INDEX_SPECS, ids=lambda spec: spec.kind)
def test_a_corrupt_index_is_refused(indexed: TrainResult, tmp_path: Path, spec: ann.IndexSpec, in_memory: bool) -> None:
    root = copy_model(indexed.version_dir.parent, tmp_path)
    path = root / "ann" / spec.file
    _damage(path)
    with pytest.raises(ModelLoadError, match="checksum mismatch \\(manifest xxh3_128 ") as error:
        load_model(root, index_in_memory=in_memory)
    assert error.value.path == path
    assert _index_threads() == []


def _index_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("model-index")]


def test_start_up_reads_the_indexes_in_a_thread_beside_the_checks_and_a_swap_in_its_own(
    indexed: TrainResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    readers: list[tuple[str, bool]] = []
    real = ann.read

    def recording(path: str, nprobe: int, *, in_memory: bool) -> Any:
        readers.append((threading.current_thread().name, in_memory))
        return real(path, nprobe, in_memory=in_memory)

    monkeypatch.setattr(ann, "read", recording)
    load_model(indexed.version_dir.parent, index_in_memory=True)
    assert [in_memory for _, in_memory in readers] == [True, True]
    assert all(name.startswith("model-index") for name, _ in readers)
    readers.clear()
    load_model(indexed.version_dir.parent)
    assert readers == [(threading.current_thread().name, False)] * 2
    assert _index_threads() == []


def test_a_fault_before_the_indexes_is_reported_first_though_a_damaged_index_was_read_beside_it(
    indexed: TrainResult, tmp_path: Path
) -> None:
    root = copy_model(indexed.version_dir.parent, tmp_path)
    _damage(root / "ann" / ann.USER_INDEX.file)
    factors = np.load(root / "ann" / array_file("item_factors"))
    rewrite_with_valid_checksum(root / "ann", "item_factors", factors.astype(np.float64))
    with pytest.raises(ModelLoadError) as caught:
        load_model(root, index_in_memory=True)
    assert caught.value.path == root / "ann" / array_file("item_factors")
    assert "dtype float64" in caught.value.problem
    assert _index_threads() == []


def test_a_swapped_in_version_serves_from_both_indexes_memory_mapped(indexed: TrainResult, tmp_path: Path) -> None:
    root = copy_model(indexed.version_dir.parent, tmp_path)
    config = ApiConfig(model_dir=root, ann_min_items=1_000, model_poll_seconds=0)
    serving = Recommender(load_model(root, index_in_memory=True), config.ann_min_items)
    state = ServingState(config=config, recommender=serving)
    publish_copy(root, "ann", "ann-v2")
    assert ModelWatcher(state).check()
    swapped = state.recommender
    assert swapped is not None and swapped.version == "ann-v2"
    assert swapped.uses_ann and swapped.uses_similar_ann
    # Memory-mapped, so every worker that swaps shares the same page-cache pages instead of reading a copy.
    mapped = Path("/proc/self/maps").read_text()
    for spec in ann.INDEX_SPECS:
        assert str(root / "ann-v2" / spec.file) in mapped
    assert len(swapped.for_user(0, 10, NOTHING).indices) == 10
    assert len(swapped.similar_items(5, 10, NOTHING).indices) == 10
