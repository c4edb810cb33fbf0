"""The Fargate task: app + FireLens router, read-only EFS model mount, least-privilege roles."""

import configparser
import posixpath
from pathlib import Path

import botocore.session
from botocore.validate import ParamValidator

from api.contract import (
    APP_GID,
    APP_PORT,
    APP_UID,
    CONTAINER_MODEL_DIR,
    LISTEN_BACKLOG,
    MODEL_DIR_ENV,
    SHUTDOWN_GRACE_SECONDS,
    WORKER_MERCY_SECONDS,
    WRITABLE_PATHS,
)
from modules.router_contract import ROUTER
from tests.infra.conftest import IMAGE_TAG
from tests.infra.helpers import Synth, containers, ref, role_policy, serving_task

ROOT = Path(__file__).resolve().parents[2]
UWSGI_INI = ROOT / "api" / "uwsgi.ini"
# ECS Exec's SSM agent writes here; with a read-only root these must be volumes too (root-owned is fine: the agent
# runs as root).
EXEC_AGENT_PATHS = {"/var/lib/amazon", "/var/log/amazon"}


def test_fargate_task_size_platform_and_network_mode(dev: Synth) -> None:
    task = serving_task(dev)
    assert (task["cpu"], task["memory"]) == ("2048", "4096")
    assert task["requires_compatibilities"] == ["FARGATE"]
    assert task["network_mode"] == "awsvpc"
    assert task["runtime_platform"] == {"operating_system_family": "LINUX", "cpu_architecture": "X86_64"}


def test_container_definitions_are_valid_for_the_ecs_api(dev: Synth, prod: Synth) -> None:
    shape = botocore.session.get_session().get_service_model("ecs").operation_model("RegisterTaskDefinition")
    for stack in (dev, prod):
        params = {"family": "x", "containerDefinitions": list(containers(stack).values())}
        report = ParamValidator().validate(params, shape.input_shape)
        assert not report.has_errors(), report.generate_report()


def test_app_runs_the_commit_image_as_the_app_user_on_a_read_only_root(dev: Synth) -> None:
    app = containers(dev)[ROUTER.app_container_name]
    assert app["image"] == f"{ref(dev, 'aws_ecr_repository', 'registry_app', 'repository_url')}:{IMAGE_TAG}"
    assert app["user"] == f"{APP_UID}:{APP_GID}"
    assert app["readonlyRootFilesystem"] is True
    assert app["essential"] is True


def test_app_listens_on_the_contract_port_and_finds_its_model(dev: Synth) -> None:
    app = containers(dev)[ROUTER.app_container_name]
    assert app["portMappings"] == [{"containerPort": APP_PORT, "hostPort": APP_PORT, "protocol": "tcp"}]
    assert {"name": MODEL_DIR_ENV, "value": CONTAINER_MODEL_DIR} in app["environment"]
    assert "APP_BIND" not in {e["name"] for e in app["environment"]}


def test_models_are_mounted_read_only_and_exactly_the_contract_paths_are_writable(dev: Synth) -> None:
    app = containers(dev)[ROUTER.app_container_name]
    mounts = {m["containerPath"]: m for m in app["mountPoints"]}
    assert mounts[CONTAINER_MODEL_DIR]["readOnly"] is True
    writable = {path for path, m in mounts.items() if not m["readOnly"]}
    assert writable == set(WRITABLE_PATHS) | EXEC_AGENT_PATHS


def test_every_writable_path_is_a_task_scoped_bind_volume(dev: Synth) -> None:
    # A Fargate bind mount without a host path is task storage: an empty root-owned 0755 directory unless the image
    # declares a VOLUME there (then the image's content, owner and mode are copied in). The image side (VOLUME
    # owned by APP_UID) is held by the image tests; here every contract path must be such a volume.
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/bind-mounts.html
    task = serving_task(dev)
    volumes = {v["name"]: v for v in task["volume"]}
    app = containers(dev)[ROUTER.app_container_name]
    source = {m["containerPath"]: m["sourceVolume"] for m in app["mountPoints"]}
    for path in WRITABLE_PATHS:
        assert path in source, f"{path} (api.contract.WRITABLE_PATHS) is not mounted in the app container"
        volume = volumes[source[path]]
        assert set(volume) == {"name"}, f"{path}: expected a plain bind volume, got {volume}"


