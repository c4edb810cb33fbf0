"""Every config problem is reported before any resource exists, by field, with its fix."""

import dataclasses
from typing import Any

import pytest

from modules.config import EnvironmentConfig, StateBackend
from modules.environments import environments
from modules.errors import ConfigError

TAG = "0123456789abcdef0123456789abcdef01234567"
DEV = environments(TAG)[0]


def test_shipped_environments_are_valid_and_named_per_environment() -> None:
    assert [c.stack_name for c in environments(TAG)] == ["recsys-dev", "recsys-prod"]


def test_production_spans_three_zones_with_a_nat_gateway_each() -> None:
    prod = environments(TAG)[1]
    assert len(prod.availability_zones) == 3
    assert prod.nat_per_az and prod.vpc_endpoints and prod.deletion_protection


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"name": "Prod_1"}, "name", "lowercase"),
        ({"region": "europe"}, "region", "not an AWS region"),
        ({"availability_zones": ("eu-west-1a",)}, "availability_zones", "at least 2"),
        ({"availability_zones": ("eu-west-1a", "eu-west-1a")}, "availability_zones", "listed twice"),
        ({"availability_zones": ("eu-west-1a", "us-east-1b")}, "availability_zones", "not a zone of eu-west-1"),
        ({"vpc_cidr": "10.0.0.0/8"}, "vpc_cidr", "/16 to /20"),
        ({"vpc_cidr": "8.8.0.0/16"}, "vpc_cidr", "private"),
        ({"vpc_cidr": "nonsense"}, "vpc_cidr", "not a CIDR"),
        ({"app_image_tag": "latest"}, "app_image_tag", "not a git commit hash"),
        ({"training_memory": 1024}, "training_memory", "not a Fargate size"),
        ({"training_schedule": "0 3 * * *"}, "training_schedule", "not a recurring EventBridge Scheduler"),
        ({"training_schedule": "cron(0 3 * * *)"}, "training_schedule", "not a recurring EventBridge Scheduler"),
        ({"interaction_expiration_days": 7}, "interaction_expiration_days", "under 30 days"),
        ({"waf_rate_limit": 5}, "waf_rate_limit", "outside the 10-2,000,000,000"),
        ({"router_image_tag": "v1.2"}, "router_image_tag", "not a git commit hash"),
        ({"desired_count": 50}, "desired_count", "outside min_count..max_count"),
        ({"min_count": 0}, "min_count", "below 1"),
        ({"task_cpu": 3000}, "task_cpu", "not a Fargate cpu size"),
        ({"task_memory": 1024}, "task_memory", "not allowed with 2048 cpu units"),
        ({"cpu_architecture": "arm"}, "cpu_architecture", "not a Fargate architecture"),
        ({"model_load_seconds": 5}, "model_load_seconds", "outside 10-600"),
        ({"alert_emails": ("oncall",)}, "alert_emails", "not an e-mail address"),
        ({"certificate_arn": "arn:aws:iam::1:cert"}, "certificate_arn", "not an ACM certificate ARN"),
        (
            {"certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"},
            "certificate_arn",
            "not in the stack's region",
        ),
        ({"domain_name": "recs.example.com"}, "domain_name", "without a certificate"),
        ({"ingress_cidrs": ()}, "ingress_cidrs", "no CIDR"),
        ({"ingress_cidrs": ("everyone",)}, "ingress_cidrs", "not a CIDR"),
        ({"log_retention_days": 100}, "log_retention_days", "retention CloudWatch Logs accepts"),
        ({"app_log_expiration_days": 30}, "app_log_expiration_days", "shorter than the 120 days"),
        ({"ecr_keep_images": 0}, "ecr_keep_images", "outside 1-1000"),
        ({"model_versions_kept": 1}, "model_versions_kept", "no version to roll back to"),
        ({"state_backend": StateBackend("Bad_Bucket", "x.tfstate", "eu-west-1")}, "state_backend.bucket", "S3"),
        ({"state_backend": StateBackend("state", "/abs", "eu-west-1")}, "state_backend.key", ".tfstate"),
    ],
)
def test_bad_value_is_rejected_naming_the_field_and_the_fix(change: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        dataclasses.replace(DEV, **change)
    text = str(raised.value)
    line = next(line for line in text.splitlines() if f".{field}:" in line)
    assert message in line
    assert "fix:" in line


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        dataclasses.replace(DEV, region="nowhere", task_cpu=3, alert_emails=("x",))
    fields = {field for field, _, _ in raised.value.problems}
    assert {"region", "task_cpu", "alert_emails", "availability_zones"} <= fields


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEV.desired_count = 9  # type: ignore[misc]


def test_construct_props_reject_bad_values_before_any_resource() -> None:
    from modules.network import NetworkProps

    with pytest.raises(ConfigError, match=r"NetworkProps\.availability_zones: 5 zones given"):
        NetworkProps("n", "10.0.0.0/16", tuple("abcde"), False, False, 90, "key")


def test_config_error_is_the_only_error_type_for_config() -> None:
    assert issubclass(ConfigError, ValueError)
    assert isinstance(EnvironmentConfig, type)
