"""Reading a synthesized task definition into podman arguments (no engine needed)."""

import json
from pathlib import Path
from typing import Any

import pytest

from tests.image.tasks import _unwritable
from tools.images.base import qualified
from tools.images.taskdef import (
    FARGATE_DEFAULT_STOP_TIMEOUT,
    TaskDefinitionError,
    containers,
    podman_run_args,
    serving_container,
    training_container,
)


def _stack(container: dict[str, Any], volumes: list[dict[str, Any]], service: bool = True) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "aws_ecs_task_definition": {
            "td": {"family": "fam", "container_definitions": json.dumps([container]), "volume": volumes}
        },
        "aws_efs_access_point": {
            "ap": {
                "posix_user": {"uid": 10001, "gid": 10001},
                "root_directory": {"path": "/models", "creation_info": {"permissions": "0755"}},
            }
        },
    }
    if service:
        resources["aws_ecs_service"] = {
            "svc": {"task_definition": "${aws_ecs_task_definition.td.arn}", "health_check_grace_period_seconds": 90}
        }
    return {"resource": resources}


EFS_VOLUME = {
    "name": "models",
    "efs_volume_configuration": {"authorization_config": {"access_point_id": "${aws_efs_access_point.ap.id}"}},
}
APP = {
    "name": "app",
    "user": "10001:10001",
    "readonlyRootFilesystem": True,
    "portMappings": [{"containerPort": 8080}],
    "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
    "mountPoints": [
        {"sourceVolume": "models", "containerPath": "/mnt/models", "readOnly": True},
        {"sourceVolume": "tmp", "containerPath": "/tmp"},
    ],
    "linuxParameters": {"initProcessEnabled": True},
    "healthCheck": {"command": ["CMD-SHELL", "curl -sf http://127.0.0.1/ || exit 1"], "interval": 10},
    "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}],
    "systemControls": [{"namespace": "net.core.somaxconn", "value": "4096"}],
}


def test_a_container_is_read_with_its_access_point_grace_period_and_ecs_defaults() -> None:
    [app] = containers(_stack(APP, [EFS_VOLUME, {"name": "tmp"}]))
    assert app.grace_period_seconds == 90
    assert app.stop_timeout == FARGATE_DEFAULT_STOP_TIMEOUT
    models, tmp = app.mounts
    assert models.read_only and models.access_point is not None
    assert (models.access_point.uid, models.access_point.root_path) == (10001, "/models")
    assert tmp.is_bind_mount and not tmp.read_only
    assert app.health_check is not None
    assert app.health_check.argv == ("/bin/sh", "-c", "curl -sf http://127.0.0.1/ || exit 1")
    assert (app.health_check.interval, app.health_check.timeout, app.health_check.retries) == (10, 5, 3)


def test_podman_arguments_carry_every_setting_fargate_applies() -> None:
    stack = _stack({**APP, "stopTimeout": 35, "command": ["--x"]}, [EFS_VOLUME, {"name": "tmp"}])
    app = serving_container(stack, 8080)
    sources = {"/mnt/models": Path("/h/efs"), "/tmp": Path("/h/tmp")}
    args = podman_run_args(app, "img", sources, {8080: 18080}, "n")
    joined = " ".join(args)
    assert "--user 10001:10001" in joined
    assert "--read-only --read-only-tmpfs=false" in joined
    assert "--image-volume ignore" in joined
    assert "--init" in args
    assert "--env A=1 --env B=2" in joined
    assert "--volume /h/efs:/mnt/models:ro" in joined and "--volume /h/tmp:/tmp " in joined
    assert "--ulimit nofile=1024:2048" in joined
    assert "--sysctl net.core.somaxconn=4096" in joined
    assert "--publish 127.0.0.1:18080:8080" in joined
    assert "--stop-timeout 35" in joined
    assert args[-2:] == ["img", "--x"]


def test_a_mount_of_an_undeclared_volume_is_refused_by_name() -> None:
    with pytest.raises(TaskDefinitionError, match="mounts volume 'tmp'"):
        containers(_stack(APP, [EFS_VOLUME]))


def test_the_trainer_is_the_container_writing_through_efs() -> None:
    reader = _stack(APP, [EFS_VOLUME, {"name": "tmp"}])
    assert training_container(reader) is None
    writer_mounts = [{"sourceVolume": "models", "containerPath": "/mnt/models", "readOnly": False}]
    writer = _stack({"name": "trainer", "mountPoints": writer_mounts}, [EFS_VOLUME], service=False)
    found = training_container(writer)
    assert found is not None and found.name == "trainer" and found.grace_period_seconds is None


def test_a_root_owned_0755_tmp_is_named_as_unwritable_for_the_app_user(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o755)
    assert [path for path, _, _ in _unwritable({"/tmp": tmp}, "0:0")] == []
    if tmp.stat().st_uid == 0:
        assert [path for path, _, _ in _unwritable({"/tmp": tmp}, "10001:10001")] == ["/tmp"]
    tmp.chmod(0o1777)
    assert _unwritable({"/tmp": tmp}, "10001:10001") == []


def test_short_image_names_are_qualified_as_docker_does() -> None:
    assert qualified("python:3.11.14-slim-bookworm") == "docker.io/library/python:3.11.14-slim-bookworm"
    assert qualified("amazon/aws-for-fluent-bit:3") == "docker.io/amazon/aws-for-fluent-bit:3"
    assert qualified("public.ecr.aws/x/y:1") == "public.ecr.aws/x/y:1"
