"""The hand-built JSON of api.serving.responses is byte for byte what json.dumps writes for the same values."""

import json
import math
from typing import Any

import numpy as np
import pytest

from api.serving.responses import RawJson, _encode, scored_items

HOSTILE_IDS = [
    "plain",
    'quote"inside',
    "back\\slash",
    "\\u0000 as text",
    "ends with backslash\\",
    '","',
    "tab\tnewline\ncontrol\x01\x1f",
    "caf\u00e9 \u4e2d\u6587 \U0001f600",
    "</script>",
    "",
]


def _reference(ids: list[str], scores: list[float]) -> str:
    items = [{"item_id": item_id, "score": score} for item_id, score in zip(ids, scores, strict=True)]
    return json.dumps(items, separators=(",", ":"), allow_nan=False)


def test_scored_items_are_what_json_dumps_writes_for_hostile_ids_and_any_float() -> None:
    rng = np.random.default_rng(7)
    raw = np.concatenate(
        [
            rng.standard_normal(200).astype(np.float32),
            np.array([0.0, -0.0, -1e-9, 1e-9, 3.4e38, -3.4e38, 1e-45, 0.5, 2.5e-7], dtype=np.float32),
        ]
    )
    # The rounding the routes apply (api.serving.routes._items): -1e-9 becomes -0.0, which JSON writes as such.
    scores = raw.astype(np.float64).round(6).tolist()
    ids = [HOSTILE_IDS[position % len(HOSTILE_IDS)] for position in range(len(scores))]
    assert scored_items(ids, scores) == _reference(ids, scores)
    assert "-0.0" in scored_items(ids, scores)


def test_an_empty_answer_is_an_empty_list() -> None:
    assert scored_items([], []) == "[]"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_score_is_refused_like_json_dumps_refuses_it(bad: float) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        _reference(["a", "b"], [0.5, bad])
    with pytest.raises(ValueError, match="not JSON compliant"):
        scored_items(["a", "b"], [0.5, bad])


def test_infinities_of_both_signs_together_are_refused() -> None:
    # Their sum is NaN, not infinity: the check must catch that too.
    with pytest.raises(ValueError, match="not JSON compliant"):
        scored_items(["a", "b"], [math.inf, -math.inf])


@pytest.mark.parametrize(
    "payload",
    [
        {"model_version": "v1", "status": "ok"},
        {"model_version": None, "status": "not ready"},
        {"model_version": "v1", "k": 10, "flag": True, "off": False, "ratio": 0.25, "nothing": None},
        {"model_version": "v1", "unknown_items": ["a", 'b"', "\u00e9"], "empty": [], "nested": {"x": [1, 2]}},
        {"error": "invalid request", "detail": [{"field": "k", "message": "must be \u2265 1"}], "request_id": "r"},
        {"model_version": "v1", "big": 10**30, "negative": -3},
    ],
)
def test_payloads_encode_as_json_dumps_writes_them(payload: dict[str, Any]) -> None:
    assert _encode(payload) == json.dumps(payload, separators=(",", ":"), allow_nan=False)


def test_raw_json_is_spliced_in_unchanged() -> None:
    items = RawJson('[{"item_id":"a","score":0.5}]')
    assert _encode({"model_version": "v1", "items": items}) == '{"model_version":"v1","items":' + items + "}"
    batch = _encode({"results": [{"user_id": "u", "items": items}]})
    assert batch == '{"results":[{"user_id":"u","items":' + items + "}]}"
