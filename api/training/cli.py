"""Training CLI: interactions -> evaluated, tuned implicit ALS or EASE -> a new published model version.

The family published (`--family`, default auto): ALS, unless the chosen ALS beats EASE on validation by no more than
one standard error (then an item_item version of EASE's top-N neighbour lists). Every version carries each item's
top-N neighbours (`--neighbours`), which answer similar items by lookup.

python -m api.training --interactions data/interactions.parquet --model-dir models
python -m api.training --interactions s3://bucket/prefix/ --model-dir /mnt/models
"""

import argparse
import resource
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
from api.model import neighbours as neighbour_files
from api.model.format import ModelArrays, assemble_arrays, publish_model
from api.training import retention
from api.training.assessment import Assessment, Budget, assess
from api.training.evaluation import Protocol, ProtocolError, interaction_matrix
from api.training.interactions import DEFAULT_EVENT_WEIGHTS, Interactions, InteractionsError, read_interactions
from api.training.log import PhaseLog
from api.training.models import EASE_MAX_ITEMS, WEIGHTINGS, AlsParameters, ParameterError, fit_als, fit_ease

__all__ = ["AlsParameters", "TrainResult", "main", "train"]

DEFAULT_KEEP_VERSIONS = 5
# Sized for the demo data (5,000 users, 3,000 items, 100k rows): about 30 trials on 2 cores, and the whole training
# (evaluation, search, EASE, final fit) stays under a minute.
DEFAULT_TUNE_SECONDS = 25.0
# auto: EASE (item_item) when it wins on validation, else ALS; als / item_item force one (tests, demos, operators).
FAMILY_CHOICES = ("auto", "als", "item_item")
# EASE's lambda when item_item is forced without an evaluation to pick one: the middle of the candidate grid, the
# value chosen on the demo data (docs/quality.md).
DEFAULT_EASE_LAMBDA = 250.0


@dataclass(frozen=True)
class TrainResult:
    version_dir: Path
    evaluation: dict[str, Any] | None
    assessment: Assessment | None = None
    parameters: AlsParameters | None = None
    removed_versions: tuple[str, ...] = ()
    family: str = "als"


