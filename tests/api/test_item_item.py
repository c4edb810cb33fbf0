"""The item-item family end to end over HTTP, and the similar-items lookup of ALS versions.

Expected answers are recomputed here from first principles (the EASE weights, the item factors), not from the code
under test, so a wrong sum, a wrong row or a wrong order fails.
"""

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from numpy.typing import NDArray

from api.model.format import switch_current
from api.model.loader import load_model
from api.serving.app import create_app
from api.serving.config import ApiConfig
from api.serving.itemitem import ItemItemRecommender
from api.serving.recommender import Recommender
from api.training.cli import TrainResult, train
from api.training.evaluation import interaction_matrix
from api.training.interactions import read_interactions
from api.training.models import ParameterError, fit_ease
from tests.api.conftest import TINY_ALS
from tests.api.openapi_client import OpenApiCheckingClient
from tests.api.test_endpoints import heaviest_user, item_ids, recommender_of, seen_ids
from tests.api.test_loader import copy_model
from tools.testkit.load import SteadyLoad
from tools.testkit.uwsgi import running

NOTHING = np.empty(0, dtype=np.int64)


@pytest.fixture(scope="module")
def item_item_app(item_item_trained: TrainResult) -> Flask:
    application = create_app(ApiConfig(model_dir=item_item_trained.version_dir.parent))
    application.test_client_class = OpenApiCheckingClient
    return application


@pytest.fixture
def ii_client(item_item_app: Flask) -> Iterator[FlaskClient]:
    with item_item_app.test_client() as test_client:
        yield test_client


@pytest.fixture(scope="module")
def ease_weights(interactions_file: Path, item_item_trained: TrainResult) -> NDArray[np.float64]:
    """EASE's full B on every interaction, with the lambda the trainer published."""
    data = read_interactions(interactions_file)
    matrix = interaction_matrix(data, np.ones(len(data), dtype=bool))
    lam = load_model(item_item_trained.version_dir.parent).manifest["algorithm"]["parameters"]["lambda"]
    return fit_ease(matrix, float(lam))


def expected_scores(weights: NDArray[np.float64], items: list[int], count: int) -> NDArray[np.float64]:
    """x B with every row of B cut to its `count` largest entries: what the served lists encode."""
    scores = np.zeros(weights.shape[1])
    for item in items:
        row = weights[item].copy()
        row[item] = -np.inf
        top = np.argsort(-row, kind="stable")[:count]
        scores[top] += weights[item, top]
    return scores


def test_the_item_item_version_is_served_by_the_item_item_recommender(item_item_app: Flask) -> None:
    recommender = recommender_of(item_item_app)
    assert isinstance(recommender, ItemItemRecommender)
    assert recommender.model.family == "item_item"
    assert recommender.model.arrays.item_factors.shape == (600, 0)


def test_model_metadata_names_the_family(ii_client: FlaskClient, client: FlaskClient) -> None:
    body = ii_client.get("/v1/model").get_json()
    assert body["family"] == "item_item"
    assert body["algorithm"]["name"] == "ease"
    assert body["factors"] == 0
    assert client.get("/v1/model").get_json()["family"] == "als"


def test_personal_recommendations_sum_the_neighbour_rows_of_seen_items(
    item_item_app: Flask, ii_client: FlaskClient, ease_weights: NDArray[np.float64]
) -> None:
    user = heaviest_user(item_item_app)
    recommender = recommender_of(item_item_app)
    seen = recommender.seen_by(recommender.users.find(user) or 0).tolist()
    body = ii_client.get(f"/v1/users/{user}/recommendations?k=10").get_json()
    assert body["strategy"] == "personalized"
    assert len(body["items"]) == 10
    assert not set(item_ids(body)) & seen_ids(item_item_app, user)
    expected = expected_scores(ease_weights, seen, recommender.model.neighbours.count)  # type: ignore[union-attr]
    expected[seen] = -np.inf
    served = recommender.items.find_many(item_ids(body))[0]
    np.testing.assert_allclose([entry["score"] for entry in body["items"]], expected[served], atol=1e-5)
    assert served.tolist() == np.argsort(-expected, kind="stable")[:10].tolist()


def test_seen_items_can_come_back_and_unknown_users_get_popular_items(
    item_item_app: Flask, ii_client: FlaskClient
) -> None:
    user = heaviest_user(item_item_app)
    body = ii_client.get(f"/v1/users/{user}/recommendations?k=50&exclude_seen=false").get_json()
    assert set(item_ids(body)) & seen_ids(item_item_app, user)
    stranger = ii_client.get("/v1/users/stranger/recommendations?k=5").get_json()
    assert stranger["strategy"] == "popular"
    assert len(stranger["items"]) == 5


