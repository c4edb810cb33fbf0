"""Scoring over the memory-mapped arrays: brute-force dot products and `argpartition`.

Kept behind this small class so that an approximate-nearest-neighbour index can replace the brute-force scan later
without touching the HTTP layer.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from api import ann
from api.ids import IdIndex
from api.loader import LoadedModel


@dataclass(frozen=True)
class Scored:
    indices: NDArray[np.int64]
    scores: NDArray[np.float32]


NOTHING = np.empty(0, dtype=np.int64)
# The ANN path over-fetches k + |excluded| candidates; beyond this many the exact scan is cheaper and always right.
MAX_ANN_FETCH = 2_048


class Recommender:
    def __init__(self, model: LoadedModel, ann_min_items: int = ann.ANN_MIN_ITEMS) -> None:
        self.model = model
        self.version = model.version
        arrays = model.arrays
        self.users = IdIndex(arrays.user_ids)
        self.items = IdIndex(arrays.item_ids)
        self._arrays = arrays
        parameters: dict[str, Any] = model.manifest.get("algorithm", {}).get("parameters", {})
        self._alpha = float(parameters.get("alpha", 1.0))
        self._regularization = float(parameters.get("regularization", 0.0))
        self._index = model.ann_index if len(arrays.item_ids) >= ann_min_items else None

    @property
    def uses_ann(self) -> bool:
        return self._index is not None

    def seen_by(self, user: int) -> NDArray[np.int64]:
        start, stop = self._arrays.seen_indptr[user], self._arrays.seen_indptr[user + 1]
        return self._arrays.seen_indices[start:stop].astype(np.int64)

    def for_user(self, user: int, k: int, exclude: NDArray[np.int64]) -> Scored:
        return self._by_inner_product(np.asarray(self._arrays.user_factors[user]), k, exclude)

    def for_items(self, items: NDArray[np.int64], k: int, exclude: NDArray[np.int64]) -> Scored:
        """Session recommendations: solve the ALS user equation for the item list (fold-in), then score."""
        unique, counts = np.unique(items, return_counts=True)
        factors = self._arrays.item_factors[unique].astype(np.float64)
        confidence = self._alpha * counts.astype(np.float64)
        gramian = self._arrays.item_gramian.astype(np.float64)
        lhs = gramian + self._regularization * np.eye(len(gramian)) + (factors.T * (confidence - 1.0)) @ factors
        rhs = factors.T @ confidence
        user_vector = np.linalg.solve(lhs, rhs).astype(np.float32)
        return self._by_inner_product(user_vector, k, exclude)

    def _by_inner_product(self, query: NDArray[np.float32], k: int, exclude: NDArray[np.int64]) -> Scored:
        items = len(self._arrays.item_ids)
        fetch = min(k + len(exclude), items)
        if self._index is not None and fetch <= MAX_ANN_FETCH:
            found, scores = ann.search(self._index, query, fetch)
            keep = ~np.isin(found, exclude)
            if int(keep.sum()) >= min(k, items - len(np.unique(exclude))):
                chosen = np.flatnonzero(keep)[:k]
                return Scored(indices=found[chosen], scores=scores[chosen])
            # Too few candidates survived (a sparse probe): answer exactly rather than short.
        return _top_k(self._arrays.item_factors @ query, k, exclude)

    def similar_items(self, item: int, k: int, exclude: NDArray[np.int64]) -> Scored:
        norms = np.maximum(self._arrays.item_norms, np.finfo(np.float32).tiny)
        scores = (self._arrays.item_factors @ self._arrays.item_factors[item]) / (norms * norms[item])
        return _top_k(scores, k, np.concatenate([exclude, np.array([item], dtype=np.int64)]))

    def popular(self, k: int, exclude: NDArray[np.int64]) -> Scored:
        # The ranking is precomputed, so only the head is examined: enough rows to survive every exclusion.
        head = np.asarray(self._arrays.popular_items[: k + len(exclude)], dtype=np.int64)
        keep = ~np.isin(head, exclude)
        chosen = np.flatnonzero(keep)[:k]
        return Scored(indices=head[chosen], scores=np.asarray(self._arrays.popular_scores[chosen]))


def _top_k(scores: NDArray[np.float32], k: int, exclude: NDArray[np.int64]) -> Scored:
    scores = np.asarray(scores, dtype=np.float32)
    scores[exclude] = -np.inf
    k = min(k, len(scores))
    if k == 0:
        return Scored(indices=NOTHING, scores=np.empty(0, dtype=np.float32))
    head = np.argpartition(scores, len(scores) - k)[len(scores) - k :]
    ranked = head[np.argsort(-scores[head], kind="stable")]
    ranked = ranked[np.isfinite(scores[ranked])]
    return Scored(indices=ranked.astype(np.int64), scores=scores[ranked])
