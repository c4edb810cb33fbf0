"""The hyperparameter search: within its budget, reproducible with a seed, never worse than where it started."""

import time

import pytest

from api.training.evaluation import Protocol, Split, temporal_split
from api.training.interactions import read_interactions
from api.training.models import AlsParameters
from api.training.synthetic import SyntheticSpec, generate, write
from api.training.tuning import search

START = AlsParameters(factors=16, iterations=5)


@pytest.fixture(scope="module")
def validation(tmp_path_factory: pytest.TempPathFactory) -> Split:
    path = tmp_path_factory.mktemp("data") / "interactions.parquet"
    write(generate(SyntheticSpec(users=800, items=400, segments=6, seed=9)), path)
    data = read_interactions(path)
    protocol = Protocol()
    return temporal_split(data, protocol, within=temporal_split(data, protocol).train_rows)


def comparable(trials: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{key: value for key, value in trial.items() if key != "seconds"} for trial in trials]


def test_search_is_reproducible_with_a_seed(validation: Split) -> None:
    first = search(validation, START, seconds=600, max_trials=5, seed=3)
    second = search(validation, START, seconds=600, max_trials=5, seed=3)
    other = search(validation, START, seconds=600, max_trials=5, seed=4)
    assert len(first.trials) == 5
    assert first.stopped_by == "trial limit"
    assert comparable(first.trials) == comparable(second.trials)
    assert first.best == second.best
    assert first.best_value == second.best_value
    # Trial 0 is the given setting whatever the seed; the sampled ones differ.
    assert comparable(other.trials)[0] == comparable(first.trials)[0]
    assert comparable(other.trials)[1:] != comparable(first.trials)[1:]


def test_search_stops_within_its_budget(validation: Split) -> None:
    budget = 3.0
    began = time.perf_counter()
    result = search(validation, START, seconds=budget, seed=0)
    elapsed = time.perf_counter() - began
    # The bound is one ALS iteration plus one validation scoring past the budget: well under a second here.
    assert elapsed < budget + 1.0
    assert result.seconds < budget + 1.0
    assert result.stopped_by == "time budget"
    assert sum(trial["state"] == "complete" for trial in result.trials) >= 2


def test_a_trial_still_running_at_the_deadline_is_abandoned_not_finished(validation: Split) -> None:
    slow = AlsParameters(factors=128, iterations=30_000)
    began = time.perf_counter()
    result = search(validation, slow, seconds=1.0, seed=0)
    assert time.perf_counter() - began < 2.0
    assert result.trials[-1]["state"] == "stopped: out of time"
    assert result.stopped_by == "no trial finished in time"
    assert result.best == slow


def test_search_never_returns_a_setting_worse_on_validation_than_the_given_one(validation: Split) -> None:
    result = search(validation, START, seconds=600, max_trials=6, seed=1)
    assert result.best_value is not None
    assert result.defaults_value is not None
    assert result.best_value >= result.defaults_value
    assert result.trials[0]["factors"] == START.factors


def test_manifest_entry_lists_trials_compactly(validation: Split) -> None:
    result = search(validation, START, seconds=600, max_trials=2, seed=0)
    entry = result.manifest_entry(600, 0, 10)
    assert entry["library"] == "optuna"
    assert entry["seed"] == 0
    assert entry["objective"] == "validation ndcg_at_10"
    assert [trial["number"] for trial in entry["trials"]] == [0, 1]
    assert set(entry["trials"][0]) == {
        "number",
        "factors",
        "iterations",
        "regularization",
        "alpha",
        "weighting",
        "ndcg",
        "seconds",
        "state",
    }
