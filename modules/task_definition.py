"""The Fargate task: the app container, the FireLens log router sidecar, the read-only EFS model mount, and the
execution and task roles with least privilege."""

import posixpath
from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from constructs import Construct

from api.contract import (
    APP_GID,
    APP_LOG_MAX_BUFFER_SIZE,
    APP_LOG_MODE,
    APP_PORT,
    APP_UID,
    CONTAINER_MODEL_DIR,
    HEALTHCHECK_COMMAND,
    LISTEN_BACKLOG,
    MODEL_DIR_ENV,
    SHUTDOWN_GRACE_SECONDS,
    WORKER_MERCY_SECONDS,
    WORKERS_ENV,
    WRITABLE_PATHS,
)
from modules.errors import Problems
from modules.fargate import (
    MODELS_VOLUME,
    bind_volumes,
    check_task_size,
    fargate_task_definition,
    models_volume,
    task_role,
    volume_name,
)
from modules.iam import AwsContext, policy, statement
from modules.router_contract import ROUTER

APP_CONTAINER = ROUTER.app_container_name
ROUTER_CONTAINER = "log-router"
ROUTER_MEMORY_RESERVATION_MIB = 64
# Fargate sends SIGKILL when a container's stopTimeout ends after SIGTERM: default 30 s, at most 120 s
# (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html, stopTimeout).
MAX_STOP_TIMEOUT_SECONDS = 120
# The app's worst-case stop: the drain of queued requests (bounded by SHUTDOWN_GRACE_SECONDS), then uWSGI's mercy
# for each worker's last request (WORKER_MERCY_SECONDS), then the master's exit and the last log lines written.
APP_STOP_MARGIN_SECONDS = 10
APP_STOP_TIMEOUT_SECONDS = SHUTDOWN_GRACE_SECONDS + WORKER_MERCY_SECONDS + APP_STOP_MARGIN_SECONDS
# Containers stop in reverse dependsOn order, so the router gets SIGTERM only after the app has exited
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/firelens-taskdef.html: the FireLens container stops
# after every container that uses it). The router's entrypoint then holds SIGTERM until rewrite_tag's emitter has
# drained, Fluent Bit flushes for its Grace and exits: logging/contract.json's min_stop_timeout_seconds. The margin
# covers the last S3 multipart upload of a slow network.
ROUTER_STOP_MARGIN_SECONDS = 15
ROUTER_STOP_TIMEOUT_SECONDS = ROUTER.min_stop_timeout_seconds + ROUTER_STOP_MARGIN_SECONDS
# Log back-pressure, decided explicitly (issue 16). The app writes one JSON line per request to stdout; in
# `blocking` mode a slow or stopped router blocks those writes and with them every uWSGI worker, so a logging
# problem becomes an outage. `non-blocking` keeps requests flowing and drops lines only when the buffer below is
# full. ECS made non-blocking the default in June 2025 unless the account setting `defaultLogDriverMode` says
# otherwise (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-account-settings.html); it is set here
# so that no account setting can change it silently
# (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_LogConfiguration.html, `mode`, `max-buffer-size`).
# Size: a 2-vCPU task peaks near 5,000 requests/s (make bench, liveness), one line of under 500 bytes each, so a
# router that stops reading for 5 s leaves about 12.5 MB queued; 25 MiB is twice that and a small share of the task.
# The values are the contract's (api/contract.py), which make bench's log back-pressure run also uses.
# ECS Exec's SSM agent writes its state and logs here; with a read-only root file system they must be volumes.
EXEC_AGENT_PATHS = ("/var/lib/amazon", "/var/log/amazon")
ROUTER_BUFFER_PATH = posixpath.commonpath([ROUTER.store_dir, ROUTER.storage_path])


