"""Hold-out ranking metrics on a time-based split, for ALS and for the popularity baseline."""

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

K = 10
CHUNK_USERS = 512


@dataclass(frozen=True)
class RankingScores:
    precision_at_10: float
    recall_at_10: float


def evaluable_users(train: sp.csr_matrix, test: sp.csr_matrix) -> NDArray[np.int64]:
    """Users with training history and at least one new item in the test period."""
    return np.flatnonzero((np.diff(train.indptr) > 0) & (np.diff(test.indptr) > 0)).astype(np.int64)


def new_items_only(train: sp.csr_matrix, test: sp.csr_matrix) -> sp.csr_matrix:
    """Test interactions minus items the user already had in training: re-finding a seen item is not a hit."""
    test = (test > 0).astype(np.float32).tocsr()
    overlap = test.multiply(train > 0).tocsr()
    result = (test - overlap).tocsr()
    result.eliminate_zeros()
    return result


def ranking_scores(
    users: NDArray[np.int64],
    score_rows: "ScoreRows",
    train: sp.csr_matrix,
    test: sp.csr_matrix,
) -> RankingScores:
    precision = recall = 0.0
    for start in range(0, len(users), CHUNK_USERS):
        chunk = users[start : start + CHUNK_USERS]
        scores = score_rows(chunk)
        seen = train[chunk].tocoo()
        scores[seen.row, seen.col] = -np.inf
        top = np.argpartition(scores, scores.shape[1] - K, axis=1)[:, -K:]
        for row, user in enumerate(chunk):
            relevant = test.indices[test.indptr[user] : test.indptr[user + 1]]
            hits = np.isin(top[row], relevant).sum()
            precision += hits / K
            recall += hits / len(relevant)
    count = max(len(users), 1)
    return RankingScores(precision_at_10=precision / count, recall_at_10=recall / count)


class ScoreRows:
    """Dense score rows for a chunk of users: factors for ALS, one shared vector for popularity."""

    def __init__(self, user_factors: NDArray[np.float32] | None, item_scores: NDArray[np.float32]) -> None:
        self._user_factors = user_factors
        self._item_scores = item_scores

    @classmethod
    def als(cls, user_factors: NDArray[np.float32], item_factors: NDArray[np.float32]) -> "ScoreRows":
        return cls(user_factors, item_factors)

    @classmethod
    def popularity(cls, counts: NDArray[np.float32]) -> "ScoreRows":
        return cls(None, counts)

    def __call__(self, users: NDArray[np.int64]) -> NDArray[np.float32]:
        if self._user_factors is None:
            return np.tile(self._item_scores.astype(np.float32), (len(users), 1))
        result: NDArray[np.float32] = self._user_factors[users] @ self._item_scores.T
        return result
