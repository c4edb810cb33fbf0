"""JSON responses and the errors the routes raise for the app factory's handlers to answer."""

import json
from typing import Any

from flask import Response, current_app, g

from api.serving.state import model_version


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
    # Payloads are plain JSON types and RawJson; json.dumps straight into the response skips jsonify's provider
    # machinery, and compact separators shrink every body the router and the client handle.
    body = _encode({"model_version": model_version(), **payload})
    return current_app.response_class(body, status=status, mimetype="application/json")


def dumps(value: Any) -> str:
    # allow_nan=False: NaN and Infinity are not JSON; the loader refuses models holding them, this is the backstop.
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _encode(value: Any) -> str:
    if isinstance(value, RawJson):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{dumps(key)}:{_encode(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    return dumps(value)


def error_response(status: int, error: str, detail: list[dict[str, str]] | None = None) -> Response:
    return json_response({"error": error, "detail": detail or [], "request_id": g.get("request_id")}, status)