@dataclass(frozen=True)
class AppTaskProps:
    """family: task definition family (also prefixes role names).
    app_image / router_image: full image references `<repository url>:<commit hash>`.
    cpu / memory: Fargate task size (default 2048 / 4096). cpu_architecture: X86_64 (default) or ARM64.
    workers: uWSGI workers (default: one per vCPU, since each worker runs one BLAS thread).
    model_load_seconds: the app's container health check gives it this long to load the model before counting
        failures.
    file_system_id / file_system_arn / access_point_id / access_point_arn: the model file system, mounted read-only
        at the app's model directory through the access point with TLS and IAM authorization.
    app_log_bucket_arn / log_kms_key_arn / error_log_group_arn / error_log_group_name / router_log_group_name:
        where the router writes (S3 under the contract prefix, CloudWatch for errors) and its own logs.
    exec_log_group_arn / exec_kms_key_arn: ECS Exec audit log group and session key.
    app_repository_arn / router_repository_arn: the only repositories the execution role may pull from.
    """

    family: str
    app_image: str
    router_image: str
    file_system_id: str
    file_system_arn: str
    access_point_id: str
    access_point_arn: str
    app_log_bucket: str
    app_log_bucket_arn: str
    log_kms_key_arn: str
    error_log_group_arn: str
    error_log_group_name: str
    router_log_group_arn: str
    router_log_group_name: str
    exec_log_group_arn: str
    exec_kms_key_arn: str
    app_repository_arn: str
    router_repository_arn: str
    model_load_seconds: int = 60
    cpu: int = 2048
    memory: int = 4096
    cpu_architecture: str = "X86_64"
    workers: int | None = None

    def __post_init__(self) -> None:
        p = Problems("AppTaskProps")
        check_task_size(p, self.cpu, self.memory, self.cpu_architecture)
        p.check(
            self.memory > ROUTER_MEMORY_RESERVATION_MIB * 4,
            "memory",
            "no room for the app next to the router",
            "give the task more memory",
        )
        p.check(self.workers is None or self.workers >= 1, "workers", f"{self.workers} < 1", "use 1 or more")
        for name, seconds in (("app", APP_STOP_TIMEOUT_SECONDS), ("router", ROUTER_STOP_TIMEOUT_SECONDS)):
            p.check(
                seconds <= MAX_STOP_TIMEOUT_SECONDS,
                "stopTimeout",
                f"the {name} container needs {seconds} s to stop, above Fargate's {MAX_STOP_TIMEOUT_SECONDS} s",
                "shorten SHUTDOWN_GRACE_SECONDS / WORKER_MERCY_SECONDS (api/contract.py) or the router's Grace",
            )
        p.raise_if_any()

    @property
    def effective_workers(self) -> int:
        return self.workers or max(1, self.cpu // 1024)


def app_container(props: AppTaskProps) -> dict[str, Any]:
    # Values ECS fills in on its own (cpu 0, readOnly false, hostPort, protocol) are written out, so that the
    # definition read back after apply equals this one and a second plan shows no diff. Empty lists and maps are
    # left out: the provider's comparison treats an omitted list as empty, but not an empty map or an empty
    # `secretOptions` next to a missing one.
    writable = [*WRITABLE_PATHS, *EXEC_AGENT_PATHS]
    return {
        "name": APP_CONTAINER,
        "image": props.app_image,
        "essential": True,
        "cpu": 0,
        "user": f"{APP_UID}:{APP_GID}",
        "readonlyRootFilesystem": True,
        "portMappings": [{"containerPort": APP_PORT, "hostPort": APP_PORT, "protocol": "tcp"}],
        "environment": sorted(
            [
                {"name": MODEL_DIR_ENV, "value": CONTAINER_MODEL_DIR},
                {"name": WORKERS_ENV, "value": str(props.effective_workers)},
            ],
            key=lambda e: e["name"],
        ),
        "mountPoints": [
            {"sourceVolume": MODELS_VOLUME, "containerPath": CONTAINER_MODEL_DIR, "readOnly": True},
            *({"sourceVolume": volume_name(path), "containerPath": path, "readOnly": False} for path in writable),
        ],
        "linuxParameters": {"initProcessEnabled": True},
        # uWSGI refuses to start with a `listen` above net.core.somaxconn (contract LISTEN_BACKLOG), so the limit is
        # set, not assumed. A namespaced sysctl, supported on Fargate from platform 1.4.0; in awsvpc mode it applies
        # to the whole task, and only this container sets one:
        # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_SystemControl.html
        "systemControls": [{"namespace": "net.core.somaxconn", "value": str(LISTEN_BACKLOG)}],
        "healthCheck": {
            "command": ["CMD", *HEALTHCHECK_COMMAND],
            "interval": 10,
            "timeout": 5,
            "retries": 3,
            "startPeriod": min(props.model_load_seconds, 300),
        },
        "stopTimeout": APP_STOP_TIMEOUT_SECONDS,
        "dependsOn": [{"containerName": ROUTER_CONTAINER, "condition": "HEALTHY"}],
        # FireLens takes the routing from the router's config file; the only options are the delivery mode and
        # its buffer (see APP_LOG_MODE).
        "logConfiguration": {
            "logDriver": "awsfirelens",
            "options": {"mode": APP_LOG_MODE, "max-buffer-size": APP_LOG_MAX_BUFFER_SIZE},
        },
    }


def router_container(props: AppTaskProps, region: str) -> dict[str, Any]:
    values = {
        "AWS_REGION": region,
        "ERROR_LOG_GROUP_NAME": props.error_log_group_name,
        "LOG_BUCKET": props.app_log_bucket,
    }
    return {
        "name": ROUTER_CONTAINER,
        "image": props.router_image,
        "essential": True,
        "cpu": 0,
        "memoryReservation": ROUTER_MEMORY_RESERVATION_MIB,
        "stopTimeout": ROUTER_STOP_TIMEOUT_SECONDS,
        "environment": [{"name": name, "value": values[name]} for name in sorted(ROUTER.environment)],
        "mountPoints": [
            {"sourceVolume": volume_name(ROUTER_BUFFER_PATH), "containerPath": ROUTER_BUFFER_PATH, "readOnly": False}
        ],
        "firelensConfiguration": {
            "type": "fluentbit",
            "options": {
                "config-file-type": "file",
                "config-file-value": ROUTER.config_file,
                "enable-ecs-log-metadata": "true",
            },
        },
        "healthCheck": {
            "command": [
                "CMD-SHELL",
                f"curl -sf http://127.0.0.1:{ROUTER.http_port}{ROUTER.health_check_path} || exit 1",
            ],
            "interval": 10,
            "timeout": 5,
            "retries": 3,
            "startPeriod": 10,
        },
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": props.router_log_group_name,
                "awslogs-region": region,
                "awslogs-stream-prefix": ROUTER_CONTAINER,
            },
        },
    }


