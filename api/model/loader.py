"""Validate a published model version and memory-map its arrays; refuse anything inconsistent.

Every failure, whatever the damage (wrong JSON types, corrupt or truncated files, non-finite numbers, a pointer or
file leading outside MODEL_DIR), is a ModelLoadError naming the file and the problem: the start-up refuses with one
log line and the watcher keeps the serving version.
"""

import functools
import json
import math
import os
import re
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from api.contract import CURRENT_POINTER
from api.model import ann
from api.model import answers as answer_files
from api.model import checksums as checksum_files
from api.model import neighbours as neighbour_files
from api.model.format import (
    ARRAY_NAMES,
    DEFAULT_FAMILY,
    FAMILIES,
    FORMAT_VERSION,
    MANIFEST_NAME,
    ModelArrays,
    array_file,
    expected_layout,
)

# The version labels every response (X-Model-Version header, body, logs): header-safe ASCII, no path separators.
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)
# Manifests are small JSON documents; this bounds what a damaged one can make the loader read.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
# Float arrays are checked for NaN and infinity in slices of this many elements (bounded temporary memory).
FINITE_CHECK_CHUNK = 1 << 22
FLOAT_ARRAYS = ("user_factors", "item_factors", "item_norms", "item_gramian", "popular_scores")
# Threads that hash a version's files ahead of the checks, at most; fewer when fewer CPUs are ours.
MAX_CHECKSUM_THREADS = 4


