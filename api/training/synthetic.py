"""Deterministic synthetic interactions with planted structure, for tests, the demo model and benchmarks.

Users belong to segments; each segment prefers its own slice of the catalogue; item popularity follows a power
law. A model that learns the segments beats global popularity; one that learns nothing does not.
"""

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

EVENT_TYPES = ("view", "add_to_cart", "purchase")
EVENT_PROBABILITIES = (0.75, 0.17, 0.08)
START_EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class SyntheticSpec:
    users: int = 2_000
    items: int = 1_000
    segments: int = 8
    mean_interactions: float = 20.0
    # Share of a user's interactions drawn from their segment's items rather than from the whole catalogue.
    segment_affinity: float = 0.8
    popularity_exponent: float = 0.9
    days: int = 60
    seed: int = 7


def user_id(index: int) -> str:
    return f"u{index:07d}"


def item_id(index: int) -> str:
    return f"i{index:07d}"


def generate(spec: SyntheticSpec) -> pa.Table:
    rng = np.random.default_rng(spec.seed)
    popularity = 1.0 / np.arange(1, spec.items + 1) ** spec.popularity_exponent
    popularity = rng.permutation(popularity)
    popularity /= popularity.sum()
    item_segment = rng.integers(0, spec.segments, size=spec.items)
    user_segment = rng.integers(0, spec.segments, size=spec.users)

    per_user = 1 + rng.poisson(spec.mean_interactions - 1, size=spec.users)
    users = np.repeat(np.arange(spec.users), per_user)
    items = rng.choice(spec.items, size=len(users), p=popularity)
    in_segment = rng.random(len(users)) < spec.segment_affinity
    for segment in range(spec.segments):
        members = np.flatnonzero(item_segment == segment)
        rows = np.flatnonzero(in_segment & (user_segment[users] == segment))
        if len(members) == 0 or len(rows) == 0:
            continue
        weights = popularity[members] / popularity[members].sum()
        items[rows] = rng.choice(members, size=len(rows), p=weights)

    timestamps = START_EPOCH + rng.integers(0, spec.days * 86_400, size=len(users))
    events = rng.choice(len(EVENT_TYPES), size=len(users), p=EVENT_PROBABILITIES)
    return pa.table(
        {
            "user_id": pa.array(np.array([user_id(index) for index in range(spec.users)])[users]),
            "item_id": pa.array(np.array([item_id(index) for index in range(spec.items)])[items]),
            "event_type": pa.array(np.array(EVENT_TYPES)[events]),
            "timestamp": pa.array(timestamps, type=pa.int64()),
        }
    )


def write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    elif path.suffix == ".csv":
        pa_csv.write_csv(table, path)
    else:
        raise SystemExit(f"{path}: unsupported format; use .csv or .parquet")


def main(argv: list[str] | None = None) -> None:
    defaults = SyntheticSpec()
    parser = argparse.ArgumentParser(prog="python -m api.training.synthetic", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="output file, .csv or .parquet")
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument("--items", type=int, default=defaults.items)
    parser.add_argument("--segments", type=int, default=defaults.segments)
    parser.add_argument("--mean-interactions", type=float, default=defaults.mean_interactions)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    spec = SyntheticSpec(
        users=args.users,
        items=args.items,
        segments=args.segments,
        mean_interactions=args.mean_interactions,
        seed=args.seed,
    )
    table = generate(spec)
    write(table, args.out)
    print(f"wrote {table.num_rows} interactions ({spec.users} users, {spec.items} items) to {args.out}", flush=True)


if __name__ == "__main__":
    main()
