"""The OpenAPI 3.1 description served at /openapi.json; the test client checks every response against it."""

from typing import Any

from api.contract import LIVENESS_PATH, READINESS_PATH
from api.serving.config import ApiConfig


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _response(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "X-Request-Id": {"$ref": "#/components/headers/RequestId"},
            "X-Model-Version": {"$ref": "#/components/headers/ModelVersion"},
        },
        "content": {"application/json": {"schema": _ref(schema)}},
    }


ERRORS = {
    "500": _response("Unexpected failure; the body never carries a stack trace.", "Error"),
    "503": _response("No model is loaded.", "Error"),
}
BAD_INPUT = {"400": _response("Invalid input; `detail` names each bad field.", "Error")}
TOO_LARGE = {"413": _response("Request body larger than the documented limit.", "Error")}
# Every path answers these; added to each operation by `openapi_document`.
WRONG_METHOD = {"405": _response("Method not allowed on this path; the Allow header lists the allowed ones.", "Error")}
CHUNKED = {"411": _response("A chunked request body (any method) is not read; send Content-Length.", "Error")}
OVERSIZED_HEAD = {
    "414": _response("The request target (path and query) is longer than the documented limit.", "Error"),
    "431": _response("The header fields together are larger than the documented limit.", "Error"),
}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def _schemas(config: ApiConfig) -> dict[str, Any]:
    version = {"type": ["string", "null"], "description": "Version of the model that answered."}
    items = {"type": "array", "items": _ref("ScoredItem")}
    k_used = {"type": "integer", "minimum": 1, "maximum": config.max_k, "description": "The k actually used."}
    return {
        "ScoredItem": _object({"item_id": {"type": "string"}, "score": {"type": "number"}}),
        "Error": _object(
            {
                "model_version": version,
                "error": {"type": "string"},
                "detail": {
                    "type": "array",
                    "items": _object({"field": {"type": "string"}, "message": {"type": "string"}}),
                },
                "request_id": {"type": "string"},
            }
        ),
        "Health": _object(
            {"model_version": version, "status": {"type": "string", "enum": ["ok", "ready", "not ready"]}}
        ),
        "UserRecommendations": _object(
            {
                "model_version": version,
                "user_id": {"type": "string"},
                "k": k_used,
                "strategy": {"type": "string", "enum": ["personalized", "popular"]},
                "items": items,
            }
        ),
        "SimilarItems": _object({"model_version": version, "item_id": {"type": "string"}, "k": k_used, "items": items}),
        "SessionRequest": _object(
            {
                "recent_items": {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 1,
                    "maxItems": config.max_recent_items,
                },
                "k": {"type": "integer", "minimum": 1, "default": config.default_k},
                "exclude": {"type": "array", "items": {"type": "string"}, "maxItems": config.max_exclude_items},
                "exclude_seen": {"type": "boolean", "default": True, "description": "Leave out the recent items."},
            },
            required=["recent_items"],
        ),
        "SessionRecommendations": _object(
            {
                "model_version": version,
                "strategy": {"type": "string", "enum": ["session", "popular"]},
                "k": k_used,
                "items": items,
                "unknown_items": {"type": "array", "items": {"type": "string"}},
            }
        ),
        "BatchRequest": _object(
            {
                "user_ids": {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 1,
                    "maxItems": config.max_batch_users,
                },
                "k": {"type": "integer", "minimum": 1, "default": config.default_k},
                "exclude_seen": {"type": "boolean", "default": True},
            },
            required=["user_ids"],
        ),
        "BatchRecommendations": _object(
            {
                "model_version": version,
                "k": k_used,
                "results": {
                    "type": "array",
                    "items": _object(
                        {
                            "user_id": {"type": "string"},
                            "strategy": {"type": "string", "enum": ["personalized", "popular"]},
                            "items": items,
                        }
                    ),
                },
            }
        ),
        "ModelMetadata": _object(
            {
                "model_version": version,
                "family": {
                    "type": "string",
                    "enum": ["als", "item_item"],
                    "description": "als: matrix factorisation; item_item: EASE's top-N neighbour lists.",
                },
                "created_at": {"type": "string", "format": "date-time"},
                "algorithm": {"type": "object"},
                "counts": {"type": "object"},
                "factors": {"type": "integer"},
                "evaluation": {"type": ["object", "null"]},
                "training_data": {"type": ["object", "null"]},
            }
        ),
    }