def train(
    interactions: "Path | str",
    model_dir: Path,
    parameters: AlsParameters,
    *,
    version: str | None = None,
    test_fraction: float = 0.2,
    event_weights: dict[str, float] | None = None,
    ann_min_items: int = ann.ANN_MIN_ITEMS,
    protocol: Protocol | None = None,
    budget: Budget | None = None,
    keep_versions: int | None = None,
    log: PhaseLog | None = None,
    family: str = "auto",
    neighbour_count: int = neighbour_files.DEFAULT_COUNT,
) -> TrainResult:
    """Evaluate (and with a budget, tune) on a per-user temporal hold-out, refit on every row and publish.

    `parameters` are the defaults the search starts from; without a `budget` (or with tune_seconds 0) they are
    published as given. `test_fraction` 0 skips the evaluation and the search.
    """
    if keep_versions is not None:
        retention.check_keep(keep_versions)  # before hours of training, not after publishing
    _check_family(family, neighbour_count)
    log = log or PhaseLog()
    started = time.perf_counter()
    data = read_interactions(interactions, event_weights)
    log(
        "read",
        f"read {len(data)} interactions: {len(data.user_ids)} users, {len(data.item_ids)} items",
        source=str(interactions),
        interactions=len(data),
        users=len(data.user_ids),
        items=len(data.item_ids),
    )
    if family == "item_item" and len(data.item_ids) > EASE_MAX_ITEMS:
        # Before the evaluation and the search, which can take many minutes.
        raise ParameterError(
            f"--family item_item: {len(data.item_ids)} items exceed EASE's limit of {EASE_MAX_ITEMS}; "
            "use --family als or auto"
        )
    assessment = None
    chosen = parameters
    if test_fraction > 0:
        protocol = protocol or Protocol(holdout_fraction=test_fraction, seed=parameters.random_state)
        budget = budget or Budget(tune_seconds=0.0)
        assessment = assess(data, parameters, protocol, budget, log.sayer("evaluate"))
        if assessment is not None:
            chosen = assessment.chosen
    else:
        log("evaluate", "test fraction 0: skipping the hold-out evaluation and the search")
    matrix = interaction_matrix(data, np.ones(len(data), dtype=bool))
    published = _published_family(family, assessment, len(data.item_ids), log.sayer("fit"))
    version = version or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    evaluation = assessment.evaluation if assessment else None
    if evaluation is not None:
        # The published model, which --family may have forced against the assessment's choice.
        evaluation = {**evaluation, "chosen": "ease" if published == "item_item" else evaluation["als"]["model"]}
    fitted = _fit(
        published,
        matrix,
        chosen=chosen,
        assessment=assessment,
        ann_min_items=ann_min_items,
        neighbour_count=neighbour_count,
        log=log,
    )
    algorithm = fitted.algorithm
    if assessment is not None and assessment.search is not None:
        algorithm["search"] = assessment.search
    metadata = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "algorithm": algorithm,
        "evaluation": evaluation,
        "training_data": {
            "source": _source_name(interactions),
            "interactions": len(data),
            "first_timestamp": int(data.timestamps.min()),
            "last_timestamp": int(data.timestamps.max()),
        },
        "training_run": {
            "seconds": round(time.perf_counter() - started, 1),
            "peak_memory_mb": peak_memory_mb(),
        },
    }
    arrays = _arrays(data, matrix, fitted.user_factors, fitted.item_factors)
    previous = retention.current_version(model_dir) if model_dir.is_dir() else None
    version_dir = publish_model(
        model_dir, version, arrays, metadata, fitted.indexes, family=published, neighbours=fitted.neighbours
    )
    log(
        "publish",
        f"published {version_dir} ({published}) and switched {model_dir / 'current'} to it",
        version=version,
        family=published,
    )
    removed: list[str] = []
    if keep_versions is not None:
        removed = retention.prune(model_dir, keep_versions, {version, *([previous] if previous else [])})
        log("retention", f"kept the newest {keep_versions} versions; removed {len(removed)}", removed=removed)
    log(
        "done",
        "training finished",
        seconds=round(time.perf_counter() - started, 1),
        peak_memory_mb=peak_memory_mb(),
        version=version,
    )
    return TrainResult(
        version_dir=version_dir,
        evaluation=evaluation,
        assessment=assessment,
        parameters=chosen,
        removed_versions=tuple(removed),
        family=published,
    )


@dataclass(frozen=True)
class _Fitted:
    user_factors: NDArray[np.float32]
    item_factors: NDArray[np.float32]
    algorithm: dict[str, Any]
    indexes: tuple[ann.AnnBuild, ...]
    neighbours: neighbour_files.Neighbours | None


def _fit(
    family: str,
    matrix: sp.csr_matrix,
    *,
    chosen: AlsParameters,
    assessment: Assessment | None,
    ann_min_items: int,
    neighbour_count: int,
    log: PhaseLog,
) -> _Fitted:
    users, items = matrix.shape
    if family == "item_item":
        lam = assessment.ease_lambda if assessment and assessment.ease_lambda else DEFAULT_EASE_LAMBDA
        log("fit", f"fitting EASE on all interactions: lambda {lam:g}")
        ease_weights = fit_ease(matrix, lam)
        count = neighbour_files.neighbour_count(items, neighbour_count)
        neighbours = neighbour_files.timed_build(
            lambda: neighbour_files.from_item_weights(ease_weights, count, "float32"), log.sayer("neighbours"), "EASE"
        )
        # An item-item version has no factors: zero-column factor arrays keep the file set of every version.
        return _Fitted(
            user_factors=np.zeros((users, 0), dtype=np.float32),
            item_factors=np.zeros((items, 0), dtype=np.float32),
            algorithm={"name": "ease", "parameters": {"lambda": lam}},
            indexes=(),
            neighbours=neighbours,
        )
    log("fit", f"fitting ALS on all interactions: {_describe(chosen)}")
    user_factors, item_factors = fit_als(matrix, chosen)
    indexes = build_ann(user_factors, item_factors, ann_min_items, log.sayer("ann"))
    return _Fitted(
        user_factors=user_factors,
        item_factors=item_factors,
        algorithm={
            "name": "als",
            "library": "implicit",
            "library_version": _implicit_version(),
            "parameters": asdict(chosen),
        },
        indexes=indexes,
        neighbours=als_neighbours(item_factors, indexes, neighbour_count, log.sayer("neighbours")),
    )


