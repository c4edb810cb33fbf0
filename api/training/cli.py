"""Training CLI: interactions -> implicit ALS -> a new published model version.

python -m api.training --interactions data/interactions.parquet --model-dir models
"""

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from api.model import ann
from api.model.format import ModelArrays, assemble_arrays, publish_model
from api.training.evaluation import K, ScoreRows, evaluable_users, new_items_only, ranking_scores
from api.training.interactions import DEFAULT_EVENT_WEIGHTS, Interactions, InteractionsError, read_interactions

MAX_EVALUATED_USERS = 5_000


@dataclass(frozen=True)
class AlsParameters:
    factors: int = 64
    iterations: int = 15
    regularization: float = 0.05
    # implicit >= 0.5 uses confidence = alpha * weight.
    alpha: float = 10.0
    random_state: int = 0


@dataclass(frozen=True)
class TrainResult:
    version_dir: Path
    evaluation: dict[str, Any] | None


def train(
    interactions_path: Path,
    model_dir: Path,
    parameters: AlsParameters,
    *,
    version: str | None = None,
    test_fraction: float = 0.2,
    event_weights: dict[str, float] | None = None,
    ann_min_items: int = ann.ANN_MIN_ITEMS,
) -> TrainResult:
    clock = _Clock()
    data = read_interactions(interactions_path, event_weights)
    clock.say(f"read {len(data)} interactions: {len(data.user_ids)} users, {len(data.item_ids)} items")
    evaluation = _evaluate(data, parameters, test_fraction, clock)
    matrix = _matrix(data, np.ones(len(data), dtype=bool))
    clock.say(f"fitting ALS on all interactions ({parameters.factors} factors, {parameters.iterations} iterations)")
    user_factors, item_factors = _fit(matrix, parameters)
    version = version or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    metadata = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "algorithm": {
            "name": "als",
            "library": "implicit",
            "library_version": _implicit_version(),
            "parameters": asdict(parameters),
        },
        "evaluation": evaluation,
        "training_data": {
            "source": interactions_path.name,
            "interactions": len(data),
            "first_timestamp": int(data.timestamps.min()),
            "last_timestamp": int(data.timestamps.max()),
        },
    }
    indexes = build_ann(user_factors, item_factors, ann_min_items, clock.say)
    arrays = _arrays(data, matrix, user_factors, item_factors)
    version_dir = publish_model(model_dir, version, arrays, metadata, indexes)
    clock.say(f"published {version_dir} and switched {model_dir / 'current'} to it")
    return TrainResult(version_dir=version_dir, evaluation=evaluation)


def _evaluate(
    data: Interactions, parameters: AlsParameters, test_fraction: float, clock: "_Clock"
) -> dict[str, Any] | None:
    if test_fraction <= 0:
        clock.say("test fraction 0: skipping the hold-out evaluation")
        return None
    cutoff = int(np.quantile(data.timestamps, 1.0 - test_fraction))
    in_train = data.timestamps < cutoff
    train_matrix = _matrix(data, in_train)
    test_matrix = new_items_only(train_matrix, _matrix(data, ~in_train))
    users = evaluable_users(train_matrix, test_matrix)
    if len(users) > MAX_EVALUATED_USERS:
        # Scoring is dense (users x items); a fixed-seed sample keeps large catalogues quick and reproducible.
        users = np.sort(np.random.default_rng(0).choice(users, MAX_EVALUATED_USERS, replace=False))
    when = datetime.fromtimestamp(cutoff, UTC).isoformat()
    if len(users) == 0:
        clock.say(f"hold-out split at {when} leaves no user with both periods; skipping evaluation")
        return None
    clock.say(f"hold-out split at {when}: {int(in_train.sum())} train, {int((~in_train).sum())} test rows")
    user_factors, item_factors = _fit(train_matrix, parameters)
    als = ranking_scores(users, ScoreRows.als(user_factors, item_factors), train_matrix, test_matrix)
    counts = np.diff(train_matrix.tocsc().indptr).astype(np.float32)
    popular = ranking_scores(users, ScoreRows.popularity(counts), train_matrix, test_matrix)
    clock.say(
        f"hold-out @{K} over {len(users)} users: "
        f"ALS precision {als.precision_at_10:.4f} recall {als.recall_at_10:.4f} | "
        f"popularity precision {popular.precision_at_10:.4f} recall {popular.recall_at_10:.4f}"
    )
    return {
        "split": "time",
        "cutoff": when,
        "test_fraction": test_fraction,
        "users_evaluated": len(users),
        "als": asdict(als),
        "popularity": asdict(popular),
    }


