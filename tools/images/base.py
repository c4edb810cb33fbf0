"""The base image api/Dockerfile names: the official one when given, else a stand-in built from Debian packages.

No container registry is reachable on these machines, so `python:3.11.x-slim-bookworm` cannot be pulled. The
stand-in is Debian bookworm (debootstrap --variant=minbase from the Debian mirror) with Debian's python3 and the
headers uWSGI compiles against, laid out so the Dockerfile runs unchanged: `python` and `pip` in /usr/local/bin, no
EXTERNALLY-MANAGED marker (pip installs system-wide as in the official image), and the official image's PATH and
LANG. It differs from the official image in one way that matters: Debian's Python 3.11.2 under /usr/bin instead of
a source build of the named 3.11 release under /usr/local. The CI workflow builds on the official image instead.

The image carries a hash of its recipe in its labels and is rebuilt when the recipe changes.
"""

import hashlib
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.images import podman
from tools.images.dockerfile import external_bases

DOCKERFILE = podman.ROOT / "api" / "Dockerfile"
# `docker save` of the official base (the CI workflow sets it); without it the stand-in is built.
BASE_ARCHIVE_ENV = "RECSYS_BASE_IMAGE_ARCHIVE"
RECIPE_LABEL = "org.recsys.standin-recipe"

MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "python3-pip", "python3-dev", "ca-certificates")
# The official python:*-slim-bookworm image's environment and command (its Dockerfile in docker-library/python).
# Without the sbin folders in PATH, the Dockerfile's `groupadd`/`useradd` are not found.
IMAGE_ENV = {
    "PATH": "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
IMAGE_CMD = ["python3"]
# The official image's apt sources (deb822), so that the builder stage's apt-get sees the same suites.
APT_SOURCES = f"""Types: deb
URIs: {MIRROR}
Suites: {SUITE} {SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: {SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
# The apt and dpkg settings Debian's official container images carry (debuerreotype's "slim" variant): apt keeps
# no package caches, and dpkg skips documentation, so `apt-get install` in a derived image adds what it adds there.
_APT_CACHE_FILES = "/var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin"
APT_CLEAN = f"""DPkg::Post-Invoke {{ "rm -f {_APT_CACHE_FILES} || true"; }};
APT::Update::Post-Invoke {{ "rm -f {_APT_CACHE_FILES} || true"; }};
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
"""
DPKG_SLIM = """path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""
# Run in the chroot after debootstrap: the official layout, no caches.
FINISH_SCRIPT = """set -eu
rm -f /etc/apt/sources.list /usr/lib/python3.*/EXTERNALLY-MANAGED
ln -sf /usr/bin/python3 /usr/local/bin/python
ln -sf /usr/bin/python3 /usr/local/bin/python3
ln -sf /usr/bin/pip3 /usr/local/bin/pip
ln -sf /usr/bin/pip3 /usr/local/bin/pip3
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /usr/share/doc/* /usr/share/man/*
"""
# The tmpfs only takes the memory its files use (about 370 MB); the cap stops a runaway install from filling memory.
SCRATCH_TMPFS_SIZE = "2g"
STANDIN_DIFFERENCE = (
    "Debian's python3 3.11.2 under /usr/bin (linked into /usr/local/bin), not the official image's source build "
    "under /usr/local; same Debian bookworm, PATH and LANG"
)


@dataclass(frozen=True)
class Base:
    name: str
    standin: bool
    python_version: str


def dockerfile_base(dockerfile: Path = DOCKERFILE) -> str:
    """The one external image the Dockerfile builds FROM (stages named with AS are internal)."""
    bases = external_bases(dockerfile)
    if len(bases) != 1:
        raise ValueError(
            f"{dockerfile} builds from {bases or 'no image'}; the stand-in supports exactly one external base: "
            "derive every stage from one `FROM <image> AS <stage>`"
        )
    return bases[0]


def qualified(name: str) -> str:
    """Docker's normalisation of a short name (python:tag -> docker.io/library/python:tag)."""
    first = name.split("/", 1)[0]
    if "/" not in name:
        return f"docker.io/library/{name}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{name}"
    return name


def recipe_hash() -> str:
    recipe = {
        "mirror": MIRROR,
        "suite": SUITE,
        "packages": PACKAGES,
        "env": IMAGE_ENV,
        "cmd": IMAGE_CMD,
        "sources": APT_SOURCES,
        "finish": FINISH_SCRIPT,
        "apt": APT_CLEAN,
        "dpkg": DPKG_SLIM,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _labels(name: str) -> dict[str, str] | None:
    result = podman.run(["image", "inspect", "--format", "{{json .Labels}}", name], check=False, capture=True)
    if result.returncode != 0:
        return None
    labels = json.loads(result.stdout.strip() or "null")
    return labels or {}


def _python_version(name: str) -> str:
    result = podman.run(
        ["run", "--rm", "--network", "none", name, "python", "-c", "import platform; print(platform.python_version())"],
        capture=True,
    )
    return result.stdout.strip()


def _remove_tree(path: Path) -> None:
    """Unmount whatever debootstrap left mounted inside (it mounts /proc and /sys, and may bind the host's /dev when
    it runs in a container) and the scratch tmpfs itself, then delete without crossing into another file system: a
    plain recursive delete of a chroot with a bind-mounted /dev would delete the host's device nodes."""
    top = str(path.resolve())
    mounted = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    inside = (m for m in mounted if m == top or m.startswith(top + "/"))
    for point in sorted(inside, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False)
    subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], check=False)