class AppTask(Construct):
    def __init__(self, scope: Construct, id_: str, props: AppTaskProps, context: AwsContext) -> None:
        super().__init__(scope, id_)
        self.execution_role = task_role(self, "execution-role", f"{props.family}-execution", context)
        IamRolePolicy(self, "execution-policy", role=self.execution_role.id, policy=_execution_policy(props))
        self.task_role = task_role(self, "task-role", f"{props.family}-task", context)
        IamRolePolicy(self, "task-policy", role=self.task_role.id, policy=_task_policy(props))
        self.task_definition = fargate_task_definition(
            self,
            family=props.family,
            cpu=props.cpu,
            memory=props.memory,
            cpu_architecture=props.cpu_architecture,
            execution_role=self.execution_role,
            role=self.task_role,
            containers=[app_container(props), router_container(props, context.region)],
            volumes=[
                models_volume(props.file_system_id, props.access_point_id),
                *bind_volumes([*WRITABLE_PATHS, *EXEC_AGENT_PATHS, ROUTER_BUFFER_PATH]),
            ],
        )
        self.arn = self.task_definition.arn


def _execution_policy(props: AppTaskProps) -> str:
    return policy(
        # GetAuthorizationToken has no resource-level permission: AWS accepts only "*" for it.
        statement("RegistryLogin", ["ecr:GetAuthorizationToken"], ["*"]),
        statement(
            "PullOurImages",
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            [props.app_repository_arn, props.router_repository_arn],
        ),
        statement(
            "RouterOwnLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [f"{props.router_log_group_arn}:log-stream:*"],
        ),
    )


def _task_policy(props: AppTaskProps) -> str:
    return policy(
        statement(
            "MountModelsThroughAccessPoint",
            ["elasticfilesystem:ClientMount"],
            [props.file_system_arn],
            condition={"StringEquals": {"elasticfilesystem:AccessPointArn": props.access_point_arn}},
        ),
        statement(
            "RouterWritesErrors",
            ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [props.error_log_group_arn, f"{props.error_log_group_arn}:log-stream:*"],
        ),
        statement("RouterWritesAppLogs", ["s3:PutObject"], [f"{props.app_log_bucket_arn}/{ROUTER.s3_prefix}*"]),
        statement("RouterEncryptsAppLogs", ["kms:GenerateDataKey", "kms:Decrypt"], [props.log_kms_key_arn]),
        # The SSM message channels of ECS Exec have no resource-level permissions: AWS accepts only "*".
        statement(
            "EcsExecChannels",
            [
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
            ],
            ["*"],
        ),
        # The exec agent looks up its stream before writing the session transcript; without DescribeLogStreams the
        # audit log stays empty (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-exec.html,
        # "IAM permissions required for ECS Exec" with CloudWatch Logs logging).
        statement(
            "EcsExecAudit",
            ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            [props.exec_log_group_arn, f"{props.exec_log_group_arn}:log-stream:*"],
        ),
        # The exec agent checks that its audit group exists; DescribeLogGroups has no resource-level permission.
        statement("EcsExecFindsAuditGroup", ["logs:DescribeLogGroups"], ["*"]),
        statement("EcsExecSessionKey", ["kms:Decrypt"], [props.exec_kms_key_arn]),
    )
