"""A least-recently-used cache for the answers of one worker and one model version, bounded in entries and bytes.

Shop traffic is skewed: with user ids Zipf-distributed (exponent 1.1, as `make bench` draws them) over 200k users, the
4,096 most frequent users make 82 % of the personalised requests, and an LRU of that size answers 75 % of them. Their
answers are deterministic for a given model version, so a worker keeps the latest few thousand and skips the index
search and the response building for them. The cache belongs to one `Recommender`, so a swapped-in version starts
with an empty one and never serves an answer of the old model.

Values are the answers already serialised as JSON text (one `str` each), not lists of dicts: the bound in bytes is
then exact up to a fixed per-entry overhead, and the cache adds no object the garbage collector tracks (measured:
the count of tracked objects is the same with 1,500 answers cached; before, each k = 10 answer was 21 tracked dicts
and lists that every full collection walked).
At k = 100, 5,000 users grew each worker's private memory from 11 to 128 MB under the count-only bound; the bytes
bound (default 8 MiB, ANSWER_CACHE_BYTES) holds at any k: an answer is about 4.3 KB at k = 100 (about 1,900 fit) and
0.4 KB at k = 10 (the 4,096-entry bound applies first: about 3 MiB). tests/api/test_answer_cache.py measures it.
"""

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")

# Bytes an entry costs beside its text: the OrderedDict slot and links, the key tuple with its ints, the str header
# (measured with tracemalloc over 1,500 entries at k = 1 and k = 100: about 300 bytes; rounded up).
ENTRY_OVERHEAD_BYTES = 400


class LruCache(Generic[K]):
    def __init__(self, size: int, max_bytes: int | None = None) -> None:
        if size < 0:
            raise ValueError(f"cache size must be 0 (off) or more, not {size}")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"cache bytes must be 0 (off) or more, not {max_bytes}")
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[K, str] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> str | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: str) -> None:
        cost = _cost(value)
        if self.size == 0 or (self.max_bytes is not None and cost > self.max_bytes):
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= _cost(old)
        self._entries[key] = value
        self.bytes += cost
        while len(self._entries) > self.size or (self.max_bytes is not None and self.bytes > self.max_bytes):
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= _cost(evicted)


def _cost(value: str) -> int:
    # Answers are ASCII JSON (json.dumps escapes the rest), so one byte per character.
    return len(value) + ENTRY_OVERHEAD_BYTES
