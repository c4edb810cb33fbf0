"""Each item's similar-items answer as the JSON text the API writes, stored with the neighbour lists.

An answer for "items similar to X" with nothing excluded depends only on the version, and the answer for k is a
prefix of the answer for any larger k. So the version stores, for every item, the items text of its first C
neighbours (C = `answer_count` in the manifest's neighbours entry, DEFAULT_COUNT by default: the API's default k):
- `neighbour_answers.npy`: uint8, every item's text one after the other, `[{"item_id":...,"score":...},...]`;
- `neighbour_answer_offsets.npy`: int64 (items + 1,), item i's text at [offsets[i], offsets[i + 1]).

A request for k <= C is then two offsets and one slice of memory-mapped bytes: no numpy call, no per-neighbour
Python work. Measured through uWSGI at 1M items, the similar-items route cost a worker 245 us against 277 us with the
text tables of api/serving/neighbour_text.py (liveness 228-240 us in the same rounds; docs/api.md).

The text is written by `items_json`, the function that writes every other answer's items, from the scores the
route would use (the weights widened to float32, then to float64 and rounded to 6 places), so it is the general
path's answer by construction; the loader rebuilds a sample of rows and compares (`problem`).

Memory (the arithmetic docs/api.md repeats): about 40 bytes per neighbour with 12-character ids, so C = 10 costs
400 bytes an item: 4 MB at 10,000 items, 400 MB at 1M (measured: 399,796,246 bytes; the lists are 600 MB there).
"""

import math
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii

import numpy as np
from numpy.typing import NDArray

from api.model.neighbours import Neighbours

TEXT = "neighbour_answers"
OFFSETS = "neighbour_answer_offsets"
NAMES = (TEXT, OFFSETS)
# The key inside the manifest's neighbours entry; absent in versions written before these files existed.
COUNT_KEY = "answer_count"
# The API's default k (api.serving.config.ApiConfig.default_k): a request that names no k reads stored text.
DEFAULT_COUNT = 10
# Rows rebuilt and compared before a version serves: about 10 ms, whatever the catalogue's size.
SAMPLE_ROWS = 1_024
# Rows written at once: bounds the trainer's transient lists of ids and scores.
BLOCK_ROWS = 65_536
# Between two items of an answer and nowhere else: inside a JSON string every `"` is escaped.
_BETWEEN_ITEMS = '},{"'


@dataclass(frozen=True)
class Answers:
    text: NDArray[np.uint8]
    offsets: NDArray[np.int64]
    count: int


def items_json(ids: list[str], scores: list[float]) -> str:
    """`[{"item_id": ..., "score": ...}, ...]` as json.dumps writes it (compact, ASCII), without building the dicts.

    Strings are quoted by the encoder json.dumps uses for them, and floats written with float.__repr__ as json does;
    non-finite scores raise ValueError as json.dumps(allow_nan=False) would (tests/api/test_responses.py compares
    the two on hostile ids and scores).
    """
    # The sum is finite exactly when every score is (scores are float32 values, at most max_k of them: no overflow;
    # and an overflow could only refuse, never let a non-finite score through): one C loop, not a check per score.
    if not math.isfinite(sum(scores)):
        raise ValueError(f"Out of range float values are not JSON compliant: {scores!r}")
    # An f-string per item: about 0.4 us, against 1 us for str.format and 1.6 us for json.dumps of the dicts.
    quote = encode_basestring_ascii
    items = [f'{{"item_id":{quote(i)},"score":{s!r}}}' for i, s in zip(ids, scores, strict=True)]
    return "[" + ",".join(items) + "]"


def answer_count(neighbours: Neighbours, wanted: int = DEFAULT_COUNT) -> int:
    return min(wanted, neighbours.count)


def build(item_ids: NDArray[np.bytes_], neighbours: Neighbours, count: int) -> Answers:
    """Every item's answer for k = `count` (at most the lists' N), in blocks of rows."""
    if not 0 <= count <= neighbours.count:
        raise ValueError(f"answer count {count} must be 0..{neighbours.count} (the lists' length)")
    text = bytearray()
    offsets = np.empty(len(item_ids) + 1, dtype=np.int64)
    offsets[0] = 0
    for start in range(0, len(item_ids), BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, len(item_ids))
        for row, (ids, scores) in enumerate(_rows(item_ids, neighbours, count, start, stop), start):
            text += items_json(ids, scores).encode("ascii")
            offsets[row + 1] = len(text)
    return Answers(np.frombuffer(text, dtype=np.uint8), offsets, count)


def _rows(
    item_ids: NDArray[np.bytes_], neighbours: Neighbours, count: int, start: int, stop: int
) -> "zip[tuple[list[str], list[float]]]":
    names = item_ids[neighbours.indices[start:stop, :count]].tolist()
    # As the route scores a lookup: weights as float32 (api.model.neighbours.lookup), then float64 rounded to 6.
    scores = neighbours.weights[start:stop, :count].astype(np.float32).astype(np.float64).round(6).tolist()
    return zip([[raw.decode("utf-8") for raw in row] for row in names], scores, strict=True)


def problem(answers: Answers, item_ids: NDArray[np.bytes_], neighbours: Neighbours) -> tuple[str, str] | None:
    """The first inconsistency as (file name, what is wrong and what to do), or None.

    The offsets are checked whole (one pass); the text on SAMPLE_ROWS rows spread over the catalogue, rebuilt from
    the lists and compared. The file's checksum has already caught damage since the trainer wrote it; the sample
    catches a writer that disagrees with this release's answers.
    """
    offsets = answers.offsets
    if int(offsets[0]) != 0 or bool((offsets[1:] < offsets[:-1]).any()):
        return OFFSETS, "offsets must start at 0 and never decrease; retrain"
    items = len(item_ids)
    for row in np.unique(np.linspace(0, items - 1, min(SAMPLE_ROWS, items)).astype(np.int64)).tolist():
        ((ids, scores),) = _rows(item_ids, neighbours, answers.count, row, row + 1)
        if bytes(answers.text[offsets[row] : offsets[row + 1]]) != items_json(ids, scores).encode("ascii"):
            return TEXT, f"item row {row}'s answer differs from its neighbour lists; retrain"
    return None


class AnswerReader:
    """Answers read straight off the memory-mapped files: memoryviews index and slice without numpy's dispatch."""

    def __init__(self, answers: Answers) -> None:
        self.count = answers.count
        self._text = answers.text.data
        self._offsets = answers.offsets.data

    def items(self, item: int, k: int) -> str | None:
        """The first k neighbours of `item` as `[{"item_id": ..., "score": ...}, ...]`; None when k > count."""
        if k > self.count:
            return None
        if k < 1:
            return "[]"
        text = self._text[self._offsets[item] : self._offsets[item + 1]].tobytes().decode("ascii")
        if k == self.count:
            return text
        end = -1
        for _ in range(k):
            end = text.find(_BETWEEN_ITEMS, end + 1)
        return text[: end + 1] + "]"
