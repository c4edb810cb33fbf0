"""`make quality`: train on the demo data exactly as the trainer does and print the protocol's comparison table.

Rows: popularity, ALS with the given setting, ALS with the searched setting, EASE with its best lambda, and the chosen
(published) model, each with its test metrics on the same users, its fit time and its validation NDCG; then the
search's trial count and time against its budget, the whole training's time and the trainer's peak memory (this
process is the trainer). The phase log goes to stderr; the table to stdout and bench/results/quality.json.
"""

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.training.assessment import Budget, Row
from api.training.cli import DEFAULT_TUNE_SECONDS, peak_memory_mb, train
from api.training.evaluation import Protocol
from api.training.log import PhaseLog
from api.training.models import AlsParameters
from bench.report import machine
from bench.server import RESULTS, ROOT

DEMO_DATA = ROOT / "data" / "demo-interactions.parquet"


def table(rows: list[Row], k: int) -> str:
    header = (
        f"{'model':<14} {f'P@{k}':>7} {f'R@{k}':>7} {f'NDCG@{k}':>8} {f'MAP@{k}':>7} {'cover':>6} "
        f"{'fit s':>6} {'val NDCG':>8}  setting"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        metrics = row.metrics
        validation = "" if row.validation_ndcg is None else f"{row.validation_ndcg:.4f}"
        lines.append(
            f"{row.model:<14} {metrics.precision:>7.4f} {metrics.recall:>7.4f} {metrics.ndcg:>8.4f} "
            f"{metrics.map:>7.4f} {metrics.coverage:>6.3f} {row.fit_seconds:>6.1f} {validation:>8}  {row.setting}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__)
    parser.add_argument("--interactions", default=str(DEMO_DATA), help="file, directory or s3:// prefix")
    parser.add_argument("--tune-seconds", type=float, default=DEFAULT_TUNE_SECONDS)
    parser.add_argument(
        "--tune-trials", type=int, help="also stop after N trials: with a generous budget, the table repeats exactly"
    )
    parser.add_argument("--relevance-threshold", type=float)
    parser.add_argument("--factors", type=int, default=AlsParameters().factors)
    parser.add_argument("--iterations", type=int, default=AlsParameters().iterations)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    defaults = AlsParameters(factors=args.factors, iterations=args.iterations, random_state=args.seed)
    protocol = Protocol(relevance_threshold=args.relevance_threshold, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="quality-") as models:
        result = train(
            args.interactions,
            Path(models),
            defaults,
            version="quality",
            protocol=protocol,
            budget=Budget(tune_seconds=args.tune_seconds, tune_trials=args.tune_trials),
            log=PhaseLog(sys.stderr),
        )
        manifest = json.loads((result.version_dir / "manifest.json").read_text())
    assessment = result.assessment
    if assessment is None:
        raise SystemExit("the protocol left no user to evaluate; nothing to compare")
    evaluation = manifest["evaluation"]
    search = manifest["algorithm"].get("search") or {}
    run = manifest["training_run"]
    rows = {row.model: row for row in assessment.rows}
    k = protocol.k
    summary: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "interactions": args.interactions,
        "evaluation": evaluation,
        "search": {key: value for key, value in search.items() if key != "trials"},
        "trials": search.get("trials", []),
        "training_seconds": run["seconds"],
        "peak_memory_mb": peak_memory_mb(),
    }
    counts = manifest["counts"]
    print(f"\nQuality on {args.interactions} ({counts['users']} users, {counts['items']} items)")
    print(
        f"protocol: per-user temporal hold-out of the latest {protocol.holdout_fraction:.0%} "
        f"(users with {protocol.min_user_interactions}+ interactions), seen items excluded, "
        f"relevance threshold {protocol.relevance_threshold}; {evaluation['users_evaluated']} of "
        f"{evaluation['users_eligible']} eligible test users\n"
    )
    print(table(assessment.rows, k))
    print()
    completed = sum(1 for trial in search.get("trials", []) if trial["state"] == "complete")
    if search:
        print(
            f"search: {completed} trials in {search['seconds']:.1f} s of a {search['budget_seconds']:g} s budget "
            f"(stopped by {search['stopped_by']}), seed {search['seed']}"
        )
    chosen, popularity = rows["chosen"].metrics, rows["popularity"].metrics
    print(f"chosen / popularity P@{k}: {chosen.precision / max(popularity.precision, 1e-12):.2f}x")
    if "EASE" in rows:
        ease, als = rows["EASE"].metrics, rows[assessment.chosen_model].metrics
        print(
            f"EASE / best ALS: P@{k} {ease.precision / max(als.precision, 1e-12):.3f}x, "
            f"NDCG@{k} {ease.ndcg / max(als.ndcg, 1e-12):.3f}x; published family: {result.family} "
            "(EASE when it wins on validation)"
        )
    print(f"training {run['seconds']:.1f} s, trainer peak memory {summary['peak_memory_mb']:.0f} MB")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "quality.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
