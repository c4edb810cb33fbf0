"""uWSGI entry point, imported by the master before it forks: the model is loaded once and shared copy-on-write."""

import gc
import logging
import os
import sys

from threadpoolctl import threadpool_limits

from api.model.loader import ModelLoadError
from api.serving import drain
from api.serving.app import create_app
from api.serving.config import SettingError
from api.serving.logs import APP_LOGGER, configure_logging
from api.serving.state import STATE_KEY, ServingState
from api.serving.swap import ModelWatcher

# uwsgi.ini sets the BLAS/OpenMP env vars too; this also covers a BLAS that ignores them.
threadpool_limits(limits=1)

# Before the settings are read, so that an unusable one is reported as a JSON log line like every other error.
configure_logging()
try:
    application = create_app()
except (ModelLoadError, SettingError) as error:
    logging.getLogger(APP_LOGGER).error("%s", error)
    sys.stdout.flush()
    # A missing or corrupt model or an unusable setting must never serve: leave before uWSGI forks, no traceback.
    os._exit(1)
except Exception as error:  # a loader bug must fail the same way: one JSON line (the traceback inside it), exit 1
    logging.getLogger(APP_LOGGER).error("start-up failed: %r", error, exc_info=error)
    sys.stdout.flush()
    os._exit(1)

drain.install()

state: ServingState = application.extensions[STATE_KEY]
watcher = ModelWatcher(state)


def _after_fork() -> None:
    import uwsgi

    if uwsgi.worker_id() > 0:
        # A worker forked after a swap (respawn after a crash, harakiri or recycling) catches up first.
        watcher.check()
        watcher.start(state.config.model_poll_seconds)


try:
    import uwsgi

    uwsgi.post_fork_hook = _after_fork
except ImportError:  # imported outside uWSGI (tests): nothing forks
    pass

# Objects created so far (the app, the model's Python wrappers) move out of the GC's reach, so collections in the
# workers do not write to those pages and un-share them.
gc.freeze()
