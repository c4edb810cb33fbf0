"""uWSGI entry point, imported by the master before it forks: the model is loaded once and shared copy-on-write."""

import gc
import logging
import os
import sys

from threadpoolctl import threadpool_limits

from api import drain
from api.app import create_app
from api.loader import ModelLoadError
from api.logs import APP_LOGGER

# uwsgi.ini sets the BLAS/OpenMP env vars too; this also covers a BLAS that ignores them.
threadpool_limits(limits=1)

try:
    application = create_app()
except ModelLoadError as error:
    logging.getLogger(APP_LOGGER).error("%s", error)
    sys.stdout.flush()
    # A missing or corrupt model must never serve: leave before uWSGI forks, without a traceback.
    os._exit(1)

drain.install()

# Objects created so far (the app, the model's Python wrappers) move out of the GC's reach, so collections in the
# workers do not write to those pages and un-share them.
gc.freeze()
