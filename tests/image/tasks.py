"""Start a container of the synthesized stack with podman, as Fargate would start it, and watch it."""

import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from api.contract import APP_GID, APP_UID, READINESS_PATH, WRITABLE_PATHS
from tools.images import fargate, podman
from tools.images.taskdef import Container, podman_run_args
from tools.testkit.processes import free_port


@dataclass
class RunningContainer:
    name: str
    container: Container
    image: str
    sources: dict[str, Path]
    base_url: str | None

    def state(self) -> tuple[str, int]:
        result = podman.run(["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", self.name], capture=True)
        status, code = result.stdout.split()
        return status, int(code)

    def running(self) -> bool:
        return self.state()[0] == "running"

    def logs(self) -> str:
        result = podman.run(["logs", self.name], capture=True, check=False)
        return result.stdout + result.stderr

    def wait_ready(self, within: float) -> float:
        """Seconds until the readiness path answers 200; AssertionError naming the cause when it does not."""
        assert self.base_url is not None
        start = time.monotonic()
        while time.monotonic() - start < within:
            if not self.running():
                raise AssertionError(self._why_not_ready(f"the container exited ({self.state()[1]}) before ready"))
            try:
                if requests.get(self.base_url + READINESS_PATH, timeout=2).status_code == 200:
                    return time.monotonic() - start
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(self._why_not_ready(f"not ready within {within} s"))

    def wait_exit(self, within: float) -> int:
        result = podman.run(["wait", self.name], capture=True, timeout=within)
        return int(result.stdout.strip())

    def _why_not_ready(self, what: str) -> str:
        problems = [
            f"{path} is mounted as {owner} mode {mode:o}, which user {self.container.user} cannot write: "
            f"the image must create it (owner {APP_UID}:{APP_GID}, or mode 1777) and declare `VOLUME {path}` "
            "so that Fargate copies it into the task's bind mount"
            for path, owner, mode in _unwritable(self.sources, self.container.user)
        ]
        detail = "; ".join(problems) if problems else "no writable-path problem found"
        return f"{self.container.name}: {what}; {detail}\n--- container log (tail) ---\n{self.logs()[-3000:]}"


def _unwritable(sources: dict[str, Path], user: str | None) -> list[tuple[str, str, int]]:
    uid, gid = (int(part) for part in (user or "0:0").split(":"))
    found = []
    for path in WRITABLE_PATHS:
        if path not in sources:
            continue
        stat = sources[path].stat()
        mode = stat.st_mode & 0o7777
        writable = (
            uid == 0 or (stat.st_uid == uid and mode & 0o200) or (stat.st_gid == gid and mode & 0o020) or mode & 0o002
        )
        if not writable:
            found.append((path, f"{stat.st_uid}:{stat.st_gid}", mode))
    return found


def start(
    container: Container,
    image: str,
    task_dir: Path,
    efs_root: Path,
    *,
    command: list[str] | None = None,
    extra_volumes: dict[Path, str] | None = None,
) -> RunningContainer:
    """Run the container detached with its task-definition settings; `command` replaces the definition's command
    (the trainer's input is an S3 URL in AWS and a mounted file here) and `extra_volumes` adds read-only inputs."""
    task_dir.mkdir(parents=True, exist_ok=True)
    sources = fargate.prepare_volumes(container, image, task_dir, efs_root)
    published = {port: free_port() for port in container.container_ports}
    name = f"recsys-image-test-{container.name}-{uuid.uuid4().hex[:8]}"
    args = podman_run_args(container, image, sources, published, name)
    if command is not None:
        args = args[: args.index(image) + 1] + command
    if extra_volumes:
        position = args.index(image)
        extra = [item for host, path in extra_volumes.items() for item in ("--volume", f"{host}:{path}:ro")]
        args = args[:position] + extra + args[position:]
    podman.run(args, capture=True)
    base_url = f"http://127.0.0.1:{next(iter(published.values()))}" if published else None
    return RunningContainer(name, container, image, sources, base_url)


def remove(running: RunningContainer) -> None:
    fargate.remove(running.name)


def exec_in(image: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """A one-off command in a fresh container of the image (no network), for checks of its content."""
    return podman.run(
        ["run", "--rm", "--network", "none", "--entrypoint", argv[0], image, *argv[1:]], capture=True, check=False
    )
