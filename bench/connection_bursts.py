"""The HTTP router's memory under bursts of simultaneous connections: does it follow the peak, or grow without bound?

Each round opens `--connections` keep-alive connections to real uWSGI, sends one request on each (or half a request
head with `--half-heads`), waits until the answers are out, closes them all at once and reads the resident memory
of the HTTP router, which buffers every request's head and body. A leak grows by about the same amount every round;
memory that follows the peak (glibc keeping freed buffers for reuse) grows less each round and levels off.

    python -m bench.connection_bursts --model bench/results/models/<a model root> [--rounds 40] [--connections 1500]
"""

import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from api.contract import LIVENESS_PATH
from bench.cli import model_parser, require_at_least_one
from bench.server import start_uwsgi, stop
from bench.stalls import process_role

MIB = 1 << 20
SETTLE_SECONDS = 0.5
ROUTER_ROLES = ("http",)


def router_rss_mib(master: int) -> dict[str, float]:
    rss = dict.fromkeys(ROUTER_ROLES, 0.0)
    for process in psutil.Process(master).children():
        role = process_role(process)
        if role in rss:
            rss[role] += process.memory_info().rss / MIB
    return rss


def burst(port: int, connections: int, *, half_heads: bool) -> None:
    request = f"GET {LIVENESS_PATH} HTTP/1.1\r\nHost: bench\r\n" + ("" if half_heads else "\r\n")
    opened: list[socket.socket] = []
    try:
        for _ in range(connections):
            connection = socket.create_connection(("127.0.0.1", port))
            connection.sendall(request.encode("ascii"))
            opened.append(connection)
        time.sleep(SETTLE_SECONDS)
    finally:
        for connection in opened:
            connection.close()
    time.sleep(SETTLE_SECONDS)


def run(model: Path, rounds: int, connections: int, *, half_heads: bool) -> list[dict[str, float]]:
    """The routers' RSS before the first burst (round 0) and after each one."""
    with tempfile.TemporaryDirectory() as scratch:
        server = start_uwsgi(model, 2, Path(scratch) / "uwsgi.log")
        try:
            figures = [router_rss_mib(server.pid)]
            for _ in range(rounds):
                burst(server.port, connections, half_heads=half_heads)
                figures.append(router_rss_mib(server.pid))
        finally:
            stop(server)
    return figures


def report_lines(figures: list[dict[str, float]]) -> list[str]:
    lines = [
        f"round {index:3}: " + "  ".join(f"{role} {figure[role]:7.1f} MiB" for role in ROUTER_ROLES)
        for index, figure in enumerate(figures)
    ]
    if len(figures) >= 3:
        last, before = figures[-1]["http"] - figures[-2]["http"], figures[1]["http"] - figures[0]["http"]
        lines.append(f"HTTP router: first burst {before:+.1f} MiB, last burst {last:+.1f} MiB")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = model_parser("python -m bench.connection_bursts", __doc__ or "", rounds=40)
    parser.add_argument("--connections", type=int, default=1500, help="simultaneous connections a burst")
    parser.add_argument("--half-heads", action="store_true", help="send half a request head instead of a request")
    args = parser.parse_args(argv)
    require_at_least_one(parser, args, "rounds", "connections")
    print("\n".join(report_lines(run(args.model, args.rounds, args.connections, half_heads=args.half_heads))))


if __name__ == "__main__":
    main()
