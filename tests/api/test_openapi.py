"""The OpenAPI document is valid and covers exactly the app's routes (responses are checked by the test client)."""

from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from api.serving.config import ApiConfig
from tests.api.openapi_client import flask_rule_to_openapi


def test_openapi_document_is_valid_openapi_3(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    validate(document)


def test_every_route_is_documented_and_every_documented_path_exists(app: Flask, client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    routes = {
        (flask_rule_to_openapi(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert routes == documented


def test_documented_limits_are_the_configured_ones(client: FlaskClient, config: ApiConfig) -> None:
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    assert schemas["BatchRequest"]["properties"]["user_ids"]["maxItems"] == config.max_batch_users
    assert schemas["UserRecommendations"]["properties"]["k"]["maximum"] == config.max_k
