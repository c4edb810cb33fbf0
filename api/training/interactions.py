"""Reading interaction logs (CSV or Parquet; a file, a local directory or an S3 prefix) into integer codes over
sorted id arrays."""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.dataset as pa_ds
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq
from numpy.typing import NDArray

DEFAULT_EVENT_WEIGHTS = {"view": 1.0, "click": 1.0, "add_to_cart": 3.0, "purchase": 5.0}
MAX_ID_BYTES = 256
FORMATS = (".csv", ".parquet")


class InteractionsError(Exception):
    pass


@dataclass(frozen=True)
class Interactions:
    users: NDArray[np.int32]
    items: NDArray[np.int32]
    weights: NDArray[np.float32]
    timestamps: NDArray[np.int64]
    user_ids: NDArray[np.bytes_]
    item_ids: NDArray[np.bytes_]

    def __len__(self) -> int:
        return len(self.users)


def read_interactions(source: "Path | str", event_weights: dict[str, float] | None = None) -> Interactions:
    """`source`: a .csv or .parquet file, a directory of them, or s3://bucket/prefix/ (every .csv or .parquet below)."""
    path = str(source)
    table = _read_table(source)
    missing = [name for name in ("user_id", "item_id", "timestamp") if name not in table.column_names]
    if missing:
        raise InteractionsError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(table.column_names)}"
        )
    if table.num_rows == 0:
        raise InteractionsError(f"{path}: no rows")
    users, user_ids = _encode_ids(table.column("user_id"), path, "user_id")
    items, item_ids = _encode_ids(table.column("item_id"), path, "item_id")
    return Interactions(
        users=users,
        items=items,
        weights=_weights(table, path, event_weights or DEFAULT_EVENT_WEIGHTS),
        timestamps=_timestamps(table.column("timestamp"), path),
        user_ids=user_ids,
        item_ids=item_ids,
    )


# Ids are text even when they look numeric: "007" and "7" are different products.
CSV_TYPES = pa_csv.ConvertOptions(column_types={"user_id": pa.string(), "item_id": pa.string()})


def _read_table(source: "Path | str") -> pa.Table:
    text = str(source)
    if text.startswith("s3://"):
        filesystem, root = s3_filesystem(text)
        return _read_files(text, filesystem, root)
    path = Path(source)
    if path.is_dir():
        return _read_files(text, pa_fs.LocalFileSystem(), str(path.resolve()))
    if not path.is_file():
        raise InteractionsError(f"{path}: no such file")
    if path.suffix == ".parquet":
        return pq.read_table(path)
    if path.suffix == ".csv":
        return pa_csv.read_csv(path, convert_options=CSV_TYPES)
    raise InteractionsError(f"{path}: unsupported format; use .csv or .parquet")


def s3_filesystem(uri: str) -> tuple[pa_fs.S3FileSystem, str]:
    """An S3 file system with the default AWS credential chain, and the bucket/prefix path in it.

    In an ECS task the chain picks up the task role's credentials through AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
    (AWS SDK for C++, which pyarrow uses: https://docs.aws.amazon.com/sdk-for-cpp/latest/api/aws-cpp-sdk-core/html/
    md_docs_2_credentials___providers.html; ECS: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/
    task-iam-roles.html). pyarrow ignores the SDKs' AWS_ENDPOINT_URL(_S3) variables (apache/arrow#49643), so they are
    honoured here (https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html): an S3-compatible
    endpoint or an emulator works the same way as with the AWS CLI.
    """
    path = uri.removeprefix("s3://").rstrip("/")
    bucket = path.split("/", 1)[0]
    if not bucket:
        raise InteractionsError(f"{uri}: no bucket; use s3://bucket/prefix/")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    try:
        if region is None and endpoint is None:
            region = pa_fs.resolve_s3_region(bucket)
        if endpoint is None:
            return pa_fs.S3FileSystem(region=region), path
        scheme, _, address = endpoint.partition("://")
        return pa_fs.S3FileSystem(region=region, endpoint_override=address, scheme=scheme), path
    except OSError as error:
        raise InteractionsError(f"{uri}: cannot reach the bucket ({error})") from None


