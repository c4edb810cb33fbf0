"""Interactions from a directory or an S3 prefix (moto on loopback), as the AWS training task reads them."""

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from api.model.loader import load_model
from api.training import cli as train_cli
from api.training.interactions import InteractionsError, read_interactions
from api.training.synthetic import SyntheticSpec, generate
from tools.testkit.processes import free_port

BUCKET = "shop-exports"
PARTS = 3


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return generate(SyntheticSpec(users=200, items=80, segments=4, seed=8))


def parts(table: pa.Table) -> list[pa.Table]:
    size = -(-table.num_rows // PARTS)
    return [table.slice(start, size) for start in range(0, table.num_rows, size)]


@pytest.fixture(scope="module")
def s3(table: pa.Table) -> Iterator[str]:
    """A moto S3 endpoint holding s3://BUCKET/daily/ with three Parquet parts and an exporter's _SUCCESS marker."""
    boto3 = pytest.importorskip("boto3", reason="boto3 (dev packages) uploads the test objects")
    server_module = pytest.importorskip("moto.server", reason="moto[server] (dev packages) emulates S3")
    port = free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=BUCKET)
        for index, part in enumerate(parts(table)):
            sink = pa.BufferOutputStream()
            pq.write_table(part, sink)
            client.put_object(Bucket=BUCKET, Key=f"daily/part-{index}.parquet", Body=sink.getvalue().to_pybytes())
        client.put_object(Bucket=BUCKET, Key="daily/_SUCCESS", Body=b"")
        client.put_object(Bucket=BUCKET, Key="mixed/a.parquet", Body=b"PAR1")
        client.put_object(Bucket=BUCKET, Key="mixed/b.csv", Body=b"user_id,item_id,timestamp\n")
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_environment(s3: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return s3


def test_every_part_under_an_s3_prefix_is_read(s3_environment: str, table: pa.Table) -> None:
    data = read_interactions(f"s3://{BUCKET}/daily/")
    assert len(data) == table.num_rows
    assert len(data.user_ids) == len(set(table.column("user_id").to_pylist()))


def test_cli_trains_from_s3_and_publishes(
    s3_environment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    train_cli.main(
        [
            *("--interactions", f"s3://{BUCKET}/daily", "--model-dir", str(models)),
            *("--factors", "8", "--version", "s1", "--tune-seconds", "0", "--no-ease"),
        ]
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["phase"] == "read"
    assert lines[0]["source"] == f"s3://{BUCKET}/daily"
    assert load_model(models).manifest["training_data"]["source"] == f"s3://{BUCKET}/daily"


@pytest.mark.parametrize(
    ("prefix", "problem"),
    [("empty/", "no .csv or .parquet files found"), ("mixed/", "mixes .csv and .parquet files")],
)
def test_unusable_s3_prefixes_are_refused_with_the_problem(s3_environment: str, prefix: str, problem: str) -> None:
    with pytest.raises(InteractionsError, match=problem):
        read_interactions(f"s3://{BUCKET}/{prefix}")


def test_a_local_directory_of_csv_parts_is_read_like_a_prefix(tmp_path: Path, table: pa.Table) -> None:
    for index, part in enumerate(parts(table)):
        pa_csv.write_csv(part, tmp_path / f"part-{index}.csv")
    (tmp_path / "_SUCCESS").write_text("")
    data = read_interactions(tmp_path)
    assert len(data) == table.num_rows
    # CSV ids stay text across parts as in a single file.
    assert data.user_ids.dtype.kind == "S"
