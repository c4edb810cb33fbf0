"""EFS: encrypted, elastic, reachable only from the tasks, TLS and IAM required, /models access point."""

import json

from api.contract import APP_GID, APP_UID
from tests.infra.helpers import Synth, named, only, ref, resources


def test_file_system_is_encrypted_with_a_rotating_kms_key(dev: Synth) -> None:
    fs = only(dev, "aws_efs_file_system")
    assert fs["encrypted"] is True
    assert fs["kms_key_id"] == ref(dev, "aws_kms_key", "storage_key", "arn")
    assert named(dev, "aws_kms_key", "storage_key")["enable_key_rotation"] is True


def test_elastic_throughput_so_scale_out_is_not_throttled(dev: Synth) -> None:
    assert only(dev, "aws_efs_file_system")["throughput_mode"] == "elastic"


def test_a_mount_target_in_every_protected_subnet(prod: Synth) -> None:
    targets = resources(prod, "aws_efs_mount_target").values()
    protected = {f"${{aws_subnet.{k}.id}}" for k in resources(prod, "aws_subnet") if "protected" in k}
    assert {t["subnet_id"] for t in targets} == protected


def test_nfs_is_admitted_only_from_the_serving_and_training_task_groups(dev: Synth) -> None:
    efs_sg = ref(dev, "aws_security_group", "storage_sg")
    rules = [
        r for r in resources(dev, "aws_vpc_security_group_ingress_rule").values() if r["security_group_id"] == efs_sg
    ]
    assert len(rules) == 2
    for rule in rules:
        assert (rule["from_port"], rule["to_port"], rule["ip_protocol"]) == (2049, 2049, "tcp")
        assert "cidr_ipv4" not in rule
    assert {r["referenced_security_group_id"] for r in rules} == {
        ref(dev, "aws_security_group", "security-groups_tasks"),
        ref(dev, "aws_security_group", "security-groups_training"),
    }


def test_access_point_roots_at_models_as_the_app_user(dev: Synth) -> None:
    ap = named(dev, "aws_efs_access_point", "storage_access-point")
    assert ap["root_directory"]["path"] == "/models"
    assert ap["posix_user"] == {"uid": APP_UID, "gid": APP_GID}
    creation = ap["root_directory"]["creation_info"]
    assert (creation["owner_uid"], creation["owner_gid"], creation["permissions"]) == (APP_UID, APP_GID, "0755")


def test_policy_denies_plain_nfs_and_anonymous_clients(dev: Synth) -> None:
    doc = json.loads(only(dev, "aws_efs_file_system_policy")["policy"])
    deny = next(s for s in doc["Statement"] if s["Effect"] == "Deny")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert "elasticfilesystem:ClientMount" in deny["Action"]
    allows = [s for s in doc["Statement"] if s["Effect"] == "Allow"]
    # Only account principals (IAM-authorized) are granted anything, so anonymous NFS clients get nothing.
    assert all(s["Principal"]["AWS"].endswith(":root") for s in allows)
    assert all(s["Condition"] == {"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}} for s in allows)


def test_backup_follows_the_environment(dev: Synth, prod: Synth) -> None:
    assert only(dev, "aws_efs_backup_policy")["backup_policy"]["status"] == "DISABLED"
    assert only(prod, "aws_efs_backup_policy")["backup_policy"]["status"] == "ENABLED"
