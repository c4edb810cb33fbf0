"""Synthetic factor models for the benchmark: 1M items in seconds instead of an ALS run.

Item and user vectors are drawn around shared cluster centres (as ALS factors of segmented users are), with a
log-normal spread of norms; each user has a few seen items; popularity is a random power law. The ANN indexes and the
similar-items neighbour lists are built (and the indexes' recall@10 against exact scoring measured) exactly as the
trainer does (api.training.cli.build_ann, als_neighbours).
"""

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from api.contract import CURRENT_POINTER
from api.model import answers as answer_files
from api.model import checksums
from api.model import neighbours as neighbour_files
from api.model.ann import INDEX_SPECS
from api.model.format import MANIFEST_NAME, ModelArrays, array_file, assemble_arrays, publish_model
from api.model.loader import load_model
from api.training.cli import als_neighbours, build_ann
from api.training.synthetic import item_id, user_id

CLUSTERS = 200
SEEN_PER_USER = 5


def _fixed_width_ids(prefix: str, count: int) -> np.ndarray[Any, np.dtype[np.bytes_]]:
    name = user_id if prefix == "u" else item_id
    return np.array([name(index).encode() for index in range(count)], dtype=f"S{len(name(0))}")


def synthetic_arrays(items: int, users: int, factors: int = 64, seed: int = 0) -> ModelArrays:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, factors)).astype(np.float32)

    def vectors(count: int) -> np.ndarray[Any, np.dtype[np.float32]]:
        around = centres[rng.integers(0, CLUSTERS, count)] * 0.5
        noise = rng.standard_normal((count, factors), dtype=np.float32) * 0.35
        return ((around + noise) * rng.lognormal(0.0, 0.3, (count, 1)).astype(np.float32)).astype(np.float32)

    item_factors = vectors(items)
    user_factors = vectors(users)
    seen = np.sort(rng.integers(0, items, (users, SEEN_PER_USER)), axis=1)
    popularity = rng.permutation(1.0 / np.arange(1, items + 1) ** 0.9)
    return assemble_arrays(
        user_factors=user_factors,
        item_factors=item_factors,
        popularity=popularity,
        seen_indptr=np.arange(0, users * SEEN_PER_USER + 1, SEEN_PER_USER),
        seen_indices=seen.reshape(-1),
        user_ids=_fixed_width_ids("u", users),
        item_ids=_fixed_width_ids("i", items),
    )


def cached_model(cache: Path, items: int, users: int, ann_min_items: int, *, family: str = "als") -> Path:
    """A published synthetic model under cache/<name>/, built once and reused by later runs.

    `family` "als": factors, both ANN indexes and each item's top-N cosine neighbours (the similar-items lookup),
    built as the trainer builds them (api.training.cli.build_ann, als_neighbours). "item_item": the same catalogue
    as an item-item version: the neighbour lists of the ALS model as its item-item weights (EASE itself cannot be
    fitted above EASE_MAX_ITEMS = 20,000 items; serving cost depends only on the lists' shape and dtype), no factors.
    """
    # The index kinds, the neighbour and answer counts and the checksum the loader checks are in the name: a cached
    # model built otherwise is not reused (one with only sha256 would make the start-up time an earlier release's).
    kinds = "-".join(spec.kind for spec in INDEX_SPECS)
    counts = f"neighbours-{neighbour_files.DEFAULT_COUNT}-answers-{answer_files.DEFAULT_COUNT}"
    base = f"synthetic-{items}-items-{users}-users-{kinds}-{counts}-{checksums.PREFERRED}"
    root = cache / (base if family == "als" else f"{base}-{family}")
    if (root / CURRENT_POINTER / MANIFEST_NAME).is_file():
        return root
    if family == "item_item":
        return _item_item_from(cached_model(cache, items, users, ann_min_items), root)
    started = time.perf_counter()
    arrays = synthetic_arrays(items, users)
    indexes = build_ann(arrays.user_factors, arrays.item_factors, ann_min_items, say)
    neighbours = als_neighbours(arrays.item_factors, indexes, neighbour_files.DEFAULT_COUNT, say)
    metadata = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "algorithm": {"name": "synthetic", "parameters": {"alpha": 1.0, "regularization": 0.05}},
    }
    publish_model(root, "v1", arrays, metadata, indexes, neighbours=neighbours)
    print(f"  built in {time.perf_counter() - started:.1f} s", flush=True)
    return root


def say(line: str) -> None:
    print(f"  {line}", flush=True)


def _item_item_from(als_root: Path, root: Path) -> Path:
    als = load_model(als_root)
    assert als.neighbours is not None, f"{als_root} has no neighbour lists"
    arrays = als.arrays
    users, items = len(arrays.user_ids), len(arrays.item_ids)
    item_item = assemble_arrays(
        user_factors=np.zeros((users, 0), dtype=np.float32),
        item_factors=np.zeros((items, 0), dtype=np.float32),
        popularity=np.asarray(arrays.popular_scores)[np.argsort(arrays.popular_items)],
        seen_indptr=np.asarray(arrays.seen_indptr),
        seen_indices=np.asarray(arrays.seen_indices),
        user_ids=np.asarray(arrays.user_ids),
        item_ids=np.asarray(arrays.item_ids),
    )
    neighbours = neighbour_files.Neighbours(
        np.asarray(als.neighbours.indices), np.asarray(als.neighbours.weights), "ease"
    )
    metadata = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "algorithm": {"name": "synthetic item-item", "parameters": {}},
    }
    publish_model(root, "v1", item_item, metadata, family="item_item", neighbours=neighbours)
    return root


def manifest_of(root: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((root / CURRENT_POINTER / MANIFEST_NAME).read_text())
    return manifest


def answer_bytes(root: Path) -> int:
    """What the stored similar-items answers take on disk (api.model.answers), 0 for a version without them."""
    version = (root / CURRENT_POINTER).resolve()
    return sum(
        (version / array_file(name)).stat().st_size
        for name in answer_files.NAMES
        if (version / array_file(name)).is_file()
    )


def model_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in (root / CURRENT_POINTER).resolve().iterdir())