def test_session_recommendations_sum_the_rows_of_recent_items(
    item_item_app: Flask, ii_client: FlaskClient, ease_weights: NDArray[np.float64]
) -> None:
    recommender = recommender_of(item_item_app)
    recent = ["i0000003", "i0000010", "i0000010", "nonexistent"]
    body = ii_client.post("/v1/recommendations", json={"recent_items": recent, "k": 8}).get_json()
    assert body["strategy"] == "session"
    assert body["unknown_items"] == ["nonexistent"]
    rows = recommender.items.find_many(recent)[0].tolist()
    # A repeated item counts once: EASE is fitted on binarised interactions.
    expected = expected_scores(ease_weights, sorted(set(rows)), recommender.model.neighbours.count)  # type: ignore[union-attr]
    expected[rows] = -np.inf
    served = recommender.items.find_many(item_ids(body))[0]
    assert served.tolist() == np.argsort(-expected, kind="stable")[:8].tolist()


def test_similar_items_are_the_items_row_and_honour_exclusions(
    item_item_app: Flask, ii_client: FlaskClient, ease_weights: NDArray[np.float64]
) -> None:
    recommender = recommender_of(item_item_app)
    row = ease_weights[3].copy()
    row[3] = -np.inf
    best = np.argsort(-row, kind="stable")[:8]
    body = ii_client.get("/v1/items/i0000003/similar?k=7").get_json()
    assert recommender.items.find_many(item_ids(body))[0].tolist() == best[:7].tolist()
    np.testing.assert_allclose([entry["score"] for entry in body["items"]], row[best[:7]], atol=1e-6)
    skip = recommender.items.id_at(int(best[0]))
    excluded = ii_client.get(f"/v1/items/i0000003/similar?k=7&exclude={skip}").get_json()
    assert recommender.items.find_many(item_ids(excluded))[0].tolist() == best[1:8].tolist()


def test_batch_answers_each_user_like_the_single_user_endpoint(ii_client: FlaskClient) -> None:
    users = ["u0000001", "stranger", "u0000002"]
    body = ii_client.post("/v1/recommendations/batch", json={"user_ids": users, "k": 4}).get_json()
    assert [result["strategy"] for result in body["results"]] == ["personalized", "popular", "personalized"]
    for result in body["results"]:
        single = ii_client.get(f"/v1/users/{result['user_id']}/recommendations?k=4").get_json()
        assert result["items"] == single["items"]


def exact_cosine_top(item_factors: NDArray[np.float32], item: int, k: int) -> tuple[list[int], NDArray[np.float64]]:
    vectors = np.asarray(item_factors, dtype=np.float64)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = unit @ unit[item]
    scores[item] = -np.inf
    top = np.argsort(-scores, kind="stable")[:k]
    return top.tolist(), scores[top]


@pytest.mark.parametrize("item", [0, 3, 599])
def test_als_similar_items_lookup_equals_the_exact_cosine_top_k(app: Flask, client: FlaskClient, item: int) -> None:
    recommender = recommender_of(app)
    neighbours = recommender.model.neighbours
    assert neighbours is not None and neighbours.metric == "cosine" and neighbours.count == 100
    expected, scores = exact_cosine_top(recommender.model.arrays.item_factors, item, 20)
    # Straight from the stored row: the lookup is what answers, not the scan.
    assert neighbours.indices[item][:20].tolist() == expected
    item_id = recommender.items.id_at(item)
    body = client.get(f"/v1/items/{item_id}/similar?k=20").get_json()
    assert recommender.items.find_many(item_ids(body))[0].tolist() == expected
    np.testing.assert_allclose([entry["score"] for entry in body["items"]], scores, atol=1e-5)


def test_k_beyond_the_stored_neighbours_falls_back_to_the_exact_scan(interactions_file: Path, tmp_path: Path) -> None:
    trained = train(interactions_file, tmp_path, TINY_ALS, version="n5", family="als", neighbour_count=5)
    model = load_model(tmp_path)
    assert model.neighbours is not None and model.neighbours.count == 5
    recommender = Recommender(model)
    expected, _ = exact_cosine_top(model.arrays.item_factors, 3, 12)
    assert recommender.similar_items(3, 12, NOTHING).indices.tolist() == expected
    # Exclusions that eat into the row: the answer still has k items, the next ones by cosine.
    dropped = np.asarray(expected[:2], dtype=np.int64)
    assert recommender.similar_items(3, 5, dropped).indices.tolist() == expected[2:7]
    assert trained.family == "als"


