"""A container of a synthesized task definition, read from cdk.tf.json, and the podman arguments that run it as
Fargate would. Nothing here retypes a setting: user, read-only root, volumes, mounts, environment, entry point,
command, health check, stop timeout, ulimits, sysctls, init process and ports all come from the synthesized JSON.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A container without stopTimeout gets SIGKILL 30 s after SIGTERM on Fargate.
# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html
FARGATE_DEFAULT_STOP_TIMEOUT = 30
# ECS health-check defaults when the task definition leaves a field out (same page, HealthCheck).
# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_HealthCheck.html
HEALTH_CHECK_DEFAULTS = {"interval": 30, "timeout": 5, "retries": 3, "startPeriod": 0}

_REFERENCE = re.compile(r"^\$\{(?P<type>[a-z0-9_]+)\.(?P<name>[^.}]+)\.(?P<attribute>[a-z_]+)\}$")


class TaskDefinitionError(ValueError):
    """The synthesized stack does not hold what the image test needs; the message names it."""


@dataclass(frozen=True)
class AccessPoint:
    """What an EFS access point makes of every access: the POSIX identity and the directory it roots at."""

    uid: int
    gid: int
    root_path: str
    root_permissions: str


@dataclass(frozen=True)
class Mount:
    volume: str
    container_path: str
    read_only: bool
    access_point: AccessPoint | None = None

    @property
    def is_bind_mount(self) -> bool:
        """A task-definition volume with no EFS/EBS/host configuration: a Fargate bind mount on ephemeral storage."""
        return self.access_point is None


@dataclass(frozen=True)
class HealthCheck:
    argv: tuple[str, ...]
    interval: int
    timeout: int
    retries: int
    start_period: int


@dataclass(frozen=True)
class Ulimit:
    name: str
    soft: int
    hard: int


@dataclass(frozen=True)
class Container:
    family: str
    name: str
    user: str | None
    read_only_root: bool
    environment: dict[str, str]
    entry_point: tuple[str, ...] | None
    command: tuple[str, ...] | None
    mounts: tuple[Mount, ...]
    health_check: HealthCheck | None
    stop_timeout: int
    ulimits: tuple[Ulimit, ...]
    # systemControls: namespaced kernel parameters, (name, value).
    sysctls: tuple[tuple[str, str], ...]
    container_ports: tuple[int, ...]
    init_process: bool
    grace_period_seconds: int | None = None


def load_stack(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TaskDefinitionError(f"{path} does not exist: run `make synth` (python -m tools.synth) first")
    stack: dict[str, Any] = json.loads(path.read_text())
    return stack


def _resource(stack: dict[str, Any], reference: str) -> dict[str, Any]:
    match = _REFERENCE.match(reference)
    if not match:
        raise TaskDefinitionError(f"{reference!r} is not a reference to a resource of this stack")
    resources = stack.get("resource", {}).get(match["type"], {})
    if match["name"] not in resources:
        raise TaskDefinitionError(f"{reference!r} names no resource in the synthesized stack")
    found: dict[str, Any] = resources[match["name"]]
    return found


def _access_point(stack: dict[str, Any], volume: dict[str, Any]) -> AccessPoint | None:
    efs = volume.get("efs_volume_configuration")
    if not efs:
        if set(volume) - {"name"}:
            raise TaskDefinitionError(
                f"volume {volume['name']!r} is neither a Fargate bind mount nor an EFS volume: "
                "teach tools/images/taskdef.py how Fargate provides it"
            )
        return None
    auth = efs.get("authorization_config") or {}
    if "access_point_id" not in auth:
        raise TaskDefinitionError(f"EFS volume {volume['name']!r} has no access point: mount EFS through one")
    point = _resource(stack, auth["access_point_id"])
    posix = point.get("posix_user") or {}
    root = point.get("root_directory") or {}
    creation = root.get("creation_info") or {}
    if "uid" not in posix:
        raise TaskDefinitionError(f"access point of volume {volume['name']!r} sets no posix_user")
    return AccessPoint(
        uid=int(posix["uid"]),
        gid=int(posix["gid"]),
        root_path=root.get("path", "/"),
        root_permissions=str(creation.get("permissions", "0755")),
    )


def _health_check(raw: dict[str, Any] | None) -> HealthCheck | None:
    if not raw:
        return None
    values = {**HEALTH_CHECK_DEFAULTS, **raw}
    command = list(raw["command"])
    kind, rest = command[0], command[1:]
    if kind == "CMD":
        argv = tuple(rest)
    elif kind == "CMD-SHELL":
        argv = ("/bin/sh", "-c", " ".join(rest))
    else:
        raise TaskDefinitionError(f"health check command starts with {kind!r}: ECS expects CMD or CMD-SHELL")
    return HealthCheck(
        argv=argv,
        interval=int(values["interval"]),
        timeout=int(values["timeout"]),
        retries=int(values["retries"]),
        start_period=int(values["startPeriod"]),
    )


def containers(stack: dict[str, Any]) -> list[Container]:
    """Every container of every task definition in the stack, with its service's grace period when it has one."""
    resources = stack.get("resource", {})
    grace: dict[str, int] = {}
    for service in resources.get("aws_ecs_service", {}).values():
        if "health_check_grace_period_seconds" in service:
            grace[service["task_definition"]] = int(service["health_check_grace_period_seconds"])
    found = []
    for key, task in resources.get("aws_ecs_task_definition", {}).items():
        volumes = {volume["name"]: _access_point(stack, volume) for volume in task.get("volume", [])}
        task_grace = grace.get(f"${{aws_ecs_task_definition.{key}.arn}}")
        for raw in json.loads(task["container_definitions"]):
            mounts = []
            for point in raw.get("mountPoints", []):
                if point["sourceVolume"] not in volumes:
                    raise TaskDefinitionError(
                        f"container {raw['name']!r} mounts volume {point['sourceVolume']!r}, "
                        f"which task definition {task['family']!r} does not declare"
                    )
                mounts.append(
                    Mount(
                        volume=point["sourceVolume"],
                        container_path=point["containerPath"],
                        read_only=bool(point.get("readOnly", False)),
                        access_point=volumes[point["sourceVolume"]],
                    )
                )
            found.append(
                Container(
                    family=task["family"],
                    name=raw["name"],
                    user=raw.get("user"),
                    read_only_root=bool(raw.get("readonlyRootFilesystem", False)),
                    environment={item["name"]: item["value"] for item in raw.get("environment", [])},
                    entry_point=tuple(raw["entryPoint"]) if raw.get("entryPoint") else None,
                    command=tuple(raw["command"]) if raw.get("command") else None,
                    mounts=tuple(mounts),
                    health_check=_health_check(raw.get("healthCheck")),
                    stop_timeout=int(raw.get("stopTimeout", FARGATE_DEFAULT_STOP_TIMEOUT)),
                    ulimits=tuple(
                        Ulimit(item["name"], int(item["softLimit"]), int(item["hardLimit"]))
                        for item in raw.get("ulimits", [])
                    ),
                    sysctls=tuple((item["namespace"], item["value"]) for item in raw.get("systemControls", [])),
                    container_ports=tuple(int(m["containerPort"]) for m in raw.get("portMappings", [])),
                    init_process=bool((raw.get("linuxParameters") or {}).get("initProcessEnabled", False)),
                    grace_period_seconds=task_grace,
                )
            )
    return found


