"""A small synthetic model for the bench tools' tests, published once per session."""

from pathlib import Path

import pytest

from api.model.format import publish_model
from bench.model import synthetic_arrays


@pytest.fixture(scope="session")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    metadata = {"created_at": "2026-01-01T00:00:00+00:00", "algorithm": {"name": "synthetic", "parameters": {}}}
    publish_model(root, "v1", synthetic_arrays(items=2_000, users=500, factors=8), metadata)
    return root