def test_training_without_neighbours_answers_similar_items_by_scan(interactions_file: Path, tmp_path: Path) -> None:
    train(interactions_file, tmp_path, TINY_ALS, version="n0", family="als", neighbour_count=0)
    model = load_model(tmp_path)
    assert model.neighbours is None
    expected, _ = exact_cosine_top(model.arrays.item_factors, 7, 10)
    assert Recommender(model).similar_items(7, 10, NOTHING).indices.tolist() == expected


def test_auto_publishes_ease_when_it_wins_on_validation(interactions_file: Path, tmp_path: Path) -> None:
    # On this data EASE's validation NDCG@10 (about 0.22) is well above the given ALS setting's (about 0.15).
    result = train(interactions_file, tmp_path, TINY_ALS, version="auto")
    assert result.family == "item_item"
    assert result.assessment is not None and result.assessment.ease_wins
    manifest = load_model(tmp_path).manifest
    assert manifest["family"] == "item_item"
    assert manifest["algorithm"]["parameters"]["lambda"] == result.assessment.ease_lambda
    assert manifest["evaluation"]["ease_vs_chosen"]["wins_on_validation"] is True


def test_forcing_item_item_above_eases_limit_is_refused_before_fitting(
    interactions_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.training.cli.EASE_MAX_ITEMS", 100)
    with pytest.raises(ParameterError, match="600 items exceed EASE's limit of 100; use --family als or auto"):
        train(interactions_file, tmp_path, TINY_ALS, version="x", family="item_item")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_uwsgi_swaps_from_als_to_item_item_under_load_with_no_failed_request(
    model_root: Path, item_item_trained: TrainResult, tmp_path: Path
) -> None:
    root = copy_model(model_root, tmp_path)
    paths = [
        *(f"/v1/users/u{index:07d}/recommendations?k=5" for index in range(50)),
        *(f"/v1/items/i{index:07d}/similar?k=10" for index in range(50)),
        "/v1/users/stranger/recommendations",
    ]
    with running(root, tmp_path / "uwsgi.log", workers=2) as server:
        with SteadyLoad(server.url, paths, clients=4) as load:
            load.wait_for(100)
            shutil.copytree(item_item_trained.version_dir, root / "ii1")
            switch_current(root, "ii1")
            deadline = time.monotonic() + 20
            while set(load.versions()[-30:]) != {"ii1"} and time.monotonic() < deadline:
                time.sleep(0.1)
            count = len(load.outcomes)
            load.wait_for(count + 200)
        versions = load.versions()
    assert load.failures() == [], load.failures()[:5]
    assert versions[0] == "v1"
    assert set(versions) == {"v1", "ii1"}
    assert versions[-30:] == ["ii1"] * 30
    assert server.output().count("model ii1 loaded from") == 2  # one per worker


def test_dense_and_sparse_summation_give_the_same_answers(
    item_item_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    recommender = recommender_of(item_item_app)
    answers = {}
    row_of_5 = np.asarray(recommender.model.neighbours.indices[5]).tolist()  # type: ignore[union-attr]
    for name, per_value in (("sparse", 0), ("dense", 10**9)):
        monkeypatch.setattr("api.serving.itemitem.DENSE_PER_VALUE", per_value)
        answers[name] = [recommender.for_user(user, 20, recommender.seen_by(user)) for user in range(0, 1500, 97)] + [
            recommender.for_items(np.array([5]), 100, np.array([5, 7, 9, *sorted(row_of_5)[:2]]))
        ]
    for sparse, dense in zip(answers["sparse"], answers["dense"], strict=True):
        assert sparse.indices.tolist() == dense.indices.tolist()
        np.testing.assert_allclose(sparse.scores, dense.scores, rtol=1e-6)
    # One item's row less the exclusions in it: unscored items are not recommended, so the answer can fall short of k.
    row = set(np.asarray(recommender.model.neighbours.indices[5]).tolist())  # type: ignore[union-attr]
    assert set(answers["dense"][-1].indices.tolist()) == row - {7, 9, *sorted(row_of_5)[:2]}
    assert len(answers["dense"][-1].indices) < 100
