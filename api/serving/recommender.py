"""Scoring over the memory-mapped arrays: faiss candidates for large catalogues, brute force for small ones."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from api.model import ann
from api.model import neighbours as neighbour_files
from api.model.answers import AnswerReader
from api.model.ids import IdIndex
from api.model.loader import LoadedModel
from api.serving.cache import LruCache
from api.serving.config import ApiConfig
from api.serving.neighbour_text import NeighbourText


@dataclass(frozen=True)
class Scored:
    indices: NDArray[np.int64]
    scores: NDArray[np.float32]


NOTHING = np.empty(0, dtype=np.int64)
# The ANN path over-fetches for exclusions (and re-ranking); beyond this many the exact scan is cheaper and right.
MAX_ANN_FETCH = 2_048


class Recommender:
    def __init__(
        self,
        model: LoadedModel,
        ann_min_items: int = ann.ANN_MIN_ITEMS,
        answer_cache_size: int = 0,
        answer_cache_bytes: int | None = None,
    ) -> None:
        self.model = model
        # Finished personalised answers (the response's items as JSON text) by (user row, k, exclude_seen); see
        # api/serving/cache.py.
        self.answers: LruCache[tuple[int, int, bool]] = LruCache(answer_cache_size, answer_cache_bytes)
        self.version = model.version
        arrays = model.arrays
        self.users = IdIndex(arrays.user_ids)
        self.items = IdIndex(arrays.item_ids)
        self._arrays = arrays
        parameters: dict[str, Any] = model.manifest.get("algorithm", {}).get("parameters", {})
        self._alpha = float(parameters.get("alpha", 1.0))
        self._regularization = float(parameters.get("regularization", 0.0))
        large = len(arrays.item_ids) >= ann_min_items
        self._index = model.ann_index if large else None
        self._similar_index = model.similar_index if large else None
        self._neighbours = model.neighbours
        self._neighbour_text = NeighbourText.for_lists(arrays.item_ids, model.neighbours)
        self._answers = None if model.answers is None else AnswerReader(model.answers)

    @classmethod
    def for_config(cls, model: LoadedModel, config: ApiConfig) -> "Recommender":
        """The recommender of the version's family (api.model.format.FAMILIES), behind this one interface."""
        if model.family == "item_item":
            # Imported here: the item-item recommender subclasses this one.
            from api.serving.itemitem import ItemItemRecommender

            return ItemItemRecommender(model, config.ann_min_items, config.answer_cache_size, config.answer_cache_bytes)
        return cls(model, config.ann_min_items, config.answer_cache_size, config.answer_cache_bytes)

    @property
    def uses_ann(self) -> bool:
        return self._index is not None

    @property
    def uses_similar_ann(self) -> bool:
        return self._similar_index is not None

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

    def similar_items(self, item: int, k: int, exclude: NDArray[np.int64]) -> Scored:
        """Cosine similarity to `item`, which is never in its own answer.

        From the trainer's neighbour lists when the version has them and they reach k past the exclusions (one row
        read); otherwise from the similar-items index or an exact scan.
        """
        requested = set(exclude.tolist())
        excluded = requested | {item}
        if self._neighbours is not None:
            # A row never holds its own item (the loader checks), so only the request's exclusions are looked for:
            # with none, the answer is a slice of the row.
            indices, scores = neighbour_files.lookup(self._neighbours, item, k, requested)
            if neighbour_files.covers(self._neighbours, len(indices), k):
                return Scored(indices=indices, scores=scores)
        vector = np.asarray(self._arrays.item_factors[item])
        if self._similar_index is not None:
            query = vector / _safe(self._arrays.item_norms[item])

            def cosine(candidates: NDArray[np.int64]) -> NDArray[np.float32]:
                return np.asarray(
                    (self._arrays.item_factors[candidates] @ query) / _safe(self._arrays.item_norms[candidates])
                )

            found = self._approximate(self._similar_index, ann.SIMILAR_INDEX, query, k, excluded, rescore=cosine)
            if found is not None:
                return found
        norms = _safe(self._arrays.item_norms)
        scores = (self._arrays.item_factors @ vector) / (norms * norms[item])
        return _top_k(scores, k, np.fromiter(excluded, dtype=np.int64, count=len(excluded)))

    def similar_text(self, item: int, k: int) -> str | None:
        """`similar_items(item, k)` with nothing excluded, as the answer's JSON text: stored for k up to the version's
        answer count (api/model/answers.py), else written from the lists' text tables (api/serving/neighbour_text.py)
        when they can; None sends the request the general way."""
        if self._answers is not None and k <= self._answers.count:
            return self._answers.items(item, k)
        return None if self._neighbour_text is None else self._neighbour_text.items(item, k)

    def _by_inner_product(self, query: NDArray[np.float32], k: int, exclude: NDArray[np.int64]) -> Scored:
        if self._index is not None:
            found = self._approximate(self._index, ann.USER_INDEX, query, k, set(exclude.tolist()), rescore=None)
            if found is not None:
                return found
        return _top_k(self._arrays.item_factors @ query, k, exclude)

    def _approximate(
        self,
        index: Any,
        spec: ann.IndexSpec,
        query: NDArray[np.float32],
        k: int,
        excluded: set[int],
        *,
        rescore: Callable[[NDArray[np.int64]], NDArray[np.float32]] | None,
    ) -> Scored | None:
        """The index's top k outside `excluded`, or None when the exact scan must answer instead.

        None when the over-fetch would be too large (many exclusions) or too few candidates survived (a sparse
        probe): the caller then answers exactly rather than short. Exclusions are a Python set: for the few ids
        of a request that is several times faster than np.isin, which sorts.
        """
        items = len(self._arrays.item_ids)
        fetch = min((k + len(excluded)) * spec.rerank_factor, items)
        if fetch > MAX_ANN_FETCH:
            return None
        found, scores = ann.search(index, query, fetch)
        keep = [position for position, item in enumerate(found.tolist()) if item not in excluded]
        found, scores = found[keep], scores[keep]
        if rescore is not None:
            scores = np.asarray(rescore(found), dtype=np.float32)
            order = np.argsort(-scores, kind="stable")
            found, scores = found[order], scores[order]
        if len(found) < min(k, items - len(excluded)):
            return None
        return Scored(indices=found[:k], scores=scores[:k])

    def popular(self, k: int, exclude: NDArray[np.int64]) -> Scored:
        # The ranking is precomputed, so only the head is examined: enough rows to survive every exclusion.
        excluded = set(exclude.tolist())
        head = np.asarray(self._arrays.popular_items[: k + len(excluded)], dtype=np.int64)
        chosen = [position for position, item in enumerate(head.tolist()) if item not in excluded][:k]
        return Scored(indices=head[chosen], scores=np.asarray(self._arrays.popular_scores[chosen]))


def _safe(norms: Any) -> Any:
    # Norms are computed per request rather than kept: a kept copy would be private memory in every worker that
    # swaps in a new version, where the norms array itself is a shared memory-mapped file.
    return np.maximum(norms, np.finfo(np.float32).tiny)


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
