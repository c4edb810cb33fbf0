"""A Flask test client that fails any response the OpenAPI document does not describe."""

from typing import Any

from flask.testing import FlaskClient
from openapi_schema_validator import OAS31Validator, validate
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.test import TestResponse

from api.serving.openapi import openapi_document
from api.serving.state import STATE_KEY


def flask_rule_to_openapi(rule: str) -> str:
    return rule.replace("<", "{").replace(">", "}")


class OpenApiCheckingClient(FlaskClient):
    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        self._check(response)
        return response

    def _check(self, response: TestResponse) -> None:
        assert response.headers.get("X-Request-Id"), "every response carries X-Request-Id"
        request = response.request
        try:
            rule, _ = self.application.url_map.bind("localhost").match(request.path, request.method, return_rule=True)
        except (NotFound, MethodNotAllowed):
            return  # no operation to hold the response to; the tests check these bodies directly
        spec = openapi_document(self.application.extensions[STATE_KEY].config)
        path = spec["paths"][flask_rule_to_openapi(rule.rule)]
        if request.method.lower() not in path:
            # HEAD and OPTIONS (204 with Allow, described in info.description) on every path: no body to check.
            assert request.method in ("HEAD", "OPTIONS"), f"{request.method} {rule.rule} is not documented"
            return
        operation = path[request.method.lower()]
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, f"{request.method} {rule.rule} answered {response.status_code}, undocumented"
        schema = documented["content"]["application/json"].get("schema")
        if schema is not None:
            validate(response.get_json(), {**schema, "components": spec["components"]}, cls=OAS31Validator)