def _check_family(family: str, neighbour_count: int) -> None:
    if family not in FAMILY_CHOICES:
        raise ParameterError(f"family {family!r} must be one of {', '.join(FAMILY_CHOICES)}")
    if neighbour_count < 0:
        raise ParameterError(f"--neighbours {neighbour_count} must be 0 (no lookup) or more")
    if family == "item_item" and neighbour_count == 0:
        raise ParameterError("--family item_item answers from its neighbour lists: give --neighbours 1 or more")


def _published_family(family: str, assessment: Assessment | None, items: int, say: Callable[[str], None]) -> str:
    if family == "item_item":
        say("family item_item (forced by --family)")
        return "item_item"
    if family == "als":
        say("family als (forced by --family)")
        return "als"
    if assessment is not None and assessment.ease_wins and assessment.ease_lambda is not None:
        say("family item_item: the chosen ALS did not beat EASE on validation NDCG by more than one standard error")
        return "item_item"
    evaluated = assessment is not None and assessment.ease_lambda is not None
    say(
        "family als: "
        + ("it beat EASE on validation NDCG by more than one standard error" if evaluated else "EASE not evaluated")
    )
    return "als"


def als_neighbours(
    item_factors: NDArray[np.float32],
    indexes: tuple[ann.AnnBuild, ...],
    wanted: int,
    say: Callable[[str], None],
) -> neighbour_files.Neighbours | None:
    """Each item's top-N by cosine: exact below the ANN size (items^2 x factors flops), else through the
    similar-items index with exact re-scoring (api.model.neighbours.cosine_approximate). None with `wanted` 0."""
    if wanted == 0:
        say("--neighbours 0: no similar-items lookup, similar items come from the index or an exact scan")
        return None
    items = len(item_factors)
    count = neighbour_files.neighbour_count(items, wanted)
    dtype = neighbour_files.weight_dtype(items)
    similar = next((built.index for built in indexes if built.spec == ann.SIMILAR_INDEX), None)
    if similar is None:
        return neighbour_files.timed_build(
            lambda: neighbour_files.cosine_exact(item_factors, count, dtype), say, "exact cosine"
        )
    with threadpool_limits(limits=2):
        return neighbour_files.timed_build(
            lambda: neighbour_files.cosine_approximate(item_factors, similar, count, dtype), say, "cosine via the index"
        )


