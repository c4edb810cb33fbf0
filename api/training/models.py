"""The model families the trainer fits and compares: implicit ALS, EASE (item-item) and the popularity baseline."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

import numpy as np
import scipy.linalg
import scipy.linalg.lapack
import scipy.sparse as sp
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from api.training.evaluation import Scorer

T = TypeVar("T")
Weighting = Literal["raw", "binary", "log", "bm25"]
WEIGHTINGS: tuple[str, ...] = get_args(Weighting)

# EASE keeps a dense items x items matrix. Its fit fills the Gram matrix X^T X in float64 (8 n^2 bytes) a block of
# columns at a time and inverts it in place (LAPACK Cholesky, potrf + potri), so the peak is about 8 n^2 bytes:
# 3.2 GB at 20,000 items (72 MB at the demo's 3,000); a served dense float32 copy would be 4 n^2 = 1.6 GB per version.
# Time grows as n^3 (about n^3 flops per lambda: 0.3-0.7 s at 3,000 items here, so 3-5 min at 20,000 on 2 cores, times
# the lambdas tried). Above the limit only ALS is trained.
EASE_MAX_ITEMS = 20_000
# Columns of the Gram matrix built (and of its triangle mirrored) at once: at most 1/16 of the matrix in transients.
GRAM_BLOCK = 1_024
GRAM_BLOCK_SHARE = 16
# Lambda candidates tried on the validation split; EASE's optimum moves with the data's density (the EASE paper used
# 200-3000 on its data sets), so the grid spans four decades.
EASE_LAMBDAS: tuple[float, ...] = (10.0, 50.0, 250.0, 1000.0, 4000.0)


@dataclass(frozen=True)
class AlsParameters:
    factors: int = 64
    iterations: int = 15
    regularization: float = 0.05
    # implicit >= 0.5 uses confidence = alpha * weight, the weight after `weighting`.
    alpha: float = 10.0
    weighting: Weighting = "raw"
    random_state: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.factors < 1:
            problems.append(f"factors {self.factors} must be at least 1")
        if self.iterations < 1:
            problems.append(f"iterations {self.iterations} must be at least 1")
        if not self.regularization >= 0:
            problems.append(f"regularization {self.regularization} must be 0 or more")
        if not self.alpha > 0:
            problems.append(f"alpha {self.alpha} must be positive")
        if self.weighting not in WEIGHTINGS:
            problems.append(f"weighting {self.weighting!r} must be one of {', '.join(WEIGHTINGS)}")
        if problems:
            raise ParameterError("; ".join(problems))


class ParameterError(ValueError):
    """A model setting that cannot be trained; the message names each problem."""


class OutOfTimeError(Exception):
    """A fit stopped between two iterations because its deadline passed."""


def weigh(matrix: sp.csr_matrix, weighting: str) -> sp.csr_matrix:
    """Rescale the summed interaction weights before ALS turns them into confidences."""
    result = matrix.copy().astype(np.float32)
    if weighting == "binary":
        result.data[:] = 1.0
    elif weighting == "log":
        result.data = np.log1p(result.data).astype(np.float32)
    elif weighting == "bm25":
        from implicit.nearest_neighbours import bm25_weight

        # BM25 down-weights very popular items and very active users, the scaling implicit's own examples use. Its
        # idf is log(users) - log1p(item's users), zero or negative for an item (nearly) every user has; implicit
        # would read a negative entry as negative feedback, which an interaction never is, so those drop out.
        result = sp.csr_matrix(bm25_weight(result, K1=100, B=0.8), dtype=np.float32)
        result.data = np.maximum(result.data, 0.0)
    elif weighting != "raw":
        raise ValueError(f"weighting {weighting!r} must be one of {', '.join(WEIGHTINGS)}")
    result.eliminate_zeros()
    return result


def fit_als(
    matrix: sp.csr_matrix, parameters: AlsParameters, deadline: float | None = None
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """User and item factors of ALS on the weighted matrix; OutOfTimeError once `deadline` (perf_counter) passes."""
    from implicit.cpu.als import AlternatingLeastSquares

    def stop_when_late(_iteration: int, _elapsed: float, _loss: float) -> None:
        if deadline is not None and time.perf_counter() > deadline:
            raise OutOfTimeError

    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=parameters.factors,
            iterations=parameters.iterations,
            regularization=parameters.regularization,
            alpha=parameters.alpha,
            random_state=parameters.random_state,
        )
        model.fit(weigh(matrix, parameters.weighting), show_progress=False, callback=stop_when_late)
    return np.ascontiguousarray(model.user_factors, np.float32), np.ascontiguousarray(model.item_factors, np.float32)


def als_scorer(user_factors: NDArray[np.float32], item_factors: NDArray[np.float32]) -> Scorer:
    def score(users: NDArray[np.int64]) -> NDArray[np.float32]:
        result: NDArray[np.float32] = user_factors[users] @ item_factors.T
        return result

    return score


def item_popularity(matrix: sp.csr_matrix) -> NDArray[np.float32]:
    """Number of distinct users per item: what the API's popular fallback ranks by."""
    counts: NDArray[np.float32] = np.diff(matrix.tocsc().indptr).astype(np.float32)
    return counts


