"""Flask application factory: loads the model once, then answers from memory."""

import logging
import time

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from api.model.loader import load_model
from api.serving.config import ApiConfig
from api.serving.heads import head_problem
from api.serving.logs import APP_LOGGER, accepted_request_id, configure_logging, log_request
from api.serving.recommender import Recommender
from api.serving.responses import ModelUnavailableError, UnknownItemError, error_response
from api.serving.routes import blueprint
from api.serving.similar_shortcut import SimilarItemsShortcut
from api.serving.state import STATE_KEY, ServingState, model_version, request_recommender, serving_state
from api.serving.validation import InvalidRequestError


def create_app(config: ApiConfig | None = None) -> Flask:
    config = config or ApiConfig.from_env()
    configure_logging()
    # Loaded before uWSGI forks: the in-memory ANN index is shared copy-on-write by the workers.
    recommender = Recommender.for_config(load_model(config.model_dir, index_in_memory=True), config)
    logging.getLogger(APP_LOGGER).info(
        "model %s loaded from %s",
        recommender.version,
        recommender.model.path,
        extra={"model_version": recommender.version},
    )
    app = Flask(__name__)
    # Werkzeug would answer "/v1/users//x" with a redirect to the merged path; an API answers 404 instead.
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[STATE_KEY] = ServingState(config=config, recommender=recommender)
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.register_error_handler(InvalidRequestError, _bad_request)
    app.register_error_handler(UnknownItemError, _unknown_item)
    app.register_error_handler(ModelUnavailableError, _model_unavailable)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)
    app.register_blueprint(blueprint)
    app.wsgi_app = SimilarItemsShortcut(app.wsgi_app, app.extensions[STATE_KEY])  # type: ignore[method-assign]
    return app


def _start_request() -> Response | None:
    g.started = time.perf_counter()
    g.request_id = accepted_request_id(request.headers.get("X-Request-Id", ""))
    request_recommender()  # the one snapshot this request answers from (api/serving/state.py)
    oversized = head_problem(request.environ, serving_state().config)
    if oversized is not None:
        status, error, detail = oversized
        return error_response(status, error, [detail])
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        # uWSGI 2.0's HTTP router does not decode chunked request bodies (it would pass them on as the next request
        # on the connection), so the body cannot be read: ask for Content-Length and close the connection.
        response = error_response(
            411, "length required", [{"field": "body", "message": "send the body with Content-Length, not chunked"}]
        )
        response.headers["Connection"] = "close"
        return response
    if request.method == "OPTIONS" and request.url_rule is not None:
        # Flask's automatic answer is 200 text/html; an API answers 204 with the methods the path allows.
        response = Response(status=204, headers={"Allow": _allowed(request.url_rule.methods)})
        del response.headers["Content-Type"]
        return response
    return None


def _allowed(methods: "set[str] | frozenset[str] | None") -> str:
    return ", ".join(sorted(methods or ()))


def _finish_request(response: Response) -> Response:
    version = model_version()
    request_id = g.request_id
    response.headers["X-Request-Id"] = request_id
    if version is not None:
        response.headers["X-Model-Version"] = version
    log_request(
        request_id=request_id,
        method=request.method,
        path=request.path,
        status=response.status_code,
        started=g.started,
        model_version=version,
    )
    return response


def _bad_request(error: InvalidRequestError) -> Response:
    return error_response(400, "invalid request", error.details)


def _unknown_item(error: UnknownItemError) -> Response:
    return error_response(
        404, "unknown item", [{"field": "item_id", "message": f"{error.item_id!r} is not in the model"}]
    )


def _model_unavailable(_: ModelUnavailableError) -> Response:
    return error_response(503, "model not loaded")


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status == 413:
        limit = serving_state().config.max_body_bytes
        return error_response(413, "request body too large", [{"field": "body", "message": f"limit is {limit} bytes"}])
    response = error_response(status, (error.name or "error").lower())
    if isinstance(error, MethodNotAllowed):
        # RFC 9110 section 15.5.6: a 405 lists the methods the resource supports.
        response.headers["Allow"] = _allowed(set(error.valid_methods or ()) | {"OPTIONS"})
    return response


def _internal_error(error: Exception) -> Response:
    logging.getLogger(APP_LOGGER).error(
        "unhandled error in %s %s",
        request.method,
        request.path,
        exc_info=error,
        extra={"request_id": g.get("request_id"), "model_version": model_version()},
    )
    return error_response(500, "internal error")
