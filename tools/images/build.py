"""Build the serving and trainer images from api/Dockerfile as written, with podman's layer cache."""

import json
import time
from dataclasses import dataclass
from pathlib import Path

from tools.images import podman

DOCKERFILE = podman.ROOT / "api" / "Dockerfile"
IGNORE_FILE = podman.ROOT / "api" / "Dockerfile.dockerignore"
# The host's CA bundle, mounted (never copied) into the build steps that run apt or pip, so that the image trusts
# exactly what the official base trusts and the build still reaches the package registries from these machines.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SERVING_TARGET = "serving"
TRAIN_TARGET = "train"
IMAGE_NAMES = {SERVING_TARGET: "localhost/recsys-api:image-test", TRAIN_TARGET: "localhost/recsys-train:image-test"}


@dataclass(frozen=True)
class Built:
    target: str
    name: str
    seconds: float
    size_bytes: int


def image_size(name: str) -> int:
    result = podman.run(["image", "inspect", "--format", "{{.Size}}", name], capture=True)
    return int(result.stdout.strip())


def image_config(name: str) -> dict[str, object]:
    result = podman.run(["image", "inspect", name], capture=True)
    config: dict[str, object] = json.loads(result.stdout)[0]["Config"]
    return config


def build(target: str, *, dockerfile: Path = DOCKERFILE, name: str | None = None) -> Built:
    """Build a target of api/Dockerfile (or of a variant of it, under another name) from the repository root."""
    name = name or IMAGE_NAMES[target]
    args = [
        "build",
        "--pull=never",
        "--layers",
        # Independent stages (the runtime base beside the builder) in parallel: the machines have two cores.
        "--jobs",
        "2",
        "--format",
        "docker",
        "--file",
        str(dockerfile),
        "--ignorefile",
        str(IGNORE_FILE),
        "--target",
        target,
        "--tag",
        name,
    ]
    if HOST_CA_BUNDLE.is_file():
        args += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    start = time.perf_counter()
    result = podman.run([*args, str(podman.ROOT)], capture=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-6000:]
        raise RuntimeError(f"podman build --target {target} failed (exit {result.returncode}):\n{output}")
    return Built(target, name, time.perf_counter() - start, image_size(name))
