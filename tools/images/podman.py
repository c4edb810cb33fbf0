"""Podman as `make image-test` uses it: project-local configuration and storage, installed when missing.

Everything podman keeps (images, layers, container state, locks) lives under .cache/containers of this checkout, so
two checkouts never share lock ids or databases, and nothing under /etc is changed. The configuration files are
committed next to this module; podman reads them through its documented environment variables.
"""

import os
import resource
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = Path(__file__).resolve().parent
STATE_DIR = ROOT / ".cache" / "containers"

# Debian package names (bookworm): the container engine, the OCI runtime that works with this machine's hybrid
# cgroups, and the tool that builds the stand-in base image from the Debian mirror.
APT_PACKAGES = ("podman", "runc", "debootstrap")
COMMANDS = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"}

# Must match default_ulimits in containers.conf: podman asks the kernel for these in every container.
DEFAULT_ULIMITS = {"nofile": (resource.RLIMIT_NOFILE, 16384), "nproc": (resource.RLIMIT_NPROC, 16384)}


class PodmanUnavailableError(Exception):
    """Podman cannot run here; the message is one line naming what is missing."""


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(CONFIG_DIR / "containers.conf")
    env["CONTAINERS_REGISTRIES_CONF"] = str(CONFIG_DIR / "registries.conf")
    return env


def global_flags() -> list[str]:
    # Storage, run state and libpod's tmp dir (with file locks in it, see containers.conf) per checkout.
    return [
        "--root",
        str(STATE_DIR / "storage"),
        "--runroot",
        str(STATE_DIR / "run"),
        "--tmpdir",
        str(STATE_DIR / "tmp"),
        "--storage-driver",
        "overlay",
    ]


def command(*args: str) -> list[str]:
    return ["podman", *global_flags(), *args]


def run(
    args: Sequence[str],
    *,
    check: bool = True,
    capture: bool = False,
    timeout: float | None = None,
    stdin: int | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        env=environment(),
        check=check,
        text=True,
        capture_output=capture,
        timeout=timeout,
        stdin=stdin,
    )


def _missing_commands(packages: tuple[str, ...]) -> list[str]:
    return [package for package in packages if shutil.which(COMMANDS[package]) is None]


def _limits_problem() -> str | None:
    for name, (limit, wanted) in DEFAULT_ULIMITS.items():
        hard = resource.getrlimit(limit)[1]
        if hard != resource.RLIM_INFINITY and hard < wanted:
            return (
                f"the host's hard {name} limit is {hard}, below the {wanted} that tools/images/containers.conf "
                f"gives every container: lower default_ulimits there (and DEFAULT_ULIMITS in {Path(__file__).name})"
            )
    return None


def ensure_available(install: bool = True, standin: bool = True) -> None:
    """Install the packages when missing (we are root on CI machines of this kind), then check what podman needs.
    standin: the stand-in base will be built, so debootstrap is needed too.

    Raises PodmanUnavailableError with one line naming what is missing when podman still cannot run.
    """
    needed = APT_PACKAGES if standin else tuple(p for p in APT_PACKAGES if p != "debootstrap")
    if os.geteuid() != 0:
        raise PodmanUnavailableError(
            "not root: the image tests run rootful podman (they chown Fargate-like volumes to the task's users); "
            "run `make image-test` as root"
        )
    missing = _missing_commands(needed)
    if missing and install and shutil.which("apt-get"):
        print(f"installing {' '.join(missing)} with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False, env=env)
        missing = _missing_commands(needed)
    if missing:
        raise PodmanUnavailableError(
            f"missing {', '.join(missing)} and apt-get could not install them: "
            f"install the Debian packages {' '.join(missing)}"
        )
    problem = _limits_problem()
    if problem:
        raise PodmanUnavailableError(problem)
    for folder in ("storage", "run", "tmp"):
        (STATE_DIR / folder).mkdir(parents=True, exist_ok=True)
