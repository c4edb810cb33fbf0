"""The model families: EASE's closed form and memory, interaction weighting, ALS settings that cannot train."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from api.training import assessment
from api.training.assessment import Budget, assess
from api.training.evaluation import Protocol
from api.training.interactions import Interactions
from api.training.models import AlsParameters, ParameterError, fit_ease, weigh
from api.training.synthetic import SyntheticSpec, generate


def random_interactions(users: int, items: int, density: float) -> sp.csr_matrix:
    matrix = sp.random(users, items, density=density, random_state=1, format="csr", dtype=np.float32)
    matrix.data = np.ceil(matrix.data * 5).astype(np.float32)
    return matrix


def test_ease_matches_its_closed_form() -> None:
    matrix = random_interactions(300, 120, 0.05)
    binary = (matrix > 0).toarray().astype(np.float64)
    inverse = np.linalg.inv(binary.T @ binary + 30.0 * np.eye(120))
    expected = -inverse / np.diag(inverse)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(fit_ease(matrix, 30.0), expected, atol=1e-12)


def test_ease_peak_memory_is_one_dense_float64_matrix() -> None:
    """The documented limit's arithmetic: about 8 n^2 bytes, no second n x n copy (LAPACK in place)."""
    items = 1_500
    matrix = random_interactions(2_000, items, 0.02)
    tracemalloc.start()
    try:
        fit_ease(matrix, 50.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.25 * 8 * items * items


def test_ease_refuses_catalogues_above_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("api.training.models.EASE_MAX_ITEMS", 100)
    with pytest.raises(ParameterError, match="exceed EASE's limit of 100"):
        fit_ease(random_interactions(50, 120, 0.1), 10.0)


def test_the_assessment_skips_ease_above_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    table = generate(SyntheticSpec(users=300, items=150, segments=4, seed=12))
    users = np.array([int(value[1:]) for value in table.column("user_id").to_pylist()], dtype=np.int32)
    items = np.array([int(value[1:]) for value in table.column("item_id").to_pylist()], dtype=np.int32)
    data = Interactions(
        users=users,
        items=items,
        weights=np.ones(len(users), dtype=np.float32),
        timestamps=np.asarray(table.column("timestamp").to_numpy(), dtype=np.int64),
        user_ids=np.array([f"u{index:07d}".encode() for index in range(300)]),
        item_ids=np.array([f"i{index:07d}".encode() for index in range(150)]),
    )
    monkeypatch.setattr(assessment, "EASE_MAX_ITEMS", 100)
    messages: list[str] = []
    result = assess(data, AlsParameters(factors=4, iterations=2), Protocol(), Budget(), messages.append)
    assert result is not None
    assert "EASE" not in [row.model for row in result.rows]
    assert any("EASE skipped: 150 items > 100" in message for message in messages)


def test_weightings_rescale_the_summed_weights() -> None:
    matrix = sp.csr_matrix(np.array([[1.0, 0.0, 4.0], [2.0, 8.0, 0.0]], dtype=np.float32))
    assert weigh(matrix, "raw").toarray().tolist() == matrix.toarray().tolist()
    assert weigh(matrix, "binary").toarray().tolist() == [[1, 0, 1], [1, 1, 0]]
    np.testing.assert_allclose(weigh(matrix, "log").toarray(), np.log1p(matrix.toarray()), rtol=1e-6)
    # BM25 over four users where no item is held by most of them (idf > 0): same pattern, rescaled by item rarity.
    wider = sp.csr_matrix(np.array([[1, 0, 4], [2, 8, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32))
    bm25 = weigh(wider, "bm25")
    assert (bm25 != 0).toarray().tolist() == (wider != 0).toarray().tolist()
    assert bm25.dtype == np.float32
    assert not np.allclose(bm25.toarray(), wider.toarray())
    # An item every user has would get a negative idf: it drops out instead of becoming negative feedback.
    everyone = weigh(sp.csr_matrix(np.array([[1, 1], [1, 0], [1, 0]], dtype=np.float32)), "bm25")
    assert everyone.data.min() > 0
    assert everyone.toarray()[:, 0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="must be one of raw, binary, log, bm25"):
        weigh(matrix, "sqrt")


def test_als_settings_that_cannot_train_are_refused_with_each_problem() -> None:
    with pytest.raises(ParameterError) as raised:
        AlsParameters(factors=0, iterations=0, alpha=0.0, weighting="sqrt")  # type: ignore[arg-type]
    message = str(raised.value)
    for problem in ("factors 0 must be at least 1", "iterations 0", "alpha 0.0 must be positive", "weighting 'sqrt'"):
        assert problem in message
