"""The router's side of the cross-layer contract, read from logging/contract.json (its single definition).

The app's side is `api.contract`, imported directly. `logging/` is not a Python package (it would shadow the
standard library's logging module), so the router contract is data that both the image tests and this module read.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROUTER_CONTRACT_FILE = Path(__file__).resolve().parent.parent / "logging" / "contract.json"


@dataclass(frozen=True)
class RouterContract:
    config_file: str
    parsers_file: str
    environment: tuple[str, ...]
    store_dir: str
    storage_path: str
    s3_prefix: str
    app_container_name: str
    http_port: int
    health_check_path: str
    entrypoint: str
    base_image_command: str
    drain_timeout_seconds: int
    grace_seconds: int
    min_stop_timeout_seconds: int


def read_router_contract() -> dict[str, Any]:
    """The file as data: the one place that reads it (the router's tests check the image and config against it)."""
    raw: dict[str, Any] = json.loads(ROUTER_CONTRACT_FILE.read_text())
    return raw


def router_contract() -> RouterContract:
    raw = read_router_contract()
    return RouterContract(
        config_file=raw["config_file"],
        parsers_file=raw["parsers_file"],
        environment=tuple(raw["environment"]),
        store_dir=raw["store_dir"],
        storage_path=raw["storage_path"],
        s3_prefix=raw["s3_prefix"],
        app_container_name=raw["app_container_name"],
        http_port=int(raw["http_port"]),
        health_check_path=raw["health_check_path"],
        entrypoint=raw["entrypoint"],
        base_image_command=raw["base_image_command"],
        drain_timeout_seconds=int(raw["drain_timeout_seconds"]),
        grace_seconds=int(raw["grace_seconds"]),
        min_stop_timeout_seconds=int(raw["min_stop_timeout_seconds"]),
    )


ROUTER = router_contract()
