"""The evaluation protocol: split, relevance, seen items, metric values, and no leakage into training."""

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.typing import NDArray

from api.training import assessment, models, tuning
from api.training.assessment import Budget, assess
from api.training.evaluation import (
    Protocol,
    ProtocolError,
    Split,
    evaluate,
    interaction_matrix,
    paired_difference,
    per_user_ndcg,
    temporal_split,
)
from api.training.interactions import Interactions, read_interactions
from api.training.models import AlsParameters
from api.training.synthetic import SyntheticSpec, generate, write


def interactions(rows: list[tuple[int, int, float, int]], users: int, items: int) -> Interactions:
    """(user, item, weight, timestamp) rows over `users` x `items` codes."""
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return Interactions(
        users=table[:, 0].astype(np.int32),
        items=table[:, 1].astype(np.int32),
        weights=table[:, 2].astype(np.float32),
        timestamps=table[:, 3].astype(np.int64),
        user_ids=np.array([f"u{index}".encode() for index in range(users)]),
        item_ids=np.array([f"i{index}".encode() for index in range(items)]),
    )


def fixed_scores(table: list[list[float]]) -> Any:
    scores = np.array(table, dtype=np.float32)

    def score(users: NDArray[np.int64]) -> NDArray[np.float32]:
        result: NDArray[np.float32] = scores[users]
        return result

    return score


def split_of(train: list[list[int]], relevant: list[list[int]], items: int) -> Split:
    def matrix(rows: list[list[int]]) -> sp.csr_matrix:
        dense = np.zeros((len(rows), items), dtype=np.float32)
        for user, columns in enumerate(rows):
            dense[user, columns] = 1.0
        return sp.csr_matrix(dense)

    no_rows = np.zeros(0, dtype=bool)
    users = np.arange(len(train), dtype=np.int64)
    return Split(train_rows=no_rows, test_rows=no_rows, train=matrix(train), relevant=matrix(relevant), users=users)


def test_metrics_equal_hand_computed_values_on_a_fixed_example() -> None:
    # User 0 saw item 0; relevant 1, 3, 5; ranking after removing 0: 1, 2, 3 -> hits at ranks 1 and 3.
    # User 1 saw items 2 and 4; relevant 0; ranking after removing 4, 2: 5, 0, 1 -> a hit at rank 2.
    split = split_of(train=[[0], [2, 4]], relevant=[[1, 3, 5], [0]], items=6)
    scorer = fixed_scores([[9, 8, 7, 6, 5, 4], [3, 1, 5, 0, 6, 4]])
    metrics = evaluate(scorer, split, k=3)
    log2 = np.log2
    ndcg_0 = (1 + 1 / log2(4)) / (1 + 1 / log2(3) + 1 / log2(4))
    ndcg_1 = (1 / log2(3)) / 1
    assert metrics.users == 2
    assert metrics.precision == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert metrics.recall == pytest.approx((2 / 3 + 1 / 1) / 2)
    assert metrics.ndcg == pytest.approx((ndcg_0 + ndcg_1) / 2)
    assert metrics.map == pytest.approx(((1 / 1 + 2 / 3) / 3 + (1 / 2) / 1) / 2)
    # Recommended: 1, 2, 3 and 5, 0, 1 -> items 0, 1, 2, 3, 5 of 6.
    assert metrics.coverage == pytest.approx(5 / 6)
    assert metrics.as_dict()["precision_at_3"] == pytest.approx(0.5)

    # At K=2 user 0 has more relevant items than K: MAP and NDCG normalise by min(relevant, K), recall by relevant.
    at_2 = evaluate(scorer, split, k=2)
    assert at_2.precision == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert at_2.recall == pytest.approx((1 / 3 + 1 / 1) / 2)
    assert at_2.ndcg == pytest.approx((1 / (1 + 1 / log2(3)) + 1 / log2(3)) / 2)
    assert at_2.map == pytest.approx((1 / 2 + (1 / 2) / 1) / 2)
    assert at_2.coverage == pytest.approx(4 / 6)


def test_seen_items_are_never_recommended_even_when_they_score_highest() -> None:
    # Every user has seen item 0, which the scorer loves; the next best item is the relevant one.
    split = split_of(train=[[0], [0], [0]], relevant=[[1], [2], [3]], items=5)
    scorer = fixed_scores([[100, 5, 1, 1, 0], [100, 1, 5, 1, 0], [100, 1, 1, 5, 0]])
    metrics = evaluate(scorer, split, k=1)
    assert metrics.precision == 1.0
    assert metrics.coverage == pytest.approx(3 / 5)  # items 1, 2, 3; never item 0


