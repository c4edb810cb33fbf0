"""The served app for a traced run (`make bench --trace-stalls`): each request's time in the app is recorded.

uWSGI loads this module in place of api.serving.wsgi (`--module bench.traced_wsgi:application`), in the master before
it forks, as it loads the served one: the model is still loaded once and shared. Only requests that carry an
X-Request-Id of the load generator's kind (printable, no space) are recorded.
"""

import time
from collections.abc import Callable, Iterable
from typing import Any

from api.serving.wsgi import application as served
from bench.stalltrace import record_request


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    started = time.monotonic()
    answer = served(environ, start_response)
    try:
        body = list(answer)
    finally:
        if hasattr(answer, "close"):
            answer.close()
    tag = environ.get("HTTP_X_REQUEST_ID", "")
    if tag.isprintable() and tag and " " not in tag:
        record_request(tag, started, time.monotonic())
    return body
