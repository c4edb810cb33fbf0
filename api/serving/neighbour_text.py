"""Similar-items answers as JSON text read straight off the neighbour lists, for float16 lists over plain ids.

Requests for k up to the version's stored answers read those instead (api/model/answers.py); these tables write the
larger k, and every answer of a version published before the stored answers existed.

A similar-items answer is a slice of one row of the lists, so its text can be put together from two tables instead
of building a Python float and a formatted string per item: the item ids as they are stored (fixed-width ASCII,
written into JSON as they are when no byte needs escaping) and one text per float16 bit pattern (65,536 of them,
655 KB, built in 20 ms before the workers fork; checking the ids takes 8-10 ms at 1M items). At 1M items that
halved the cost of the items' text (4.5 us against 9.4 us for the row lookup and `scored_items`, k = 10) and, with
the query shortcut in `validation.plain_query_k`, cut the route's extra cost over `/health/live` from 40 to 24 us a
request in process (`python -m bench.inprocess`; docs/api.md has the breakdown).

The text is byte for byte what `responses.scored_items` writes for the same row (scores widened to float32, then
to float64 and rounded to 6 places, written with float.__repr__; ids quoted as json.dumps would):
tests/api/test_neighbour_text.py compares them over every float16 value and over ids that need escaping. Lists of
float32 weights (catalogues under `neighbours.FLOAT16_MIN_ITEMS`) and id sets with any byte that JSON escapes keep
the general path.
"""

import functools

import numpy as np
from numpy.typing import NDArray

from api.model import neighbours as neighbour_files
from api.model.neighbours import Neighbours

_OPEN = '[{"item_id":"'
_BETWEEN_ITEMS = b'},{"item_id":"'
_BEFORE_SCORE = b'","score":'
_CLOSE = "}]"
# A non-finite weight (the loader refuses lists holding one) gets a byte that is not ASCII, so decoding the answer
# raises UnicodeDecodeError, a ValueError, as `scored_items` does for a non-finite score: never NaN in an answer.
_NOT_JSON = b"\xff"
# What JSON writes as it is (json.dumps' ASCII mode escapes `"`, `\`, control characters, DEL and beyond).
_FIRST_PLAIN, _LAST_PLAIN = 0x20, 0x7E
_ESCAPED = (ord('"'), ord("\\"))
_CHECK_ROWS = 1 << 16


@functools.cache
def float16_score_texts() -> NDArray[np.bytes_]:
    """The score text of every float16 bit pattern, indexed by the pattern."""
    values = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    finite = np.isfinite(values)
    widened = np.where(finite, values, 0).astype(np.float32).astype(np.float64).round(6).tolist()
    texts = [
        repr(value).encode("ascii") if ok else _NOT_JSON for value, ok in zip(widened, finite.tolist(), strict=True)
    ]
    return np.asarray(texts, dtype=np.bytes_)


def ids_are_plain(ids: NDArray[np.bytes_]) -> bool:
    """Whether every id is printable ASCII without `"` or `\\` (NUL only as the array's trailing padding)."""
    width = ids.dtype.itemsize
    # In blocks, so that a model swap inside a worker never holds more than a few MB of masks for long ids.
    return width == 0 or all(
        _plain_block(ids[start : start + _CHECK_ROWS]) for start in range(0, len(ids), _CHECK_ROWS)
    )


def _plain_block(ids: NDArray[np.bytes_]) -> bool:
    raw = np.ascontiguousarray(ids).view(np.uint8).reshape(len(ids), ids.dtype.itemsize)
    padding = raw == 0
    # Padding is a suffix of each row: once a NUL, always a NUL (an id with a NUL inside it would lose it).
    if np.any(padding[:, :-1] & ~padding[:, 1:]):
        return False
    plain = (raw >= _FIRST_PLAIN) & (raw <= _LAST_PLAIN)
    for escaped in _ESCAPED:
        plain &= raw != escaped
    return bool(np.all(plain | padding))


class NeighbourText:
    def __init__(self, ids: NDArray[np.bytes_], neighbours: Neighbours) -> None:
        self._ids = ids
        self._lists = neighbours
        self._indices = neighbours.indices
        self._weight_bits = neighbours.weights.view(np.uint16)
        self._scores = float16_score_texts()

    @classmethod
    def for_lists(cls, ids: NDArray[np.bytes_], neighbours: Neighbours | None) -> "NeighbourText | None":
        """The text tables for these lists, or None where the general path must write the answers."""
        if neighbours is None or neighbours.weights.dtype != np.float16 or not ids_are_plain(ids):
            return None
        return cls(ids, neighbours)

    def items(self, item: int, k: int) -> str | None:
        """The first k neighbours of `item` as `[{"item_id": ..., "score": ...}, ...]`; None when the row is shorter
        than k and the lists do not hold the whole catalogue (`neighbours.covers`: then more is found elsewhere)."""
        if not neighbour_files.covers(self._lists, min(k, self._lists.count), k):
            return None
        ids = self._ids[self._indices[item, :k]].tolist()
        scores = self._scores[self._weight_bits[item, :k]].tolist()
        if not ids:
            return "[]"
        joined = _BETWEEN_ITEMS.join([name + _BEFORE_SCORE + score for name, score in zip(ids, scores, strict=True)])
        return _OPEN + joined.decode("ascii") + _CLOSE