def build_ann(
    user_factors: NDArray[np.float32],
    item_factors: NDArray[np.float32],
    ann_min_items: int,
    say: Callable[[str], None],
) -> tuple[ann.AnnBuild, ...]:
    """The ANN indexes for large catalogues, each with its recall@10 against exact scoring reported and kept.

    The user index is measured on a sample of known users' vectors (the queries it answers in production), the
    similar-item index on a sample of items, each leaving itself out as the API does.
    """
    if len(item_factors) < ann_min_items:
        say(f"{len(item_factors)} items < {ann_min_items}: no ANN index, serving scores exactly")
        return ()
    users = ann.sample_rows(user_factors, ann.EVALUATION_QUERIES)
    items = ann.sample_rows(item_factors, ann.EVALUATION_QUERIES)
    jobs = (
        (ann.USER_INDEX, user_factors[users], None, "users"),
        (ann.SIMILAR_INDEX, item_factors[items], items, "items"),
    )
    built = []
    for spec, queries, self_rows, asked in jobs:
        say(f"building the ANN index ({spec.kind}) over {len(item_factors)} items")
        with threadpool_limits(limits=2):
            index = ann.build(spec, item_factors, queries, self_rows=self_rows)
        meta = index.metadata
        say(
            f"ANN index {spec.kind}: {meta['nlist']} lists, nprobe {meta['nprobe']}, recall@10 vs exact "
            f"{meta['recall_at_10']:.4f} over {meta['evaluated_queries']} {asked} "
            f"(built in {meta['build_seconds']:.1f} s)"
        )
        built.append(index)
    return tuple(built)


def _matrix(data: Interactions, rows: NDArray[np.bool_]) -> sp.csr_matrix:
    shape = (len(data.user_ids), len(data.item_ids))
    matrix = sp.csr_matrix((data.weights[rows], (data.users[rows], data.items[rows])), shape=shape, dtype=np.float32)
    matrix.sum_duplicates()
    matrix.sort_indices()
    return matrix


def _fit(matrix: sp.csr_matrix, parameters: AlsParameters) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    from implicit.cpu.als import AlternatingLeastSquares

    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=parameters.factors,
            iterations=parameters.iterations,
            regularization=parameters.regularization,
            alpha=parameters.alpha,
            random_state=parameters.random_state,
        )
        model.fit(matrix, show_progress=False)
    return np.ascontiguousarray(model.user_factors, np.float32), np.ascontiguousarray(model.item_factors, np.float32)


def _arrays(
    data: Interactions, matrix: sp.csr_matrix, user_factors: NDArray[np.float32], item_factors: NDArray[np.float32]
) -> ModelArrays:
    return assemble_arrays(
        user_factors=user_factors,
        item_factors=item_factors,
        popularity=np.diff(matrix.tocsc().indptr),
        seen_indptr=matrix.indptr,
        seen_indices=matrix.indices,
        user_ids=data.user_ids,
        item_ids=data.item_ids,
    )


def _implicit_version() -> str:
    from importlib.metadata import version

    return version("implicit")


class _Clock:
    def __init__(self) -> None:
        self._start = time.perf_counter()

    def say(self, message: str) -> None:
        print(f"[train {time.perf_counter() - self._start:7.1f}s] {message}", flush=True)


def _event_weights(text: str) -> dict[str, float]:
    try:
        pairs = (entry.split("=", 1) for entry in text.split(",") if entry)
        return {name.strip(): float(value) for name, value in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError("expected name=weight pairs, e.g. view=1,purchase=5") from None


def main(argv: list[str] | None = None) -> None:
    defaults = AlsParameters()
    parser = argparse.ArgumentParser(
        prog="python -m api.training", description="Train ALS and publish a model version."
    )
    parser.add_argument(
        "--interactions", type=Path, required=True, help=".csv or .parquet: user_id, item_id, timestamp"
    )
    parser.add_argument("--model-dir", type=Path, required=True, help="root holding versions and the current pointer")
    parser.add_argument("--version", help="version name (default: UTC timestamp)")
    parser.add_argument("--factors", type=int, default=defaults.factors)
    parser.add_argument("--iterations", type=int, default=defaults.iterations)
    parser.add_argument("--regularization", type=float, default=defaults.regularization)
    parser.add_argument("--alpha", type=float, default=defaults.alpha)
    parser.add_argument("--seed", type=int, default=defaults.random_state)
    parser.add_argument(
        "--test-fraction", type=float, default=0.2, help="latest share of rows held out; 0 skips the evaluation"
    )
    parser.add_argument(
        "--ann-min-items",
        type=int,
        default=ann.ANN_MIN_ITEMS,
        help="build an approximate-nearest-neighbour index when the catalogue has at least this many items",
    )
    parser.add_argument(
        "--event-weights",
        type=_event_weights,
        default=DEFAULT_EVENT_WEIGHTS,
        help="weights for the event_type column when there is no weight column",
    )
    args = parser.parse_args(argv)
    parameters = AlsParameters(
        factors=args.factors,
        iterations=args.iterations,
        regularization=args.regularization,
        alpha=args.alpha,
        random_state=args.seed,
    )
    try:
        train(
            args.interactions,
            args.model_dir,
            parameters,
            version=args.version,
            test_fraction=args.test_fraction,
            event_weights=args.event_weights,
            ann_min_items=args.ann_min_items,
        )
    except (InteractionsError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
