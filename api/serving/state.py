"""The serving state: the configuration and the recommender the app answers from, replaced whole by a model swap."""

from dataclasses import dataclass

from flask import current_app

from api.serving.config import ApiConfig
from api.serving.recommender import Recommender

STATE_KEY = "recsys"


@dataclass
class ServingState:
    config: ApiConfig
    # None only while no model is loaded (readiness reports it); a later model swap replaces it here.
    recommender: Recommender | None


def serving_state() -> ServingState:
    state: ServingState = current_app.extensions[STATE_KEY]
    return state


def model_version() -> str | None:
    recommender = serving_state().recommender
    return None if recommender is None else recommender.version
