"""Stand-ins for what carries the app's stdout in ECS, for the log back-pressure benchmark.

`router`: reads lines and counts the request records, like the FireLens router at the end of the pipe; the benchmark
stops it (SIGSTOP) to play a router that stops reading. `relay`: the log driver in `non-blocking` mode, which reads
the container's output all the time into an in-memory buffer of `max-buffer-size` bytes and drops a new line when it
does not fit (Docker's ring logger, daemon/logger/ring.go: Enqueue returns without queueing once the buffer is
full). In `blocking` mode there is no relay: the app writes straight into the pipe, and a full pipe blocks it.
"""

import argparse
import collections
import json
import sys
import threading
from pathlib import Path

REQUEST_MARKER = b'"request_id"'


def router(counts: Path) -> None:
    received = sum(1 for line in sys.stdin.buffer if REQUEST_MARKER in line)
    counts.write_text(json.dumps({"delivered": received}))


def relay(counts: Path, max_bytes: int) -> None:
    queue: collections.deque[bytes] = collections.deque()
    queued_bytes = 0
    read = dropped = 0
    ready = threading.Condition()
    finished = False

    def forward() -> None:
        nonlocal queued_bytes
        while True:
            with ready:
                ready.wait_for(lambda: queue or finished)
                if not queue:
                    return
                line = queue.popleft()
                queued_bytes -= len(line)
            sys.stdout.buffer.write(line)  # blocks while the router does not read
            sys.stdout.buffer.flush()

    writer = threading.Thread(target=forward)
    writer.start()
    for line in sys.stdin.buffer:
        is_request = REQUEST_MARKER in line
        read += is_request
        with ready:
            if queued_bytes + len(line) > max_bytes and queue:
                dropped += is_request
                continue
            queue.append(line)
            queued_bytes += len(line)
            ready.notify()
    with ready:
        finished = True
        ready.notify()
    writer.join()
    sys.stdout.buffer.close()
    counts.write_text(json.dumps({"read": read, "dropped": dropped}))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.log_pipes", description=__doc__)
    parser.add_argument("role", choices=("router", "relay"))
    parser.add_argument("--counts", type=Path, required=True, help="where to write the line counts at the end")
    parser.add_argument("--max-bytes", type=int, default=0, help="relay: the buffer size (max-buffer-size)")
    args = parser.parse_args()
    if args.role == "router":
        router(args.counts)
    else:
        relay(args.counts, args.max_bytes)


if __name__ == "__main__":
    main()
