"""Serving configuration: one frozen value built from the environment or by tests."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from api.contract import CONTAINER_MODEL_DIR, MODEL_DIR_ENV

ANN_MIN_ITEMS_ENV = "ANN_MIN_ITEMS"
MODEL_POLL_SECONDS_ENV = "MODEL_POLL_SECONDS"
ANSWER_CACHE_SIZE_ENV = "ANSWER_CACHE_SIZE"
# Same default as the trainer's (api.ann.ANN_MIN_ITEMS); kept literal so this module stays free of faiss.
DEFAULT_ANN_MIN_ITEMS = 50_000


@dataclass(frozen=True)
class ApiConfig:
    model_dir: Path
    default_k: int = 10
    max_k: int = 100
    max_batch_users: int = 100
    max_recent_items: int = 200
    max_exclude_items: int = 500
    # Large enough for a full batch with long ids; anything bigger is a client bug, answered with 413.
    max_body_bytes: int = 256 * 1024
    # Catalogues at least this large use the model's ANN index (when it has one); smaller ones are scored exactly.
    ann_min_items: int = DEFAULT_ANN_MIN_ITEMS
    # Personalised answers each worker keeps per model version (api/cache.py); 0 turns the cache off.
    answer_cache_size: int = 4_096
    # How often each uWSGI worker looks at the `current` pointer for a new version (api/swap.py); 0 disables.
    model_poll_seconds: float = 1.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ApiConfig":
        env = os.environ if environ is None else environ
        return cls(
            model_dir=Path(env.get(MODEL_DIR_ENV, CONTAINER_MODEL_DIR)),
            ann_min_items=int(env.get(ANN_MIN_ITEMS_ENV, DEFAULT_ANN_MIN_ITEMS)),
            model_poll_seconds=float(env.get(MODEL_POLL_SECONDS_ENV, "1.0")),
            answer_cache_size=int(env.get(ANSWER_CACHE_SIZE_ENV, "4096")),
        )