def test_efs_volume_uses_tls_the_access_point_and_iam(dev: Synth) -> None:
    volumes = {v["name"]: v for v in serving_task(dev)["volume"]}
    efs = volumes["models"]["efs_volume_configuration"]
    assert efs["file_system_id"] == ref(dev, "aws_efs_file_system", "file-system")
    assert efs["transit_encryption"] == "ENABLED"
    assert efs["authorization_config"] == {
        "access_point_id": ref(dev, "aws_efs_access_point", "storage_access-point"),
        "iam": "ENABLED",
    }


def test_app_logs_through_firelens_and_waits_for_a_healthy_router(dev: Synth) -> None:
    app = containers(dev)[ROUTER.app_container_name]
    assert app["logConfiguration"]["logDriver"] == "awsfirelens"
    assert app["dependsOn"] == [{"containerName": "log-router", "condition": "HEALTHY"}]


def test_app_health_check_probes_liveness_after_the_model_load(dev: Synth) -> None:
    check = containers(dev)[ROUTER.app_container_name]["healthCheck"]
    assert check["command"] == ["CMD", "python", "-m", "api.serving.healthcheck"]
    assert check["startPeriod"] == 60
    assert check["timeout"] < check["interval"]


def uwsgi_mercies() -> list[int]:
    ini = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=(";", "#"))
    ini.read_string(UWSGI_INI.read_text())
    return [int(ini["uwsgi"][key]) for key in ("reload-mercy", "worker-reload-mercy")]


def test_uwsgi_worker_mercy_is_the_contract_value() -> None:
    assert max(uwsgi_mercies()) <= WORKER_MERCY_SECONDS, "raise WORKER_MERCY_SECONDS in api/contract.py too"


def test_app_stop_timeout_covers_the_drain_and_the_worker_mercy(dev: Synth) -> None:
    # Fargate sends SIGKILL when stopTimeout ends (default 30 s, at most 120 s):
    # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html
    # The drain of queued requests is bounded by SHUTDOWN_GRACE_SECONDS, then each worker gets its mercy.
    stop_timeout = containers(dev)[ROUTER.app_container_name]["stopTimeout"]
    worst_case = SHUTDOWN_GRACE_SECONDS + max(uwsgi_mercies())
    assert worst_case < stop_timeout <= 120


def test_the_task_lets_uwsgi_listen_with_the_contract_backlog(dev: Synth, prod: Synth) -> None:
    # uWSGI exits at start when its `listen` exceeds net.core.somaxconn; uwsgi.ini is held to LISTEN_BACKLOG by
    # tests/api/test_serving_config.py. Only one container sets systemControls: in awsvpc they apply task-wide.
    for stack in (dev, prod):
        task = containers(stack)
        assert task[ROUTER.app_container_name]["systemControls"] == [
            {"namespace": "net.core.somaxconn", "value": str(LISTEN_BACKLOG)}
        ]
        assert [name for name, container in task.items() if "systemControls" in container] == [
            ROUTER.app_container_name
        ]


def test_router_outlives_its_drain_grace_and_exit(dev: Synth) -> None:
    # The router's own stop (entrypoint hold, Fluent Bit's Grace, exit) is logging/contract.json's
    # min_stop_timeout_seconds, which tests/logging holds to the entrypoint and extra.conf.
    router = containers(dev)["log-router"]
    assert ROUTER.min_stop_timeout_seconds < router["stopTimeout"] <= 120
    assert ROUTER.min_stop_timeout_seconds >= ROUTER.drain_timeout_seconds + ROUTER.grace_seconds


def test_app_log_delivery_is_non_blocking_with_a_sized_buffer(dev: Synth) -> None:
    # Chosen on purpose (issue 16): a stalled router must not block the workers' stdout writes. Since June 2025
    # ECS defaults to non-blocking unless the account setting says otherwise; the task definition pins it.
    # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_LogConfiguration.html
    options = containers(dev)[ROUTER.app_container_name]["logConfiguration"]["options"]
    assert options["mode"] == "non-blocking"
    size = options["max-buffer-size"]
    assert size.endswith("m") and 4 <= int(size[:-1]) <= 256, size


def test_router_is_a_firelens_fluent_bit_with_our_baked_config(dev: Synth) -> None:
    router = containers(dev)["log-router"]
    assert router["essential"] is True
    assert router["firelensConfiguration"]["type"] == "fluentbit"
    options = router["firelensConfiguration"]["options"]
    assert options["config-file-type"] == "file"
    assert options["config-file-value"] == ROUTER.config_file
    assert router["memoryReservation"] > 0
    assert f":{ROUTER.http_port}{ROUTER.health_check_path}" in " ".join(router["healthCheck"]["command"])


