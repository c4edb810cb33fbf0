"""Log destinations: private encrypted buckets with lifecycles, retention-bound encrypted log groups."""

import json
from typing import Any

from tests.infra.helpers import Synth, named, ref, resources


def bucket_ref(stack: Synth, fragment: str) -> str:
    return ref(stack, "aws_s3_bucket", fragment)


def for_bucket(stack: Synth, kind: str, fragment: str) -> dict[str, Any]:
    target = bucket_ref(stack, fragment)
    matches = [r for r in resources(stack, kind).values() if r["bucket"] == target]
    assert len(matches) == 1, f"{kind} for {fragment}: {len(matches)}"
    return matches[0]


def test_both_buckets_block_all_public_access_and_enforce_ownership(dev: Synth) -> None:
    for fragment in ("app-logs", "alb-logs"):
        block = for_bucket(dev, "aws_s3_bucket_public_access_block", fragment)
        assert all(
            block[k] is True
            for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
        )
        ownership = for_bucket(dev, "aws_s3_bucket_ownership_controls", fragment)
        assert ownership["rule"] == {"object_ownership": "BucketOwnerEnforced"}


def test_app_logs_are_kms_encrypted_and_alb_logs_use_sse_s3_as_alb_requires(dev: Synth) -> None:
    app = for_bucket(dev, "aws_s3_bucket_server_side_encryption_configuration", "app-logs")["rule"]
    alb = for_bucket(dev, "aws_s3_bucket_server_side_encryption_configuration", "alb-logs")["rule"]
    assert app[0]["apply_server_side_encryption_by_default"]["sse_algorithm"] == "aws:kms"
    assert app[0]["bucket_key_enabled"] is True
    assert alb[0]["apply_server_side_encryption_by_default"]["sse_algorithm"] == "AES256"


def test_buckets_refuse_requests_without_tls(dev: Synth) -> None:
    for fragment in ("app-logs", "alb-logs"):
        doc = json.loads(for_bucket(dev, "aws_s3_bucket_policy", fragment)["policy"])
        deny = next(s for s in doc["Statement"] if s["Effect"] == "Deny")
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny["Principal"] == {"AWS": "*"}


def test_alb_can_deliver_access_logs(dev: Synth) -> None:
    doc = json.loads(for_bucket(dev, "aws_s3_bucket_policy", "alb-logs")["policy"])
    principals = [s["Principal"] for s in doc["Statement"] if s["Effect"] == "Allow"]
    assert {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"} in principals
    assert any("aws_elb_service_account" in str(p.get("AWS", "")) for p in principals)


def test_app_logs_move_to_cheaper_storage_then_expire(dev: Synth) -> None:
    rule = for_bucket(dev, "aws_s3_bucket_lifecycle_configuration", "app-logs")["rule"][0]
    assert [(t["days"], t["storage_class"]) for t in rule["transition"]] == [(30, "STANDARD_IA"), (90, "GLACIER_IR")]
    assert rule["expiration"][0]["days"] == 365
    assert rule["abort_incomplete_multipart_upload"][0]["days_after_initiation"] == 1


def test_error_and_router_groups_keep_90_days_encrypted(dev: Synth) -> None:
    for fragment in ("logs_errors", "logs_router"):
        group = named(dev, "aws_cloudwatch_log_group", fragment)
        assert group["retention_in_days"] == 90
        assert group["kms_key_id"] == ref(dev, "aws_kms_key", "logs_key", "arn")


def test_logs_key_lets_cloudwatch_logs_of_this_account_only_use_it(dev: Synth) -> None:
    doc = json.loads(named(dev, "aws_kms_key", "logs_key")["policy"])
    logs = next(s for s in doc["Statement"] if s.get("Principal", {}).get("Service", "").startswith("logs."))
    assert "kms:EncryptionContext:aws:logs:arn" in logs["Condition"]["ArnLike"]
