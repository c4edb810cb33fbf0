"""The item-item family (api.model.format.FAMILIES "item_item"): every answer from the neighbour lists.

A user's score for item j is the sum over the items i they have of B[i, j], read from row i of the lists (EASE's
score x_u B with each row of B cut to its top N). Only the rows of the user's (or the session's) items are read:
a request costs O(items asked x N), not O(catalogue), so latency does not grow with the catalogue. Items outside
every one of those rows have no score and are not recommended (an answer can then hold fewer than k items).
"""

from typing import Any

import numpy as np
from numpy.typing import NDArray

from api.model import ann
from api.model import neighbours as neighbour_files
from api.model.loader import LoadedModel
from api.serving.recommender import NOTHING, Recommender, Scored

# Dense summation when the catalogue has at most this many items per value summed (see _from_items).
DENSE_PER_VALUE = 4


class ItemItemRecommender(Recommender):
    def __init__(
        self,
        model: LoadedModel,
        ann_min_items: int = ann.ANN_MIN_ITEMS,
        answer_cache_size: int = 0,
        answer_cache_bytes: int | None = None,
    ) -> None:
        if model.neighbours is None:
            raise ValueError(f"model {model.version} is item_item but has no neighbour lists")
        super().__init__(model, ann_min_items, answer_cache_size, answer_cache_bytes)
        self._lists: neighbour_files.Neighbours = model.neighbours

    def for_user(self, user: int, k: int, exclude: NDArray[np.int64]) -> Scored:
        return self._from_items(self.seen_by(user), k, exclude)

    def for_items(self, items: NDArray[np.int64], k: int, exclude: NDArray[np.int64]) -> Scored:
        # EASE is fitted on binarised interactions: an item seen twice in a session counts once.
        return self._from_items(np.unique(items), k, exclude)

    def similar_items(self, item: int, k: int, exclude: NDArray[np.int64]) -> Scored:
        """Row `item` of the lists: there is no index behind them, so past N neighbours the answer is shorter."""
        # A row never holds its own item (the loader checks it), so `item` needs no exclusion.
        indices, scores = neighbour_files.lookup(self._lists, item, k, set(exclude.tolist()))
        return Scored(indices=indices, scores=scores)

    def _from_items(self, items: NDArray[np.int64], k: int, exclude: NDArray[np.int64]) -> Scored:
        rows: NDArray[Any] = self._lists.indices[items].ravel()
        if len(rows) == 0 or k == 0:
            return Scored(indices=NOTHING, scores=np.empty(0, dtype=np.float32))
        weights = self._lists.weights[items].ravel().astype(np.float32)
        catalogue = len(self._lists.indices)
        if catalogue <= DENSE_PER_VALUE * len(rows):
            # Summing into a catalogue-long array is cheaper than sorting the values when the catalogue is small
            # next to them (measured at 3,000 items, about 20 items a user: 37 us against 66 us a request).
            candidates = np.arange(catalogue)
            scores = np.bincount(rows, weights=weights, minlength=catalogue).astype(np.float32)
            touched = np.zeros(catalogue, dtype=bool)
            touched[rows] = True
            scores[~touched] = -np.inf
        else:
            candidates, inverse = np.unique(rows, return_inverse=True)
            scores = np.bincount(inverse, weights=weights, minlength=len(candidates)).astype(np.float32)
        if len(exclude):
            scores[np.isin(candidates, exclude) if len(candidates) < catalogue else exclude] = -np.inf
        k = min(k, len(candidates))
        head = np.argpartition(-scores, k - 1)[:k]
        ranked = head[np.argsort(-scores[head], kind="stable")]
        ranked = ranked[np.isfinite(scores[ranked])]
        return Scored(indices=candidates[ranked].astype(np.int64), scores=scores[ranked])
