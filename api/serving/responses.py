"""JSON responses and the errors the routes raise for the app factory's handlers to answer."""

import json
from json.encoder import encode_basestring_ascii
from typing import Any

from flask import Response, g

from api.model.answers import items_json
from api.serving.state import model_version

# One encoder for every response: json.dumps with any keyword argument builds a new JSONEncoder per call (about 1 us
# each, several calls a request). allow_nan=False: NaN and Infinity are not JSON; the loader refuses models holding
# them, this is the backstop. Compact separators shrink every body the router and the client handle.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


class ModelUnavailableError(Exception):
    pass


class UnknownItemError(Exception):
    def __init__(self, item_id: str) -> None:
        super().__init__(item_id)
        self.item_id = item_id


class RawJson(str):
    """JSON text serialised once (a list of scored items, possibly from the answer cache), spliced in as it is."""

    __slots__ = ()


def json_response(payload: dict[str, Any], status: int = 200) -> Response:
    # Flask's own Response class (the app never replaces it): `current_app.response_class` is one more proxy lookup.
    return Response(json_body(model_version(), payload), status=status, mimetype="application/json")


def json_body(version: str | None, payload: dict[str, Any]) -> str:
    """Every JSON answer's text: the model version, then the payload. Payloads are plain JSON types and RawJson; the
    text goes straight into the response, skipping jsonify's provider machinery."""
    return _encode({"model_version": version, **payload})


def dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def scored_items(ids: list[str], scores: list[float]) -> RawJson:
    """The items of an answer as JSON text (api.model.answers.items_json, which also writes the stored answers)."""
    return RawJson(items_json(ids, scores))


def _encode(value: Any) -> str:
    kind = type(value)
    if kind is RawJson:
        return str(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if kind is int:
        return int.__repr__(value)
    if kind is dict:
        return "{" + ",".join([f"{_key(key)}:{_encode(item)}" for key, item in value.items()]) + "}"
    if kind is list and any(isinstance(item, dict | list) for item in value):
        return "[" + ",".join([_encode(item) for item in value]) + "]"
    return dumps(value)


def _key(key: Any) -> str:
    return encode_basestring_ascii(key) if type(key) is str else dumps(key)


def error_response(status: int, error: str, detail: list[dict[str, str]] | None = None) -> Response:
    return json_response({"error": error, "detail": detail or [], "request_id": g.get("request_id")}, status)
