"""Property test (issue 14, Proof): no request, however hostile, gets a 5xx; every error is the documented JSON shape.

Hypothesis draws methods, paths, query strings, headers and bodies, with the JSON edge cases that used to be 500s
(non-finite numbers, lone surrogates, deep nesting, huge integers, duplicate keys, wrong types). The test client
(tests/api/openapi_client.py) holds every documented operation's response to /openapi.json.

`make test` runs a bounded, derandomised number of examples; `make fuzz` sets FUZZ_EXAMPLES for a larger random run.
"""

import json
import os
from typing import Any
from urllib.parse import quote

from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "400"))
ERROR_FIELDS = {"model_version", "error", "detail", "request_id"}
KNOWN_IDS = ["u0000001", "u0000042", "i0000007", "i0000011", "someone-new"]
ROUTES = [
    "/v1/users/{}/recommendations",
    "/v1/items/{}/similar",
    "/v1/recommendations",
    "/v1/recommendations/batch",
    "/v1/model",
    "/health/live",
    "/health/ready",
    "/openapi.json",
    "/{}",
    "/v1/{}/{}",
]
FIELDS = ["recent_items", "user_ids", "exclude", "exclude_seen", "k"]

# Text including lone surrogates (category Cs), which json.dumps escapes as \ud800.
any_text = st.text(st.characters(exclude_categories=()), max_size=12)
ids = st.one_of(st.sampled_from(KNOWN_IDS), any_text, st.text("i0123456789", min_size=1, max_size=300))
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 5, 100, 101, 10**20, 1e20, 5.0, -1]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, any_text, ids)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(any_text, inner, max_size=5)),
    max_leaves=20,
)
request_like = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS), any_text),
    st.one_of(json_values, st.lists(ids, max_size=5)),
    max_size=5,
)


def _nested(depth: int) -> bytes:
    return ('{"recent_items":' + "[" * depth + "]" * depth + "}").encode()


def _with_k(constant: str) -> bytes:
    return ('{"recent_items":["i0000007"],"k":' + constant + "}").encode()


raw_bodies = st.one_of(
    request_like.map(lambda body: json.dumps(body).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.sampled_from([31, 33, 1_000, 50_000]).map(_nested),
    st.just(b'{"recent_items":["i0000007"],"k":3,"k":4}'),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "9" * 5_000]).map(_with_k),
    st.sampled_from([200, 300_000]).map(lambda size: ('{"user_ids":["' + "u" * size + '"]}').encode()),
    st.binary(max_size=64),
)


def _segment(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    route = draw(st.sampled_from(ROUTES))
    path = route.format(*(_segment(draw(ids)) for _ in range(route.count("{}"))))
    query = draw(
        st.lists(
            st.tuples(
                st.one_of(st.sampled_from(["k", "exclude", "exclude_seen"]), any_text),
                st.one_of(st.sampled_from(["5", "0", "-1", " 1", "\uff15", "1e20", "true", "yes"]), any_text),
            ),
            max_size=4,
        )
    )
    if query:
        path += "?" + "&".join(f"{_segment(key)}={_segment(value)}" for key, value in query)
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", "application/x+json", ""]))}
    if draw(st.booleans()):
        headers["X-Request-Id"] = draw(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300))
    if draw(st.integers(0, 9)) == 0:
        headers["Transfer-Encoding"] = "chunked"
    printable = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)
    for name, value in draw(st.lists(st.tuples(printable.filter(lambda n: ":" not in n), printable), max_size=3)):
        headers.setdefault(name, value)  # any other header, e.g. Accept, Cookie, X-Forwarded-For, or nonsense
    return {
        "method": draw(st.sampled_from(["GET", "POST", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"])),
        "path": path,
        "headers": headers,
        "data": draw(raw_bodies),
    }


@settings(
    max_examples=EXAMPLES,
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(request=requests())
def test_no_request_gets_a_5xx_and_every_error_is_documented_json(app: Flask, request: dict[str, Any]) -> None:
    with app.test_client() as client:
        response = client.open(
            request["path"], method=request["method"], headers=request["headers"], data=request["data"]
        )
    assert response.status_code < 500, (request, response.get_data(as_text=True)[:500])
    if response.status_code >= 400 and request["method"] != "HEAD":
        body = response.get_json()
        assert isinstance(body, dict) and set(body) == ERROR_FIELDS, (request, body)
        assert all(set(entry) == {"field", "message"} for entry in body["detail"])
