"""Similar-items text read off float16 neighbour lists is byte for byte the general path's, and only used where it can
be; the query shortcut reads k exactly as the general parser does and leaves everything else to it."""

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from numpy.typing import NDArray
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from api.model import neighbours as neighbour_files
from api.model.neighbours import Neighbours
from api.serving.app import create_app
from api.serving.config import ApiConfig
from api.serving.neighbour_text import NeighbourText, ids_are_plain
from api.serving.recommender import Recommender
from api.serving.responses import scored_items
from api.serving.state import STATE_KEY
from api.serving.validation import FieldProblems, parse_query_k, plain_query_k, reject_unknown
from api.training.cli import TrainResult, train
from tests.api.conftest import TINY_ALS


def general_text(ids: NDArray[np.bytes_], lists: Neighbours, item: int, k: int) -> str:
    """What the route writes without the text tables (api.serving.routes._items over neighbours.lookup)."""
    indices, scores = neighbour_files.lookup(lists, item, k, set())
    names = [raw.decode("utf-8") for raw in ids[indices].tolist()]
    return scored_items(names, scores.astype(np.float64).round(6).tolist())


def _every_finite_float16_in_rows(columns: int) -> tuple[NDArray[np.bytes_], Neighbours]:
    values = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    finite = values[np.isfinite(values)]
    rows = -(-len(finite) // columns)
    weights = np.resize(finite, rows * columns).reshape(rows, columns)
    ids = np.asarray([f"item-{index:05d}".encode() for index in range(rows)], dtype=np.bytes_)
    indices = (np.arange(rows * columns) % rows).reshape(rows, columns).astype(np.int32)
    return ids, Neighbours(indices=indices, weights=weights, metric="cosine")


def test_every_finite_float16_weight_is_written_as_the_general_path_writes_it() -> None:
    ids, lists = _every_finite_float16_in_rows(columns=64)
    text = NeighbourText.for_lists(ids, lists)
    assert text is not None
    for item in range(len(ids)):
        assert text.items(item, 64) == general_text(ids, lists, item, 64)


@pytest.mark.parametrize("k", [1, 2, 7, 8, 9])
def test_k_up_to_and_beyond_the_row_takes_the_rows_first_k_items(k: int) -> None:
    ids = np.asarray([b"a", b"bb", b"c-9_Z.~", b"d d", b"e"], dtype=np.bytes_)
    weights = np.asarray([[0.5, 0.25, -0.0, -1e-7, -65504.0, 0.0, 1e-3, 3.0]] * 5, dtype=np.float16)
    indices = np.asarray([[1, 2, 3, 4, 1, 2, 3, 4]] * 5, dtype=np.int32)
    lists = Neighbours(indices=indices, weights=weights, metric="ease")
    text = NeighbourText.for_lists(ids, lists)
    assert text is not None
    assert text.items(0, k) == general_text(ids, lists, 0, k)
    assert json.loads(text.items(0, k) or "null")[0] == {"item_id": "bb", "score": 0.5}


def test_past_a_row_that_does_not_hold_the_whole_catalogue_the_text_leaves_the_answer_to_the_general_path() -> None:
    ids = np.asarray([b"a", b"b", b"c", b"d"])
    lists = Neighbours(
        indices=np.asarray([[1, 2], [0, 2], [0, 1], [0, 1]], np.int32),
        weights=np.full((4, 2), 0.5, np.float16),
        metric="cosine",
    )
    text = NeighbourText.for_lists(ids, lists)
    assert text is not None
    assert text.items(0, 2) is not None
    assert text.items(0, 3) is None


def test_an_empty_row_is_an_empty_list() -> None:
    lists = Neighbours(indices=np.empty((1, 0), np.int32), weights=np.empty((1, 0), np.float16), metric="cosine")
    text = NeighbourText.for_lists(np.asarray([b"only"]), lists)
    assert text is not None
    assert text.items(0, 10) == "[]"


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_a_non_finite_weight_raises_a_value_error_as_the_general_path_does(bad: float) -> None:
    lists = Neighbours(
        indices=np.asarray([[1, 0], [0, 1]], np.int32), weights=np.asarray([[1.0, bad]] * 2, np.float16), metric="ease"
    )
    text = NeighbourText.for_lists(np.asarray([b"a", b"b"]), lists)
    assert text is not None
    with pytest.raises(ValueError):
        text.items(0, 2)
    with pytest.raises(ValueError):
        general_text(np.asarray([b"a", b"b"]), lists, 0, 2)
    assert json.loads(text.items(0, 1) or "null") == [{"item_id": "b", "score": 1.0}]


@pytest.mark.parametrize(
    "escaped",
    ['quote"inside', "back\\slash", "tab\there", "bell\x07", "del\x7f", "caf\u00e9", "nul\x00inside", " ", "~"],
)
def test_ids_that_json_escapes_keep_the_general_path(escaped: str) -> None:
    ids = np.asarray([b"plain", escaped.encode("utf-8")], dtype=np.bytes_)
    lists = Neighbours(
        indices=np.asarray([[1], [0]], np.int32), weights=np.asarray([[0.5], [0.5]], np.float16), metric="cosine"
    )
    plain = escaped in (" ", "~")
    assert ids_are_plain(ids) is plain
    assert (NeighbourText.for_lists(ids, lists) is not None) is plain


def test_float32_lists_keep_the_general_path() -> None:
    lists = Neighbours(
        indices=np.asarray([[1], [0]], np.int32), weights=np.asarray([[0.5], [0.5]], np.float32), metric="cosine"
    )
    assert NeighbourText.for_lists(np.asarray([b"a", b"b"]), lists) is None
    assert NeighbourText.for_lists(np.asarray([b"a", b"b"]), None) is None


@pytest.fixture(scope="module")
def float16_version(interactions_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainResult]:
    """The tiny ALS model trained with float16 lists, as the trainer writes them for 50,000 items and more; 20
    neighbours an item, so that k can reach past the lists."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(neighbour_files, "FLOAT16_MIN_ITEMS", 0)
        models = tmp_path_factory.mktemp("models")
        yield train(interactions_file, models, TINY_ALS, version="f16", family="als", neighbour_count=20)


@pytest.fixture(scope="module")
def float16_client(float16_version: TrainResult) -> Iterator[FlaskClient]:
    app = create_app(ApiConfig(model_dir=float16_version.version_dir.parent))
    with app.test_client() as test_client:
        yield test_client


def test_similar_items_over_http_are_the_lists_rows_written_as_json_dumps_would(
    float16_client: FlaskClient,
) -> None:
    recommender: Recommender = float16_client.application.extensions[STATE_KEY].recommender
    lists = recommender.model.neighbours
    assert lists is not None and lists.weights.dtype == np.float16
    ids = recommender.model.arrays.item_ids
    for item in range(0, len(ids), 7):
        for k in (1, 10, lists.count):
            assert recommender.similar_text(item, k) is not None
            name = ids[item].decode()
            response = float16_client.get(f"/v1/items/{name}/similar?k={k}")
            assert response.status_code == 200
            row = lists.indices[item, :k]
            expected = [
                {"item_id": ids[other].decode(), "score": round(float(np.float32(weight)), 6)}
                for other, weight in zip(row.tolist(), lists.weights[item, :k].tolist(), strict=True)
            ]
            text = response.get_data(as_text=True)
            assert text.endswith('"items":' + json.dumps(expected, separators=(",", ":")) + "}")


def test_past_the_lists_an_als_version_answers_from_the_index_not_the_text(float16_client: FlaskClient) -> None:
    recommender: Recommender = float16_client.application.extensions[STATE_KEY].recommender
    assert recommender.model.neighbours is not None
    beyond = recommender.model.neighbours.count + 5
    assert recommender.similar_text(0, beyond) is None
    name = recommender.model.arrays.item_ids[0].decode()
    items = float16_client.get(f"/v1/items/{name}/similar?k={beyond}").get_json()["items"]
    assert len(items) == beyond


QUERIES = [
    "",
    "k=1",
    "k=10",
    "k=010",
    "k=100",
    "k=101",
    "k=999999999",
    "k=1000000000",
    "k=0",
    "k=-1",
    "k=",
    "k",
    "k=%31",
    "k=1+",
    "k=+1",
    "k=1&k=2",
    "k=1&",
    "&k=1",
    "K=1",
    "k=1&exclude=a",
    "exclude=a",
    "k=\u0661",
    "k=1\x00",
    "k= 1",
    "kk=1",
]


@pytest.mark.parametrize("query", QUERIES)
def test_the_query_shortcut_reads_k_as_the_general_parser_or_leaves_the_query_to_it(query: str) -> None:
    config = ApiConfig(model_dir=Path("unused"))
    shortcut = plain_query_k(query, config)
    args = Request(EnvironBuilder(query_string=query).get_environ()).args
    problems = FieldProblems()
    reject_unknown(args.keys(), frozenset({"k"}), "query parameter", problems)
    general = parse_query_k(args.get("k"), config, "k", problems)
    if shortcut is not None:
        assert not problems.details and shortcut == general
    assert (shortcut is not None) is (query in ("", "k=1", "k=10", "k=010", "k=100", "k=101", "k=999999999"))


def test_an_id_that_needs_escaping_is_found_past_the_first_block_of_the_check() -> None:
    ids = np.asarray([f"{index:06d}".encode() for index in range(70_000)], dtype=np.bytes_)
    assert ids_are_plain(ids)
    ids[69_999] = b'99"999'
    assert not ids_are_plain(ids)
