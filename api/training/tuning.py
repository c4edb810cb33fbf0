"""Hyperparameter search for ALS with Optuna on a validation split, within a wall-clock budget.

Trial 0 is always the given (default) setting, so the search never returns something worse on validation than
what it started from. Trials run one after another with a seeded TPE sampler and a seeded ALS, so the same seed
and the same number of completed trials give the same trials and the same choice; the time budget decides how many
trials complete, which is why the manifest records them.

The budget is enforced inside a trial too: ALS checks the deadline after each iteration and abandons the fit, so the
search ends at most one ALS iteration plus one validation scoring after its budget.
"""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from api.training.evaluation import Split, evaluate
from api.training.models import WEIGHTINGS, AlsParameters, OutOfTimeError, als_scorer, fit_als

FACTORS = (16, 32, 64, 128)
REGULARIZATION = (0.01, 100.0)
ALPHA = (0.1, 50.0)
ITERATIONS = (5, 30)
OBJECTIVE = "ndcg"


@dataclass(frozen=True)
class SearchResult:
    best: AlsParameters
    best_value: float | None
    defaults_value: float | None
    trials: list[dict[str, Any]]
    seconds: float
    stopped_by: str

    def manifest_entry(self, budget_seconds: float, seed: int, k: int) -> dict[str, Any]:
        return {
            "library": "optuna",
            "library_version": _optuna_version(),
            "sampler": "TPE",
            "seed": seed,
            "objective": f"validation {OBJECTIVE}_at_{k}",
            "budget_seconds": budget_seconds,
            "seconds": round(self.seconds, 2),
            "stopped_by": self.stopped_by,
            "space": {
                "factors": list(FACTORS),
                "regularization": list(REGULARIZATION),
                "alpha": list(ALPHA),
                "iterations": list(ITERATIONS),
                "weighting": list(WEIGHTINGS),
            },
            "trials": self.trials,
        }


def search(
    validation: Split,
    defaults: AlsParameters,
    *,
    seconds: float,
    max_trials: int | None = None,
    seed: int = 0,
    max_users: int | None = None,
    k: int = 10,
    say: Callable[[str], None] = lambda _message: None,
) -> SearchResult:
    """The best ALS setting on `validation` by NDCG@k among the trials that fit in `seconds`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    users: NDArray[np.int64] = validation.users[:max_users] if max_users else validation.users
    start = time.perf_counter()
    deadline = start + seconds
    trials: list[dict[str, Any]] = []
    best: tuple[float, AlsParameters] | None = None
    defaults_value: float | None = None
    stopped_by = "time budget"
    while time.perf_counter() < deadline:
        if max_trials is not None and len(trials) >= max_trials:
            stopped_by = "trial limit"
            break
        # Trial 0 is the given setting, outside Optuna: it may lie outside the search space (e.g. 48 factors).
        trial = study.ask() if trials else None
        parameters = defaults if trial is None else _suggest(trial, defaults)
        began = time.perf_counter()
        try:
            user_factors, item_factors = fit_als(validation.train, parameters, deadline)
        except OutOfTimeError:
            if trial is not None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            trials.append(_record(len(trials), parameters, None, time.perf_counter() - began))
            break
        value = getattr(evaluate(als_scorer(user_factors, item_factors), validation, k, users=users), OBJECTIVE)
        if trial is None:
            defaults_value = value
        else:
            study.tell(trial, value)
        trials.append(_record(len(trials), parameters, value, time.perf_counter() - began))
        say(f"trial {len(trials) - 1}: {_short(parameters)} -> validation {OBJECTIVE}@{k} {value:.4f}")
        # Strictly better only: a tie keeps the earlier (for trial 0, the given) setting.
        if best is None or value > best[0]:
            best = (value, parameters)
    elapsed = time.perf_counter() - start
    if best is None:
        return SearchResult(defaults, None, None, trials, elapsed, "no trial finished in time")
    return SearchResult(best[1], best[0], defaults_value, trials, elapsed, stopped_by)


def _suggest(trial: Any, defaults: AlsParameters) -> AlsParameters:
    return replace(
        defaults,
        factors=trial.suggest_categorical("factors", FACTORS),
        regularization=trial.suggest_float("regularization", *REGULARIZATION, log=True),
        alpha=trial.suggest_float("alpha", *ALPHA, log=True),
        iterations=trial.suggest_int("iterations", *ITERATIONS),
        weighting=trial.suggest_categorical("weighting", WEIGHTINGS),
    )


def _record(number: int, parameters: AlsParameters, value: float | None, seconds: float) -> dict[str, Any]:
    entry = {name: setting for name, setting in asdict(parameters).items() if name != "random_state"}
    entry["regularization"] = round(float(entry["regularization"]), 5)
    entry["alpha"] = round(float(entry["alpha"]), 4)
    return {
        "number": number,
        **entry,
        OBJECTIVE: None if value is None else round(value, 5),
        "seconds": round(seconds, 2),
        "state": "complete" if value is not None else "stopped: out of time",
    }


def _short(parameters: AlsParameters) -> str:
    return (
        f"factors {parameters.factors}, reg {parameters.regularization:.3g}, alpha {parameters.alpha:.3g}, "
        f"iterations {parameters.iterations}, {parameters.weighting}"
    )


def _optuna_version() -> str:
    from importlib.metadata import version

    return version("optuna")
