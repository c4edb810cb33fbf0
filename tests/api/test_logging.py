"""One JSON line per request with exactly the contract's fields; errors are level ERROR."""

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.contract import LOG_BASE_FIELDS, LOG_LEVELS, LOG_REQUEST_FIELDS
from api.serving.state import STATE_KEY


def request_records(output: str) -> list[dict[str, Any]]:
    return [record for record in map(json.loads, output.splitlines()) if record["logger"] == "api.request"]


@pytest.mark.parametrize("path", ["/v1/users/u0000001/recommendations", "/health/live", "/v1/items/nope/similar"])
def test_each_request_logs_one_json_line_with_the_contract_fields(
    client: FlaskClient, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    capsys.readouterr()
    response = client.get(path, headers={"X-Request-Id": "log-test-1"})
    records = request_records(capsys.readouterr().out)
    assert len(records) == 1
    record = records[0]
    assert list(record) == [*LOG_BASE_FIELDS, *LOG_REQUEST_FIELDS]
    assert record["level"] in LOG_LEVELS
    assert record["request_id"] == "log-test-1"
    assert record["path"] == path
    assert record["status"] == response.status_code
    assert record["method"] == "GET"
    assert record["model_version"] == "v1"
    assert record["duration_ms"] >= 0
    assert record["time"].endswith("+00:00")


def test_requests_answered_with_5xx_are_logged_at_error_level(
    app: Flask, client: FlaskClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.extensions[STATE_KEY], "recommender", None)
    capsys.readouterr()
    client.get("/v1/model")
    client.get("/health/live")
    levels = [record["level"] for record in request_records(capsys.readouterr().out)]
    assert levels == ["ERROR", "INFO"]
