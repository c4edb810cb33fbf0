"""The similar-items shortcut answers exactly as Flask does, and only the requests it can answer exactly.

Each request runs twice on one environ: through the app as served (the shortcut in front) and through Flask alone
(the shortcut's `_flask_wsgi`). Status, headers in order, body and the request log line (but its time and duration)
must be equal, over every item of both model families at several k, ids that JSON escapes or that are not ASCII,
and the requests the shortcut must leave to Flask.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from flask import Flask
from werkzeug.test import EnvironBuilder, run_wsgi_app

from api.serving.app import create_app
from api.serving.config import ApiConfig
from api.serving.similar_shortcut import SimilarItemsShortcut
from api.training.cli import TrainResult, train
from tests.api.conftest import TINY_ALS

Answer = tuple[str, list[tuple[str, str]], bytes, list[dict[str, Any]]]

# Item ids JSON escapes, that break the answer's text apart, that URLs must encode, or that are not ASCII.
ODD_ITEM_IDS = ['q"uote', "back\\slash", '},{"item_id":"x', "caf\u00e9", "sp ace", "per%cent", "que?ry", "]"]
UNSTAMPED_LOG_FIELDS = ("time", "duration_ms")


def _answer(wsgi: Any, environ: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Answer:
    capsys.readouterr()
    body, status, headers = run_wsgi_app(wsgi, environ)
    content = b"".join(body)
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for record in records:
        for name in UNSTAMPED_LOG_FIELDS:
            record.pop(name, None)
    return status, list(headers.items()), content, records


def _environ(path: str, method: str = "GET", headers: dict[str, str] | None = None) -> dict[str, Any]:
    route, _, query = path.partition("?")
    builder = EnvironBuilder(path=route, query_string=query, method=method, headers=list((headers or {}).items()))
    try:
        return builder.get_environ()
    finally:
        builder.close()


def _shortcut(app: Flask) -> SimilarItemsShortcut:
    shortcut = app.wsgi_app
    assert isinstance(shortcut, SimilarItemsShortcut)
    return shortcut


def _same_as_flask(
    app: Flask, capsys: pytest.CaptureFixture[str], path: str, method: str = "GET", **headers: str
) -> Answer:
    headers = {"X-Request-Id": "same-id", **headers}
    served = _answer(app, _environ(path, method, headers), capsys)
    flask_alone = _answer(_shortcut(app)._flask_wsgi, _environ(path, method, headers), capsys)
    assert served == flask_alone, path
    return served


def _count_flask_calls(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    shortcut = _shortcut(app)
    flask_wsgi = shortcut._flask_wsgi
    reached: list[str] = []

    def counted(environ: dict[str, Any], start_response: Any) -> Any:
        reached.append(environ["PATH_INFO"])
        return flask_wsgi(environ, start_response)

    monkeypatch.setattr(shortcut, "_flask_wsgi", counted)
    return reached


def _item_ids(app: Flask) -> list[str]:
    items = app.extensions["recsys"].recommender.items
    return [items.id_at(index) for index in range(len(items))]


@pytest.mark.parametrize("query", ["", "?k=1", "?k=5", "?k=10", "?k=11", "?k=20", "?k=100", "?k=99999"])
def test_every_items_answer_is_flasks_byte_for_byte(app: Flask, capsys: pytest.CaptureFixture[str], query: str) -> None:
    for item_id in _item_ids(app):
        status, _, body, records = _same_as_flask(app, capsys, f"/v1/items/{quote(item_id)}/similar{query}")
        assert status == "200 OK"
        assert json.loads(body)["item_id"] == item_id
        assert [record["status"] for record in records] == [200]


@pytest.fixture(scope="module")
def item_item_app(item_item_trained: TrainResult) -> Flask:
    return create_app(ApiConfig(model_dir=item_item_trained.version_dir.parent))


@pytest.mark.parametrize("query", ["", "?k=3", "?k=100"])
def test_item_item_versions_answer_as_flask_does(
    item_item_app: Flask, capsys: pytest.CaptureFixture[str], query: str
) -> None:
    for item_id in _item_ids(item_item_app):
        assert _same_as_flask(item_item_app, capsys, f"/v1/items/{item_id}/similar{query}")[0] == "200 OK"


@pytest.fixture(scope="module")
def odd_ids_app(interactions_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The tiny data set with some items renamed to ODD_ITEM_IDS."""
    table = pq.read_table(interactions_file)
    renames = {f"i{index:07d}": odd for index, odd in enumerate(ODD_ITEM_IDS)}
    item_ids = [renames.get(item_id, item_id) for item_id in table.column("item_id").to_pylist()]
    table = table.set_column(table.schema.get_field_index("item_id"), "item_id", pa.array(item_ids, pa.string()))
    data = tmp_path_factory.mktemp("odd-data") / "interactions.parquet"
    pq.write_table(table, data)
    trained = train(data, tmp_path_factory.mktemp("odd-models"), TINY_ALS, version="odd", family="als")
    yield create_app(ApiConfig(model_dir=trained.version_dir.parent))