def _read_files(source: str, filesystem: pa_fs.FileSystem, root: str) -> pa.Table:
    """Every .csv or .parquet file under `root` (one format only), read as one table."""
    try:
        infos = filesystem.get_file_info(pa_fs.FileSelector(root, recursive=True, allow_not_found=True))
    except OSError as error:
        raise InteractionsError(f"{source}: cannot list ({error})") from None
    # Exporters leave markers such as _SUCCESS or .crc files next to the data; only data files count.
    files = sorted(
        info.path
        for info in infos
        if info.type == pa_fs.FileType.File
        and not Path(info.path).name.startswith(("_", "."))
        and Path(info.path).suffix in FORMATS
    )
    if not files:
        raise InteractionsError(f"{source}: no .csv or .parquet files found")
    suffixes = {Path(name).suffix for name in files}
    if len(suffixes) > 1:
        raise InteractionsError(f"{source}: mixes .csv and .parquet files; keep one format per prefix")
    file_format: pa_ds.FileFormat = (
        pa_ds.ParquetFileFormat() if suffixes == {".parquet"} else pa_ds.CsvFileFormat(convert_options=CSV_TYPES)
    )
    try:
        return pa_ds.dataset(files, filesystem=filesystem, format=file_format).to_table()
    except (OSError, pa.ArrowInvalid) as error:
        raise InteractionsError(f"{source}: unreadable ({error})") from None


def _encode_ids(column: pa.ChunkedArray, path: str, name: str) -> tuple[NDArray[np.int32], NDArray[np.bytes_]]:
    if column.null_count:
        raise InteractionsError(f"{path}: column {name} has {column.null_count} empty values")
    encoded = pc.cast(column, pa.string()).combine_chunks().dictionary_encode()
    raw = [value.encode("utf-8") for value in encoded.dictionary.to_pylist()]
    bad = [value for value in raw if not value or b"\0" in value or len(value) > MAX_ID_BYTES]
    if bad:
        raise InteractionsError(
            f"{path}: column {name} has ids that are empty, contain NUL or exceed {MAX_ID_BYTES} bytes"
        )
    dictionary = np.array(raw, dtype=np.bytes_)
    order = np.argsort(dictionary, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    codes = rank[encoded.indices.to_numpy(zero_copy_only=False)].astype(np.int32)
    return codes, dictionary[order]


def _weights(table: pa.Table, path: str, event_weights: dict[str, float]) -> NDArray[np.float32]:
    if "weight" in table.column_names:
        weights: NDArray[np.float32] = pc.cast(table.column("weight"), pa.float32()).to_numpy().astype(np.float32)
        if bool(np.any(~np.isfinite(weights))) or bool(np.any(weights <= 0)):
            raise InteractionsError(f"{path}: column weight must be positive and finite")
        return weights
    if "event_type" in table.column_names:
        events = pc.cast(table.column("event_type"), pa.string()).combine_chunks().dictionary_encode()
        names = events.dictionary.to_pylist()
        unknown = sorted(set(names) - set(event_weights))
        if unknown:
            raise InteractionsError(
                f"{path}: event types {', '.join(map(str, unknown))} have no weight; pass --event-weights"
            )
        lookup = np.array([event_weights[name] for name in names], dtype=np.float32)
        result: NDArray[np.float32] = lookup[events.indices.to_numpy(zero_copy_only=False)]
        return result
    return np.ones(table.num_rows, dtype=np.float32)


def _timestamps(column: pa.ChunkedArray, path: str) -> NDArray[np.int64]:
    if column.null_count:
        raise InteractionsError(f"{path}: column timestamp has {column.null_count} empty values")
    if pa.types.is_timestamp(column.type):
        column = pc.cast(pc.cast(column, pa.timestamp("s"), safe=False), pa.int64())
    elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        try:
            column = pc.cast(pc.cast(column, pa.timestamp("s"), safe=False), pa.int64())
        except pa.ArrowInvalid:
            raise InteractionsError(f"{path}: column timestamp is neither epoch seconds nor ISO 8601") from None
    elif not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise InteractionsError(f"{path}: column timestamp has type {column.type}; use epoch seconds or ISO 8601")
    seconds: NDArray[np.int64] = pc.cast(column, pa.int64(), safe=False).to_numpy().astype(np.int64)
    return seconds
