"""Builds and installs uWSGI from the lock's hash-pinned sdist with the project's patches (api/uwsgi/*.patch).

Used by `make setup` (into .venv) and by api/Dockerfile's uwsgi-build stage (into /opt/venv), so both run the same
uWSGI. Standard library only: it runs before the project's environment exists.

1. The pin and its sha256 hashes come from Pipfile.lock's default category.
2. pip downloads the sdist (`--require-hashes`: the configured index, proxy and CA settings apply) and the file's
   sha256 is checked here again before it is unpacked.
3. Each patch applies with `patch -p1 --fuzz=0` (Debian's `patch`; build-essential pulls it in via dpkg-dev), so a
   patch that no longer matches the source exactly fails the build instead of landing somewhere else.
4. The wheel is built by the target interpreter (uWSGI embeds the Python it is compiled against) and keeps the
   lock's version in its metadata; the binary reports it with a suffix
   (`uwsgi --version`: 2.0.31-recsys-pipelining-postbuffering-respawn).
5. With --cache, a built wheel is kept per (sdist hash, patches, interpreter): a second `make setup` only reinstalls.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What `uwsgi --version` appends to the version (uwsgiconfig.py's append_version); tests check for it.
VERSION_SUFFIX = "recsys-pipelining-postbuffering-respawn"


class BuildError(Exception):
    """A step failed; the message names the step and what to do."""


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: tuple[str, ...]  # "sha256:<hex>"


def locked_pin(lock: Path) -> Pin:
    try:
        entry = json.loads(lock.read_text())["default"]["uwsgi"]
        version = entry["version"].removeprefix("==")
        hashes = tuple(entry["hashes"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BuildError(
            f"{lock}: no uwsgi pin with hashes in its default category ({error}); run `pipenv lock`"
        ) from error
    if not hashes or not all(h.startswith("sha256:") for h in hashes):
        raise BuildError(f"{lock}: uwsgi has no sha256 hashes; run `pipenv lock` to record them")
    return Pin(version, hashes)


def expected_version(pin: Pin) -> str:
    return f"{pin.version}-{VERSION_SUFFIX}"


def _run(
    command: list[str], step: str, *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd, env=env)
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        raise BuildError(f"{step} failed (exit {result.returncode}): {' '.join(command)}\n{output}")
    return result


def _only(found: list[Path], what: str, where: Path) -> Path:
    if len(found) != 1:
        raise BuildError(f"expected one {what} in {where}, found {[path.name for path in found]}")
    return found[0]


def download(pin: Pin, into: Path) -> Path:
    requirement = into / "uwsgi-requirement.txt"
    requirement.write_text(f"uwsgi=={pin.version} " + " ".join(f"--hash={h}" for h in pin.hashes) + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--require-hashes",
            "--disable-pip-version-check",
            "-r",
            str(requirement),
            "-d",
            str(into),
        ],
        "downloading the uwsgi sdist",
    )
    sdist = _only(list(into.glob("uwsgi-*.tar.gz")), f"uwsgi-{pin.version}.tar.gz", into)
    verify(sdist, pin)
    return sdist


def verify(sdist: Path, pin: Pin) -> None:
    digest = "sha256:" + hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest not in pin.hashes:
        raise BuildError(f"{sdist.name}: {digest} is not a hash Pipfile.lock allows ({', '.join(pin.hashes)})")


def unpack(sdist: Path, into: Path) -> Path:
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):
            try:
                archive.extractall(into, filter="data")
            except tarfile.FilterError as error:
                raise BuildError(f"{sdist.name}: refusing to unpack it ({error})") from error
        else:
            # Python before 3.11.4 (Debian bookworm's 3.11.2, the image-test stand-in) has no extraction filters:
            # only regular files and folders inside `into` (the uWSGI sdist has nothing else).
            for member in archive.getmembers():
                inside = (into / member.name).resolve().is_relative_to(into.resolve())
                if not inside or not (member.isfile() or member.isdir()):
                    raise BuildError(f"{sdist.name}: refusing to unpack {member.name!r} (not a plain file inside)")
            archive.extractall(into)
    return _only([path for path in into.iterdir() if path.is_dir()], "source directory", into)


def apply_patches(source: Path, patches: list[Path]) -> None:
    tool = shutil.which("patch")
    if tool is None:
        raise BuildError("the `patch` command is missing: apt-get install patch (build-essential includes it)")
    for patch in patches:
        _run(
            [tool, "-p1", "--batch", "--forward", "--fuzz=0", "--quiet", "--input", str(patch.resolve())],
            f"applying {patch.name}",
            cwd=source,
        )


def interpreter_id(python: Path) -> str:
    result = _run(
        [str(python), "-c", "import sys, sysconfig; print(sys.version, sys.base_prefix, sysconfig.get_platform())"],
        f"running the target interpreter {python}",
    )
    return result.stdout.strip()


def cache_key(pin: Pin, patches: list[Path], python: Path) -> str:
    key = hashlib.sha256()
    for part in (*pin.hashes, interpreter_id(python), *(patch.read_text() for patch in patches)):
        key.update(part.encode() + b"\0")
    return key.hexdigest()[:20]


def _pip(python: Path, command: str, *args: str, step: str, env: dict[str, str] | None = None) -> None:
    """pip (this interpreter's) acting on `python`'s environment, one package, no dependencies."""
    base = [sys.executable, "-m", "pip", "--python", str(python), command, "--quiet", "--no-deps"]
    _run([*base, "--disable-pip-version-check", *args], step, env=env)


def build_wheel(source: Path, python: Path, into: Path, jobs: int) -> Path:
    env = {**os.environ, "UWSGI_PROFILE_OVERRIDE": f"append_version={VERSION_SUFFIX}", "CPUCOUNT": str(jobs)}
    _pip(python, "wheel", "--no-cache-dir", "-w", str(into), str(source), step="building uWSGI", env=env)
    return _only(list(into.glob("*.whl")), "uWSGI wheel", into)


def install(wheel: Path, python: Path, pin: Pin) -> None:
    _pip(python, "install", "--no-index", "--force-reinstall", str(wheel), step="installing the uWSGI wheel")
    binary = python.parent / "uwsgi"
    reported = _run([str(binary), "--version"], f"running {binary}").stdout.strip()
    if reported != expected_version(pin):
        raise BuildError(f"{binary} reports {reported!r}, not {expected_version(pin)!r}: the build did not take")


def build(lock: Path, patch_dir: Path, python: Path, cache: Path | None, jobs: int) -> str:
    """Installs the patched uWSGI into `python`'s environment; returns the wheel's name."""
    pin = locked_pin(lock)
    patches = sorted(patch_dir.glob("*.patch"))
    if not patches:
        raise BuildError(f"no *.patch in {patch_dir}")
    cached = cache / cache_key(pin, patches, python) if cache else None
    if cached is not None and list(cached.glob("*.whl")):
        wheel = _only(list(cached.glob("*.whl")), "cached wheel", cached)
        install(wheel, python, pin)
        return wheel.name
    with tempfile.TemporaryDirectory(prefix="uwsgi-build-") as scratch:
        work = Path(scratch)
        source = unpack(download(pin, work), work / "src")
        apply_patches(source, patches)
        wheel = build_wheel(source, python, work / "wheel", jobs)
        install(wheel, python, pin)
        if cached is not None:
            cached.mkdir(parents=True, exist_ok=True)
            shutil.copy2(wheel, cached / wheel.name)
        return wheel.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", type=Path, required=True, help="the interpreter of the environment to install into")
    parser.add_argument("--lock", type=Path, default=ROOT / "Pipfile.lock")
    parser.add_argument("--patches", type=Path, default=ROOT / "api" / "uwsgi", help="directory of *.patch files")
    parser.add_argument("--cache", type=Path, help="keep built wheels here (one per sdist, patches and interpreter)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compile jobs")
    args = parser.parse_args(argv)
    try:
        wheel = build(args.lock, args.patches, args.python, args.cache, args.jobs)
    except BuildError as error:
        print(f"uwsgi_build: {error}", file=sys.stderr)
        return 1
    print(f"uwsgi_build: installed {wheel} ({expected_version(locked_pin(args.lock))}) into {args.python}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
