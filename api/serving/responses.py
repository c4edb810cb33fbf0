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


def json_response(payload: dict[str, Any], status: int = 200) -> Response:
    # Payloads are plain JSON types; json.dumps straight into the response skips jsonify's provider machinery, and
    # compact separators shrink every body the router and the client handle.
    body = json.dumps({"model_version": model_version(), **payload}, separators=(",", ":"))
    return current_app.response_class(body, status=status, mimetype="application/json")


def error_response(status: int, error: str, detail: list[dict[str, str]] | None = None) -> Response:
    return json_response({"error": error, "detail": detail or [], "request_id": g.get("request_id")}, status)