def _scratch_on_tmpfs(path: Path) -> None:
    """Mount a tmpfs for the root file system while it is built. On these machines' disk (ext4 with online discard)
    dpkg's fsync per file and the delete afterwards cost more than the debootstrap itself: measured 105 s on disk
    against 45 s on tmpfs, and 14 s to delete the 370 MB tree. The tree lives in memory only until it is imported.
    Where mounting is not allowed the tree stays on disk: slower, same result."""
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"mode=0755,size={SCRATCH_TMPFS_SIZE}", "recsys-standin", str(path)],
        check=False,
        capture_output=True,
    )


def _build_standin(name: str, digest: str) -> None:
    work = podman.ROOT / ".cache" / "images"
    work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=work, prefix="standin-"))
    rootfs = tmp / "rootfs"
    try:
        _scratch_on_tmpfs(tmp)
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), MIRROR],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (rootfs / "etc" / "apt" / "sources.list.d" / "debian.sources").write_text(APT_SOURCES)
        (rootfs / "etc" / "apt" / "apt.conf.d" / "docker-clean").write_text(APT_CLEAN)
        (rootfs / "etc" / "dpkg" / "dpkg.cfg.d" / "docker").write_text(DPKG_SLIM)
        subprocess.run(["chroot", str(rootfs), "/bin/sh", "-c", FINISH_SCRIPT], check=True)
        changes = [f"ENV {key}={value}" for key, value in IMAGE_ENV.items()]
        changes += [f"CMD {json.dumps(IMAGE_CMD)}", f"LABEL {RECIPE_LABEL}={digest}"]
        args = ["import"]
        for change in changes:
            args += ["--change", change]
        # --one-file-system: never archive a mount debootstrap left behind.
        tar = subprocess.Popen(
            ["tar", "-C", str(rootfs), "--numeric-owner", "--one-file-system", "-c", "."], stdout=subprocess.PIPE
        )
        assert tar.stdout is not None
        podman.run([*args, "-", name], stdin=tar.stdout.fileno(), capture=True)
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError(f"tar of the stand-in root file system failed (exit {tar.returncode})")
    finally:
        _remove_tree(tmp)


def ensure_base(archive: Path | None = None) -> Base:
    """Make the Dockerfile's base image present in local storage and say which one it is.

    archive: an image archive (`docker save` of the official image) to load instead of building a stand-in.
    """
    name = qualified(dockerfile_base())
    if archive is not None:
        podman.run(["load", "--input", str(archive)], capture=True)
        if _labels(name) is None:
            raise ValueError(f"{archive} does not hold {name}: save exactly the image api/Dockerfile builds FROM")
        return Base(name, standin=False, python_version=_python_version(name))
    labels = _labels(name)
    if labels is not None and RECIPE_LABEL not in labels:
        # An official image loaded earlier into this checkout's storage: use it, never overwrite it.
        return Base(name, standin=False, python_version=_python_version(name))
    digest = recipe_hash()
    if labels is None or labels.get(RECIPE_LABEL) != digest:
        print(f"building the stand-in for {name} from Debian packages (recipe {digest})", flush=True)
        _build_standin(name, digest)
    return Base(name, standin=True, python_version=_python_version(name))
