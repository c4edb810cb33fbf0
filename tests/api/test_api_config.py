"""Serving settings from the environment: defaults when unset, one clear error naming the variable when unusable."""

from pathlib import Path

import pytest

from api.contract import MODEL_DIR_ENV
from api.serving.config import (
    ANN_MIN_ITEMS_ENV,
    ANSWER_CACHE_BYTES_ENV,
    ANSWER_CACHE_SIZE_ENV,
    DEFAULT_ANN_MIN_ITEMS,
    DEFAULT_ANSWER_CACHE_BYTES,
    DEFAULT_ANSWER_CACHE_SIZE,
    DEFAULT_MODEL_POLL_SECONDS,
    MODEL_POLL_SECONDS_ENV,
    ApiConfig,
    SettingError,
)


def test_unset_variables_take_the_defaults() -> None:
    config = ApiConfig.from_env({MODEL_DIR_ENV: "/models"})
    assert config.model_dir == Path("/models")
    assert config.ann_min_items == DEFAULT_ANN_MIN_ITEMS
    assert config.answer_cache_size == DEFAULT_ANSWER_CACHE_SIZE
    assert config.answer_cache_bytes == DEFAULT_ANSWER_CACHE_BYTES
    assert config.model_poll_seconds == DEFAULT_MODEL_POLL_SECONDS


def test_set_variables_are_used() -> None:
    config = ApiConfig.from_env(
        {
            ANN_MIN_ITEMS_ENV: "10",
            ANSWER_CACHE_SIZE_ENV: "0",
            MODEL_POLL_SECONDS_ENV: "0.5",
            ANSWER_CACHE_BYTES_ENV: "7",
        },
    )
    assert (config.ann_min_items, config.answer_cache_size, config.model_poll_seconds) == (10, 0, 0.5)
    assert config.answer_cache_bytes == 7


@pytest.mark.parametrize(
    ("name", "raw", "kind"),
    [
        (ANSWER_CACHE_SIZE_ENV, "-1", "a whole number"),
        (ANSWER_CACHE_SIZE_ENV, "lots", "a whole number"),
        (ANSWER_CACHE_BYTES_ENV, "8MiB", "a whole number"),
        (ANN_MIN_ITEMS_ENV, "1.5", "a whole number"),
        (MODEL_POLL_SECONDS_ENV, "nan", "a number"),
        (MODEL_POLL_SECONDS_ENV, "soon", "a number"),
    ],
)
def test_an_unusable_value_names_the_variable_and_the_fix(name: str, raw: str, kind: str) -> None:
    with pytest.raises(SettingError) as error:
        ApiConfig.from_env({name: raw})
    message = str(error.value)
    assert message.startswith(f"{name}={raw!r} is not {kind} >= 0; set it to one (default ")
    assert message.endswith(") or unset it")
