"""Zero-downtime model swap: each worker follows the `current` pointer under MODEL_DIR.

A daemon thread in every uWSGI worker reads the pointer (one `readlink` a second). When it names another version,
the thread loads and validates it completely (manifest, checksums, shapes, ANN index) beside the serving one and then
replaces the recommender reference in one assignment: a request already running keeps the object it started with,
the next one gets the new model, so no request waits or fails. A version that does not validate is refused with one
ERROR record and the old model keeps serving. It is retried when its directory changes (a file added, replaced,
resized or touched: the names, sizes and modification times of its entries), not every second: a load hashes every
file, and at 1M items re-hashing each second cost a worker about 641 MB/s of reads. So a version published
half-written and completed in place is taken by every worker within a poll of its completion.

Why not a uWSGI chain reload with lazy-apps: every worker would load its own copy of anything not memory-mapped,
workers forked from the master would no longer share pages copy-on-write, and a corrupt version would leave the
chain respawning a worker that cannot start. Here the arrays and the ANN index of a swapped-in version are
memory-mapped (page cache shared by all workers), and a worker forked later (max-requests recycling) catches up
before it accepts a request. Cost: a memory-mapped ANN index searches slower than the in-memory one the master
loaded (api/model/ann.py), until the next deployment or restart loads the new version in the master.
"""

import logging
import os
import threading
from pathlib import Path

from api.contract import CURRENT_POINTER
from api.model.loader import ModelLoadError, load_model
from api.serving.logs import APP_LOGGER
from api.serving.recommender import Recommender
from api.serving.state import ServingState


class ModelWatcher:
    def __init__(self, state: ServingState) -> None:
        self._state = state
        self._root = state.config.model_dir
        self._lock = threading.Lock()
        recommender = state.recommender
        self._serving = self._name(recommender.model.path) if recommender is not None else None
        # The refused version and the signature of its directory when refused (see `_signature`).
        self._refused: tuple[str, object] | None = None
        self._thread: threading.Thread | None = None
        self._logger = logging.getLogger(APP_LOGGER)

    def check(self) -> bool:
        """Load the version `current` names if it is new; True when the serving model changed."""
        with self._lock:
            try:
                target = self._name(Path(os.readlink(self._root / CURRENT_POINTER)))
            except OSError as error:
                unreadable = ("", str(error))
                if self._refused != unreadable:
                    self._refused = unreadable
                    self._logger.error("model pointer %s unreadable (%s); keeping the serving model", self._root, error)
                return False
            if target == self._serving:
                return False
            attempt = (target, self._signature(target))
            if attempt == self._refused:
                return False
            old = self._state.recommender
            old_version = old.version if old is not None else None
            try:
                model = load_model(self._root)
            except ModelLoadError as error:
                self._refused = attempt
                self._logger.error(
                    "%s; keeping model version %s", error, old_version, extra={"model_version": old_version}
                )
                return False
            self._state.recommender = Recommender.for_config(model, self._state.config)
            self._serving, self._refused = self._name(model.path), None
            self._logger.info(
                "model %s loaded from %s, replacing %s",
                model.version,
                model.path,
                old_version,
                extra={"model_version": model.version},
            )
            return True

    def start(self, interval: float) -> None:
        if interval <= 0 or self._thread is not None:
            return
        stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(interval, stop), name="model-watcher", daemon=True)
        self._thread.start()

    def _poll(self, interval: float, stop: threading.Event) -> None:
        while not stop.wait(interval):
            try:
                self.check()
            except Exception:  # the watcher must never die; the serving model is untouched
                self._logger.exception("model watcher failed; keeping the serving model")

    @staticmethod
    def _name(path: Path) -> str:
        return path.name

    def _signature(self, target: str) -> object:
        """What changes when a version directory is completed or repaired: its entries' names, sizes and mtimes."""
        directory = self._root / target
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
            return tuple(
                (entry.name, stat.st_size, stat.st_mtime_ns, stat.st_ino)
                for entry in entries
                for stat in (entry.stat(follow_symlinks=False),)
            )
        except OSError as error:  # a missing directory is a state too: it may appear later
            return type(error).__name__
