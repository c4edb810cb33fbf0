"""Synthesizes the stacks once per pytest session: importing the provider bindings costs ~10-20 s."""

import dataclasses
import json
import os
from collections.abc import Iterator

import pytest

from tests.infra.helpers import Synth

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

IMAGE_TAG = "0123456789abcdef0123456789abcdef01234567"
CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="session")
def stacks() -> Iterator[dict[str, Synth]]:
    from cdktf import Testing

    from modules.config import StateBackend
    from modules.environments import environments
    from modules.stack import RecsysStack

    dev, prod = environments(IMAGE_TAG)
    https = dataclasses.replace(
        dev,
        name="https",
        certificate_arn=CERTIFICATE,
        domain_name="recs.example.com",
        state_backend=StateBackend(bucket="acme-tf-state", key="recsys/https.tfstate", region="eu-west-1"),
        # The switches a user may turn: scheduled training off, WAF on outside prod.
        training_schedule=None,
        waf=True,
        waf_rate_limit=500,
    )
    app = Testing.app()
    built = {config.name: RecsysStack(app, config) for config in (dev, prod, https)}
    yield {name: json.loads(Testing.synth(stack, run_validations=True)) for name, stack in built.items()}


@pytest.fixture(scope="session")
def dev(stacks: dict[str, Synth]) -> Synth:
    return stacks["dev"]


@pytest.fixture(scope="session")
def prod(stacks: dict[str, Synth]) -> Synth:
    return stacks["prod"]
