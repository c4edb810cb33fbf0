"""Id look-ups over sorted fixed-width UTF-8 arrays: no per-id Python objects, so forked workers share the pages."""

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

_NO_INDICES = np.empty(0, dtype=np.int64)
_NO_INDICES.flags.writeable = False  # shared by every request that names no ids


class IdIndex:
    def __init__(self, sorted_ids: NDArray[np.bytes_]) -> None:
        self._ids = sorted_ids
        self._width = sorted_ids.dtype.itemsize

    def __len__(self) -> int:
        return len(self._ids)

    def find(self, external_id: str) -> int | None:
        key = external_id.encode("utf-8")
        # Keys wider than the array or with NUL bytes can never be stored in it (numpy strips trailing NULs).
        if not key or len(key) > self._width or b"\0" in key:
            return None
        position = int(self._ids.searchsorted(key))
        if position < len(self._ids) and self._ids[position] == key:
            return position
        return None

    def find_many(self, external_ids: Sequence[str]) -> tuple[NDArray[np.int64], list[str]]:
        """Indices of the known ids, and the unknown ids in request order."""
        if not external_ids:  # the common request names none: no array to build
            return _NO_INDICES, []
        known: list[int] = []
        unknown: list[str] = []
        for external_id in external_ids:
            index = self.find(external_id)
            if index is None:
                unknown.append(external_id)
            else:
                known.append(index)
        return np.asarray(known, dtype=np.int64), unknown

    def id_at(self, index: int) -> str:
        return bytes(self._ids[index]).decode("utf-8")

    def ids_at(self, indices: NDArray[np.int64]) -> list[str]:
        # tolist() makes the bytes objects in one C call (trailing NUL padding stripped, as bytes(np.bytes_) does);
        # a numpy scalar per id costs about twice as much.
        return [raw.decode("utf-8") for raw in self._ids[indices].tolist()]
