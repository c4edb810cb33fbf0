"""schemathesis against the served OpenAPI document, in process through the WSGI transport.

Every operation gets generated cases (valid and schema-breaking inputs); each response must not be a server error
and must match the document (status code listed, body conforming to its schema). The total is asserted >= 1000.
"""

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
CASES_PER_OPERATION_AND_MODE = 200
MINIMUM_CASES = 1000


@pytest.mark.timeout(180)
def test_generated_requests_get_no_server_error_and_conform_to_the_schema(app: Flask) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert len(operations) >= 7
    counted = {"cases": 0}
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, counted, failures)
    assert not failures, "\n\n".join(failures[:5])
    print(f"schemathesis: {counted['cases']} cases over {len(operations)} operations")
    assert counted["cases"] >= MINIMUM_CASES, counted


def _fuzz(operation: Any, mode: GenerationMode, counted: dict[str, int], failures: list[str]) -> None:
    strategy = operation.as_strategy(generation_mode=mode)

    @given(case=strategy)
    @settings(
        max_examples=CASES_PER_OPERATION_AND_MODE,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call()
        counted["cases"] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Failure, FailureGroup) as error:  # collect and keep going: no shrinking, one report at the end
            failures.append(f"{operation.label} [{mode}]: {str(error)[:2000]}")

    try:
        run()
    except Unsatisfiable:
        # An operation without parameters or body has no schema-breaking input to generate.
        if mode is GenerationMode.POSITIVE:
            raise
