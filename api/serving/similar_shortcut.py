"""Stored similar-items answers sent without Flask's dispatch.

The answer to `GET /v1/items/{item_id}/similar` with nothing but `k` in the query depends only on the model version,
and the version stores it as text (api/model/answers.py, api/serving/neighbour_text.py): finding the item and its
text takes about 2 us. Flask's request machinery around that (request and app contexts, the `g` and `request`
proxies, URL matching with the id converter, before- and after-request hooks, the Response object) costs about
120 us in process at 1M items, and the route's own checks about 25 us more (docs/api.md, "Serving figures"). This
middleware answers that one request itself, in about a fifth of the time.

It takes only requests whose answer it can give exactly as Flask would: GET, the path `/v1/items/<id>/similar` with
an ASCII id of at most MAX_ID_LENGTH characters, an empty query or `k=<digits>` (validation.plain_query_k), no
Transfer-Encoding, a head within the limits, a loaded model that knows the item. Everything else goes to Flask
unchanged (unknown items, `exclude`, other parameters, HEAD and OPTIONS, ids with other characters), and so does a
request whose answer raises: Flask then answers it and reports the error as always, so this path never sends a 5xx.

What it sends is what Flask sends, byte for byte: the body from the same encoder (responses.json_body), the same
status line and headers in the same order, and the same request log line (logs.log_request).
tests/api/test_similar_shortcut.py holds the two equal over a corpus of requests by running both on each.
"""

import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from api.serving.heads import head_problem
from api.serving.logs import accepted_request_id, log_request
from api.serving.responses import RawJson, json_body
from api.serving.state import ServingState
from api.serving.validation import MAX_ID_LENGTH, plain_query_k

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Werkzeug's default `string` converter, `[^/]+`, bounded by the route's id limit (validation.check_id_text).
SIMILAR_PATH = re.compile(rf"/v1/items/([^/]{{1,{MAX_ID_LENGTH}}})/similar", re.ASCII)


class SimilarItemsShortcut:
    """WSGI middleware in front of the Flask app (`app.wsgi_app`), see the module's docstring."""

    def __init__(self, flask_wsgi: "WSGIApplication", state: ServingState) -> None:
        self._flask_wsgi = flask_wsgi
        self._state = state

    def __call__(self, environ: "WSGIEnvironment", start_response: "StartResponse") -> Iterable[bytes]:
        started = time.perf_counter()
        try:
            answer = self._answer(environ)
        except Exception:  # Flask answers it again and reports whatever went wrong, as for any other request
            answer = None
        if answer is None:
            return self._flask_wsgi(environ, start_response)
        body, version, path = answer
        request_id = accepted_request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("X-Request-Id", request_id),
                ("X-Model-Version", version),
            ],
        )
        log_request(request_id=request_id, method="GET", path=path, status=200, started=started, model_version=version)
        return [body]

    def _answer(self, environ: "WSGIEnvironment") -> tuple[bytes, str, str] | None:
        """The answer's body, model version and path when this request is one the shortcut takes, else None."""
        if environ.get("REQUEST_METHOD") != "GET" or "HTTP_TRANSFER_ENCODING" in environ:
            return None
        path = environ.get("PATH_INFO", "")
        # PATH_INFO holds the wire bytes as latin-1 (PEP 3333); Flask reads them as UTF-8, which agrees on ASCII.
        match = SIMILAR_PATH.fullmatch(path)
        if match is None or not path.isascii():
            return None
        config = self._state.config
        k = plain_query_k(environ.get("QUERY_STRING", ""), config)
        recommender = self._state.recommender  # one snapshot: a swap may replace it at any moment
        if k is None or recommender is None or head_problem(environ, config) is not None:
            return None
        item_id = match.group(1)
        item = recommender.items.find(item_id)
        if item is None:
            return None
        text = recommender.similar_text(item, k)
        if text is None:
            return None
        payload = {"item_id": item_id, "k": k, "items": RawJson(text)}
        return json_body(recommender.version, payload).encode("ascii"), recommender.version, path
