"""The real WSGI app behind a test-only delay (header X-Test-Delay seconds), to hold a request in flight."""

import time
from collections.abc import Callable, Iterable
from typing import Any

from api.serving.wsgi import application as api_application


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    time.sleep(float(environ.get("HTTP_X_TEST_DELAY", "0")))
    result: Iterable[bytes] = api_application(environ, start_response)
    return result
