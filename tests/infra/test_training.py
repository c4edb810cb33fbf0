"""The model lifecycle in AWS: interaction data, the training task and its writer access point, the schedule, failure
notifications, and the bootstrap run that publishes the first version before the service exists."""

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from api.contract import APP_GID, APP_UID, CONTAINER_MODEL_DIR, MODEL_DIR_ENV, WRITABLE_PATHS
from api.training.cli import argument_parser
from modules.errors import ConfigError
from modules.training import BOOTSTRAP_SCRIPT, TRAINER_CONTAINER, TRAINER_ENTRYPOINT, TrainingProps
from tests.infra.conftest import IMAGE_TAG
from tests.infra.helpers import Synth, containers, named, only, ref, resources, role_policy


def training_task(stack: Synth) -> dict[str, Any]:
    return named(stack, "aws_ecs_task_definition", "training_task-definition")


def trainer(stack: Synth) -> dict[str, Any]:
    return containers(stack, training_task(stack))[TRAINER_CONTAINER]


def test_interaction_bucket_is_private_encrypted_versioned_tls_only_and_expires(dev: Synth) -> None:
    bucket = ref(dev, "aws_s3_bucket", "data_interactions")

    def one(kind: str) -> dict[str, Any]:
        [found] = [r for r in resources(dev, kind).values() if r["bucket"] == bucket]
        return found

    assert all(
        one("aws_s3_bucket_public_access_block")[k] is True for k in ("block_public_acls", "block_public_policy")
    )
    rule = one("aws_s3_bucket_server_side_encryption_configuration")["rule"][0]
    assert rule["apply_server_side_encryption_by_default"] == {
        "sse_algorithm": "aws:kms",
        "kms_master_key_id": ref(dev, "aws_kms_key", "data_key", "arn"),
    }
    assert one("aws_s3_bucket_versioning")["versioning_configuration"] == {"status": "Enabled"}
    deny = json.loads(one("aws_s3_bucket_policy")["policy"])["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    [lifecycle] = one("aws_s3_bucket_lifecycle_configuration")["rule"]
    assert lifecycle["expiration"] == [{"days": 730}]
    assert (
        dev["output"]["interactions_uri"]["value"]
        == f"s3://{ref(dev, 'aws_s3_bucket', 'data_interactions', 'bucket')}/interactions/"
    )


def test_training_task_is_sized_from_the_config_and_runs_the_trainer_image(dev: Synth) -> None:
    task = training_task(dev)
    assert task["family"] == "recsys-dev-train"
    assert (task["cpu"], task["memory"]) == ("2048", "8192")
    assert task["requires_compatibilities"] == ["FARGATE"] and task["network_mode"] == "awsvpc"
    container = trainer(dev)
    repository = ref(dev, "aws_ecr_repository", "registry_app", "repository_url")
    assert container["image"] == f"{repository}:{IMAGE_TAG}-train"
    assert container["entryPoint"] == TRAINER_ENTRYPOINT == ["python", "-m", "api.training"]
    bucket = ref(dev, "aws_s3_bucket", "data_interactions", "bucket")
    assert container["command"] == [
        "--interactions",
        f"s3://{bucket}/interactions/",
        "--model-dir",
        CONTAINER_MODEL_DIR,
        "--keep-versions",
        "5",
    ]
    assert {"name": MODEL_DIR_ENV, "value": CONTAINER_MODEL_DIR} in container["environment"]
    assert container["user"] == f"{APP_UID}:{APP_GID}" and container["readonlyRootFilesystem"] is True


def test_trainer_writes_through_its_own_access_point_with_the_app_identity(dev: Synth) -> None:
    writer = named(dev, "aws_efs_access_point", "writer-access-point")
    reader = named(dev, "aws_efs_access_point", "storage_access-point")
    assert writer["root_directory"] == reader["root_directory"]  # same /models directory, same creation info
    assert writer["posix_user"] == reader["posix_user"] == {"uid": APP_UID, "gid": APP_GID}
    volumes = {v["name"]: v for v in training_task(dev)["volume"]}
    efs = volumes["models"]["efs_volume_configuration"]
    assert efs["transit_encryption"] == "ENABLED"
    assert efs["authorization_config"] == {
        "access_point_id": ref(dev, "aws_efs_access_point", "writer-access-point"),
        "iam": "ENABLED",
    }
    mounts = {m["containerPath"]: m for m in trainer(dev)["mountPoints"]}
    assert mounts[CONTAINER_MODEL_DIR] == {
        "sourceVolume": "models",
        "containerPath": CONTAINER_MODEL_DIR,
        "readOnly": False,
    }
    assert {p for p, m in mounts.items() if not m["readOnly"]} == {CONTAINER_MODEL_DIR, *WRITABLE_PATHS}
    assert all(set(volumes[mounts[p]["sourceVolume"]]) == {"name"} for p in WRITABLE_PATHS)


def test_only_the_trainer_may_write_and_only_through_its_access_point(stacks: dict[str, Synth]) -> None:
    for stack in stacks.values():
        writers = [
            (name, s)
            for name, config in resources(stack, "aws_iam_role_policy").items()
            for s in json.loads(config["policy"])["Statement"]
            if "elasticfilesystem:ClientWrite" in s["Action"]
        ]
        [(name, write)] = writers
        assert "training_task-policy" in name
        assert write["Condition"] == {
            "StringEquals": {
                "elasticfilesystem:AccessPointArn": ref(stack, "aws_efs_access_point", "writer-access-point", "arn")
            }
        }


def test_trainer_role_reads_the_interaction_prefix_and_nothing_else(dev: Synth) -> None:
    statements = {s["Sid"]: s for s in role_policy(dev, "training_task-policy")}
    bucket = ref(dev, "aws_s3_bucket", "data_interactions", "arn")
    assert statements["ListInteractions"]["Resource"] == [bucket]
    assert statements["ListInteractions"]["Condition"] == {"StringLike": {"s3:prefix": ["interactions/*"]}}
    assert statements["ReadInteractions"]["Action"] == ["s3:GetObject"]
    assert statements["ReadInteractions"]["Resource"] == [f"{bucket}/interactions/*"]
    assert statements["DecryptInteractions"]["Resource"] == [ref(dev, "aws_kms_key", "data_key", "arn")]
    actions = {a for s in statements.values() for a in s["Action"]}
    assert actions == {
        "s3:ListBucket",
        "s3:GetObject",
        "kms:Decrypt",
        "elasticfilesystem:ClientMount",
        "elasticfilesystem:ClientWrite",
    }


def test_trainer_logs_json_to_its_own_group(dev: Synth) -> None:
    config = trainer(dev)["logConfiguration"]
    assert config["logDriver"] == "awslogs"
    assert config["options"]["awslogs-group"] == ref(dev, "aws_cloudwatch_log_group", "training_logs", "name")
    assert config["options"]["mode"] == "blocking"
    group = named(dev, "aws_cloudwatch_log_group", "training_logs")
    assert group["name"] == "/recsys-dev/training" and group["kms_key_id"].startswith("${aws_kms_key.")


def test_schedule_runs_the_training_task_in_the_protected_subnets(dev: Synth, prod: Synth) -> None:
    schedule = only(dev, "aws_scheduler_schedule")
    assert schedule["schedule_expression"] == "cron(0 3 ? * MON *)"
    assert only(prod, "aws_scheduler_schedule")["schedule_expression"] == "cron(0 2 * * ? *)"
    assert schedule["schedule_expression_timezone"] == "UTC"
    target = schedule["target"]
    assert target["arn"] == ref(dev, "aws_ecs_cluster", "cluster", "arn")
    ecs = target["ecs_parameters"]
    assert ecs["task_definition_arn"] == ref(dev, "aws_ecs_task_definition", "training_task-definition", "arn")
    assert ecs["launch_type"] == "FARGATE"
    network = ecs["network_configuration"]
    assert network["assign_public_ip"] is False
    assert network["security_groups"] == [ref(dev, "aws_security_group", "security-groups_training")]
    protected = sorted(f"${{aws_subnet.{k}.id}}" for k in resources(dev, "aws_subnet") if "protected" in k)
    assert sorted(network["subnets"]) == protected


def test_scheduler_role_runs_only_this_family_and_passes_only_its_roles(dev: Synth) -> None:
    statements = {s["Sid"]: s for s in role_policy(dev, "scheduler-policy")}
    run = statements["RunTrainingTask"]
    family = ref(dev, "aws_ecs_task_definition", "training_task-definition", "arn_without_revision")
    assert (run["Action"], run["Resource"]) == (["ecs:RunTask"], [f"{family}:*"])
    assert run["Condition"] == {"ArnEquals": {"ecs:cluster": ref(dev, "aws_ecs_cluster", "cluster", "arn")}}
    passing = statements["PassTrainingRoles"]
    assert passing["Resource"] == [
        ref(dev, "aws_iam_role", "training_execution-role", "arn"),
        ref(dev, "aws_iam_role", "training_task-role", "arn"),
    ]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    key = ref(dev, "aws_kms_key", "scheduler-key", "arn")
    assert statements["DecryptSchedule"]["Resource"] == [key]
    assert only(dev, "aws_scheduler_schedule")["kms_key_arn"] == key
    trust = json.loads(named(dev, "aws_iam_role", "scheduler-role")["assume_role_policy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}


def test_schedule_can_be_switched_off(stacks: dict[str, Synth]) -> None:
    off = stacks["https"]
    assert resources(off, "aws_scheduler_schedule") == {}
    assert "training_schedule_name" not in off["output"]
    assert resources(off, "terraform_data"), "the bootstrap run does not depend on the schedule"


def test_failed_training_runs_notify_the_topic(dev: Synth) -> None:
    rules = {r["name"]: json.loads(r["event_pattern"]) for r in resources(dev, "aws_cloudwatch_event_rule").values()}
    cluster = ref(dev, "aws_ecs_cluster", "cluster", "arn")
    failed = rules["recsys-dev-training-failed"]
    assert failed["detail-type"] == ["ECS Task State Change"]
    assert failed["detail"]["clusterArn"] == [cluster]
    assert failed["detail"]["group"] == ["family:recsys-dev-train"]
    assert failed["detail"]["lastStatus"] == ["STOPPED"]
    assert failed["detail"]["containers"] == {"name": [TRAINER_CONTAINER], "exitCode": [{"anything-but": 0}]}
    assert rules["recsys-dev-training-not-started"]["detail"]["stopCode"] == ["TaskFailedToStart"]
    topic = ref(dev, "aws_sns_topic", "topic", "arn")
    for target in resources(dev, "aws_cloudwatch_event_target").values():
        if "training" in target["rule"]:
            assert target["arn"] == topic


def test_bootstrap_run_trains_before_the_service_exists(prod: Synth) -> None:
    [(name, bootstrap)] = resources(prod, "terraform_data").items()
    service = only(prod, "aws_ecs_service")
    assert f"terraform_data.{name}" in service["depends_on"]
    depends = set(bootstrap["depends_on"])
    mount_targets = {f"aws_efs_mount_target.{k}" for k in resources(prod, "aws_efs_mount_target")}
    assert len(mount_targets) == 3 and mount_targets <= depends
    nfs_rules = {
        f"{kind}.{k}"
        for kind in ("aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule")
        for k in resources(prod, kind)
        if "nfs" in k
    }
    assert nfs_rules and nfs_rules <= depends
    assert bootstrap["triggers_replace"] == {
        "file_system": ref(prod, "aws_efs_file_system", "file-system"),
        "writer_access_point": ref(prod, "aws_efs_access_point", "writer-access-point"),
    }
    [provisioner] = bootstrap["provisioner"]
    env = provisioner["local-exec"]["environment"]
    assert env["TASK_DEFINITION"] == ref(prod, "aws_ecs_task_definition", "training_task-definition", "arn")
    assert env["SECURITY_GROUP"] == ref(prod, "aws_security_group", "security-groups_training")
    assert env["AWS_REGION"] == "eu-west-1"


def test_outputs_name_what_train_remote_needs(dev: Synth) -> None:
    assert {
        "cluster_name",
        "training_task_definition_arn",
        "training_security_group_id",
        "training_subnet_ids",
        "training_log_group",
        "efs_writer_access_point_id",
        "training_schedule_name",
    } <= set(dev["output"])


# The bootstrap script against a fake `aws` that replays ECS answers: the retry and exit-code logic, for real.
FAKE_AWS = """#!/bin/sh
echo "$*" >> "$CALLS"
case "$2" in
  run-task) echo "arn:aws:ecs:eu-west-1:123456789012:task/c/$(wc -l < "$CALLS" | tr -d ' ')" ;;
  describe-tasks)
    n=$(cat "$STATE_COUNTER" 2>/dev/null || echo 0); echo $((n + 1)) > "$STATE_COUNTER"
    sed -n "$((n + 1))p" "$STATES" ;;
esac
"""


def run_bootstrap(
    tmp_path: Path, states: list[str], attempts: int = 3
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    fake = tmp_path / "bin" / "aws"
    fake.parent.mkdir()
    fake.write_text(FAKE_AWS)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "states").write_text("".join(f"{s}\n" for s in states))
    env = {
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
        "CALLS": str(tmp_path / "calls"),
        "STATES": str(tmp_path / "states"),
        "STATE_COUNTER": str(tmp_path / "counter"),
        "CLUSTER": "c",
        "TASK_DEFINITION": "td",
        "SUBNETS": "subnet-a,subnet-b",
        "SECURITY_GROUP": "sg-1",
        "STARTED_BY": "bootstrap",
        "LOG_GROUP": "/recsys-dev/training",
        "ATTEMPTS": str(attempts),
        "RETRY_SECONDS": "0",
        "POLL_SECONDS": "0",
        "DEADLINE_SECONDS": "60",
    }
    result = subprocess.run(
        ["/bin/sh", "-c", BOOTSTRAP_SCRIPT], check=False, env=env, capture_output=True, text=True, timeout=30
    )
    return result, (tmp_path / "calls").read_text().splitlines()


def test_bootstrap_waits_for_the_trainer_and_succeeds_on_exit_zero(tmp_path: Path) -> None:
    result, calls = run_bootstrap(
        tmp_path, ["PROVISIONING None None", "RUNNING None None", "STOPPED EssentialContainerExited 0"]
    )
    assert result.returncode == 0, result.stderr
    assert "first model version is published" in result.stdout
    [run] = [c for c in calls if c.startswith("ecs run-task")]
    assert "awsvpcConfiguration={subnets=[subnet-a,subnet-b],securityGroups=[sg-1],assignPublicIp=DISABLED}" in run


def test_bootstrap_retries_a_task_that_did_not_start(tmp_path: Path) -> None:
    # e.g. a new mount target's DNS name not resolvable yet
    result, calls = run_bootstrap(tmp_path, ["STOPPED TaskFailedToStart None", "STOPPED EssentialContainerExited 0"])
    assert result.returncode == 0, result.stderr
    assert len([c for c in calls if c.startswith("ecs run-task")]) == 2


@pytest.mark.parametrize(
    "states",
    [
        ["STOPPED EssentialContainerExited 1"],
        ["STOPPED TaskFailedToStart None", "STOPPED TaskFailedToStart None"],
    ],
)
def test_bootstrap_fails_the_apply_when_training_fails(tmp_path: Path, states: list[str]) -> None:
    result, _ = run_bootstrap(tmp_path, states, attempts=2)
    assert result.returncode == 1
    assert "/recsys-dev/training" in result.stderr


def test_the_trainer_command_is_one_the_training_cli_accepts(dev: Synth) -> None:
    # The infrastructure cannot import the trainer (import-linter); the test holds the two sides together.
    args = argument_parser().parse_args(trainer(dev)["command"])
    assert str(args.model_dir) == CONTAINER_MODEL_DIR
    assert args.keep_versions == 5
    assert args.interactions.endswith("/interactions/")


def test_training_props_refuse_a_size_or_architecture_fargate_does_not_run() -> None:
    with pytest.raises(ConfigError) as raised:
        TrainingProps(
            name="recsys-test",
            image="x",
            repository_arn="x",
            cluster_arn="x",
            subnet_ids=("subnet",),
            security_group_id="x",
            file_system_id="x",
            file_system_arn="x",
            writer_access_point_id="x",
            writer_access_point_arn="x",
            data_uri="s3://bucket/interactions/",
            data_bucket_arn="x",
            data_prefix="interactions/",
            data_key_arn="x",
            log_kms_key_arn="x",
            topic_arn="x",
            cpu=2048,
            memory=1024,
            cpu_architecture="arm",
        )
    assert "TrainingProps.memory" in str(raised.value)
    assert "TrainingProps.cpu_architecture" in str(raised.value)
