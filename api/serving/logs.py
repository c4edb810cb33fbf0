"""JSON log lines on stdout, one object per line, with the fields of the log contract."""

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from api.contract import LOG_BASE_FIELDS, LOG_REQUEST_FIELDS

REQUEST_LOGGER = "api.request"
APP_LOGGER = "api"
# Accept the caller's id when it is printable and short; otherwise a fresh one, so logs stay parseable.
REQUEST_ID_PATTERN = re.compile(r"[\x21-\x7e]{1,200}")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = dict(
            zip(
                LOG_BASE_FIELDS,
                (
                    datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                    record.levelname,
                    record.name,
                    record.getMessage(),
                ),
                strict=True,
            )
        )
        for field in LOG_REQUEST_FIELDS:
            if hasattr(record, field):
                line[field] = getattr(record, field)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def request_fields(
    *, request_id: str, method: str, path: str, status: int, duration_ms: float, model_version: str | None
) -> dict[str, Any]:
    """The request record's fields (contract LOG_REQUEST_FIELDS; tests/api/test_logging.py holds them equal)."""
    return {
        "request_id": request_id,
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
        "model_version": model_version,
    }


def accepted_request_id(incoming: str) -> str:
    """The request's id: the caller's X-Request-Id when it is printable and short, else a fresh one."""
    return incoming if REQUEST_ID_PATTERN.fullmatch(incoming) else uuid.uuid4().hex


def log_request(
    *, request_id: str, method: str, path: str, status: int, started: float, model_version: str | None
) -> None:
    """The request's log line (ERROR for a 5xx); `started` is its time.perf_counter() on arrival."""
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    logging.getLogger(REQUEST_LOGGER).log(
        logging.ERROR if status >= 500 else logging.INFO,
        "%s %s %s",
        method,
        path,
        status,
        extra=request_fields(
            request_id=request_id,
            method=method,
            path=path,
            status=status,
            duration_ms=duration_ms,
            model_version=model_version,
        ),
    )


class StdoutHandler(logging.Handler):
    """Writes to whatever `sys.stdout` is at emit time and flushes, so lines reach the log driver at once."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
            sys.stdout.flush()
        except Exception:
            self.handleError(record)


def configure_logging() -> None:
    logger = logging.getLogger(APP_LOGGER)
    if not any(isinstance(handler, StdoutHandler) for handler in logger.handlers):
        handler = StdoutHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
