"""Each item's top-N neighbours, precomputed by the trainer: the similar-items lookup and the item-item model.

Two dense arrays of N columns, row i for item i, best neighbour first:
- `neighbour_indices.npy`: int32 item rows, never i itself, no repeats in a row;
- `neighbour_weights.npy`: float32 or float16 (half the bytes; about 3 significant digits), non-increasing along
  the row. For an ALS version the weight is the cosine of the two items' factors; for an item-item (EASE) version it
  is B[i, j], the weight item i gives item j in a user's score (so a user's scores are the sum of the rows of the
  items they have).

N = min(configured N, items - 1): every row is full, so there is no padding value to get wrong. Like every array
of a version they are memory-mapped: forked workers share the pages.

Memory (the arithmetic docs/api.md repeats): items x N x (4 + weight bytes). At N = 100: 1M items = 400 MB of ids
+ 200 MB of float16 weights; 20,000 items (EASE's limit) = 8 MB + 8 MB in float32.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from api.model.ann import normalised

INDICES = "neighbour_indices"
WEIGHTS = "neighbour_weights"
NAMES = (INDICES, WEIGHTS)
MANIFEST_KEY = "neighbours"
WEIGHT_DTYPES = ("float32", "float16")
# The API's largest k (api.serving.config.ApiConfig.max_k): every answer of an ALS version comes from the lookup.
DEFAULT_COUNT = 100
# float16 halves the weights where they are large; below this catalogue size they are small anyway, kept exact.
FLOAT16_MIN_ITEMS = 50_000
# Similarity rows computed at once: at most this many floats (128 MB) in the block's transient score matrix.
BLOCK_FLOATS = 32 * 1024 * 1024


@dataclass(frozen=True)
class Neighbours:
    indices: NDArray[np.int32]
    weights: NDArray[Any]
    # "cosine" (ALS factors) or "ease" (item-item weights): what a weight means.
    metric: str

    @property
    def count(self) -> int:
        return int(self.indices.shape[1])

    def manifest_entry(self) -> dict[str, Any]:
        return {"count": self.count, "metric": self.metric, "weights_dtype": str(self.weights.dtype)}


def neighbour_count(items: int, wanted: int) -> int:
    if wanted < 1:
        raise ValueError(f"neighbour count {wanted} must be at least 1")
    return max(0, min(wanted, items - 1))


def weight_dtype(items: int) -> str:
    return "float16" if items >= FLOAT16_MIN_ITEMS else "float32"


def lookup(
    neighbours: Neighbours, item: int, k: int, excluded: set[int]
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """`item`'s best neighbours outside `excluded`, at most k; fewer when its row runs out (see `covers`)."""
    row = neighbours.indices[item]
    if not excluded:
        return row[:k].astype(np.int64), neighbours.weights[item, :k].astype(np.float32)
    keep = [position for position, other in enumerate(row.tolist()) if other not in excluded][:k]
    return row[keep].astype(np.int64), neighbours.weights[item, keep].astype(np.float32)


def covers(neighbours: Neighbours, found: int, k: int) -> bool:
    """Whether a lookup that found `found` items answered a request for k: it did unless the row ran out before k
    survived and the row does not hold every other item (when it does, the catalogue itself ran out)."""
    return found >= k or neighbours.count >= len(neighbours.indices) - 1


def problem(neighbours: Neighbours, items: int) -> tuple[str, str] | None:
    """The first inconsistency as (array name, what is wrong and what to do), or None.

    Dtypes and shapes are checked by the loader against the manifest like every array; these are the value checks.
    They run before a version serves (start-up readiness, model swaps): at 1M items x 100 neighbours, one pass over
    the indices for the range and the rows in blocks for the rest, float16 weights compared as integers (numpy's
    float16 comparisons and conversions are per-element software loops, several times slower).
    """
    indices, weights = neighbours.indices, neighbours.weights
    if indices.size == 0:
        return None
    # Read as unsigned, a negative index is larger than any valid one: one pass instead of min and max.
    if int(indices.view(f"u{indices.dtype.itemsize}").max()) >= items:
        low, high = int(indices.min()), int(indices.max())
        return INDICES, f"neighbour index outside 0..{items - 1} ({low}..{high}); retrain"
    step = _block_rows(indices.shape[1])
    for start in range(0, len(indices), step):
        rows = slice(start, start + step)
        found = _weights_problem(weights[rows])
        if found is not None:
            return WEIGHTS, found
        own = np.arange(start, start + len(indices[rows]), dtype=indices.dtype)[:, None]
        if bool((indices[rows] == own).any()):
            return INDICES, "an item is listed as its own neighbour; retrain"
    return None


def _weights_problem(block: NDArray[Any]) -> str | None:
    if block.dtype == np.float16:
        ordered, finite = _float16_keys(block)
    else:
        ordered, finite = block, bool(np.isfinite(block).all())
    if not finite:
        return "weights are not all finite (NaN or infinity); retrain"
    if bool((ordered[:, 1:] > ordered[:, :-1]).any()):
        return "a row's weights are not in non-increasing order; retrain"
    return None


