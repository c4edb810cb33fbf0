"""The project-local podman set-up (no engine needed)."""

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tools.images import base, podman


def test_containers_conf_ulimits_are_the_ones_checked_against_the_host() -> None:
    conf = tomllib.loads((podman.CONFIG_DIR / "containers.conf").read_text())
    limits = {}
    for item in conf["containers"]["default_ulimits"]:
        match = re.fullmatch(r"(\w+)=(\d+):(\d+)", item)
        assert match, item
        limits[match[1]] = (int(match[2]), int(match[3]))
    assert limits == {name: (value, value) for name, (_, value) in podman.DEFAULT_ULIMITS.items()}


def test_containers_conf_picks_runc_file_locks_and_no_systemd() -> None:
    engine = tomllib.loads((podman.CONFIG_DIR / "containers.conf").read_text())["engine"]
    assert (engine["runtime"], engine["cgroup_manager"], engine["lock_type"]) == ("runc", "cgroupfs", "file")


def test_every_podman_call_uses_the_checkouts_own_storage_and_configuration() -> None:
    args = podman.command("images")
    assert args[0] == "podman" and args[-1] == "images"
    for flag in ("--root", "--runroot", "--tmpdir"):
        assert args[args.index(flag) + 1].startswith(str(podman.STATE_DIR))
    env = podman.environment()
    assert env["CONTAINERS_CONF"] == str(podman.CONFIG_DIR / "containers.conf")
    assert env["CONTAINERS_REGISTRIES_CONF"] == str(podman.CONFIG_DIR / "registries.conf")


def test_not_root_is_one_line_naming_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(podman.PodmanUnavailableError, match=r"^not root: .*run `make image-test` as root$"):
        podman.ensure_available(install=False)


def test_missing_tools_without_apt_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(podman.PodmanUnavailableError, match="missing podman, runc and apt-get could not") as error:
        podman.ensure_available(install=True, standin=False)
    assert "\n" not in str(error.value)


def _mount_points() -> list[str]:
    return [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (as the stand-in build does)")
def test_the_stand_in_scratch_tmpfs_is_unmounted_and_removed_with_what_was_mounted_inside(tmp_path: Path) -> None:
    scratch = tmp_path / "standin"
    scratch.mkdir()
    base._scratch_on_tmpfs(scratch)
    if str(scratch) not in _mount_points():
        pytest.skip("mount -t tmpfs is not allowed here (the stand-in then builds on disk)")
    (scratch / "rootfs" / "proc").mkdir(parents=True)
    (scratch / "rootfs" / "usr").mkdir()
    (scratch / "rootfs" / "usr" / "file").write_text("x")
    # What debootstrap leaves mounted in a chroot.
    subprocess.run(["mount", "-t", "tmpfs", "inner", str(scratch / "rootfs" / "proc")], check=True)
    base._remove_tree(scratch)
    assert not scratch.exists()
    assert not [m for m in _mount_points() if m.startswith(str(scratch))]