def popularity_scorer(counts: NDArray[np.float32]) -> Scorer:
    def score(users: NDArray[np.int64]) -> NDArray[np.float32]:
        return np.broadcast_to(counts, (len(users), len(counts)))

    return score


def fit_ease(matrix: sp.csr_matrix, lam: float) -> NDArray[np.float64]:
    """EASE item-item weights B = I - P / diag(P), P = (X^T X + lambda I)^-1, zero diagonal (Steck, WWW 2019).

    X is binarised: EASE models which items go together, not how strongly, and its lambda is tuned on that scale.
    """
    items = matrix.shape[1]
    if items > EASE_MAX_ITEMS:
        raise ParameterError(f"{items} items exceed EASE's limit of {EASE_MAX_ITEMS} (dense n x n memory)")
    if not lam > 0:
        raise ParameterError(f"EASE lambda {lam} must be positive")
    binary = (matrix > 0).astype(np.float32).tocsc()
    gram = np.empty((items, items), dtype=np.float64)
    block = _block(items)
    # Column blocks: a sparse X^T X of a dense-ish catalogue would hold every entry again with its index.
    for start in range(0, items, block):
        stop = min(start + block, items)
        gram[:, start:stop] = (binary.T @ binary[:, start:stop]).toarray()
    gram[np.diag_indices(items)] += lam
    with threadpool_limits(limits=2, user_api="blas"):
        # LAPACK works in Fortran order; the transpose of the symmetric C-ordered Gram is the same matrix in Fortran
        # order, so it is factorised in place instead of copied (the copy would double the peak memory).
        factor, info = scipy.linalg.lapack.dpotrf(gram.T, lower=False, overwrite_a=True, clean=False)
        if info == 0:
            inverse, info = scipy.linalg.lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise ParameterError(f"EASE: X^T X + {lam:g} I is not positive definite (LAPACK info {info}); raise lambda")
    _mirror_upper(inverse)
    diagonal = np.diag(inverse).copy()
    inverse /= -diagonal
    inverse[np.diag_indices(items)] = 0.0
    weights: NDArray[np.float64] = inverse
    return weights


def _block(items: int) -> int:
    return max(1, min(GRAM_BLOCK, -(-items // GRAM_BLOCK_SHARE)))


def _mirror_upper(square: NDArray[np.float64]) -> None:
    """Copy the upper triangle onto the lower one in place (potri fills only the upper), block by block."""
    n = square.shape[0]
    width = _block(n)
    for start in range(0, n, width):
        stop = min(start + width, n)
        square[start:stop, :start] = square[:start, start:stop].T
        diagonal = square[start:stop, start:stop]
        square[start:stop, start:stop] = np.triu(diagonal) + np.triu(diagonal, 1).T


def ease_scorer(matrix: sp.csr_matrix, weights: NDArray[np.float64]) -> Scorer:
    binary = (matrix > 0).astype(np.float64).tocsr()

    def score(users: NDArray[np.int64]) -> NDArray[np.float32]:
        return np.asarray(binary[users] @ weights, dtype=np.float32)

    return score


def timed(work: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start
