"""The on-disk model format: one directory per version beside a `current` symlink.

Every array is a plain `.npy` file so that the loader can memory-map it: uWSGI workers forked from the master then
share the same pages. Ids are sorted fixed-width UTF-8 byte arrays searched with `searchsorted`; row `i` of the item
factors belongs to `item_ids[i]`, so no per-id Python object or dict is ever built.
"""

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from api.contract import CURRENT_POINTER
from api.model import answers
from api.model import neighbours as neighbour_files
from api.model.ann import write as write_index
from api.model.checksums import WRITTEN, digests_of

if TYPE_CHECKING:
    from api.model.ann import AnnBuild

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
# The manifest's "family": which arrays answer. "als": factors (and, when present, the neighbour lookup for similar
# items); "item_item": the neighbour lists only, its factor arrays have zero columns. Absent means "als" (versions
# written before the field existed).
FAMILIES = ("als", "item_item")
DEFAULT_FAMILY = "als"


@dataclass(frozen=True)
class ModelArrays:
    user_factors: NDArray[np.float32]
    item_factors: NDArray[np.float32]
    item_norms: NDArray[np.float32]
    # Y^T Y, needed to fold a session's items into a user vector without touching every item row.
    item_gramian: NDArray[np.float32]
    popular_items: NDArray[np.int32]
    popular_scores: NDArray[np.float32]
    seen_indptr: NDArray[np.int64]
    seen_indices: NDArray[np.int32]
    user_ids: NDArray[np.bytes_]
    item_ids: NDArray[np.bytes_]


ARRAY_NAMES: tuple[str, ...] = tuple(field.name for field in fields(ModelArrays))


def assemble_arrays(
    *,
    user_factors: NDArray[np.float32],
    item_factors: NDArray[np.float32],
    popularity: NDArray[np.floating[Any]] | NDArray[np.integer[Any]],
    seen_indptr: NDArray[np.integer[Any]],
    seen_indices: NDArray[np.integer[Any]],
    user_ids: NDArray[np.bytes_],
    item_ids: NDArray[np.bytes_],
) -> ModelArrays:
    """The model's arrays from factors, per-item popularity and seen items; derived arrays are computed here once."""
    ranking = np.argsort(-popularity, kind="stable")
    gramian = item_factors.T.astype(np.float64) @ item_factors.astype(np.float64)
    return ModelArrays(
        user_factors=user_factors,
        item_factors=item_factors,
        item_norms=np.linalg.norm(item_factors, axis=1).astype(np.float32),
        item_gramian=gramian.astype(np.float32),
        popular_items=ranking.astype(np.int32),
        popular_scores=(popularity[ranking] / max(float(popularity.max()), 1e-12)).astype(np.float32),
        seen_indptr=seen_indptr.astype(np.int64),
        seen_indices=seen_indices.astype(np.int32),
        user_ids=user_ids,
        item_ids=item_ids,
    )


def array_file(name: str) -> str:
    return f"{name}.npy"


def expected_layout(users: int, items: int, factors: int, seen: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    """dtype kind/name and shape of every array, derived from the manifest's counts."""
    return {
        "user_factors": ("float32", (users, factors)),
        "item_factors": ("float32", (items, factors)),
        "item_norms": ("float32", (items,)),
        "item_gramian": ("float32", (factors, factors)),
        "popular_items": ("int32", (items,)),
        "popular_scores": ("float32", (items,)),
        "seen_indptr": ("int64", (users + 1,)),
        "seen_indices": ("int32", (seen,)),
        "user_ids": ("bytes", (users,)),
        "item_ids": ("bytes", (items,)),
    }


def publish_model(
    root: Path,
    version: str,
    arrays: ModelArrays,
    metadata: dict[str, Any],
    indexes: "Sequence[AnnBuild]" = (),
    *,
    family: str = DEFAULT_FAMILY,
    neighbours: neighbour_files.Neighbours | None = None,
) -> Path:
    """Write a complete version next to the others, then switch `current` to it atomically.

    Readers never see a half-written version: the files go to a temporary directory in `root` (same file system)
    that is renamed into place, and the pointer is replaced with `os.replace`.
    """
    if family not in FAMILIES:
        raise ValueError(f"model family {family!r} is not one of {', '.join(FAMILIES)}")
    if family == "item_item" and neighbours is None:
        raise ValueError("an item_item version needs its neighbour lists")
    root.mkdir(parents=True, exist_ok=True)
    final_dir = root / version
    if final_dir.exists():
        raise FileExistsError(f"model version {final_dir} already exists; choose another --version")
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=root))
    try:
        named = [(name, getattr(arrays, name)) for name in ARRAY_NAMES]
        if neighbours is not None:
            stored = answers.build(arrays.item_ids, neighbours, answers.answer_count(neighbours))
            named += [
                (neighbour_files.INDICES, neighbours.indices),
                (neighbour_files.WEIGHTS, neighbours.weights),
                (answers.OFFSETS, stored.offsets),
                (answers.TEXT, stored.text),
            ]
            entry = {**neighbours.manifest_entry(), answers.COUNT_KEY: stored.count}
            metadata = {**metadata, neighbour_files.MANIFEST_KEY: entry}
        files = {}
        for name, array in named:
            path = staging / array_file(name)
            np.save(path, array, allow_pickle=False)
            files[array_file(name)] = {
                **digests_of(path, WRITTEN),
                "dtype": str(array.dtype),
                "shape": list(array.shape),
            }
        for built in indexes:
            path = staging / built.spec.file
            write_index(built.index, str(path))
            metadata = {
                **metadata,
                built.spec.manifest_key: {**built.metadata, "file": built.spec.file, **digests_of(path, WRITTEN)},
            }
        users, factors = arrays.user_factors.shape
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": version,
            "family": family,
            **metadata,
            "counts": {"users": users, "items": len(arrays.item_ids), "seen": len(arrays.seen_indices)},
            "factors": factors,
            "files": files,
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        for path in staging.iterdir():
            _fsync(path)
        staging.chmod(0o755)
        os.rename(staging, final_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    switch_current(root, version)
    return final_dir


def switch_current(root: Path, version: str) -> None:
    link = root / f".{CURRENT_POINTER}.{os.getpid()}"
    link.unlink(missing_ok=True)
    # Relative target: the tree stays valid wherever it is mounted (EFS at /mnt/models, ./models locally).
    link.symlink_to(version, target_is_directory=True)
    os.replace(link, root / CURRENT_POINTER)


def _fsync(path: Path) -> None:
    with path.open("rb") as stream:
        os.fsync(stream.fileno())
