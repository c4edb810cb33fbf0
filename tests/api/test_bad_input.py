"""Bad input is a 400 naming every bad field; other failures are JSON with the right status and no stack trace."""

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.serving.config import ApiConfig
from api.serving.recommender import Recommender
from api.serving.state import STATE_KEY

USER = "/v1/users/u0000001/recommendations"
SIMILAR = "/v1/items/i0000003/similar"
SESSION = "/v1/recommendations"
BATCH = "/v1/recommendations/batch"


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        (f"{USER}?k=abc", ["k"]),
        (f"{USER}?k=0", ["k"]),
        (f"{USER}?k=-3", ["k"]),
        (f"{USER}?k=2.5", ["k"]),
        (f"{USER}?exclude_seen=maybe", ["exclude_seen"]),
        (f"{USER}?colour=red", ["colour"]),
        (f"{USER}?k=abc&exclude_seen=maybe&colour=red", ["colour", "k", "exclude_seen"]),
        (f"{USER}?exclude=" + ",".join(f"i{index}" for index in range(501)), ["exclude"]),
        ("/v1/users/" + "u" * 257 + "/recommendations", ["user_id"]),
        (f"{SIMILAR}?k=many", ["k"]),
        (f"{SIMILAR}?exclude_seen=true", ["exclude_seen"]),
        ("/v1/items/" + "i" * 257 + "/similar", ["item_id"]),
    ],
)
def test_bad_query_is_400_naming_each_field(client: FlaskClient, path: str, fields: list[str]) -> None:
    response = client.get(path)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid request"
    assert [entry["field"] for entry in body["detail"]] == fields


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        (SESSION, {}, ["recent_items"]),
        (SESSION, {"recent_items": []}, ["recent_items"]),
        (SESSION, {"recent_items": "i0000003"}, ["recent_items"]),
        (SESSION, {"recent_items": [1, 2]}, ["recent_items"]),
        (SESSION, {"recent_items": [""]}, ["recent_items"]),
        (SESSION, {"recent_items": [f"i{index}" for index in range(201)]}, ["recent_items"]),
        (SESSION, {"recent_items": ["i0000003"], "k": "ten"}, ["k"]),
        (SESSION, {"recent_items": ["i0000003"], "k": True}, ["k"]),
        (SESSION, {"recent_items": ["i0000003"], "k": 1.5}, ["k"]),
        (SESSION, {"recent_items": ["i0000003"], "exclude": "i1"}, ["exclude"]),
        (SESSION, {"recent_items": ["i0000003"], "exclude_seen": "perhaps"}, ["exclude_seen"]),
        (SESSION, {"recent_items": ["i0000003"], "colour": "red"}, ["colour"]),
        (SESSION, {"k": 0, "colour": "red"}, ["colour", "recent_items", "k"]),
        (SESSION, ["i0000003"], ["body"]),
        (BATCH, {}, ["user_ids"]),
        (BATCH, {"user_ids": "u0000001"}, ["user_ids"]),
        (BATCH, {"user_ids": [f"u{index}" for index in range(101)]}, ["user_ids"]),
        (BATCH, {"user_ids": ["u0000001"], "k": 0}, ["k"]),
        (BATCH, {"user_ids": ["u0000001"], "exclude": ["i1"]}, ["exclude"]),
    ],
)
def test_bad_json_body_is_400_naming_each_field(client: FlaskClient, path: str, body: Any, fields: list[str]) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 400
    assert [entry["field"] for entry in response.get_json()["detail"]] == fields


@pytest.mark.parametrize(
    ("data", "content_type"),
    [('{"recent_items": [', "application/json"), ('{"recent_items": ["i1"]}', "text/plain"), ("", None)],
)
def test_unparseable_or_non_json_body_is_400_naming_body(
    client: FlaskClient, data: str, content_type: str | None
) -> None:
    response = client.post(SESSION, data=data, content_type=content_type)
    assert response.status_code == 400
    assert [entry["field"] for entry in response.get_json()["detail"]] == ["body"]


@pytest.mark.parametrize("path", [SESSION, BATCH])
def test_oversize_body_is_413(client: FlaskClient, config: ApiConfig, path: str) -> None:
    padding = "x" * config.max_body_bytes
    response = client.post(path, data=json.dumps({"user_ids": [padding]}), content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["detail"][0]["field"] == "body"


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/v2/anything", 404), ("GET", SESSION, 405), ("DELETE", USER, 405)]
)
def test_unknown_routes_and_methods_answer_json(client: FlaskClient, method: str, path: str, status: int) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.is_json
    assert response.get_json()["error"]


def test_internal_error_is_500_without_stack_trace_and_logged_as_error(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def explode(*_: Any) -> None:
        raise RuntimeError("secret internal detail")

    recommender: Recommender = app.extensions[STATE_KEY].recommender
    monkeypatch.setattr(recommender, "for_user", explode)
    response = client.get(USER, headers={"X-Request-Id": "boom-1"})
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "secret" not in text
    assert "Traceback" not in text
    assert response.get_json()["request_id"] == "boom-1"
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    failure = next(record for record in records if "exception" in record)
    assert failure["level"] == "ERROR"
    assert failure["request_id"] == "boom-1"
    assert "secret internal detail" in failure["exception"]
