"""One JSON object per line on stdout, one line per training phase: what CloudWatch Logs Insights can query.

The serving side has its own formatter; the trainer keeps this small one so that training never imports serving.
"""

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

LOGGER = "api.training"


class PhaseLog:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._start = time.perf_counter()
        self._stream = stream

    def __call__(self, phase: str, message: str, level: str = "INFO", **fields: Any) -> None:
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "logger": LOGGER,
            "phase": phase,
            "message": message,
            "elapsed_seconds": round(time.perf_counter() - self._start, 2),
            **fields,
        }
        stream = self._stream or sys.stdout
        stream.write(json.dumps(record, default=str) + "\n")
        stream.flush()

    def sayer(self, phase: str) -> "Sayer":
        return Sayer(self, phase)


class Sayer:
    """A PhaseLog bound to one phase, for code that only reports progress messages."""

    def __init__(self, log: PhaseLog, phase: str) -> None:
        self._log = log
        self._phase = phase

    def __call__(self, message: str) -> None:
        self._log(self._phase, message)
