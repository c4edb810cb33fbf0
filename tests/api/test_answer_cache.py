"""The per-worker answer cache: same answers as without it, bounded, and never across model versions."""

import dataclasses
import gc
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from flask import Flask

from api.model.format import array_file
from api.serving.app import create_app
from api.serving.cache import ENTRY_OVERHEAD_BYTES, LruCache
from api.serving.config import ApiConfig
from api.serving.state import STATE_KEY, ServingState
from api.serving.swap import ModelWatcher
from api.training.synthetic import user_id
from tests.api.test_loader import copy_model, update_checksum
from tests.api.test_model_swap import publish_copy

QUERIES = [
    f"/v1/users/{user_id(user)}/recommendations?{query}"
    for user in range(0, 60, 3)
    for query in ("k=5", "k=5", "k=12&exclude_seen=false", "k=5&exclude=i0000001,i0000002", "k=5")
]


def test_least_recently_used_entries_go_first_and_the_size_is_kept() -> None:
    cache: LruCache[str] = LruCache(2)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == "1"
    cache.put("c", "3")
    assert cache.get("b") is None, "b was the least recently used"
    assert (cache.get("a"), cache.get("c"), len(cache)) == ("1", "3", 2)
    assert (cache.hits, cache.misses) == (3, 1)


def test_size_zero_keeps_nothing_and_a_negative_size_is_refused() -> None:
    off: LruCache[str] = LruCache(0)
    off.put("a", "1")
    assert off.get("a") is None and len(off) == 0
    with pytest.raises(ValueError, match="0 \\(off\\) or more"):
        LruCache(-1)
    with pytest.raises(ValueError, match="0 \\(off\\) or more"):
        LruCache(10, max_bytes=-1)


def test_the_bytes_bound_evicts_the_least_recently_used_whatever_the_count() -> None:
    entry = ENTRY_OVERHEAD_BYTES + 1000
    cache: LruCache[int] = LruCache(1000, max_bytes=3 * entry)
    for key in range(5):
        cache.put(key, "x" * 1000)
    assert len(cache) == 3 and cache.bytes == 3 * entry
    assert cache.get(1) is None and cache.get(2) is not None
    cache.put(2, "y" * 10)  # replacing an entry releases its bytes
    assert cache.bytes == 2 * entry + ENTRY_OVERHEAD_BYTES + 10
    cache.put(9, "z" * (4 * entry))  # larger than the whole bound: never kept, nothing evicted for it
    assert cache.get(9) is None and len(cache) == 3


def test_a_full_cache_of_large_k_answers_stays_within_its_bytes(config: ApiConfig) -> None:
    """Issue 14, 7: at k = 100 a count-bounded cache grew a worker by 117 MB; the bytes bound holds at any k."""
    bound = 1024 * 1024
    app = create_app(dataclasses.replace(config, answer_cache_size=100_000, answer_cache_bytes=bound))
    with app.test_client() as client:
        client.get(f"/v1/users/{user_id(0)}/recommendations?k=100")  # first-request allocations out of the figure
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for user in range(1, 1_200):
                assert client.get(f"/v1/users/{user_id(user)}/recommendations?k=100").status_code == 200
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    answers = _state(app).recommender.answers  # type: ignore[union-attr]
    assert answers.bytes <= bound
    assert len(answers) < 1_199, "the bytes bound, not the count, limited the cache"
    print(f"answer cache: {len(answers)} answers at k=100 in {answers.bytes} bytes; traced growth {grown} bytes")
    assert grown < bound * 1.25, grown


def _state(app: Flask) -> ServingState:
    state: ServingState = app.extensions[STATE_KEY]
    return state


def test_cached_answers_are_the_answers_computed_without_the_cache(config: ApiConfig) -> None:
    cached = create_app(dataclasses.replace(config, answer_cache_size=64))
    uncached = create_app(dataclasses.replace(config, answer_cache_size=0))
    with_cache, without_cache = cached.test_client(), uncached.test_client()
    for path in QUERIES:
        got, want = with_cache.get(path), without_cache.get(path)
        assert got.status_code == want.status_code == 200
        assert got.get_json() == want.get_json(), path
    answers = _state(cached).recommender.answers  # type: ignore[union-attr]
    assert answers.hits > 0, "repeated requests were answered from the cache"
    assert len(answers) <= 64
    assert len(_state(uncached).recommender.answers) == 0  # type: ignore[union-attr]


def test_requests_with_their_own_exclusions_are_not_cached(config: ApiConfig) -> None:
    app = create_app(dataclasses.replace(config, answer_cache_size=64))
    with app.test_client() as client:
        for _ in range(3):
            assert client.get(f"/v1/users/{user_id(4)}/recommendations?exclude=i0000001").status_code == 200
    answers = _state(app).recommender.answers  # type: ignore[union-attr]
    assert (len(answers), answers.hits) == (0, 0)


def test_a_swapped_in_version_never_serves_an_answer_cached_for_the_old_one(model_root: Path, tmp_path: Path) -> None:
    root = copy_model(model_root, tmp_path)
    app = create_app(ApiConfig(model_dir=root, answer_cache_size=64, model_poll_seconds=0))
    path = f"/v1/users/{user_id(7)}/recommendations?k=5"
    with app.test_client() as client:
        before = client.get(path).get_json()
        assert client.get(path).get_json() == before
        # A new version whose item factors point the other way: every user's ranking changes.
        publish_copy(root, "v1", "v2")
        factors_path = root / "v2" / array_file("item_factors")
        factors = np.load(factors_path)
        np.save(factors_path, -factors)
        update_checksum(root / "v2", array_file("item_factors"))
        assert ModelWatcher(_state(app)).check()
        after = client.get(path).get_json()
    assert after["model_version"] == "v2"
    assert [item["item_id"] for item in after["items"]] != [item["item_id"] for item in before["items"]]
    assert _state(app).recommender.answers.hits == 0  # type: ignore[union-attr]
