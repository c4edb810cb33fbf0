"""What Fargate does around a container that podman does not: the volumes' initial content and ownership, the
container health check, and the stop sequence with its timeout."""

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tools.images import podman
from tools.images.build import image_config
from tools.images.taskdef import AccessPoint, Container, HealthCheck

# A bind-mount volume (no host path) starts as an empty directory owned by root with mode 0755, unless the image
# declares a VOLUME at the mount's container path: then ECS copies that directory (content, mode and owner) in.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/bind-mounts.html
EMPTY_VOLUME_MODE = 0o755


def image_volumes(image: str) -> set[str]:
    volumes = image_config(image).get("Volumes") or {}
    assert isinstance(volumes, dict)
    return set(volumes)


def _copy_from_image(image: str, path: str, target: Path) -> None:
    mounted = podman.run(["image", "mount", image], capture=True).stdout.strip()
    try:
        source = Path(mounted) / path.lstrip("/")
        # cp -a keeps content, mode and owner, as ECS's copy of the image's VOLUME directory does.
        subprocess.run(["cp", "-a", "--", str(source), str(target)], check=True)
    finally:
        podman.run(["image", "unmount", image], capture=True, check=False)


def efs_directory(root: Path, access_point: AccessPoint) -> Path:
    """The access point's root directory as EFS creates it on first mount: owned by its creation uid/gid, its mode."""
    directory = root / access_point.root_path.strip("/")
    directory.mkdir(parents=True, exist_ok=True)
    os.chown(directory, access_point.uid, access_point.gid)
    directory.chmod(int(access_point.root_permissions, 8))
    return directory


def prepare_volumes(container: Container, image: str, task_dir: Path, efs_root: Path) -> dict[str, Path]:
    """A host directory per mount point, as Fargate provides it when the task starts.

    Bind-mount volumes are per task (task_dir/volumes/<volume name>); EFS volumes map to one shared efs_root, so the
    trainer's writes appear in the serving container's read-only mount as they do through EFS.
    """
    declared = image_volumes(image)
    sources: dict[str, Path] = {}
    for mount in container.mounts:
        if mount.access_point is not None:
            sources[mount.container_path] = efs_directory(efs_root, mount.access_point)
            continue
        directory = task_dir / "volumes" / mount.volume
        if not directory.exists():
            if mount.container_path in declared:
                directory.parent.mkdir(parents=True, exist_ok=True)
                _copy_from_image(image, mount.container_path, directory)
            else:
                directory.mkdir(parents=True)
                os.chown(directory, 0, 0)
                directory.chmod(EMPTY_VOLUME_MODE)
        sources[mount.container_path] = directory
    return sources


@dataclass(frozen=True)
class HealthResult:
    healthy: bool
    attempts: int
    seconds: float
    last_output: str


def run_health_check(name: str, check: HealthCheck, deadline_seconds: float | None = None) -> HealthResult:
    """ECS's container health check: the command inside the container every `interval`, each within `timeout`;
    UNHEALTHY after `retries` consecutive failures once `startPeriod` is over, HEALTHY at the first success.
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_HealthCheck.html
    """
    start = time.monotonic()
    failures = 0
    attempts = 0
    output = ""
    limit = (
        deadline_seconds if deadline_seconds is not None else check.start_period + check.interval * (check.retries + 1)
    )
    while time.monotonic() - start < limit:
        attempts += 1
        began = time.monotonic()
        try:
            result = podman.run(["exec", name, *check.argv], check=False, capture=True, timeout=check.timeout)
            ok = result.returncode == 0
            output = (result.stdout + result.stderr).strip()
        except subprocess.TimeoutExpired:
            ok = False
            output = f"timed out after {check.timeout}s"
        if ok:
            return HealthResult(True, attempts, time.monotonic() - start, output)
        if time.monotonic() - start >= check.start_period:
            failures += 1
            if failures >= check.retries:
                break
        time.sleep(max(0.0, check.interval - (time.monotonic() - began)))
    return HealthResult(False, attempts, time.monotonic() - start, output)


@dataclass(frozen=True)
class Stopped:
    exit_code: int
    seconds: float


def stop(name: str, timeout: int) -> Stopped:
    """SIGTERM, then SIGKILL after the container's stopTimeout, as ECS stops a task's containers."""
    start = time.monotonic()
    podman.run(["stop", "--time", str(timeout), name], capture=True)
    seconds = time.monotonic() - start
    code = podman.run(["inspect", "--format", "{{.State.ExitCode}}", name], capture=True).stdout.strip()
    return Stopped(int(code), seconds)


def remove(name: str) -> None:
    podman.run(["rm", "--force", "--ignore", name], capture=True, check=False)
