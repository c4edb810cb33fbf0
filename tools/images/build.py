"""Build the serving and trainer images from api/Dockerfile as written, with podman's layer cache.

`python -m tools.images.build` builds the base and both images ahead of the image tests: `make test` runs it beside
synth, and the tests (tests/image) then find every layer cached. Where podman cannot run it says why and leaves the
verdict to the tests, which skip naming what is missing.
"""

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tools.images import base, podman

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


def build_both() -> dict[str, Built]:
    # The trainer first: its build runs every shared stage with the runtime stage beside them (--jobs 2); the
    # serving build then adds only its final stage.
    return {target: build(target) for target in (TRAIN_TARGET, SERVING_TARGET)}


def prebuild() -> None:
    started = time.perf_counter()
    archive = os.environ.get(base.BASE_ARCHIVE_ENV)
    try:
        podman.ensure_available(install=True, standin=not archive)
    except podman.PodmanUnavailableError as missing:
        print(f"images not built: {missing}", flush=True)
        return
    found = base.ensure_base(Path(archive) if archive else None)
    print(f"base: {found.name}{' (stand-in)' if found.standin else ''}, Python {found.python_version}", flush=True)
    for built in build_both().values():
        print(f"image {built.target}: {built.name} {built.size_bytes / 1e6:.0f} MB, built in {built.seconds:.0f} s")
    print(f"base and images ready in {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    try:
        prebuild()
    except RuntimeError as failed:  # a build that failed: the tests would fail the same way, so stop here
        print(failed, file=sys.stderr)
        sys.exit(1)