class ModelLoadError(Exception):
    """A model that must not serve; the message is one line naming the file and the problem."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"model file {path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class LoadedModel:
    version: str
    path: Path
    manifest: dict[str, Any]
    arrays: ModelArrays
    # faiss indexes over the item factors (api.model.ann.USER_INDEX, SIMILAR_INDEX), when the trainer built them.
    ann_index: Any = None
    similar_index: Any = None
    # "als" or "item_item" (api.model.format.FAMILIES); an item_item version always has neighbours.
    family: str = DEFAULT_FAMILY
    # Each item's top-N neighbours (api.model.neighbours), when the trainer stored them.
    neighbours: neighbour_files.Neighbours | None = None
    # Each item's similar-items answer text for k up to answers.count (api.model.answers), when the version has it.
    answers: answer_files.Answers | None = None


def load_model(root: Path, *, index_in_memory: bool = False, checksum_threads: int | None = None) -> LoadedModel:
    """`index_in_memory`: read the ANN indexes into memory (the master, before fork) instead of memory-mapping them.

    `checksum_threads`: threads hashing the files ahead (_Checksums). By default every CPU this process may use (up
    to MAX_CHECKSUM_THREADS) for the start-up load (`index_in_memory`: nothing is served yet, and readiness waits on
    it), and one for a swap in a serving worker, so that it takes at most one core from the requests, as before.
    """
    version_dir = _resolve_current(root)
    manifest = _read_manifest(version_dir / MANIFEST_NAME)
    layout = expected_layout(
        users=manifest["counts"]["users"],
        items=manifest["counts"]["items"],
        factors=manifest["factors"],
        seen=manifest["counts"]["seen"],
    )
    if checksum_threads is None:
        checksum_threads = _usable_cpus() if index_in_memory else 1
    checksums = _Checksums(version_dir, _files_to_read(manifest), checksum_threads)
    indexes = _Indexes(
        version_dir, manifest, manifest["counts"]["items"], in_memory=index_in_memory, checksums=checksums
    )
    try:
        loaded = {name: _load_array(version_dir, name, manifest, layout[name], checksums) for name in ARRAY_NAMES}
        arrays = ModelArrays(**loaded)
        _check_consistency(version_dir, arrays)
        _check_finite(version_dir, arrays)
        items = len(arrays.item_ids)
        family = _family(version_dir / MANIFEST_NAME, manifest)
        lookup = _load_neighbours(version_dir, manifest, items, checksums)
        stored = None if lookup is None else _load_answers(version_dir, manifest, arrays.item_ids, lookup, checksums)
        if family == "item_item" and lookup is None:
            raise ModelLoadError(
                version_dir / MANIFEST_NAME, f"family item_item but no {neighbour_files.MANIFEST_KEY} entry; retrain"
            )
        return LoadedModel(
            version=manifest["version"],
            path=version_dir,
            manifest=manifest,
            arrays=arrays,
            ann_index=indexes.result(ann.USER_INDEX),
            similar_index=indexes.result(ann.SIMILAR_INDEX),
            family=family,
            neighbours=lookup,
            answers=stored,
        )
    finally:
        indexes.close()
        checksums.close()


class _Checksums:
    """The checksums of a version's files, computed ahead in threads while the loader checks the files before them.

    Hashing is still the largest part of a load (1.68 GB at 1M items: 0.27 s of one core in xxh3_128, 1.17 s in
    sha256), and both hashes and file reads release the GIL, so it runs beside the value checks and on the other
    cores. Nothing else moves: every file is still verified before it is opened, in the same order and with the same
    errors as when it was hashed on the spot. Only regular files inside the version directory are hashed ahead (never
    a symlink out of it, a device or a FIFO: those are refused by _check_file). close() waits for the threads, so
    none is left when uWSGI forks the workers.
    """

    def __init__(self, version_dir: Path, files: Iterable[tuple[str, str]], threads: int) -> None:
        if threads < 1:
            raise ValueError(f"checksum threads must be at least 1, not {threads}")
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="model-checksum")
        self._pending: dict[tuple[Path, str], Future[str]] = {}
        for name, algorithm in files:
            path = version_dir / name
            if _plain_name(name) and path.is_file() and not _outside(path, version_dir):
                self._pending[path, algorithm] = self._pool.submit(checksum_files.digest_of, path, algorithm)

    def digest(self, path: Path, algorithm: str) -> str:
        future = self._pending.pop((path, algorithm), None)
        return checksum_files.digest_of(path, algorithm) if future is None else future.result()

    def close(self) -> None:
        # A refused version leaves hashes queued: they are dropped, and the ones under way finish first.
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Indexes:
    """The version's ANN indexes, read in a thread beside the checks when they are read into memory.

    At start-up (the master, `in_memory`) reading the user index copies its inverted lists (0.21 s at 1M items) and
    faiss releases the GIL meanwhile, so it overlaps the neighbour and answer checks instead of following them. Each
    index is still taken in the loader's order, after every check before it: a version with several faults reports
    the same first one as when the indexes were read last. A swap memory-maps them (cheap), in the loader's thread.
    """

    def __init__(
        self, version_dir: Path, manifest: dict[str, Any], items: int, *, in_memory: bool, checksums: _Checksums
    ) -> None:
        self._read = functools.partial(
            _load_index, version_dir, manifest, items=items, in_memory=in_memory, checksums=checksums
        )
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="model-index") if in_memory else None
        self._pending = {spec: self._pool.submit(self._read, spec) for spec in ann.INDEX_SPECS} if self._pool else {}

    def result(self, spec: ann.IndexSpec) -> Any:
        future = self._pending.pop(spec, None)
        return self._read(spec) if future is None else future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _usable_cpus() -> int:
    return max(1, min(MAX_CHECKSUM_THREADS, len(os.sched_getaffinity(0))))


def _files_to_read(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """The files load_model reads, in the order it reads them (the hashes are then ready in that order), each with the
    checksum it is checked with. A file whose entry names none is left to _check_file, which refuses it."""
    names = [array_file(name) for name in ARRAY_NAMES]
    entry = manifest.get(neighbour_files.MANIFEST_KEY)
    if entry is not None:
        names += [array_file(name) for name in neighbour_files.NAMES]
        if isinstance(entry, dict) and answer_files.COUNT_KEY in entry:
            names += [array_file(answer_files.OFFSETS), array_file(answer_files.TEXT)]
    files = [(name, checksum_files.algorithm_for(manifest["files"].get(name))) for name in names]
    for spec in ann.INDEX_SPECS:
        entry = manifest.get(spec.manifest_key)
        if isinstance(entry, dict) and isinstance(entry.get("file", spec.file), str):
            files.append((entry.get("file", spec.file), checksum_files.algorithm_for(entry)))
    return [(name, algorithm) for name, algorithm in files if algorithm is not None]


def _family(path: Path, manifest: dict[str, Any]) -> str:
    family = manifest.get("family", DEFAULT_FAMILY)
    if family not in FAMILIES:
        raise ModelLoadError(path, f"family {family!r} is not one of {', '.join(FAMILIES)}; retrain")
    return str(family)


def _load_neighbours(
    version_dir: Path, manifest: dict[str, Any], items: int, checksums: _Checksums
) -> neighbour_files.Neighbours | None:
    """The neighbour lists with the same file checks as every array (listed, checksum, dtype, shape), then values."""
    entry = manifest.get(neighbour_files.MANIFEST_KEY)
    if entry is None:
        return None
    where = version_dir / MANIFEST_NAME
    if not isinstance(entry, dict) or not isinstance(entry.get("count"), int) or entry["count"] < 0:
        raise ModelLoadError(where, f"{neighbour_files.MANIFEST_KEY}.count is not a whole number >= 0; retrain")
    dtype = entry.get("weights_dtype")
    if dtype not in neighbour_files.WEIGHT_DTYPES:
        allowed = ", ".join(neighbour_files.WEIGHT_DTYPES)
        raise ModelLoadError(where, f"{neighbour_files.MANIFEST_KEY}.weights_dtype {dtype!r} is not {allowed}; retrain")
    shape = (items, entry["count"])
    loaded = neighbour_files.Neighbours(
        indices=_load_array(version_dir, neighbour_files.INDICES, manifest, ("int32", shape), checksums),
        weights=_load_array(version_dir, neighbour_files.WEIGHTS, manifest, (str(dtype), shape), checksums),
        metric=str(entry.get("metric", "")),
    )
    found = neighbour_files.problem(loaded, items)
    if found is not None:
        name, problem = found
        raise ModelLoadError(version_dir / array_file(name), problem)
    return loaded


def _load_answers(
    version_dir: Path,
    manifest: dict[str, Any],
    item_ids: np.ndarray[Any, Any],
    lists: neighbour_files.Neighbours,
    checksums: _Checksums,
) -> answer_files.Answers | None:
    """The stored answers (absent in versions written before them: those are answered from the lists alone)."""
    entry = manifest[neighbour_files.MANIFEST_KEY]
    if answer_files.COUNT_KEY not in entry:
        return None
    count = entry[answer_files.COUNT_KEY]
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= lists.count:
        key = f"{neighbour_files.MANIFEST_KEY}.{answer_files.COUNT_KEY}"
        raise ModelLoadError(
            version_dir / MANIFEST_NAME, f"{key} {count!r} is not a whole number in 0..{lists.count}; retrain"
        )
    offsets = _load_array(version_dir, answer_files.OFFSETS, manifest, ("int64", (len(item_ids) + 1,)), checksums)
    # The text's length is the last offset: a file cut short or grown fails the shape check.
    text = _load_array(version_dir, answer_files.TEXT, manifest, ("uint8", (int(offsets[-1]),)), checksums)
    loaded = answer_files.Answers(text=text, offsets=offsets, count=count)
    found = answer_files.problem(loaded, item_ids, lists)
    if found is not None:
        name, problem = found
        raise ModelLoadError(version_dir / array_file(name), problem)
    return loaded


def _load_index(
    version_dir: Path,
    manifest: dict[str, Any],
    spec: ann.IndexSpec,
    items: int,
    *,
    in_memory: bool,
    checksums: _Checksums,
) -> Any:
    entry = manifest.get(spec.manifest_key)
    if entry is None:
        return None
    manifest_path = version_dir / MANIFEST_NAME
    if not isinstance(entry, dict):
        raise ModelLoadError(manifest_path, f"{spec.manifest_key} is not an object; retrain")
    filename = entry.get("file", spec.file)
    if not isinstance(filename, str) or not _plain_name(filename):
        raise ModelLoadError(manifest_path, f"{spec.manifest_key}.file {filename!r} is not a file name; retrain")
    path = version_dir / filename
    if entry.get("kind") != spec.kind:
        raise ModelLoadError(path, f"index kind {entry.get('kind')!r} is not {spec.kind!r}; retrain")
    nprobe = entry.get("nprobe")
    if not isinstance(nprobe, int) or not _count(nprobe) or nprobe < 1:
        raise ModelLoadError(manifest_path, f"{spec.manifest_key}.nprobe {nprobe!r} is not a positive integer; retrain")
    _check_file(path, entry, checksums)
    try:
        index = ann.read(str(path), nprobe, in_memory=in_memory)
    except Exception as error:  # faiss raises RuntimeError and more; any of them means an unreadable file
        raise ModelLoadError(path, f"not a readable faiss index ({_one_line(error)}); republish the version") from None
    if index.ntotal != items:
        raise ModelLoadError(path, f"index holds {index.ntotal} items but the model has {items}; retrain")
    return index


def _resolve_current(root: Path) -> Path:
    pointer = root / CURRENT_POINTER
    if not root.is_dir():
        raise ModelLoadError(
            root, "model directory does not exist; set MODEL_DIR or train one with python -m api.training"
        )
    if not pointer.exists():
        raise ModelLoadError(
            pointer, "no current version; train one with python -m api.training or point current at one"
        )
    # Resolved once, so a pointer switched while we load cannot mix two versions.
    try:
        version_dir = pointer.resolve(strict=True)
        real_root = root.resolve(strict=True)
    except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop
        raise ModelLoadError(pointer, f"cannot be resolved ({_one_line(error)}); point it at a version") from None
    # Only a version directory directly inside MODEL_DIR may serve: never a model elsewhere on the file system.
    if version_dir.parent != real_root or not version_dir.is_dir():
        raise ModelLoadError(
            pointer, f"leads to {version_dir}, not a version directory inside {real_root}; point it at one"
        )
    return version_dir


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        _check_inside(path, path.parent)
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ModelLoadError(path, f"larger than {MAX_MANIFEST_BYTES} bytes; republish the version")
        manifest = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except FileNotFoundError:
        raise ModelLoadError(path, "missing; the version directory is incomplete, republish it") from None
    except RecursionError:
        raise ModelLoadError(path, "unreadable JSON (nested too deeply); republish the version") from None
    except (OSError, ValueError) as error:
        raise ModelLoadError(path, f"unreadable JSON ({_one_line(error)}); republish the version") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(path, f"format_version is not {FORMAT_VERSION}; retrain with this release's trainer")
    problems = [key for key in ("version", "counts", "factors", "files") if key not in manifest]
    counts = manifest.get("counts")
    if isinstance(counts, dict):
        problems += [f"counts.{key}" for key in ("users", "items", "seen") if key not in counts]
    if problems:
        raise ModelLoadError(path, f"missing keys {', '.join(problems)}; retrain with this release's trainer")
    _check_manifest_types(path, manifest)
    return manifest


def _check_manifest_types(path: Path, manifest: dict[str, Any]) -> None:
    """The keys the loader and the recommender read, with the JSON types they need."""
    version = manifest["version"]
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise ModelLoadError(
            path,
            f"version {version!r} must be 1-128 ASCII letters, digits, '.', '_' or '-' (it labels every response); "
            "republish under such a name",
        )
    counts = manifest["counts"]
    if not isinstance(counts, dict):
        raise ModelLoadError(path, "counts is not an object; retrain with this release's trainer")
    for key in ("users", "items", "seen"):
        if not _count(counts[key]):
            raise ModelLoadError(path, f"counts.{key} {counts[key]!r} is not a whole number >= 0; retrain")
    factors = manifest["factors"]
    # An item-item version has no factors (zero-column factor arrays); an ALS version needs at least one.
    least = 0 if manifest.get("family") == "item_item" else 1
    if not _count(factors) or factors < least:
        raise ModelLoadError(path, f"factors {factors!r} is not a whole number >= {least}; retrain")
    files = manifest["files"]
    if not isinstance(files, dict) or not all(isinstance(entry, dict) for entry in files.values()):
        raise ModelLoadError(path, "files is not an object of {file name: {xxh3_128: ...}}; retrain")
    algorithm = manifest.get("algorithm", {})
    parameters = algorithm.get("parameters", {}) if isinstance(algorithm, dict) else None
    if not isinstance(parameters, dict):
        raise ModelLoadError(path, "algorithm.parameters is not an object; retrain")
    for key in ("alpha", "regularization"):
        value = parameters.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ModelLoadError(path, f"algorithm.parameters.{key} {value!r} is not a finite number; retrain")


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and os.sep not in name and "\0" not in name


def _check_inside(path: Path, version_dir: Path) -> None:
    """A file of a version must be that version's own: a symlink out of the directory is refused."""
    if _outside(path, version_dir):
        raise ModelLoadError(path, f"is a symlink leading to {path.resolve()}, outside {version_dir}; republish")


