"""Graceful SIGTERM that also drains queued requests.

uWSGI's `gracefully_kill_them_all` lets each worker finish the request it holds, but requests the HTTP router has
already queued on the workers' socket (accepted from clients before the signal, waiting for a free worker) are
dropped when the workers exit. So SIGTERM is routed instead to a mule (uwsgi.ini: `unix_signal:15
uwsgi_route_signal`) that waits until the socket's queue is empty and every worker is idle, then asks the master for
the graceful shutdown through the master FIFO (`q`). In ECS the load balancer has already deregistered the task
when SIGTERM arrives, so no new requests keep the queue busy; the grace period bounds the wait anyway.
"""

import logging
import time
from collections.abc import Callable
from typing import Any

from api.contract import SHUTDOWN_GRACE_SECONDS
from api.serving.logs import APP_LOGGER
from api.serving.unix_backlog import pending_connections, socket_name

# uWSGI signal number the master routes SIGTERM to (uwsgi_route_signal takes the unix number: 15).
DRAIN_SIGNAL = 15
POLL_SECONDS = 0.05
# Idle this many consecutive polls before shutting down: a request between router and worker is not lost.
QUIET_POLLS = 4
# Leave the workers' own mercy time after the drain.
DRAIN_LIMIT_SECONDS = SHUTDOWN_GRACE_SECONDS - 5


def install() -> None:
    """Register the drain handler; a no-op outside uWSGI (tests, the Flask dev server)."""
    try:
        import uwsgi
    except ImportError:
        return
    if uwsgi.opt.get("master-fifo") and int(uwsgi.opt.get("mules", b"0") or 0):
        uwsgi.register_signal(DRAIN_SIGNAL, "mule", _drain_then_stop)


def _drain_then_stop(_: int) -> None:
    import uwsgi

    logger = logging.getLogger(APP_LOGGER)
    logger.info("SIGTERM: draining queued requests before the graceful shutdown")
    queue = _queue_reader(uwsgi, logger)
    started = time.monotonic()
    quiet = 0
    while quiet < QUIET_POLLS and time.monotonic() - started < DRAIN_LIMIT_SECONDS:
        quiet = quiet + 1 if _workers_idle(uwsgi) and queue() == 0 else 0
        time.sleep(POLL_SECONDS)
    logger.info("drained in %.2f s; graceful shutdown", time.monotonic() - started)
    fifo = _text(uwsgi.opt["master-fifo"])
    with open(fifo, "wb", buffering=0) as master:
        master.write(b"q")


def _workers_idle(uwsgi: Any) -> bool:
    return not any(_text(worker.get("status")) == "busy" for worker in uwsgi.workers())


def _queue_reader(uwsgi: Any, logger: logging.Logger) -> Callable[[], int]:
    """Reads the accept queue of the workers' unix socket (uwsgi.ini) from the kernel."""
    name = socket_name(_text(uwsgi.opt["socket"]))
    unreadable = False

    def queued() -> int:
        nonlocal unreadable
        if unreadable:
            return 0
        try:
            return pending_connections(name)
        except OSError as error:
            # Still safe, only less sure: an idle synchronous worker waits in accept(), so a queue with every worker
            # idle lasts one wake-up, and QUIET_POLLS idle polls in a row outlast it.
            logger.error("cannot read the workers' accept queue (%s); draining on worker status alone", error)
            unreadable = True
            return 0

    return queued


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = value[0]
    return value.decode() if isinstance(value, bytes) else str(value)
