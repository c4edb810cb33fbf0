"""Stack-wide properties: tagging, state backend, least-privilege policies, one snapshot per stack."""

import json
import os
from pathlib import Path

import pytest

from tests.infra.helpers import Synth, only, policy_documents

SNAPSHOTS = Path(__file__).parent / "snapshots"


def test_every_resource_is_tagged_with_project_environment_and_tool(dev: Synth) -> None:
    provider = dev["provider"]["aws"][0]
    assert provider["default_tags"] == [
        {"tags": {"project": "recsys-fargate", "environment": "dev", "managed-by": "cdktf"}}
    ]
    assert provider["region"] == "eu-west-1"


def test_state_is_local_by_default_and_s3_with_a_lockfile_when_configured(dev: Synth, stacks: dict[str, Synth]) -> None:
    assert dev["terraform"]["backend"] == {"local": {"path": "terraform.recsys-dev.tfstate"}}
    s3 = stacks["https"]["terraform"]["backend"]["s3"]
    assert s3["use_lockfile"] is True and s3["encrypt"] is True
    assert s3["bucket"] == "acme-tf-state"


def test_no_policy_grants_a_wildcard_action(stacks: dict[str, Synth]) -> None:
    for stack in stacks.values():
        docs = policy_documents(stack)
        assert docs, "no policy documents found: the query is broken"
        for doc in docs:
            for statement in doc["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert not [a for a in actions if a == "*" or a.endswith(":*")], (doc["kind"], statement)


def test_every_kms_key_rotates(stacks: dict[str, Synth]) -> None:
    for stack in stacks.values():
        keys = stack["resource"]["aws_kms_key"].values()
        assert keys and all(k["enable_key_rotation"] is True for k in keys)


def test_policies_are_plain_json_visible_to_checkov(dev: Synth) -> None:
    # Fn.jsonencode would synthesize as a "${jsonencode(...)}" expression that checkov cannot read.
    assert "jsonencode" not in json.dumps(dev)
    assert only(dev, "aws_efs_file_system_policy")["policy"].startswith("{")


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_stack_matches_its_snapshot(stacks: dict[str, Synth], name: str) -> None:
    path = SNAPSHOTS / f"recsys-{name}.json"
    actual = json.dumps(stacks[name], indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(actual)
    assert path.exists(), f"{path} missing: run UPDATE_SNAPSHOTS=1 make pytest and review the diff"
    assert actual == path.read_text(), f"recsys-{name} changed: review, then UPDATE_SNAPSHOTS=1 make pytest"
