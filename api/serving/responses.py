"""JSON responses and the errors the routes raise for the app factory's handlers to answer."""

import json
import math
from json.encoder import encode_basestring_ascii
from typing import Any

from flask import Response, current_app, g

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
    # Payloads are plain JSON types and RawJson; the text goes straight into the response, skipping jsonify's
    # provider machinery.
    body = _encode({"model_version": model_version(), **payload})
    return current_app.response_class(body, status=status, mimetype="application/json")


def dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def scored_items(ids: list[str], scores: list[float]) -> RawJson:
    """`[{"item_id": ..., "score": ...}, ...]` as json.dumps writes it (compact, ASCII), without building the dicts.

    Strings are quoted by the encoder json.dumps uses for them, and floats written with float.__repr__ as json does;
    non-finite scores raise ValueError as json.dumps(allow_nan=False) would (tests/api/test_responses.py compares
    the two on hostile ids and scores).
    """
    # The sum is finite exactly when every score is (scores are float32 values, at most max_k of them: no overflow;
    # and an overflow could only refuse, never let a non-finite score through): one C loop, not a check per score.
    if not math.isfinite(sum(scores)):
        raise ValueError(f"Out of range float values are not JSON compliant: {scores!r}")
    # An f-string per item: about 0.4 us, against 1 us for str.format and 1.6 us for json.dumps of the dicts.
    quote = encode_basestring_ascii
    items = [f'{{"item_id":{quote(i)},"score":{s!r}}}' for i, s in zip(ids, scores, strict=True)]
    return RawJson("[" + ",".join(items) + "]")


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
