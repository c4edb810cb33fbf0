"""HTTP endpoints. Parsing lives in `validation`, scoring in `recommender`; this file only joins them."""

from typing import Any

import numpy as np
from flask import Blueprint, Response, jsonify, request
from numpy.typing import NDArray

from api.contract import LIVENESS_PATH, READINESS_PATH
from api.serving.config import ApiConfig
from api.serving.openapi import openapi_document
from api.serving.recommender import Recommender, Scored
from api.serving.responses import ModelUnavailableError, RawJson, UnknownItemError, json_response, scored_items
from api.serving.state import request_recommender, serving_state
from api.serving.validation import (
    FieldProblems,
    check_id_text,
    json_object,
    parse_flag,
    parse_id_list,
    parse_k,
    parse_query_flag,
    parse_query_k,
    plain_query_k,
    query_exclude,
    raise_if_any,
    reject_unknown,
)

blueprint = Blueprint("recsys", __name__)

USER_QUERY = frozenset({"k", "exclude", "exclude_seen"})
SIMILAR_QUERY = frozenset({"k", "exclude"})
SESSION_BODY = frozenset({"recent_items", "k", "exclude", "exclude_seen"})
BATCH_BODY = frozenset({"user_ids", "k", "exclude_seen"})


@blueprint.get(LIVENESS_PATH)
def live() -> Response:
    return json_response({"status": "ok"})


@blueprint.get(READINESS_PATH)
def ready() -> Response:
    if request_recommender() is None:
        return json_response({"status": "not ready"}, 503)
    return json_response({"status": "ready"})


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document(serving_state().config))


@blueprint.get("/v1/model")
def model_metadata() -> Response:
    model = _recommender().model
    keys = ("created_at", "algorithm", "counts", "factors", "evaluation", "training_data")
    # The family from the loader, which reads a manifest without one (older versions) as "als".
    return json_response({"family": model.family, **{key: model.manifest.get(key) for key in keys}})


@blueprint.get("/v1/users/<user_id>/recommendations")
def user_recommendations(user_id: str) -> Response:
    config = serving_state().config
    problems = FieldProblems()
    check_id_text(user_id, "user_id", problems)
    k, exclude_seen, exclude_ids = _query(USER_QUERY, config, problems)
    raise_if_any(problems)
    recommender = _recommender()
    excluded, _ = recommender.items.find_many(exclude_ids)
    return json_response({"user_id": user_id, "k": k, **_for_user(recommender, user_id, k, excluded, exclude_seen)})


@blueprint.get("/v1/items/<item_id>/similar")
def similar_items(item_id: str) -> Response:
    config = serving_state().config
    problems = FieldProblems()
    check_id_text(item_id, "item_id", problems)
    k, _, exclude_ids = _query(SIMILAR_QUERY, config, problems)
    raise_if_any(problems)
    recommender = _recommender()
    item = recommender.items.find(item_id)
    if item is None:
        raise UnknownItemError(item_id)
    text = None if exclude_ids else recommender.similar_text(item, k)
    if text is not None:
        return json_response({"item_id": item_id, "k": k, "items": RawJson(text)})
    excluded, _ = recommender.items.find_many(exclude_ids)
    return json_response(
        {"item_id": item_id, "k": k, "items": _items(recommender, recommender.similar_items(item, k, excluded))}
    )


@blueprint.post("/v1/recommendations")
def session_recommendations() -> Response:
    config = serving_state().config
    problems = FieldProblems()
    body = json_object(request.mimetype, request.get_data(cache=False), problems)
    reject_unknown(body.keys(), SESSION_BODY, "body field", problems)
    recent = parse_id_list(body.get("recent_items"), "recent_items", config.max_recent_items, problems, required=True)
    exclude_ids = parse_id_list(body.get("exclude"), "exclude", config.max_exclude_items, problems)
    k = parse_k(body.get("k"), config, "k", problems)
    exclude_recent = parse_flag(body.get("exclude_seen"), "exclude_seen", problems, default=True)
    raise_if_any(problems)
    recommender = _recommender()
    known, unknown = recommender.items.find_many(recent)
    excluded, _ = recommender.items.find_many(exclude_ids)
    if exclude_recent:
        excluded = np.concatenate([excluded, known])
    if len(known):
        strategy, scored = "session", recommender.for_items(known, k, excluded)
    else:
        strategy, scored = "popular", recommender.popular(k, excluded)
    items = _items(recommender, scored)
    return json_response({"strategy": strategy, "k": k, "items": items, "unknown_items": unknown})


@blueprint.post("/v1/recommendations/batch")
def batch_recommendations() -> Response:
    config = serving_state().config
    problems = FieldProblems()
    body = json_object(request.mimetype, request.get_data(cache=False), problems)
    reject_unknown(body.keys(), BATCH_BODY, "body field", problems)
    user_ids = parse_id_list(body.get("user_ids"), "user_ids", config.max_batch_users, problems, required=True)
    k = parse_k(body.get("k"), config, "k", problems)
    exclude_seen = parse_flag(body.get("exclude_seen"), "exclude_seen", problems, default=True)
    raise_if_any(problems)
    recommender = _recommender()
    nothing = np.empty(0, dtype=np.int64)
    results = [
        {"user_id": user_id, **_for_user(recommender, user_id, k, nothing, exclude_seen)} for user_id in user_ids
    ]
    return json_response({"k": k, "results": results})


def _query(allowed: frozenset[str], config: ApiConfig, problems: FieldProblems) -> tuple[int, bool, list[str]]:
    """k, exclude_seen and the exclude ids of a GET; `allowed` names the query parameters the route takes."""
    # PEP 3333 lets a server leave QUERY_STRING out; Werkzeug reads it the same way for request.args.
    k = plain_query_k(request.environ.get("QUERY_STRING", ""), config)
    if k is not None:
        return k, True, []
    args = request.args
    reject_unknown(args.keys(), allowed, "query parameter", problems)
    k = parse_query_k(args.get("k"), config, "k", problems)
    exclude_seen = True
    if "exclude_seen" in allowed:
        exclude_seen = parse_query_flag(args.get("exclude_seen"), "exclude_seen", problems, default=True)
    return k, exclude_seen, query_exclude(args, config, problems)


def _recommender() -> Recommender:
    recommender = request_recommender()
    if recommender is None:
        raise ModelUnavailableError
    return recommender


def _for_user(
    recommender: Recommender, user_id: str, k: int, excluded: NDArray[np.int64], exclude_seen: bool
) -> dict[str, Any]:
    user = recommender.users.find(user_id)
    if user is None:
        return {"strategy": "popular", "items": _items(recommender, recommender.popular(k, excluded))}
    # Only answers without request-specific exclusions are kept: those are the ones that repeat.
    key = (user, k, exclude_seen) if len(excluded) == 0 else None
    cached = recommender.answers.get(key) if key is not None else None
    if cached is not None:
        return {"strategy": "personalized", "items": RawJson(cached)}
    if exclude_seen:
        excluded = np.concatenate([excluded, recommender.seen_by(user)])
    items = _items(recommender, recommender.for_user(user, k, excluded))
    if key is not None:
        recommender.answers.put(key, str(items))
    return {"strategy": "personalized", "items": items}


def _items(recommender: Recommender, scored: Scored) -> RawJson:
    """The scored items as JSON text, serialised once: the answer cache keeps this text (api/serving/cache.py)."""
    # Scores rounded to 6 decimal places in float64 (numpy's round), as the API has always written them.
    return scored_items(recommender.items.ids_at(scored.indices), scored.scores.astype(np.float64).round(6).tolist())
