"""The router's side of the cross-layer contract, read from logging/contract.json (its single definition).

The app's side is `api.contract`, imported directly. `logging/` is not a Python package (it would shadow the
standard library's logging module), so the router contract is data that both the image tests and this module read.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

ROUTER_CONTRACT_FILE = Path(__file__).resolve().parent.parent / "logging" / "contract.json"
# The router's custom Fluent Bit config: its [SERVICE] Grace is how long Fluent Bit keeps flushing after SIGTERM,
# which the router container's stopTimeout must exceed. Read here, never retyped.
ROUTER_CONFIG_FILE = ROUTER_CONTRACT_FILE.parent / "extra.conf"


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
    grace_seconds: int


def service_grace_seconds(config_text: str) -> int:
    """The `Grace` of the [SERVICE] section of a classic-format Fluent Bit config (Fluent Bit's default: 5)."""
    section = ""
    for raw in config_text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]").strip().upper()
            continue
        key, _, value = line.replace("\t", " ").partition(" ")
        if section == "SERVICE" and key.lower() == "grace":
            if not re.fullmatch(r"\d+", value.strip()):
                raise ValueError(f"{ROUTER_CONFIG_FILE}: Grace {value.strip()!r} is not a whole number of seconds")
            return int(value.strip())
    return 5


def router_contract() -> RouterContract:
    raw = json.loads(ROUTER_CONTRACT_FILE.read_text())
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
        grace_seconds=service_grace_seconds(ROUTER_CONFIG_FILE.read_text()),
    )


ROUTER = router_contract()
