"""Every endpoint's behaviour through the Flask test client (responses are also held to the OpenAPI doc)."""

from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.serving.app import create_app
from api.serving.config import ApiConfig
from api.serving.recommender import Recommender
from api.serving.state import STATE_KEY
from tests.api.openapi_client import OpenApiCheckingClient

KNOWN_USER = "u0000001"


def recommender_of(app: Flask) -> Recommender:
    recommender: Recommender | None = app.extensions[STATE_KEY].recommender
    assert recommender is not None
    return recommender


def seen_ids(app: Flask, user_id: str) -> set[str]:
    recommender = recommender_of(app)
    user = recommender.users.find(user_id)
    assert user is not None
    return set(recommender.items.ids_at(recommender.seen_by(user)))


def item_ids(body: dict[str, Any]) -> list[str]:
    return [entry["item_id"] for entry in body["items"]]


def heaviest_user(app: Flask) -> str:
    recommender = recommender_of(app)
    counts = np.diff(np.asarray(recommender.model.arrays.seen_indptr))
    return recommender.users.id_at(int(np.argmax(counts)))


def test_known_user_gets_ranked_personalized_items_without_seen_ones(app: Flask, client: FlaskClient) -> None:
    body = client.get(f"/v1/users/{KNOWN_USER}/recommendations").get_json()
    assert body["strategy"] == "personalized"
    assert body["user_id"] == KNOWN_USER
    assert body["k"] == 10
    assert len(body["items"]) == 10
    assert not set(item_ids(body)) & seen_ids(app, KNOWN_USER)
    scores = [entry["score"] for entry in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert body["model_version"] == "v1"


def test_seen_items_come_back_when_exclude_seen_is_false(app: Flask, client: FlaskClient) -> None:
    user = heaviest_user(app)
    body = client.get(f"/v1/users/{user}/recommendations?k=20&exclude_seen=false").get_json()
    assert set(item_ids(body)) & seen_ids(app, user)


def test_exclude_parameter_removes_items_comma_separated_and_repeated(client: FlaskClient) -> None:
    first = item_ids(client.get(f"/v1/users/{KNOWN_USER}/recommendations?k=5").get_json())
    query = f"exclude={first[0]},{first[1]}&exclude={first[2]}&k=5"
    second = item_ids(client.get(f"/v1/users/{KNOWN_USER}/recommendations?{query}").get_json())
    assert not set(first[:3]) & set(second)
    assert second[:2] == first[3:5]


def test_unknown_user_gets_popularity_fallback(app: Flask, client: FlaskClient) -> None:
    response = client.get("/v1/users/never-seen/recommendations?k=5")
    assert response.status_code == 200
    body = response.get_json()
    assert body["strategy"] == "popular"
    arrays = recommender_of(app).model.arrays
    assert item_ids(body) == recommender_of(app).items.ids_at(np.asarray(arrays.popular_items[:5], dtype=np.int64))


@pytest.mark.parametrize(("query", "expected_k"), [("", 10), ("?k=3", 3), ("?k=100", 100), ("?k=5000", 100)])
def test_k_defaults_to_10_and_is_capped_at_100(client: FlaskClient, query: str, expected_k: int) -> None:
    body = client.get(f"/v1/users/{KNOWN_USER}/recommendations{query}").get_json()
    assert body["k"] == expected_k
    assert len(body["items"]) == expected_k


def test_similar_items_are_ranked_by_cosine_and_exclude_the_item(client: FlaskClient) -> None:
    body = client.get("/v1/items/i0000003/similar?k=7").get_json()
    assert body["item_id"] == "i0000003"
    assert len(body["items"]) == 7
    assert "i0000003" not in item_ids(body)
    scores = [entry["score"] for entry in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0001 <= score <= 1.0001 for score in scores)


def test_similar_items_of_unknown_item_is_404_naming_the_item(client: FlaskClient) -> None:
    response = client.get("/v1/items/no-such-item/similar")
    assert response.status_code == 404
    assert response.get_json()["detail"][0]["field"] == "item_id"


def test_session_recommendations_fold_in_recent_items(client: FlaskClient) -> None:
    recent = ["i0000003", "i0000010", "nonexistent"]
    response = client.post("/v1/recommendations", json={"recent_items": recent, "k": 8})
    body = response.get_json()
    assert body["strategy"] == "session"
    assert body["unknown_items"] == ["nonexistent"]
    assert len(body["items"]) == 8
    assert not set(item_ids(body)) & set(recent)


def test_session_of_a_users_history_recommends_like_the_user(app: Flask, client: FlaskClient) -> None:
    user = heaviest_user(app)
    history = sorted(seen_ids(app, user))
    session = item_ids(client.post("/v1/recommendations", json={"recent_items": history}).get_json())
    personal = item_ids(client.get(f"/v1/users/{user}/recommendations").get_json())
    assert len(set(session) & set(personal)) >= 5


def test_session_with_only_unknown_items_falls_back_to_popular(client: FlaskClient) -> None:
    body = client.post("/v1/recommendations", json={"recent_items": ["x", "y"]}).get_json()
    assert body["strategy"] == "popular"
    assert body["unknown_items"] == ["x", "y"]
    assert len(body["items"]) == 10


def test_batch_answers_each_user_like_the_single_user_endpoint(client: FlaskClient) -> None:
    users = [KNOWN_USER, "stranger", "u0000002"]
    body = client.post("/v1/recommendations/batch", json={"user_ids": users, "k": 4}).get_json()
    assert [result["user_id"] for result in body["results"]] == users
    assert [result["strategy"] for result in body["results"]] == ["personalized", "popular", "personalized"]
    for result in body["results"]:
        single = client.get(f"/v1/users/{result['user_id']}/recommendations?k=4").get_json()
        assert result["items"] == single["items"]


def test_batch_accepts_exactly_the_documented_maximum(client: FlaskClient, config: ApiConfig) -> None:
    users = [f"u{index:07d}" for index in range(config.max_batch_users)]
    response = client.post("/v1/recommendations/batch", json={"user_ids": users, "k": 1})
    assert response.status_code == 200
    assert len(response.get_json()["results"]) == config.max_batch_users


def test_model_metadata_reports_version_counts_and_evaluation(client: FlaskClient) -> None:
    body = client.get("/v1/model").get_json()
    assert body["model_version"] == "v1"
    assert body["counts"]["items"] == 600
    assert body["factors"] == 32
    assert body["algorithm"]["name"] == "als"
    assert {"als", "popularity"} <= set(body["evaluation"])


def test_liveness_and_readiness_are_200_with_a_model(client: FlaskClient) -> None:
    assert client.get("/health/live").get_json()["status"] == "ok"
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.get_json() == {"model_version": "v1", "status": "ready"}


def test_without_a_model_readiness_is_503_liveness_200_and_recommendations_503(config: ApiConfig) -> None:
    unloaded = create_app(config)
    unloaded.test_client_class = OpenApiCheckingClient
    unloaded.extensions[STATE_KEY].recommender = None
    client = unloaded.test_client()
    assert client.get("/health/ready").status_code == 503
    assert client.get("/health/live").status_code == 200
    response = client.get(f"/v1/users/{KNOWN_USER}/recommendations")
    assert response.status_code == 503
    assert response.get_json()["model_version"] is None
    assert "X-Model-Version" not in response.headers


def test_request_id_is_echoed(client: FlaskClient) -> None:
    response = client.get("/health/live", headers={"X-Request-Id": "shop-42.abc"})
    assert response.headers["X-Request-Id"] == "shop-42.abc"


@pytest.mark.parametrize("incoming", [None, "has space", "x" * 201, "caf\u00e9"])
def test_request_id_is_generated_when_missing_or_unusable(client: FlaskClient, incoming: str | None) -> None:
    headers = {} if incoming is None else {"X-Request-Id": incoming}
    generated = client.get("/health/live", headers=headers).headers["X-Request-Id"]
    assert generated != incoming
    assert len(generated) == 32
    assert generated != client.get("/health/live", headers=headers).headers["X-Request-Id"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health/live"),
        ("GET", "/openapi.json"),
        ("GET", "/v1/items/missing/similar"),
        ("GET", "/v1/users/u1/recommendations?k=x"),
        ("GET", "/no/such/route"),
    ],
)
def test_every_response_names_the_model_version(client: FlaskClient, method: str, path: str) -> None:
    response = client.open(path, method=method)
    assert response.headers["X-Model-Version"] == "v1"