def test_router_gets_exactly_the_environment_its_config_reads(dev: Synth) -> None:
    env = {e["name"]: e["value"] for e in containers(dev)["log-router"]["environment"]}
    assert sorted(env) == sorted(ROUTER.environment)
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["ERROR_LOG_GROUP_NAME"] == ref(dev, "aws_cloudwatch_log_group", "logs_errors", "name")
    assert env["LOG_BUCKET"] == ref(dev, "aws_s3_bucket", "app-logs", "bucket")


def test_router_buffers_on_a_writable_volume(dev: Synth) -> None:
    mounts = containers(dev)["log-router"]["mountPoints"]
    writable = [m["containerPath"] for m in mounts if not m["readOnly"]]
    for path in (ROUTER.store_dir, ROUTER.storage_path):
        assert any(posixpath.commonpath([path, w]) == w for w in writable), path


def test_router_own_logs_go_to_its_group_through_awslogs(dev: Synth) -> None:
    config = containers(dev)["log-router"]["logConfiguration"]
    assert config["logDriver"] == "awslogs"
    assert config["options"]["awslogs-group"] == ref(dev, "aws_cloudwatch_log_group", "logs_router", "name")
    assert config["options"]["awslogs-stream-prefix"]


def test_execution_role_pulls_only_our_images_and_writes_only_router_logs(dev: Synth) -> None:
    statements = {s["Sid"]: s for s in role_policy(dev, "task_execution-policy")}
    assert statements["PullOurImages"]["Resource"] == [
        ref(dev, "aws_ecr_repository", "registry_app", "arn"),
        ref(dev, "aws_ecr_repository", "registry_log-router", "arn"),
    ]
    assert statements["RouterOwnLogs"]["Resource"] == [
        f"{ref(dev, 'aws_cloudwatch_log_group', 'logs_router', 'arn')}:log-stream:*"
    ]


def test_task_role_mounts_only_through_the_access_point(dev: Synth) -> None:
    mount = next(s for s in role_policy(dev, "task_task-policy") if s["Sid"] == "MountModelsThroughAccessPoint")
    assert mount["Action"] == ["elasticfilesystem:ClientMount"]  # no ClientWrite: the mount is read-only
    assert mount["Condition"] == {
        "StringEquals": {
            "elasticfilesystem:AccessPointArn": ref(dev, "aws_efs_access_point", "storage_access-point", "arn")
        }
    }


def test_task_role_writes_errors_to_its_group_and_app_logs_under_the_prefix_only(dev: Synth) -> None:
    statements = {s["Sid"]: s for s in role_policy(dev, "task_task-policy")}
    error_group = ref(dev, "aws_cloudwatch_log_group", "logs_errors", "arn")
    assert statements["RouterWritesErrors"]["Resource"] == [error_group, f"{error_group}:log-stream:*"]
    bucket = ref(dev, "aws_s3_bucket", "app-logs", "arn")
    assert statements["RouterWritesAppLogs"]["Resource"] == [f"{bucket}/{ROUTER.s3_prefix}*"]
    assert statements["RouterWritesAppLogs"]["Action"] == ["s3:PutObject"]


def test_ecs_exec_audit_can_find_and_write_its_streams(dev: Synth) -> None:
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-exec.html (IAM permissions for logging)
    audit = next(s for s in role_policy(dev, "task_task-policy") if s["Sid"] == "EcsExecAudit")
    group = ref(dev, "aws_cloudwatch_log_group", "exec-audit", "arn")
    assert audit["Action"] == ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    assert audit["Resource"] == [group, f"{group}:log-stream:*"]


def test_star_resources_appear_only_where_aws_offers_nothing_narrower(dev: Synth) -> None:
    allowed = {
        "ecr:GetAuthorizationToken",
        "logs:DescribeLogGroups",
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
    }
    for fragment in (
        "task_execution-policy",
        "task_task-policy",
        "training_execution-policy",
        "training_task-policy",
        "scheduler-policy",
        "flow-log-policy",
    ):
        for statement in role_policy(dev, fragment):
            if "*" in statement["Resource"]:
                assert set(statement["Action"]) <= allowed, statement