def peak_memory_mb() -> float:
    """This process's peak resident set size so far (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _source_name(interactions: "Path | str") -> str:
    text = str(interactions)
    return text if text.startswith("s3://") else Path(text).name


def _describe(parameters: AlsParameters) -> str:
    return (
        f"{parameters.factors} factors, {parameters.iterations} iterations, regularization "
        f"{parameters.regularization:.3g}, alpha {parameters.alpha:.3g}, {parameters.weighting} weights"
    )


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


def _event_weights(text: str) -> dict[str, float]:
    try:
        pairs = (entry.split("=", 1) for entry in text.split(",") if entry)
        return {name.strip(): float(value) for name, value in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError("expected name=weight pairs, e.g. view=1,purchase=5") from None


def argument_parser() -> argparse.ArgumentParser:
    """The CLI's arguments; the training task definition's command is checked against it (tests/infra)."""
    defaults = AlsParameters()
    parser = argparse.ArgumentParser(
        prog="python -m api.training",
        description="Evaluate, tune and train ALS, then publish a model version. Logs one JSON line per phase.",
    )
    parser.add_argument(
        "--interactions",
        required=True,
        help=".csv or .parquet file, a directory of them, or s3://bucket/prefix/ (user_id, item_id, timestamp)",
    )
    parser.add_argument("--model-dir", type=Path, required=True, help="root holding versions and the current pointer")
    parser.add_argument("--version", help="version name (default: UTC timestamp)")
    parser.add_argument("--factors", type=int, default=defaults.factors, help="ALS setting the search starts from")
    parser.add_argument("--iterations", type=int, default=defaults.iterations)
    parser.add_argument("--regularization", type=float, default=defaults.regularization)
    parser.add_argument("--alpha", type=float, default=defaults.alpha)
    parser.add_argument("--weighting", choices=WEIGHTINGS, default=defaults.weighting)
    parser.add_argument(
        "--seed", type=int, default=defaults.random_state, help="seeds ALS, the split sample, the search"
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="latest share of each user's interactions held out; 0 skips the evaluation and the search",
    )
    parser.add_argument(
        "--min-user-interactions",
        type=int,
        default=Protocol().min_user_interactions,
        help="users with fewer interactions are only trained on, never evaluated",
    )
    parser.add_argument(
        "--relevance-threshold",
        type=float,
        help="a held-out interaction counts as relevant when its weight is at least this (e.g. 4 for 1-5 ratings)",
    )
    parser.add_argument(
        "--tune-seconds",
        type=float,
        default=DEFAULT_TUNE_SECONDS,
        help="wall-clock budget of the hyperparameter search; 0 publishes the given setting",
    )
    parser.add_argument("--tune-trials", type=int, help="stop the search after this many trials as well")
    parser.add_argument(
        "--evaluation-seconds",
        type=float,
        default=Budget().evaluation_seconds,
        help="scoring time for the test users; the users scored in it are the sample every model is compared on",
    )
    parser.add_argument("--no-ease", action="store_true", help="skip the EASE item-item baseline")
    parser.add_argument(
        "--family",
        choices=FAMILY_CHOICES,
        default="auto",
        help="family to publish: auto (EASE unless ALS beats it on validation by over 1 std. error), als, item_item",
    )
    parser.add_argument(
        "--neighbours",
        type=int,
        default=neighbour_files.DEFAULT_COUNT,
        help="neighbours stored per item for the similar-items lookup and the item-item model; 0: none (ALS only)",
    )
    parser.add_argument(
        "--keep-versions",
        type=int,
        default=DEFAULT_KEEP_VERSIONS,
        help="after publishing, delete all but the newest N versions (current and the previous one always stay)",
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
    return parser


def main(argv: list[str] | None = None) -> None:
    args = argument_parser().parse_args(argv)
    log = PhaseLog()
    try:
        retention.check_keep(args.keep_versions)
        if args.tune_seconds < 0 or args.evaluation_seconds <= 0:
            raise ParameterError("--tune-seconds must be 0 or more and --evaluation-seconds positive")
        parameters = AlsParameters(
            factors=args.factors,
            iterations=args.iterations,
            regularization=args.regularization,
            alpha=args.alpha,
            weighting=args.weighting,
            random_state=args.seed,
        )
        protocol = None
        if args.test_fraction > 0:
            protocol = Protocol(
                holdout_fraction=args.test_fraction,
                min_user_interactions=args.min_user_interactions,
                relevance_threshold=args.relevance_threshold,
                seed=args.seed,
            )
        train(
            args.interactions,
            args.model_dir,
            parameters,
            version=args.version,
            test_fraction=args.test_fraction,
            event_weights=args.event_weights,
            ann_min_items=args.ann_min_items,
            protocol=protocol,
            budget=Budget(
                tune_seconds=args.tune_seconds,
                tune_trials=args.tune_trials,
                evaluation_seconds=args.evaluation_seconds,
                ease=not args.no_ease,
            ),
            keep_versions=args.keep_versions,
            log=log,
            family=args.family,
            neighbour_count=args.neighbours,
        )
    except (InteractionsError, FileExistsError, ProtocolError, retention.RetentionError, ParameterError) as error:
        # One line a person can act on, in the same JSON shape as the progress lines (stderr: it is the failure).
        PhaseLog(sys.stderr)("error", str(error), level="ERROR")
        raise SystemExit(2) from None