def test_ids_that_json_escapes_or_urls_encode_answer_as_flask_does(
    odd_ids_app: Flask, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    known = set(_item_ids(odd_ids_app))
    assert set(ODD_ITEM_IDS) <= known
    reached = _count_flask_calls(odd_ids_app, monkeypatch)
    for item_id in ODD_ITEM_IDS:
        status, _, body, _ = _same_as_flask(odd_ids_app, capsys, f"/v1/items/{quote(item_id, safe='')}/similar?k=4")
        assert status == "200 OK"
        assert json.loads(body)["item_id"] == item_id
    # Each request above ran once through Flask alone; the non-ASCII id also went to Flask from the shortcut.
    assert len(reached) == len(ODD_ITEM_IDS) + 1


LEFT_TO_FLASK = [
    "/v1/items/nope/similar",  # unknown item: 404
    "/v1/items/i0000001/similar?k=0",
    "/v1/items/i0000001/similar?k=-1",
    "/v1/items/i0000001/similar?k=abc",
    "/v1/items/i0000001/similar?k=1234567890",
    "/v1/items/i0000001/similar?k=2&k=3",
    "/v1/items/i0000001/similar?exclude=i0000002",
    "/v1/items/i0000001/similar?k=3&exclude=i0000002,i0000003",
    "/v1/items/i0000001/similar?colour=red",
    "/v1/items/i0000001/similar/",
    "/v1/items//similar",
    "/v1/items/i0000001%00/similar",
    "/v1/items/%ff%fe/similar",
    "/v1/items/%ed%a0%80/similar",  # UTF-8 of a lone surrogate
    "/v1/items/caf%C3%A9/similar",
    "/v1/items/" + "x" * 256 + "/similar",
    "/v1/items/" + "x" * 257 + "/similar",
    "/v1/items/" + "x" * 9000 + "/similar",  # over the request-target limit: 414
    "/v1/items/i0000001/similar/extra",
    "/v1/ITEMS/i0000001/similar",
    "/health/live",
    "/v1/users/u0000001/recommendations",
]


@pytest.mark.parametrize("path", LEFT_TO_FLASK)
def test_requests_the_shortcut_cannot_answer_go_to_flask_and_are_answered_as_before(
    app: Flask, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    reached = _count_flask_calls(app, monkeypatch)
    status, _, _, records = _same_as_flask(app, capsys, path)
    assert len(reached) == 2  # once from the shortcut, once for Flask alone
    assert not status.startswith("5")
    assert len(records) == 1


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("HEAD", {}),
        ("OPTIONS", {}),
        ("POST", {}),
        ("DELETE", {}),
        ("GET", {"Transfer-Encoding": "chunked"}),
        ("GET", {"Cookie": "c" * 20_000}),  # over the header limit: 431
    ],
)
def test_other_methods_chunked_bodies_and_large_heads_go_to_flask(
    app: Flask,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    headers: dict[str, str],
) -> None:
    reached = _count_flask_calls(app, monkeypatch)
    status, _, _, _ = _same_as_flask(app, capsys, "/v1/items/i0000001/similar?k=3", method, **headers)
    assert len(reached) == 2
    assert not status.startswith("5")


@pytest.mark.parametrize("request_id", ["same-id", "", "has space", "x" * 201, "\u00e9t\u00e9"])
def test_the_request_id_is_taken_or_replaced_as_flask_does(
    app: Flask, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, request_id: str
) -> None:
    reached = _count_flask_calls(app, monkeypatch)
    environ = _environ("/v1/items/i0000001/similar?k=3", headers={"X-Request-Id": request_id})
    environ["HTTP_X_REQUEST_ID"] = request_id  # as the server passes it, even when empty or not latin-1 text
    _, headers, _, records = _answer(app, environ, capsys)
    assert reached == []
    sent = dict(headers)["X-Request-Id"]
    assert records[0]["request_id"] == sent
    if request_id == "same-id":
        assert sent == request_id
    else:
        assert sent != request_id
        assert len(sent) == 32


def test_plain_requests_for_known_items_never_reach_flask(
    app: Flask, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reached = _count_flask_calls(app, monkeypatch)
    for path in ("/v1/items/i0000001/similar", "/v1/items/i0000002/similar?k=7"):
        assert _answer(app, _environ(path), capsys)[0] == "200 OK"
    assert reached == []


def test_an_answer_that_raises_is_answered_by_flask_instead(
    app: Flask, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.serving.similar_shortcut as shortcut_module

    request = ("/v1/items/i0000001/similar?k=3", "GET", {"X-Request-Id": "same-id"})
    expected = _answer(app, _environ(*request), capsys)

    def broken(*_: object) -> str:
        raise RuntimeError("encoder broke")

    monkeypatch.setattr(shortcut_module, "json_body", broken)
    reached = _count_flask_calls(app, monkeypatch)
    assert _answer(app, _environ(*request), capsys) == expected
    assert len(reached) == 1


def test_without_a_model_the_request_goes_to_flask_which_answers_503(
    app: Flask, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.extensions["recsys"], "recommender", None)
    reached = _count_flask_calls(app, monkeypatch)
    status, _, body, _ = _answer(app, _environ("/v1/items/i0000001/similar"), capsys)
    assert status.startswith("503")
    assert json.loads(body)["error"] == "model not loaded"
    assert len(reached) == 1
