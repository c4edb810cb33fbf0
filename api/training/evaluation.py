"""The evaluation protocol: per-user temporal hold-out and top-K ranking metrics.

`temporal_split` and `evaluate` are the only way this project measures a model: the trainer (test and validation
splits, the hyperparameter search), `make quality` and the tests all go through them, so a figure in a manifest, in
the quality table and in a test assertion means the same thing.

Protocol:
- each user's interactions are ordered by time (ties by row order); the last `holdout_fraction` of them (at least
  one) is held out; users with fewer than `min_user_interactions` stay in training only, because a hold-out of one
  or two of a handful of rows measures noise and starves the model of the little it knows about them;
- a held-out item is relevant when its heaviest held-out interaction weighs at least `relevance_threshold` (e.g. 4
  on a 1-5 rating scale; none: every held-out interaction is relevant), and only if the user has no training
  interaction with it: re-finding a seen item is not a hit, and seen items are never recommended;
- P@K = hits / K; R@K = hits / relevant; NDCG@K with binary gains and the ideal ranking of min(relevant, K) hits;
  MAP@K = mean over users of (sum of precision at each hit's rank) / min(relevant, K); catalogue coverage = share of
  the catalogue recommended to at least one evaluated user;
- users with at least one relevant item and training history are eligible; they are visited in a seeded random
  order, so any prefix (cut by `max_users` or by a time budget) is a uniform sample and its size is reported.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from api.training.interactions import Interactions

K = 10
# Users scored at once: the dense score block stays near 128 MB (float32) whatever the catalogue size.
CHUNK_SCORES = 1 << 25
MAX_CHUNK_USERS = 512

# Dense score rows (float32, one per user in the argument, one column per item); the evaluator masks seen items.
Scorer = Callable[[NDArray[np.int64]], NDArray[np.float32]]


class ProtocolError(ValueError):
    pass


@dataclass(frozen=True)
class Protocol:
    holdout_fraction: float = 0.2
    min_user_interactions: int = 5
    relevance_threshold: float | None = None
    k: int = K
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ProtocolError(f"hold-out fraction {self.holdout_fraction} must be between 0 and 1 (e.g. 0.2)")
        if self.min_user_interactions < 2:
            raise ProtocolError(
                f"minimum interactions per evaluated user {self.min_user_interactions} must be at least 2: "
                "one to train on and one to hold out"
            )
        if self.k < 1:
            raise ProtocolError(f"K {self.k} must be at least 1")

    def describe(self) -> dict[str, object]:
        return {
            "split": "per_user_temporal",
            "holdout_fraction": self.holdout_fraction,
            "min_user_interactions": self.min_user_interactions,
            "relevance_threshold": self.relevance_threshold,
            "k": self.k,
            "seen_items_excluded": True,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Split:
    """One hold-out over a subset of the interaction rows: what to train on and what counts as a hit."""

    train_rows: NDArray[np.bool_]  # over all rows of the data; False for rows outside the subset
    test_rows: NDArray[np.bool_]
    train: sp.csr_matrix  # users x items, summed weights of the training rows
    relevant: sp.csr_matrix  # users x items, 1 where a held-out item is relevant and new to the user
    users: NDArray[np.int64]  # eligible users in seeded random order


@dataclass(frozen=True)
class Metrics:
    k: int
    precision: float
    recall: float
    ndcg: float
    map: float
    coverage: float
    users: int
    seconds: float

    def as_dict(self) -> dict[str, float | int]:
        k = self.k
        return {
            f"precision_at_{k}": round(self.precision, 5),
            f"recall_at_{k}": round(self.recall, 5),
            f"ndcg_at_{k}": round(self.ndcg, 5),
            f"map_at_{k}": round(self.map, 5),
            f"coverage_at_{k}": round(self.coverage, 5),
            "users": self.users,
            "seconds": round(self.seconds, 3),
        }


def interaction_matrix(data: Interactions, rows: NDArray[np.bool_]) -> sp.csr_matrix:
    """Users x items of the selected rows, repeated pairs summed (the shape covers every user and item)."""
    shape = (len(data.user_ids), len(data.item_ids))
    matrix = sp.csr_matrix((data.weights[rows], (data.users[rows], data.items[rows])), shape=shape, dtype=np.float32)
    matrix.sum_duplicates()
    matrix.sort_indices()
    return matrix


def temporal_split(data: Interactions, protocol: Protocol, within: NDArray[np.bool_] | None = None) -> Split:
    """Hold out the latest share of each user's rows among `within` (all rows by default).

    Carving the validation split from a test split's training rows (`within=test.train_rows`) gives a validation
    set that never sees a held-out test row.
    """
    within = np.ones(len(data), dtype=bool) if within is None else within
    candidates = np.flatnonzero(within)
    # Time order within each user; lexsort is stable, so equal timestamps keep row order.
    order = candidates[np.lexsort((data.timestamps[candidates], data.users[candidates]))]
    users = data.users[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    counts = np.diff(np.r_[starts, len(order)])
    held = np.where(
        counts >= protocol.min_user_interactions,
        np.maximum(1, np.floor(counts * protocol.holdout_fraction).astype(np.int64)),
        0,
    )
    position = np.arange(len(order)) - np.repeat(starts, counts)
    is_test = position >= np.repeat(counts - held, counts)
    test_rows = np.zeros(len(data), dtype=bool)
    test_rows[order[is_test]] = True
    train_rows = within & ~test_rows

    train = interaction_matrix(data, train_rows)
    relevant = _relevant(data, test_rows, train, protocol.relevance_threshold)
    eligible = np.flatnonzero((np.diff(train.indptr) > 0) & (np.diff(relevant.indptr) > 0)).astype(np.int64)
    shuffled = np.random.default_rng(protocol.seed).permutation(eligible)
    return Split(train_rows=train_rows, test_rows=test_rows, train=train, relevant=relevant, users=shuffled)


def _relevant(
    data: Interactions, test_rows: NDArray[np.bool_], train: sp.csr_matrix, threshold: float | None
) -> sp.csr_matrix:
    keep = test_rows.copy()
    if threshold is not None:
        # The heaviest interaction decides: a pair rated 2 then 5 is relevant; summing ratings would not mean much.
        keep &= data.weights >= threshold
    rows, cols = data.users[keep], data.items[keep]
    held = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=train.shape)
    held.sum_duplicates()
    held.data[:] = 1.0
    seen = (train > 0).astype(np.float32)
    relevant = (held - held.multiply(seen)).tocsr()
    relevant.eliminate_zeros()
    relevant.sort_indices()
    return relevant


def evaluate(
    scorer: Scorer,
    split: Split,
    k: int = K,
    *,
    max_users: int | None = None,
    users: NDArray[np.int64] | None = None,
    seconds: float | None = None,
) -> Metrics:
    """Mean ranking metrics over `users` (default: the split's eligible users, at most `max_users`).

    With `seconds`, chunks of users are scored until the budget is spent (at least one chunk); the count reached is
    in the result, and passing `users=split.users[:count]` to the next model compares them on the same users.
    """
    chosen = split.users if users is None else users
    if max_users is not None:
        chosen = chosen[:max_users]
    n_items = split.train.shape[1]
    recommended = np.zeros(n_items, dtype=bool)
    totals = np.zeros(4)  # precision, recall, ndcg, average precision
    done = 0
    start = time.perf_counter()
    for chunk, per_user, top, valid in _scored_chunks(scorer, split, k, chosen):
        totals += per_user.sum(axis=1)
        recommended[top[valid]] = True
        done += len(chunk)
        # Checked after a chunk, before the generator scores the next one: at least one chunk, none wasted.
        if seconds is not None and time.perf_counter() - start >= seconds:
            break
    count = max(done, 1)
    precision, recall, ndcg, average_precision = totals / count
    return Metrics(
        k=k,
        precision=float(precision),
        recall=float(recall),
        ndcg=float(ndcg),
        map=float(average_precision),
        coverage=float(recommended.sum() / max(n_items, 1)),
        users=done,
        seconds=time.perf_counter() - start,
    )


def per_user_ndcg(scorer: Scorer, split: Split, k: int, users: NDArray[np.int64]) -> NDArray[np.float64]:
    """Each of `users`' NDCG@k, in their order: the values whose mean `evaluate` reports, for paired comparisons."""
    parts = [per_user[2] for _chunk, per_user, _top, _valid in _scored_chunks(scorer, split, k, users)]
    return np.concatenate(parts) if parts else np.zeros(0)


def paired_difference(first: NDArray[np.float64], second: NDArray[np.float64]) -> tuple[float, float]:
    """Mean of `first - second` over the same users and its standard error (0 with fewer than two users)."""
    difference = first - second
    if len(difference) < 2:
        return float(difference.mean()) if len(difference) else 0.0, 0.0
    return float(difference.mean()), float(difference.std(ddof=1) / np.sqrt(len(difference)))


def _scored_chunks(
    scorer: Scorer, split: Split, k: int, users: NDArray[np.int64]
) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_]]]:
    """Per chunk of users: the users, their (precision, recall, ndcg, average precision) rows, top-k and validity.

    Lazy, so a time budget stops the scoring between chunks.
    """
    n_items = split.train.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)
    chunk_users = max(1, min(MAX_CHUNK_USERS, CHUNK_SCORES // max(n_items, 1)))
    for begin in range(0, len(users), chunk_users):
        chunk = users[begin : begin + chunk_users]
        scores = np.array(scorer(chunk), dtype=np.float32, copy=True)
        seen = split.train[chunk].tocoo()
        scores[seen.row, seen.col] = -np.inf
        top = _top_k(scores, k)
        valid = np.take_along_axis(scores, top, axis=1) > -np.inf
        rows = np.repeat(np.arange(len(chunk)), top.shape[1])
        relevant = split.relevant[chunk]
        hits = (np.asarray(relevant[rows, top.ravel()]).reshape(top.shape) > 0) & valid
        n_relevant = np.diff(relevant.indptr).astype(np.float64)
        ideal_hits = np.minimum(n_relevant, k).astype(np.int64)
        hit_count = hits.sum(axis=1)
        ranks = np.arange(1, top.shape[1] + 1)
        per_user = np.vstack(
            (
                hit_count / k,
                hit_count / n_relevant,
                (hits * discounts[: top.shape[1]]).sum(axis=1) / ideal[ideal_hits - 1],
                (hits * np.cumsum(hits, axis=1) / ranks).sum(axis=1) / ideal_hits,
            )
        )
        yield chunk, per_user, top, valid


def _top_k(scores: NDArray[np.float32], k: int) -> NDArray[np.int64]:
    """Column indices of each row's k best scores, best first (fewer columns when the catalogue is smaller)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64)