def test_a_user_who_has_seen_almost_everything_gets_fewer_recommendations_not_seen_ones() -> None:
    split = split_of(train=[[0, 1, 2]], relevant=[[3]], items=4)
    metrics = evaluate(fixed_scores([[9, 8, 7, 1]]), split, k=3)
    assert metrics.precision == pytest.approx(1 / 3)
    assert metrics.coverage == pytest.approx(1 / 4)


def test_split_holds_out_each_users_latest_share_and_keeps_small_users_in_training() -> None:
    # User 0: ten rows given out of time order; user 1: three rows, below the minimum of five.
    times = [5, 1, 9, 3, 7, 2, 8, 4, 10, 6]
    rows = [(0, item, 1.0, when) for item, when in enumerate(times)] + [(1, item, 1.0, 100 + item) for item in range(3)]
    data = interactions(rows, users=2, items=10)
    split = temporal_split(data, Protocol(holdout_fraction=0.2, min_user_interactions=5))
    held = sorted(int(data.timestamps[row]) for row in np.flatnonzero(split.test_rows))
    assert held == [9, 10]
    assert not split.test_rows[data.users == 1].any()
    assert split.train_rows.sum() == len(data) - 2
    assert split.users.tolist() == [0]
    assert sorted(split.relevant[0].indices.tolist()) == [2, 8]


def test_a_held_out_item_the_user_already_had_in_training_is_not_relevant() -> None:
    rows = [(0, 0, 1.0, 1), (0, 1, 1.0, 2), (0, 2, 1.0, 3), (0, 3, 1.0, 4), (0, 0, 1.0, 5)]
    data = interactions(rows, users=1, items=4)
    split = temporal_split(data, Protocol(holdout_fraction=0.2, min_user_interactions=5))
    assert split.test_rows.sum() == 1
    assert split.relevant.nnz == 0
    assert len(split.users) == 0


