"""Requests built to break the server: each is a 4xx with the JSON error shape, never a 500 (issue 14, 2, 9, 10)."""

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.serving.recommender import Recommender
from api.serving.state import STATE_KEY, ServingState

USER = "/v1/users/u0000001/recommendations"
SESSION = "/v1/recommendations"
BATCH = "/v1/recommendations/batch"


def _assert_error(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    assert set(body) == {"model_version", "error", "detail", "request_id"}
    if field is not None:
        assert [entry["field"] for entry in body["detail"]] == [field], body
    return body


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"recent_items":["i0000007"],"k":Infinity}', "Infinity"),
        ('{"recent_items":["i0000007"],"k":-Infinity}', "-Infinity"),
        ('{"recent_items":["i0000007"],"k":NaN}', "NaN"),
        ('{"recent_items":["i0000007"],"k":1e400}', "1e400"),
        ('{"recent_items":["\\ud800"]}', "lone surrogate"),
        ('{"recent_items":["i0000007"],"exclude":["a\\udfff"]}', "lone surrogate"),
        ('{"recent_items":["i0000007"],"\\ud800":1}', "lone surrogate"),
        ("[" * 20_000 + "]" * 20_000, "nested deeper"),
        ('{"recent_items":' + "[" * 40 + "]" * 40 + "}", "nested deeper"),
        ('{"recent_items":["i0000007"],"k":' + "9" * 5000 + "}", "not valid JSON"),
        ('{"recent_items":["i0000007"],"recent_items":["i0000008"]}', "repeats the key"),
    ],
)
def test_json_a_parser_would_turn_into_a_500_is_a_400_naming_the_body(
    client: FlaskClient, raw: str, message: str
) -> None:
    body = _assert_error(client.post(SESSION, data=raw, content_type="application/json"), 400, "body")
    assert message in body["detail"][0]["message"]


def test_lone_surrogate_in_batch_user_ids_is_a_400(client: FlaskClient) -> None:
    response = client.post(BATCH, data='{"user_ids":["\\ud800"]}', content_type="application/json")
    _assert_error(response, 400, "body")


def test_invalid_utf8_body_is_a_400(client: FlaskClient) -> None:
    _assert_error(client.post(SESSION, data=b'{"recent_items":["\xff"]}', content_type="application/json"), 400, "body")


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"k": "5"}, "k"),
        ({"k": 1e20}, "k"),
        ({"k": 5.0}, "k"),
        ({"k": None}, None),
        ({"exclude_seen": "yes"}, "exclude_seen"),
        ({"exclude_seen": 1}, "exclude_seen"),
        ({"exclude_seen": "true"}, "exclude_seen"),
    ],
)
def test_json_body_types_are_those_of_the_openapi_document(
    client: FlaskClient, extra: dict[str, Any], field: str | None
) -> None:
    response = client.post(SESSION, json={"recent_items": ["i0000007"], **extra})
    if field is None:  # null means "not given": the default applies
        assert response.status_code == 200
    else:
        _assert_error(response, 400, field)


def test_a_huge_json_integer_k_is_capped_like_any_large_k(client: FlaskClient) -> None:
    response = client.post(
        SESSION, data='{"recent_items":["i0000007"],"k":' + "9" * 100 + "}", content_type="application/json"
    )
    assert response.status_code == 200
    assert response.get_json()["k"] == 100


@pytest.mark.parametrize(
    "query",
    ["k=%205", "k=5%20", "k=%EF%BC%95", "k=%D9%A5", "k=1_0", "k=+5", "k=1e2", "k=0x10", "k=9999999999", "k=5.0"],
)
def test_query_k_is_plain_ascii_digits(client: FlaskClient, query: str) -> None:
    _assert_error(client.get(f"{USER}?{query}"), 400, "k")


@pytest.mark.parametrize("value", ["yes", "1", "TRUE", "on", ""])
def test_query_flags_are_true_or_false(client: FlaskClient, value: str) -> None:
    _assert_error(client.get(f"{USER}?exclude_seen={value}"), 400, "exclude_seen")


def test_surrogate_bytes_in_a_path_id_are_an_unknown_user_not_a_500(client: FlaskClient) -> None:
    # The UTF-8 encoding of U+D800 is invalid UTF-8: the path decodes with replacement characters, a valid id.
    response = client.get("/v1/users/%ED%A0%80/recommendations")
    assert response.status_code == 200
    assert response.get_json()["strategy"] == "popular"


def test_wrong_method_is_405_json_with_allow(client: FlaskClient) -> None:
    response = client.delete(SESSION)
    _assert_error(response, 405)
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}


@pytest.mark.parametrize(("path", "allowed"), [(SESSION, {"POST", "OPTIONS"}), (USER, {"GET", "HEAD", "OPTIONS"})])
def test_options_is_204_with_allow(client: FlaskClient, path: str, allowed: set[str]) -> None:
    response = client.options(path)
    assert response.status_code == 204
    assert response.data == b""
    assert set(response.headers["Allow"].split(", ")) == allowed
    assert "Content-Type" not in response.headers


def test_options_on_an_unknown_path_is_404_json(client: FlaskClient) -> None:
    _assert_error(client.options("/v2/nothing"), 404)


def test_chunked_body_is_411_and_closes_the_connection(client: FlaskClient) -> None:
    response = client.post(
        SESSION,
        data=b'{"recent_items":["i0000007"]}',
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
    )
    _assert_error(response, 411, "body")
    assert response.headers["Connection"] == "close"


def test_one_snapshot_labels_a_request_even_when_a_swap_lands_mid_request(
    app: Flask,
    client: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    model_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A swap between the route's work and the response must not relabel the old model's items with the new version."""
    state: ServingState = app.extensions[STATE_KEY]
    serving = state.recommender
    assert serving is not None
    stand_in = Recommender(serving.model)
    stand_in.version = "v-swapped-in"
    original = Recommender.popular

    def swap_mid_request(self: Recommender, *args: Any) -> Any:
        state.recommender = stand_in  # what the watcher thread does, at the worst moment
        return original(self, *args)

    monkeypatch.setattr(Recommender, "popular", swap_mid_request)
    capsys.readouterr()
    try:
        response = client.get("/v1/users/someone-new/recommendations?k=3")
    finally:
        state.recommender = serving
    assert response.get_json()["model_version"] == serving.version
    assert response.headers["X-Model-Version"] == serving.version
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    request_line = next(record for record in logged if record.get("path") == "/v1/users/someone-new/recommendations")
    assert request_line["model_version"] == serving.version
