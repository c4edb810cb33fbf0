"""Session fixtures of the image tests: podman (installed when missing), the base, both images, the synthesized
stack, a data file and the shared EFS stand-in. Figures (which base, build times, sizes, time taken) are printed
in the terminal summary."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.images import base, build, podman
from tools.images.taskdef import load_stack

ROOT = podman.ROOT
STACK_FILE = ROOT / "cdktf.out" / "stacks" / "recsys-dev" / "cdk.tf.json"

_SUMMARY: list[str] = []
_STARTED = time.monotonic()


def note(line: str) -> None:
    _SUMMARY.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _SUMMARY:
        return
    terminalreporter.section("images")
    for line in _SUMMARY:
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"image tests took {time.monotonic() - _STARTED:.0f} s in all")


@pytest.fixture(scope="session")
def engine() -> None:
    try:
        podman.ensure_available(install=True, standin=not os.environ.get(base.BASE_ARCHIVE_ENV))
    except podman.PodmanUnavailableError as missing:
        note(f"image tests skipped: {missing}")
        pytest.skip(str(missing))


@pytest.fixture(scope="session")
def base_image(engine: None) -> base.Base:
    archive = os.environ.get(base.BASE_ARCHIVE_ENV)
    start = time.monotonic()
    found = base.ensure_base(Path(archive) if archive else None)
    took = time.monotonic() - start
    if found.standin:
        note(
            f"base: STAND-IN for {found.name} (built from Debian packages, not pulled; {took:.0f} s): "
            f"{base.STANDIN_DIFFERENCE}"
        )
    else:
        note(f"base: {found.name}, Python {found.python_version} ({took:.0f} s)")
    return found


@pytest.fixture(scope="session")
def images(base_image: base.Base) -> dict[str, build.Built]:
    # `make test` runs `python -m tools.images.build` first: these builds then find every layer cached.
    built = build.build_both()
    for item in built.values():
        note(f"image {item.target}: {item.name} {item.size_bytes / 1e6:.0f} MB, built in {item.seconds:.0f} s")
    return built


@pytest.fixture(scope="session")
def serving_image(images: dict[str, build.Built]) -> str:
    return images[build.SERVING_TARGET].name


@pytest.fixture(scope="session")
def train_image(images: dict[str, build.Built]) -> str:
    return images[build.TRAIN_TARGET].name


@pytest.fixture(scope="session")
def stack() -> dict[str, object]:
    if not STACK_FILE.is_file():
        subprocess.run([sys.executable, "-m", "tools.synth"], cwd=ROOT, check=True)
    return load_stack(STACK_FILE)


@pytest.fixture(scope="session")
def interactions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from api.training.synthetic import SyntheticSpec, generate, write

    directory = tmp_path_factory.mktemp("data")
    directory.chmod(0o755)
    path = directory / "interactions.parquet"
    write(generate(SyntheticSpec(users=1_500, items=600, segments=8, mean_interactions=20.0, seed=11)), path)
    path.chmod(0o644)
    return path


@pytest.fixture(scope="session")
def efs_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The model file system: one directory tree that every task mounts through its access point."""
    root = tmp_path_factory.mktemp("efs")
    root.chmod(0o755)
    yield root
