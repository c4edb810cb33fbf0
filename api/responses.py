"""Response helpers and the serving state shared by the app factory and the routes."""

import json
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, g

from api.config import ApiConfig
from api.recommender import Recommender

STATE_KEY = "recsys"


@dataclass
class ServingState:
    config: ApiConfig
    # None only while no model is loaded (readiness reports it); a later model swap replaces it here.
    recommender: Recommender | None


class ModelUnavailableError(Exception):
    pass


class UnknownItemError(Exception):
    def __init__(self, item_id: str) -> None:
        super().__init__(item_id)
        self.item_id = item_id


def serving_state() -> ServingState:
    state: ServingState = current_app.extensions[STATE_KEY]
    return state


def model_version() -> str | None:
    recommender = serving_state().recommender
    return None if recommender is None else recommender.version


def json_response(payload: dict[str, Any], status: int = 200) -> Response:
    # Payloads are plain JSON types; json.dumps straight into the response skips jsonify's provider machinery, and
    # compact separators shrink every body the router and the client handle.
    body = json.dumps({"model_version": model_version(), **payload}, separators=(",", ":"))
    return current_app.response_class(body, status=status, mimetype="application/json")


def error_response(status: int, error: str, detail: list[dict[str, str]] | None = None) -> Response:
    return json_response({"error": error, "detail": detail or [], "request_id": g.get("request_id")}, status)