def _outside(path: Path, version_dir: Path) -> bool:
    return path.is_symlink() and path.resolve().parent != version_dir


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _load_array(
    version_dir: Path,
    name: str,
    manifest: dict[str, Any],
    expected: tuple[str, tuple[int, ...]],
    checksums: _Checksums,
) -> np.ndarray[Any, Any]:
    filename = array_file(name)
    path = version_dir / filename
    entry = manifest["files"].get(filename)
    if entry is None:
        raise ModelLoadError(path, f"not listed in {MANIFEST_NAME}; retrain with this release's trainer")
    _check_file(path, entry, checksums)
    try:
        array: np.ndarray[Any, Any] = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as error:  # a damaged header or a truncated file: ValueError, OSError, EOFError, SyntaxError...
        raise ModelLoadError(path, f"not a valid .npy array ({_one_line(error)}); republish the version") from None
    dtype_name, shape = expected
    dtype_ok = array.dtype.kind == "S" if dtype_name == "bytes" else array.dtype == np.dtype(dtype_name)
    if not dtype_ok:
        raise ModelLoadError(path, f"dtype {array.dtype} but the format needs {dtype_name}; retrain")
    if array.shape != shape:
        raise ModelLoadError(path, f"shape {array.shape} but the manifest counts imply {shape}; retrain")
    # A plain ndarray view of the same mapped pages: np.memmap's Python-level __getitem__ and __array_finalize__
    # cost about 7 us per request on the hot path (profiled at 1M items).
    return array.view(np.ndarray)