def _float16_keys(block: NDArray[np.float16]) -> tuple[NDArray[np.int16], bool]:
    """Integers in the order of the float16 values (-0.0 and +0.0 equal), and whether every value is finite.

    IEEE 754 half: sign bit, then exponent and mantissa whose bits, read as an integer, grow with the magnitude;
    exponent bits all ones (magnitude >= 0x7C00) is infinity or NaN. Without a sign bit set (the usual block: top
    cosines are positive) the bits are the key; otherwise the key is the magnitude, negated when the sign bit is set:
    (m XOR s) - s with s = 0 or -1.
    """
    bits = block.view(np.int16)
    if bits.size == 0:
        return bits, True
    if int(bits.min()) >= 0:
        return bits, int(bits.max()) < 0x7C00
    key = bits & np.int16(0x7FFF)
    finite = int(key.max()) < 0x7C00
    sign = bits >> 15
    np.bitwise_xor(key, sign, out=key)
    np.subtract(key, sign, out=key)
    return key, finite


def top_rows(
    rows: Callable[[int, int], NDArray[np.float32]], items: int, count: int, dtype: str
) -> tuple[NDArray[np.int32], NDArray[Any]]:
    """The `count` highest entries of every row of an items x items score matrix given a block of rows at a time,
    leaving out the diagonal (an item is not its own neighbour)."""
    indices = np.empty((items, count), dtype=np.int32)
    weights = np.empty((items, count), dtype=dtype)
    if count == 0:
        return indices, weights
    step = max(1, BLOCK_FLOATS // max(items, 1))
    for start in range(0, items, step):
        stop = min(start + step, items)
        scores = np.array(rows(start, stop), dtype=np.float32)
        scores[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        head = np.argpartition(-scores, count - 1, axis=1)[:, :count]
        head_scores = np.take_along_axis(scores, head, axis=1)
        order = np.argsort(-head_scores, axis=1, kind="stable")
        indices[start:stop] = np.take_along_axis(head, order, axis=1)
        weights[start:stop] = np.take_along_axis(head_scores, order, axis=1)
    return indices, weights


def cosine_exact(item_factors: NDArray[np.float32], count: int, dtype: str) -> Neighbours:
    """Exact cosine top-N over all items: items^2 x factors flops (3,000 items: 0.6 GFLOP; 50,000: 160 GFLOP)."""
    unit = normalised(item_factors)
    indices, weights = top_rows(lambda start, stop: unit[start:stop] @ unit.T, len(unit), count, dtype)
    return Neighbours(indices, weights, "cosine")


def cosine_approximate(item_factors: NDArray[np.float32], index: Any, count: int, dtype: str) -> Neighbours:
    """Cosine top-N through the similar-items faiss index (normalised vectors, api.model.ann.SIMILAR_INDEX).

    The index proposes count + 1 candidates per item (one is usually the item itself), which are re-scored exactly
    from the factors, so every weight is an exact cosine; only the candidate set is approximate (its recall@10 is
    the index's, in the manifest). A row the probe left short (fewer than `count` other items found) is computed
    exactly. Queries go in batches: faiss parallelises a batch over its threads.
    """
    unit = normalised(item_factors)
    items = len(unit)
    indices = np.empty((items, count), dtype=np.int32)
    weights = np.empty((items, count), dtype=dtype)
    if count == 0:
        return Neighbours(indices, weights, "cosine")
    # 4,096 queries x (N + 1) candidates x 64 factors: about 100 MB of gathered vectors per batch.
    batch = 4_096
    for start in range(0, items, batch):
        stop = min(start + batch, items)
        _, found = index.search(unit[start:stop], count + 1)
        own = np.arange(start, stop)[:, None]
        usable = (found >= 0) & (found != own)
        candidates = np.where(usable, found, 0)
        scores = np.einsum("rcf,rf->rc", unit[candidates], unit[start:stop])
        scores = np.where(usable, scores, -np.inf).astype(np.float32)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :count]
        indices[start:stop] = np.take_along_axis(candidates, order, axis=1)
        weights[start:stop] = np.take_along_axis(scores, order, axis=1)
        short = np.flatnonzero(usable.sum(axis=1) < count)
        for row in (start + short).tolist():
            exact = unit @ unit[row]
            exact[row] = -np.inf
            best = np.argpartition(-exact, count - 1)[:count]
            best = best[np.argsort(-exact[best], kind="stable")]
            indices[row], weights[row] = best, exact[best]
    return Neighbours(indices, weights, "cosine")


def from_item_weights(weights: NDArray[np.floating[Any]], count: int, dtype: str) -> Neighbours:
    """The top-N of each row of a dense items x items weight matrix (EASE's B, zero diagonal)."""
    indices, top = top_rows(
        lambda start, stop: np.asarray(weights[start:stop], dtype=np.float32), len(weights), count, dtype
    )
    return Neighbours(indices, top, "ease")


def timed_build(build: Callable[[], Neighbours], say: Callable[[str], None], what: str) -> Neighbours:
    started = time.perf_counter()
    built = build()
    say(
        f"{what}: top {built.count} neighbours of {len(built.indices)} items in {time.perf_counter() - started:.1f} s "
        f"({built.indices.nbytes + built.weights.nbytes} bytes, weights {built.weights.dtype})"
    )
    return built


def _block_rows(columns: int) -> int:
    return max(1, BLOCK_FLOATS // max(columns, 1))
