"""What the serving task and the training task build alike: their two roles, the EFS model volume and the Fargate
task definition around their containers. Construct ids stay those of the callers' constructs."""

import json
from typing import Any

from cdktf_cdktf_provider_aws.ecs_task_definition import (
    EcsTaskDefinition,
    EcsTaskDefinitionRuntimePlatform,
    EcsTaskDefinitionVolume,
    EcsTaskDefinitionVolumeEfsVolumeConfiguration,
    EcsTaskDefinitionVolumeEfsVolumeConfigurationAuthorizationConfig,
)
from cdktf_cdktf_provider_aws.iam_role import IamRole
from constructs import Construct

from modules.config import FARGATE_MEMORY
from modules.errors import Problems
from modules.iam import AwsContext, assume_role_policy

MODELS_VOLUME = "models"


CPU_ARCHITECTURES = ("X86_64", "ARM64")


def check_task_size(p: Problems, cpu: int, memory: int, cpu_architecture: str) -> None:
    """The checks every Fargate task's props share: a cpu/memory pair Fargate offers and an architecture it runs."""
    allowed = FARGATE_MEMORY.get(cpu)
    p.check(
        allowed is not None and memory in allowed,
        "memory",
        f"{cpu}/{memory} is not a Fargate size",
        "pick a valid Fargate cpu/memory pair",
    )
    p.check(
        cpu_architecture in CPU_ARCHITECTURES,
        "cpu_architecture",
        f"{cpu_architecture!r}",
        f"use one of {', '.join(CPU_ARCHITECTURES)}",
    )


def volume_name(path: str) -> str:
    return path.strip("/").replace("/", "-")


def task_role(scope: Construct, id_: str, name: str, context: AwsContext) -> IamRole:
    """A role that ECS tasks assume (the execution role and the task role are both such roles)."""
    return IamRole(scope, id_, name=name, assume_role_policy=assume_role_policy("ecs-tasks.amazonaws.com", context))


def models_volume(file_system_id: str, access_point_id: str) -> EcsTaskDefinitionVolume:
    """The model file system through an access point, with TLS in transit and IAM authorization."""
    return EcsTaskDefinitionVolume(
        name=MODELS_VOLUME,
        efs_volume_configuration=EcsTaskDefinitionVolumeEfsVolumeConfiguration(
            file_system_id=file_system_id,
            transit_encryption="ENABLED",
            authorization_config=EcsTaskDefinitionVolumeEfsVolumeConfigurationAuthorizationConfig(
                access_point_id=access_point_id, iam="ENABLED"
            ),
        ),
    )


def bind_volumes(paths: list[str]) -> list[EcsTaskDefinitionVolume]:
    # Fargate bind-mount volumes without a host path live on the task's ephemeral storage.
    return [EcsTaskDefinitionVolume(name=volume_name(path)) for path in paths]


def fargate_task_definition(
    scope: Construct,
    *,
    family: str,
    cpu: int,
    memory: int,
    cpu_architecture: str,
    execution_role: IamRole,
    role: IamRole,
    containers: list[dict[str, Any]],
    volumes: list[EcsTaskDefinitionVolume],
) -> EcsTaskDefinition:
    return EcsTaskDefinition(
        scope,
        "task-definition",
        family=family,
        requires_compatibilities=["FARGATE"],
        network_mode="awsvpc",
        cpu=str(cpu),
        memory=str(memory),
        runtime_platform=EcsTaskDefinitionRuntimePlatform(
            operating_system_family="LINUX", cpu_architecture=cpu_architecture
        ),
        execution_role_arn=execution_role.arn,
        task_role_arn=role.arn,
        container_definitions=json.dumps(containers),
        volume=volumes,
    )
