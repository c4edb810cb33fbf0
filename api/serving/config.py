"""Serving configuration: one frozen value built from the environment or by tests."""

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from api.contract import CONTAINER_MODEL_DIR, MAX_BODY_BYTES, MODEL_DIR_ENV

ANN_MIN_ITEMS_ENV = "ANN_MIN_ITEMS"
MODEL_POLL_SECONDS_ENV = "MODEL_POLL_SECONDS"
ANSWER_CACHE_SIZE_ENV = "ANSWER_CACHE_SIZE"
ANSWER_CACHE_BYTES_ENV = "ANSWER_CACHE_BYTES"
# Same default as the trainer's (api.model.ann.ANN_MIN_ITEMS); kept literal so this module stays free of faiss.
DEFAULT_ANN_MIN_ITEMS = 50_000
DEFAULT_ANSWER_CACHE_SIZE = 4_096
DEFAULT_ANSWER_CACHE_BYTES = 8 * 1024 * 1024
DEFAULT_MODEL_POLL_SECONDS = 1.0


N = TypeVar("N", int, float)


class SettingError(ValueError):
    """An environment variable the API cannot use; the message names it and what to set instead."""


@dataclass(frozen=True)
class ApiConfig:
    model_dir: Path
    default_k: int = 10
    max_k: int = 100
    max_batch_users: int = 100
    max_recent_items: int = 200
    max_exclude_items: int = 500
    # Large enough for a full batch with long ids; anything bigger is a client bug, answered with 413.
    max_body_bytes: int = MAX_BODY_BYTES
    # Request head limits: 414 and 431 above them. The target limit is the ALB's request-line limit, so a target the
    # ALB forwards passes it. https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-limits.html
    max_request_target_bytes: int = 16 * 1024
    # Header fields counted as on the wire (name, ": ", value, CRLF). uWSGI's HTTP router carries a head in one packet
    # of at most 64 KiB, with the target in it twice and up to 4 KiB of allocation slack (api/uwsgi.ini): 2 x 16 + 16
    # KiB leave room for that slack and for body bytes that arrive with the head, so every head within both limits
    # reaches the app; over them, header fields get their 431 up to about 60 KiB and a target its 414 up to about 30.
    max_header_bytes: int = 16 * 1024
    # Catalogues at least this large use the model's ANN index (when it has one); smaller ones are scored exactly.
    ann_min_items: int = DEFAULT_ANN_MIN_ITEMS
    # Personalised answers each worker keeps per model version (api/serving/cache.py); 0 turns the cache off.
    answer_cache_size: int = DEFAULT_ANSWER_CACHE_SIZE
    # ... and at most this many bytes of them, whatever k the clients ask for.
    answer_cache_bytes: int = DEFAULT_ANSWER_CACHE_BYTES
    # How often each uWSGI worker looks at the `current` pointer for a new version (api/serving/swap.py); 0 disables.
    model_poll_seconds: float = DEFAULT_MODEL_POLL_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ApiConfig":
        env = os.environ if environ is None else environ
        return cls(
            model_dir=Path(env.get(MODEL_DIR_ENV, CONTAINER_MODEL_DIR)),
            ann_min_items=_number(env, ANN_MIN_ITEMS_ENV, DEFAULT_ANN_MIN_ITEMS, int),
            model_poll_seconds=_number(env, MODEL_POLL_SECONDS_ENV, DEFAULT_MODEL_POLL_SECONDS, float),
            answer_cache_size=_number(env, ANSWER_CACHE_SIZE_ENV, DEFAULT_ANSWER_CACHE_SIZE, int),
            answer_cache_bytes=_number(env, ANSWER_CACHE_BYTES_ENV, DEFAULT_ANSWER_CACHE_BYTES, int),
        )


def _number(env: Mapping[str, str], name: str, default: N, parse: Callable[[str], N]) -> N:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value: N | None = parse(raw)
    except ValueError:
        value = None
    # `not >=` also refuses NaN.
    if value is None or not value >= 0:
        kind = "a whole number" if parse is int else "a number"
        raise SettingError(f"{name}={raw!r} is not {kind} >= 0; set it to one (default {default}) or unset it")
    return value