def _check_consistency(version_dir: Path, arrays: ModelArrays) -> None:
    items = len(arrays.item_ids)
    for name in ("user_ids", "item_ids"):
        ids = getattr(arrays, name)
        if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            raise ModelLoadError(version_dir / array_file(name), "ids are not sorted and unique; retrain")
    indptr = arrays.seen_indptr
    if indptr[0] != 0 or indptr[-1] != len(arrays.seen_indices) or bool(np.any(np.diff(indptr) < 0)):
        raise ModelLoadError(version_dir / array_file("seen_indptr"), "not a valid CSR row pointer; retrain")
    for name in ("seen_indices", "popular_items"):
        values = getattr(arrays, name)
        if len(values) and (int(values.min()) < 0 or int(values.max()) >= items):
            raise ModelLoadError(version_dir / array_file(name), f"item index outside 0..{items - 1}; retrain")


def _check_finite(version_dir: Path, arrays: ModelArrays) -> None:
    """NaN would be written as `NaN` (not JSON) in scores; an infinite factor breaks every ranking it touches."""
    for name in FLOAT_ARRAYS:
        flat = getattr(arrays, name).reshape(-1)
        for start in range(0, len(flat), FINITE_CHECK_CHUNK):
            if not bool(np.isfinite(flat[start : start + FINITE_CHECK_CHUNK]).all()):
                raise ModelLoadError(version_dir / array_file(name), "contains NaN or infinity; retrain")


def _check_file(path: Path, entry: dict[str, Any], checksums: _Checksums) -> None:
    if not path.is_file():
        raise ModelLoadError(path, "missing; the version directory is incomplete, republish it")
    _check_inside(path, path.parent)
    algorithm = checksum_files.algorithm_for(entry)
    if algorithm is None:
        named = " or ".join(checksum_files.WRITTEN)
        raise ModelLoadError(path, f"the manifest gives it no checksum ({named}); retrain")
    expected = entry[algorithm]
    if not checksum_files.well_formed(algorithm, expected):
        digits = checksum_files.HEX_DIGITS[algorithm]
        raise ModelLoadError(path, f"manifest {algorithm} {expected!r} is not {digits} hex digits; retrain")
    try:
        actual = checksums.digest(path, algorithm)
    except OSError as error:
        raise ModelLoadError(path, f"unreadable ({_one_line(error)}); republish the version") from None
    if actual != expected:
        raise ModelLoadError(
            path, f"checksum mismatch (manifest {algorithm} {expected}, file {actual}); the file is corrupt, republish"
        )
