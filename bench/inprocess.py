"""CPU per request in-process and model load time: the steadier figures on a shared machine.

`make bench` measures req/s through uWSGI with the load generator on the same cores, so what else runs on the machine
moves its maxima. This measures what the code itself costs: each endpoint's requests go straight to the app's WSGI
callable (no HTTP, no router; the app's JSON log line goes to /dev/null) and the process CPU time is divided by the
count, the endpoints interleaved round by round so that a busy spell hits all of them; and `load_model` is timed the
same way (wall and CPU), after one untimed load that brings the files into the page cache. Each figure is the
median of the rounds with its spread. Paths are bench.server's: similar items uniform over the catalogue, users
Zipf-distributed with 10 % unknown, as `make bench` sends them.

    python -m bench.inprocess --model bench/results/models/<synthetic 1M model> [--rounds 5] [--requests 10000]
"""

import io
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

from flask import Flask

from api.contract import LIVENESS_PATH
from api.model.loader import load_model
from api.serving.app import create_app
from api.serving.config import ApiConfig
from bench.cli import model_parser, require_at_least_one
from bench.server import item_paths, user_paths


def environ(path: str) -> dict[str, Any]:
    """A GET's WSGI environ as uWSGI builds it (keys the app and Werkzeug read)."""
    route, _, query = path.partition("?")
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": route,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def serve(app: Flask, paths: Iterable[str]) -> int:
    """Answer every path through the WSGI callable; the count of 200 answers."""
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], Any]:
        statuses.append(status)
        return lambda _: None

    for path in paths:
        body = app.wsgi_app(environ(path), start_response)
        b"".join(body)
    return sum(1 for status in statuses if status.startswith("200"))


def cpu_us_per_request(app: Flask, paths: Sequence[str]) -> float:
    started = time.process_time()
    answered = serve(app, paths)
    if answered != len(paths):
        raise SystemExit(f"{len(paths) - answered} of {len(paths)} requests were not answered 200; is the model right?")
    return (time.process_time() - started) / len(paths) * 1e6


def spread(values: list[float]) -> dict[str, float]:
    median = statistics.median(values)
    return {
        "median": median,
        "min": min(values),
        "max": max(values),
        "spread": (max(values) - min(values)) / median if median else 0.0,
    }


def request_costs(model: Path, rounds: int, requests: int) -> dict[str, dict[str, float]]:
    with open(os.devnull, "w") as devnull, redirect_stdout(devnull):
        app = create_app(ApiConfig(model_dir=model))
    recommender = app.extensions["recsys"].recommender
    sets = {
        "health_live": [LIVENESS_PATH] * requests,
        "similar_items": item_paths(len(recommender.items), requests),
        "recommendations": user_paths(len(recommender.users), requests),
    }
    measured: dict[str, list[float]] = {name: [] for name in sets}
    with open(os.devnull, "w") as devnull, redirect_stdout(devnull):
        for paths in sets.values():
            serve(app, paths[: max(1, requests // 5)])
        for _ in range(rounds):
            for name, paths in sets.items():
                measured[name].append(cpu_us_per_request(app, paths))
    return {name: spread(values) for name, values in measured.items()}


def load_times(model: Path, rounds: int) -> dict[str, dict[str, float]]:
    load_model(model, index_in_memory=True)
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        load_model(model, index_in_memory=True)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"load_wall_s": spread(walls), "load_cpu_s": spread(cpus)}


def report_lines(costs: dict[str, dict[str, float]], loads: dict[str, dict[str, float]]) -> list[str]:
    lines = [
        f"{name:16} {figure['median']:8.1f} us/request (min {figure['min']:.1f}, max {figure['max']:.1f}, "
        f"spread {figure['spread']:.0%})"
        for name, figure in costs.items()
    ]
    live = costs["health_live"]["median"]
    lines += [
        f"liveness / {name}: {live / costs[name]['median']:.2f} (extra {costs[name]['median'] - live:.1f} us)"
        for name in ("similar_items", "recommendations")
    ]
    lines += [
        f"{name:16} {figure['median']:8.3f} s (min {figure['min']:.3f}, max {figure['max']:.3f}, "
        f"spread {figure['spread']:.0%})"
        for name, figure in loads.items()
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = model_parser("python -m bench.inprocess", __doc__ or "", rounds=5)
    parser.add_argument("--requests", type=int, default=10_000, help="requests per endpoint and round")
    parser.add_argument("--skip-load", action="store_true", help="leave out the load-time rounds")
    args = parser.parse_args(argv)
    require_at_least_one(parser, args, "rounds", "requests")
    costs = request_costs(args.model, args.rounds, args.requests)
    loads = {} if args.skip_load else load_times(args.model, args.rounds)
    print("\n".join(report_lines(costs, loads)))


if __name__ == "__main__":
    main()