def _parameters(config: ApiConfig) -> dict[str, Any]:
    return {
        "k": {
            "name": "k",
            "in": "query",
            "description": (
                f"Number of items, as ASCII digits; default {config.default_k}, values above {config.max_k} are capped."
            ),
            "schema": {"type": "integer", "minimum": 1, "maximum": 999_999_999, "default": config.default_k},
        },
        "exclude": {
            "name": "exclude",
            "in": "query",
            "description": "Item ids to leave out, comma-separated (the parameter may repeat).",
            "style": "form",
            "explode": False,
            "schema": {"type": "array", "items": {"type": "string"}, "maxItems": config.max_exclude_items},
        },
        "exclude_seen": {
            "name": "exclude_seen",
            "in": "query",
            "description": "Leave out the items the user interacted with in the training data.",
            "schema": {"type": "boolean", "default": True},
        },
    }


def _param(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 256}}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def openapi_document(config: ApiConfig) -> dict[str, Any]:
    document = _document(config)
    for path in document["paths"].values():
        for operation in path.values():
            operation["responses"].update({**WRONG_METHOD, **CHUNKED, **OVERSIZED_HEAD})
    return document


def _document(config: ApiConfig) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "recsys-fargate recommendation API",
            "version": "1",
            "description": (
                "Implicit-feedback ALS recommendations served from memory-mapped numpy arrays. Every error is JSON "
                "(schema Error), except where uWSGI's HTTP router answers before the app: a body declared above "
                "the limit is refused with a plain 413 (`Expect: 100-continue`) or by closing the connection, and a "
                "request head the router cannot carry closes the connection: a target over the "
                f"{config.max_request_target_bytes // 1024} KiB limit answers 414 up to about 30 KiB, header fields "
                f"over the {config.max_header_bytes // 1024} KiB limit answer 431 up to about 60 KiB. Pipelined "
                "requests on a keep-alive connection are each answered, in order. OPTIONS on any path answers 204 "
                "with an Allow header."
            ),
        },
        "paths": {
            "/v1/users/{user_id}/recommendations": {
                "get": {
                    "summary": "Recommendations for a user; unknown users get the popularity fallback.",
                    "operationId": "userRecommendations",
                    "parameters": [_path_id("user_id"), _param("k"), _param("exclude"), _param("exclude_seen")],
                    "responses": {"200": _response("Ranked items.", "UserRecommendations"), **BAD_INPUT, **ERRORS},
                }
            },
            "/v1/items/{item_id}/similar": {
                "get": {
                    "summary": "The item's nearest neighbours: factor cosine (als) or EASE weights (item_item).",
                    "operationId": "similarItems",
                    "parameters": [_path_id("item_id"), _param("k"), _param("exclude")],
                    "responses": {
                        "200": _response("Ranked similar items.", "SimilarItems"),
                        **BAD_INPUT,
                        "404": _response("The item is not in the model.", "Error"),
                        **ERRORS,
                    },
                }
            },
            "/v1/recommendations": {
                "post": {
                    "summary": "Session recommendations from recently viewed items (ALS fold-in or item-item sum).",
                    "operationId": "sessionRecommendations",
                    "requestBody": _body("SessionRequest"),
                    "responses": {
                        "200": _response("Ranked items.", "SessionRecommendations"),
                        **BAD_INPUT,
                        **TOO_LARGE,
                        **ERRORS,
                    },
                }
            },
            "/v1/recommendations/batch": {
                "post": {
                    "summary": f"Recommendations for up to {config.max_batch_users} users in one call.",
                    "operationId": "batchRecommendations",
                    "requestBody": _body("BatchRequest"),
                    "responses": {
                        "200": _response("One result per requested user, in order.", "BatchRecommendations"),
                        **BAD_INPUT,
                        **TOO_LARGE,
                        **ERRORS,
                    },
                }
            },
            "/v1/model": {
                "get": {
                    "summary": "Metadata of the loaded model version, including its hold-out evaluation.",
                    "operationId": "modelMetadata",
                    "responses": {"200": _response("Manifest without file checksums.", "ModelMetadata"), **ERRORS},
                }
            },
            LIVENESS_PATH: {
                "get": {
                    "summary": "Liveness: 200 while the process serves.",
                    "operationId": "live",
                    "responses": {"200": _response("Alive.", "Health")},
                }
            },
            READINESS_PATH: {
                "get": {
                    "summary": "Readiness: 200 only when a model is loaded.",
                    "operationId": "ready",
                    "responses": {
                        "200": _response("Ready.", "Health"),
                        "503": _response("No model loaded.", "Health"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document.",
                    "operationId": "openapi",
                    "responses": {"200": {"description": "OpenAPI 3.1 document.", "content": {"application/json": {}}}},
                }
            },
        },
        "components": {
            "schemas": _schemas(config),
            "parameters": _parameters(config),
            "headers": {
                "RequestId": {
                    "description": "Echo of the caller's X-Request-Id, or a generated one.",
                    "required": True,
                    "schema": {"type": "string"},
                },
                "ModelVersion": {
                    "description": "Version of the loaded model (absent while none is loaded).",
                    "schema": {"type": "string"},
                },
            },
        },
    }
