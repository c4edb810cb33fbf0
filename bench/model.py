"""Synthetic factor models for the benchmark: 1M items in seconds instead of an ALS run.

Item and user vectors are drawn around shared cluster centres (as ALS factors of segmented users are), with a
log-normal spread of norms; each user has a few seen items; popularity is a random power law. The ANN index is built
and its recall@10 against exact scoring measured exactly as the trainer does (api.training.cli.build_ann).
"""

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from api.contract import CURRENT_POINTER
from api.model.ann import INDEX_SPECS
from api.model.format import MANIFEST_NAME, ModelArrays, assemble_arrays, publish_model
from api.training.cli import build_ann
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


def cached_model(cache: Path, items: int, users: int, ann_min_items: int) -> Path:
    """A published synthetic model under cache/<items>/, built once and reused by later runs."""
    # The index kinds are in the name: a cached model built with other indexes is not reused.
    kinds = "-".join(spec.kind for spec in INDEX_SPECS)
    root = cache / f"synthetic-{items}-items-{users}-users-{kinds}"
    if (root / CURRENT_POINTER / MANIFEST_NAME).is_file():
        return root
    started = time.perf_counter()
    arrays = synthetic_arrays(items, users)
    indexes = build_ann(arrays.user_factors, arrays.item_factors, ann_min_items, lambda line: print(f"  {line}"))
    metadata = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "algorithm": {"name": "synthetic", "parameters": {"alpha": 1.0, "regularization": 0.05}},
    }
    publish_model(root, "v1", arrays, metadata, indexes)
    print(f"  built in {time.perf_counter() - started:.1f} s", flush=True)
    return root


def manifest_of(root: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((root / CURRENT_POINTER / MANIFEST_NAME).read_text())
    return manifest


def model_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in (root / CURRENT_POINTER).resolve().iterdir())
