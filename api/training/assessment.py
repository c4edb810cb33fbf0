"""Choose the ALS setting to publish and report it beside its baselines, all under one protocol.

Test split: each user's latest interactions (evaluation.temporal_split). Validation split: the same protocol applied
to the test split's training rows only, so neither the search nor the EASE lambda ever sees a test row. Every model
is fitted on the test split's training rows and scored on the same sample of test users: popularity, ALS with the
given setting, ALS with the searched setting, EASE with its best lambda. `chosen` is the best ALS on validation;
`ease_wins` says whether EASE holds its own against it there (ALS leads by no more than one standard error of the
paired per-user difference), and the trainer then publishes EASE as an item-item version (unless its --family says
otherwise).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from api.training.evaluation import (
    Metrics,
    Protocol,
    Scorer,
    Split,
    evaluate,
    paired_difference,
    per_user_ndcg,
    temporal_split,
)
from api.training.interactions import Interactions
from api.training.models import (
    EASE_LAMBDAS,
    EASE_MAX_ITEMS,
    AlsParameters,
    als_scorer,
    ease_scorer,
    fit_als,
    fit_ease,
    item_popularity,
    popularity_scorer,
    timed,
)
from api.training.tuning import search

# Validation users per trial: enough for a stable NDCG on the demo data, few enough for many trials in the budget.
VALIDATION_USERS = 2_000


@dataclass(frozen=True)
class Budget:
    # 0: publish the given setting; the CLI's default budget is api.training.cli.DEFAULT_TUNE_SECONDS.
    tune_seconds: float = 0.0
    tune_trials: int | None = None
    # Scoring time allowed to the first model on the test split; the user count it reaches is used for all models.
    evaluation_seconds: float = 30.0
    ease: bool = True


@dataclass(frozen=True)
class Row:
    model: str
    setting: str
    metrics: Metrics
    fit_seconds: float
    validation_ndcg: float | None = None
    # The model's one numeric setting where it has one (EASE's lambda).
    parameter: float | None = None


@dataclass(frozen=True)
class Assessment:
    chosen: AlsParameters
    chosen_model: str
    rows: list[Row]
    evaluation: dict[str, Any]
    search: dict[str, Any] | None
    # EASE's lambda picked on validation (None when EASE was not evaluated) and whether it beat the chosen ALS there.
    ease_lambda: float | None = None
    ease_wins: bool = False


def assess(
    data: Interactions,
    defaults: AlsParameters,
    protocol: Protocol,
    budget: Budget,
    say: Callable[[str], None],
) -> Assessment | None:
    """None when the protocol leaves no user to evaluate (then the given setting is published unevaluated)."""
    test = temporal_split(data, protocol)
    if len(test.users) == 0:
        say(
            f"no user has {protocol.min_user_interactions}+ interactions with a new relevant item in their latest "
            f"{protocol.holdout_fraction:.0%}; skipping evaluation and search"
        )
        return None
    validation = temporal_split(data, protocol, within=test.train_rows)
    say(
        f"per-user temporal split: {int(test.train_rows.sum())} train / {int(test.test_rows.sum())} test rows, "
        f"{len(test.users)} test users; validation {int(validation.train_rows.sum())} / "
        f"{int(validation.test_rows.sum())} rows, {len(validation.users)} users"
    )
    k = protocol.k
    rows: list[Row] = []

    factors, seconds = timed(lambda: fit_als(test.train, defaults))
    first = evaluate(als_scorer(*factors), test, k, seconds=budget.evaluation_seconds)
    users = test.users[: first.users]
    rows.append(Row("ALS defaults", _setting(defaults), first, seconds))

    counts, seconds = timed(lambda: item_popularity(test.train))
    rows.insert(
        0, Row("popularity", "distinct users per item", _score(popularity_scorer(counts), test, k, users), seconds)
    )

    search_entry = None
    chosen, chosen_model = defaults, "ALS defaults"
    if budget.tune_seconds > 0 and len(validation.users):
        result = search(
            validation,
            defaults,
            seconds=budget.tune_seconds,
            max_trials=budget.tune_trials,
            seed=protocol.seed,
            max_users=VALIDATION_USERS,
            k=k,
            say=say,
        )
        search_entry = result.manifest_entry(budget.tune_seconds, protocol.seed, k)
        completed = sum(1 for trial in result.trials if trial["state"] == "complete")
        say(
            f"search: {completed} trials in {result.seconds:.1f} s "
            f"(budget {budget.tune_seconds:g} s, stopped by {result.stopped_by})"
        )
        rows[1] = Row("ALS defaults", rows[1].setting, rows[1].metrics, rows[1].fit_seconds, result.defaults_value)
        if result.best != defaults and result.best_value is not None:
            tuned = result.best
            factors, seconds = timed(lambda: fit_als(test.train, tuned))
            metrics = _score(als_scorer(*factors), test, k, users)
            rows.append(Row("ALS tuned", _setting(tuned), metrics, seconds, result.best_value))
            chosen, chosen_model = tuned, "ALS tuned"
    else:
        say("search skipped (--tune-seconds 0 or no validation users)")
        if budget.ease and len(validation.users):
            # Without a search the given setting has no validation figure, and EASE is chosen only by beating it there.
            value = evaluate(
                als_scorer(*fit_als(validation.train, defaults)), validation, k, max_users=VALIDATION_USERS
            ).ndcg
            rows[1] = Row("ALS defaults", rows[1].setting, rows[1].metrics, rows[1].fit_seconds, value)

    if budget.ease:
        ease_row = _ease(test, validation, k, users, say)
        if ease_row is not None:
            rows.append(ease_row)

    als_row = next(row for row in rows if row.model == chosen_model)
    ease_row = next((row for row in rows if row.model == "EASE"), None)
    comparison = None
    if ease_row is not None and ease_row.parameter is not None and als_row.validation_ndcg is not None:
        comparison = _compare(validation, chosen, ease_row.parameter, k)
        say(
            f"validation ndcg@{k}, {chosen_model} minus EASE over the same {comparison.users} users: "
            f"{comparison.advantage:+.4f} (standard error {comparison.standard_error:.4f}); "
            + ("EASE chosen" if comparison.ease_wins else "ALS chosen")
        )
    ease_wins = comparison is not None and comparison.ease_wins
    # The model `--family auto` publishes: EASE unless the best ALS beat it on validation by more than the noise.
    chosen_row = ease_row if ease_wins and ease_row is not None else als_row
    rows.append(Row("chosen", f"{chosen_row.model}: {chosen_row.setting}", chosen_row.metrics, chosen_row.fit_seconds))
    for row in rows:
        say(f"test @{k} {row.model}: {_line(row.metrics)} (fit {row.fit_seconds:.1f} s)")
    evaluation = _evaluation(protocol, test, rows, chosen_model, budget, comparison=comparison)
    evaluation["chosen"] = _key(chosen_row.model)
    ease_lambda = ease_row.parameter if ease_row is not None else None
    return Assessment(chosen, chosen_model, rows, evaluation, search_entry, ease_lambda, ease_wins)


@dataclass(frozen=True)
class Comparison:
    """The best ALS against EASE on the validation users, paired per user."""

    advantage: float  # mean over users of ALS's NDCG@k minus EASE's
    standard_error: float
    users: int

    @property
    def ease_wins(self) -> bool:
        # The one-standard-error rule (Hastie, Tibshirani and Friedman, The Elements of Statistical Learning, 7.10):
        # ALS's validation figure is the best of many searched settings, EASE's of five lambdas, so a lead smaller
        # than the noise of the difference is mostly selection luck. On MovieLens 100k, ALS settings that led EASE
        # by under one standard error lost to it on test (docs/quality.md); within the noise the model with one
        # parameter and a deterministic fit is the safer choice.
        return self.advantage <= self.standard_error


def _compare(validation: Split, als: AlsParameters, lam: float, k: int) -> Comparison:
    """Both finalists refitted on the validation training rows (ALS seeded as in the search) and scored per user."""
    users = validation.users[:VALIDATION_USERS]
    als_ndcg = per_user_ndcg(als_scorer(*fit_als(validation.train, als)), validation, k, users)
    ease_ndcg = per_user_ndcg(ease_scorer(validation.train, fit_ease(validation.train, lam)), validation, k, users)
    advantage, standard_error = paired_difference(als_ndcg, ease_ndcg)
    return Comparison(advantage, standard_error, len(users))


def _ease(
    test: Split, validation: Split, k: int, users: np.ndarray[Any, Any], say: Callable[[str], None]
) -> Row | None:
    items = test.train.shape[1]
    if items > EASE_MAX_ITEMS:
        say(f"EASE skipped: {items} items > {EASE_MAX_ITEMS} (dense items x items matrix)")
        return None
    best: tuple[float, float] | None = None
    for lam in EASE_LAMBDAS:
        weights = fit_ease(validation.train, lam)
        value = evaluate(ease_scorer(validation.train, weights), validation, k, max_users=VALIDATION_USERS).ndcg
        say(f"EASE lambda {lam:g} -> validation ndcg@{k} {value:.4f}")
        if best is None or value > best[0]:
            best = (value, lam)
    assert best is not None
    lam = best[1]
    weights, seconds = timed(lambda: fit_ease(test.train, lam))
    metrics = _score(ease_scorer(test.train, weights), test, k, users)
    return Row("EASE", f"lambda {lam:g}", metrics, seconds, best[0], lam)


def _score(scorer: Scorer, split: Split, k: int, users: np.ndarray[Any, Any]) -> Metrics:
    return evaluate(scorer, split, k, users=users)


def _setting(parameters: AlsParameters) -> str:
    return (
        f"factors {parameters.factors}, regularization {parameters.regularization:.3g}, alpha {parameters.alpha:.3g}, "
        f"iterations {parameters.iterations}, weighting {parameters.weighting}"
    )


def _line(metrics: Metrics) -> str:
    return (
        f"P {metrics.precision:.4f} R {metrics.recall:.4f} NDCG {metrics.ndcg:.4f} MAP {metrics.map:.4f} "
        f"coverage {metrics.coverage:.3f}"
    )


def _key(model: str) -> str:
    return model.lower().replace(" ", "_")


def _evaluation(
    protocol: Protocol,
    test: Split,
    rows: list[Row],
    chosen_model: str,
    budget: Budget,
    *,
    comparison: Comparison | None,
) -> dict[str, Any]:
    evaluated = rows[0].metrics.users
    models = {
        _key(row.model): {
            **row.metrics.as_dict(),
            "setting": row.setting,
            "fit_seconds": round(row.fit_seconds, 2),
            "validation_ndcg": None if row.validation_ndcg is None else round(row.validation_ndcg, 5),
        }
        for row in rows
        if row.model != "chosen"
    }
    by_model = {row.model: row for row in rows}
    chosen = by_model[chosen_model]
    entry: dict[str, Any] = {
        "protocol": {**protocol.describe(), "evaluation_seconds": budget.evaluation_seconds},
        "users_eligible": len(test.users),
        "users_evaluated": evaluated,
        **models,
        # The best ALS on validation (what an ALS version publishes, refitted on every interaction); "chosen" names
        # the model `--family auto` publishes, EASE when it won on validation.
        "als": {**chosen.metrics.as_dict(), "model": _key(chosen_model)},
        "chosen": _key(chosen_model),
    }
    ease = by_model.get("EASE")
    if ease is not None and comparison is not None:
        k = protocol.k
        entry["ease_vs_chosen"] = {
            "wins_on_validation": comparison.ease_wins,
            f"validation_ndcg_at_{k}_als_minus_ease": round(comparison.advantage, 5),
            "standard_error": round(comparison.standard_error, 5),
            "validation_users": comparison.users,
            f"test_precision_at_{k}_ratio": round(ease.metrics.precision / max(chosen.metrics.precision, 1e-12), 4),
            f"test_ndcg_at_{k}_ratio": round(ease.metrics.ndcg / max(chosen.metrics.ndcg, 1e-12), 4),
            "note": "EASE is published (family item_item) unless the best ALS beats it on validation NDCG by more than "
            "one standard error of the paired difference, unless --family als",
        }
    return entry