def serving_container(stack: dict[str, Any], port: int) -> Container:
    """The container that publishes the app port (the ALB's target)."""
    matches = [c for c in containers(stack) if port in c.container_ports]
    if len(matches) != 1:
        raise TaskDefinitionError(
            f"expected one container publishing port {port} in the stack, found {[c.name for c in matches]}"
        )
    return matches[0]


def training_container(stack: dict[str, Any]) -> Container | None:
    """The container that mounts an EFS access point read-write (only the trainer may write models)."""
    matches = [c for c in containers(stack) if any(m.access_point is not None and not m.read_only for m in c.mounts)]
    if len(matches) > 1:
        raise TaskDefinitionError(f"more than one container writes through EFS: {[c.name for c in matches]}")
    return matches[0] if matches else None


def podman_run_args(
    container: Container, image: str, sources: dict[str, Path], published: dict[int, int], name: str
) -> list[str]:
    """Arguments of `podman run` for the container.

    sources: host directory per mount's container path, prepared as Fargate would (see tools/images/fargate.py).
    published: loopback host port per container port.
    """
    args = ["run", "--detach", "--name", name, "--image-volume", "ignore", "--pull", "never"]
    if container.user:
        args += ["--user", container.user]
    if container.read_only_root:
        # Without --read-only-tmpfs=false podman mounts tmpfs on /tmp, /var/tmp and /run, which Fargate does not.
        args += ["--read-only", "--read-only-tmpfs=false"]
    if container.init_process:
        args += ["--init"]
    for key, value in sorted(container.environment.items()):
        args += ["--env", f"{key}={value}"]
    for mount in container.mounts:
        if mount.container_path not in sources:
            raise TaskDefinitionError(f"no host directory prepared for {mount.container_path}")
        suffix = ":ro" if mount.read_only else ""
        args += ["--volume", f"{sources[mount.container_path]}:{mount.container_path}{suffix}"]
    for limit in container.ulimits:
        args += ["--ulimit", f"{limit.name}={limit.soft}:{limit.hard}"]
    for key, value in container.sysctls:
        args += ["--sysctl", f"{key}={value}"]
    for port in container.container_ports:
        if port not in published:
            raise TaskDefinitionError(f"no host port given for container port {port}")
        args += ["--publish", f"127.0.0.1:{published[port]}:{port}"]
    args += ["--stop-timeout", str(container.stop_timeout)]
    if container.entry_point is not None:
        args += ["--entrypoint", json.dumps(list(container.entry_point))]
    args.append(image)
    if container.command is not None:
        args += list(container.command)
    return args
