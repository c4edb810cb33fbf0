"""The serving state: the configuration and the recommender the app answers from, replaced whole by a model swap."""

from dataclasses import dataclass

from flask import current_app, g, has_request_context

from api.serving.config import ApiConfig
from api.serving.recommender import Recommender

STATE_KEY = "recsys"
_SNAPSHOT = "recommender"
_NOT_TAKEN = object()


@dataclass
class ServingState:
    config: ApiConfig
    # None only while no model is loaded (readiness reports it); a later model swap replaces it here.
    recommender: Recommender | None


def serving_state() -> ServingState:
    state: ServingState = current_app.extensions[STATE_KEY]
    return state


def request_recommender() -> Recommender | None:
    """The recommender this request answers from, taken once per request.

    A model swap replaces `ServingState.recommender` at any moment; the route's items, the body's `model_version`,
    the X-Model-Version header and the request log line all read this one snapshot, so they always agree.
    """
    if not has_request_context():
        return serving_state().recommender
    # One lookup through Flask's `g` proxy, not two (`in`, then the attribute): this runs 3-4 times a request.
    taken = g.get(_SNAPSHOT, _NOT_TAKEN)
    if taken is _NOT_TAKEN:
        taken = serving_state().recommender
        setattr(g, _SNAPSHOT, taken)
    recommender: Recommender | None = taken
    return recommender


def model_version() -> str | None:
    recommender = request_recommender()
    return None if recommender is None else recommender.version