def test_relevance_threshold_keeps_only_heavy_held_out_interactions() -> None:
    # Ratings 1-5: the latest two of ten are rated 2 (item 8) and 5 (item 9); relevant means 4 or more.
    rows = [(0, item, 3.0, item) for item in range(8)] + [(0, 8, 2.0, 8), (0, 9, 5.0, 9)]
    data = interactions(rows, users=1, items=10)
    split = temporal_split(data, Protocol(relevance_threshold=4.0))
    assert split.relevant[0].indices.tolist() == [9]
    unweighted = temporal_split(data, Protocol())
    assert unweighted.relevant[0].indices.tolist() == [8, 9]


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"holdout_fraction": 0.0}, "between 0 and 1"),
        ({"holdout_fraction": 1.0}, "between 0 and 1"),
        ({"min_user_interactions": 1}, "at least 2"),
        ({"k": 0}, "K 0 must be at least 1"),
    ],
)
def test_unusable_protocols_are_refused_with_the_problem(arguments: dict[str, Any], problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        Protocol(**arguments)


def test_a_time_budget_cuts_the_user_sample_and_reports_its_size() -> None:
    users = 3_000
    split = split_of(train=[[0]] * users, relevant=[[1]] * users, items=3)

    def slow(chunk: NDArray[np.int64]) -> NDArray[np.float32]:
        import time

        time.sleep(0.05)
        return np.tile(np.array([3, 2, 1], dtype=np.float32), (len(chunk), 1))

    metrics = evaluate(slow, split, k=1, seconds=0.01)
    assert 0 < metrics.users < users
    assert metrics.precision == 1.0


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Interactions:
    path = tmp_path_factory.mktemp("data") / "interactions.parquet"
    write(generate(SyntheticSpec(users=600, items=300, segments=6, seed=4)), path)
    return read_interactions(path)


def test_held_out_rows_never_reach_training_or_validation(synthetic: Interactions) -> None:
    protocol = Protocol()
    test = temporal_split(synthetic, protocol)
    validation = temporal_split(synthetic, protocol, within=test.train_rows)
    assert not (test.test_rows & (validation.train_rows | validation.test_rows)).any()
    assert (validation.train_rows | validation.test_rows).sum() == test.train_rows.sum()
    # Temporal: for every evaluated user, nothing trained on is later than what is held out.
    for user in test.users:
        mine = synthetic.users == user
        assert synthetic.timestamps[mine & test.train_rows].max() <= synthetic.timestamps[mine & test.test_rows].min()
    assert (test.train != interaction_matrix(synthetic, test.train_rows)).nnz == 0


def test_the_assessment_fits_nothing_on_held_out_interactions(
    synthetic: Interactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every model the assessment fits (search trials, baselines, EASE) sees no held-out test pair."""
    protocol = Protocol()
    test = temporal_split(synthetic, protocol)
    only_in_test = interaction_matrix(synthetic, test.test_rows).astype(bool).astype(np.int8)
    only_in_test = only_in_test - only_in_test.multiply(test.train.astype(bool))
    only_in_test.eliminate_zeros()
    assert only_in_test.nnz > 0
    fitted: list[sp.csr_matrix] = []

    def spy(original: Any) -> Any:
        def record(matrix: sp.csr_matrix, *args: Any, **kwargs: Any) -> Any:
            fitted.append(matrix)
            return original(matrix, *args, **kwargs)

        return record

    monkeypatch.setattr(assessment, "fit_als", spy(models.fit_als))
    monkeypatch.setattr(tuning, "fit_als", spy(models.fit_als))
    monkeypatch.setattr(assessment, "fit_ease", spy(models.fit_ease))
    budget = Budget(tune_seconds=60.0, tune_trials=3)
    result = assess(synthetic, AlsParameters(factors=8, iterations=3), protocol, budget, lambda _message: None)
    assert result is not None
    assert len(fitted) >= 3 + 1 + 1
    for matrix in fitted:
        assert matrix.multiply(only_in_test).nnz == 0


def test_the_trainer_reports_every_baseline_on_the_same_users(synthetic: Interactions) -> None:
    result = assess(
        synthetic,
        AlsParameters(factors=8, iterations=5),
        Protocol(),
        Budget(tune_seconds=60.0, tune_trials=2),
        lambda _message: None,
    )
    assert result is not None
    models = [row.model for row in result.rows]
    assert models[0] == "popularity"
    assert {"ALS defaults", "EASE", "chosen"} <= set(models)
    assert len({row.metrics.users for row in result.rows}) == 1
    evaluation = result.evaluation
    assert evaluation["users_evaluated"] == result.rows[0].metrics.users
    assert evaluation["protocol"]["split"] == "per_user_temporal"
    # EASE when it beat the best ALS on validation, else that ALS.
    assert evaluation["chosen"] == ("ease" if result.ease_wins else evaluation["als"]["model"])
    assert evaluation["als"]["model"] in {"als_defaults", "als_tuned"}


def test_per_user_ndcg_gives_each_users_value_whose_mean_evaluate_reports() -> None:
    split = split_of(train=[[0], [2, 4]], relevant=[[1, 3, 5], [0]], items=6)
    scorer = fixed_scores([[9, 8, 7, 6, 5, 4], [3, 1, 5, 0, 6, 4]])
    log2 = np.log2

    values = per_user_ndcg(scorer, split, 3, np.array([1, 0], dtype=np.int64))

    assert values.tolist() == pytest.approx([1 / log2(3), (1 + 1 / log2(4)) / (1 + 1 / log2(3) + 1 / log2(4))])
    assert values.mean() == pytest.approx(evaluate(scorer, split, k=3).ndcg)


def test_paired_difference_is_the_mean_difference_and_its_standard_error() -> None:
    mean, standard_error = paired_difference(np.array([0.5, 0.3, 0.4, 0.2]), np.array([0.4, 0.3, 0.1, 0.2]))

    # Differences 0.1, 0, 0.3, 0: mean 0.1, sample variance (0 + 0.01 + 0.04 + 0.01) / 3 = 0.02.
    assert mean == pytest.approx(0.1)
    assert standard_error == pytest.approx(np.sqrt(0.02 / 4))


@pytest.mark.parametrize(
    ("advantage", "standard_error", "ease_wins"),
    [(0.0133, 0.0030, False), (0.0029, 0.0039, True), (0.0030, 0.0030, True), (-0.002, 0.003, True)],
)
def test_ease_is_chosen_unless_als_leads_it_by_more_than_one_standard_error(
    advantage: float, standard_error: float, ease_wins: bool
) -> None:
    assert assessment.Comparison(advantage, standard_error, users=900).ease_wins is ease_wins
