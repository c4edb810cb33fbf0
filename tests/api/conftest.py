"""Shared fixtures: one tiny synthetic data set and model per session, and a test client held to the OpenAPI doc."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.serving.app import create_app
from api.serving.config import ApiConfig
from api.training.cli import AlsParameters, TrainResult, train
from api.training.synthetic import SyntheticSpec, generate, write
from tests.api.openapi_client import OpenApiCheckingClient

TINY = SyntheticSpec(users=1_500, items=600, segments=8, mean_interactions=20.0, seed=11)
TINY_ALS = AlsParameters(factors=32, iterations=10)


@pytest.fixture(scope="session")
def interactions_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "interactions.parquet"
    write(generate(TINY), path)
    return path


@pytest.fixture(scope="session")
def trained(interactions_file: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    # Pinned: with the default "auto" the family would follow which model wins on validation.
    return train(interactions_file, tmp_path_factory.mktemp("models"), TINY_ALS, version="v1", family="als")


@pytest.fixture(scope="session")
def item_item_trained(interactions_file: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """An item-item (EASE) version of the same data, in its own model directory."""
    return train(interactions_file, tmp_path_factory.mktemp("models"), TINY_ALS, version="ii1", family="item_item")


@pytest.fixture(scope="session")
def model_root(trained: TrainResult) -> Path:
    return trained.version_dir.parent


@pytest.fixture(scope="session")
def config(model_root: Path) -> ApiConfig:
    return ApiConfig(model_dir=model_root)


@pytest.fixture(scope="session")
def app(config: ApiConfig) -> Flask:
    application = create_app(config)
    application.test_client_class = OpenApiCheckingClient
    return application


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as test_client:
        yield test_client
