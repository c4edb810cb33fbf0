"""The emulator override and the second-plan judge, on small inputs (no moto, no terraform)."""

import json
from pathlib import Path
from typing import Any

import pytest

from tools import emulator


def stack(*kinds: str, data: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"resource": {k: {"x": {}} for k in kinds}, "data": {k: {"x": {}} for k in data}}


def test_every_resource_type_maps_to_an_endpoint_or_to_none() -> None:
    used = emulator.services_used(
        stack("aws_ecs_service", "aws_lb_listener", "aws_cloudwatch_event_rule", data=("aws_caller_identity",))
    )
    assert used == {"ecs", "elbv2", "events", "sts"}
    assert (
        emulator.services_used(stack(data=("aws_partition", "aws_elb_service_account", "aws_iam_policy_document")))
        == set()
    )
    assert emulator.service_of("aws_vpc_security_group_ingress_rule") == "ec2"
    assert emulator.service_of("aws_cloudwatch_log_group") == "logs"
    assert emulator.service_of("aws_cloudwatch_metric_alarm") == "cloudwatch"


def test_an_unknown_type_fails_instead_of_reaching_aws(tmp_path: Path) -> None:
    (tmp_path / "cdk.tf.json").write_text(json.dumps(stack("aws_glue_job")))
    with pytest.raises(emulator.UnmappedResourceError, match="aws_glue_job"):
        emulator.write_override(tmp_path, "http://127.0.0.1:1")
    assert not (tmp_path / emulator.OVERRIDE_FILE).exists()


def test_override_has_fake_credentials_skips_and_only_the_given_endpoint(tmp_path: Path) -> None:
    (tmp_path / "cdk.tf.json").write_text(json.dumps(stack("aws_s3_bucket")))
    path = emulator.write_override(tmp_path, "http://127.0.0.1:5555")
    assert path.name.endswith("_override.tf.json")  # Terraform merges it into cdk.tf.json
    (aws,) = json.loads(path.read_text())["provider"]["aws"]
    assert aws["access_key"] == aws["secret_key"] == "testing"
    for flag in (
        "skip_credentials_validation",
        "skip_metadata_api_check",
        "skip_region_validation",
        "s3_use_path_style",
    ):
        assert aws[flag] is True
    assert "skip_requesting_account_id" not in aws  # see override_document
    assert set(aws["endpoints"][0].values()) == {"http://127.0.0.1:5555"}
    assert set(aws["endpoints"][0]) == set(emulator.ENDPOINT_SERVICES)


def change(address: str, actions: list[str], before: Any, after: Any, unknown: Any = None) -> dict[str, Any]:
    return {
        "address": address,
        "change": {"actions": actions, "before": before, "after": after, "after_unknown": unknown},
    }


def test_changed_paths_compares_leaves_and_counts_unknowns() -> None:
    paths = emulator.changed_paths(
        change(
            "a.b",
            ["update"],
            {"x": 1, "tags": {}, "nested": [{"y": False, "z": "same"}]},
            {"x": 1, "tags": None, "nested": [{"y": True, "z": "same"}]},
            {"arn": True},
        )["change"]
    )
    assert paths == ["arn", "nested.0.y"]


def test_known_gap_updates_pass_and_anything_else_fails() -> None:
    gaps = {"aws_ecs_service.*": {"enable_execute_command": "not kept", "deployment_circuit_breaker": "not kept"}}
    plan = {
        "resource_changes": [
            change("data.aws_caller_identity.me", ["read"], None, {}),
            change("aws_vpc.v", ["no-op"], {"a": 1}, {"a": 1}),
            change(
                "aws_ecs_service.s",
                ["update"],
                {"enable_execute_command": False, "deployment_circuit_breaker": []},
                {"enable_execute_command": True, "deployment_circuit_breaker": [{"enable": True, "rollback": True}]},
            ),
        ]
    }
    (service,) = emulator.judge_plan(plan, gaps)
    assert emulator.acceptable(service)
    assert set(service.gaps) == {"enable_execute_command", "deployment_circuit_breaker.0.enable",
                                 "deployment_circuit_breaker.0.rollback"}  # fmt: skip

    drift = {"resource_changes": [change("aws_ecs_service.s", ["update"], {"desired_count": 1}, {"desired_count": 2})]}
    (unexplained,) = emulator.judge_plan(drift, gaps)
    assert not emulator.acceptable(unexplained)
    assert "desired_count: UNEXPECTED" in unexplained.describe()

    other = {"resource_changes": [change("aws_lb.a", ["update"], {"enable_execute_command": 0}, {"x": 1})]}
    assert not emulator.acceptable(emulator.judge_plan(other, gaps)[0])

    replaced = change(
        "aws_ecs_service.s", ["delete", "create"], {"enable_execute_command": 0}, {"enable_execute_command": 1}
    )
    replace = {"resource_changes": [replaced]}
    assert not emulator.acceptable(emulator.judge_plan(replace, gaps)[0])

    outputs = {"resource_changes": [], "output_changes": {"url": {"actions": ["update"]}}}
    assert not emulator.acceptable(emulator.judge_plan(outputs, gaps)[0])


def test_every_known_gap_says_why() -> None:
    for pattern, attributes in emulator.KNOWN_GAPS.items():
        assert pattern.startswith("aws_")
        for attribute, reason in attributes.items():
            assert attribute and len(reason) > 40, (pattern, attribute)
