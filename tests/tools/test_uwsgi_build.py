"""tools/uwsgi_build.py: uWSGI from the lock's hash-checked sdist with the project's patches, in both build chains."""

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tools import uwsgi_build

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "Pipfile.lock"
needs_patch = pytest.mark.skipif(shutil.which("patch") is None, reason="the `patch` command is not installed")


def test_the_pin_and_its_hashes_come_from_the_locks_default_category() -> None:
    entry = json.loads(LOCK.read_text())["default"]["uwsgi"]
    pin = uwsgi_build.locked_pin(LOCK)
    assert f"=={pin.version}" == entry["version"]
    assert list(pin.hashes) == entry["hashes"]
    assert uwsgi_build.expected_version(pin) == f"{pin.version}-recsys-pipelining-postbuffering-respawn"


@pytest.mark.parametrize("entry", [{"version": "==2.0.31", "hashes": []}, {"version": "==2.0.31"}, None])
def test_a_lock_without_a_hashed_uwsgi_pin_is_refused_naming_the_fix(tmp_path: Path, entry: object) -> None:
    lock = tmp_path / "Pipfile.lock"
    lock.write_text(json.dumps({"default": {} if entry is None else {"uwsgi": entry}}))
    with pytest.raises(uwsgi_build.BuildError, match="pipenv lock"):
        uwsgi_build.locked_pin(lock)


def test_an_sdist_whose_hash_the_lock_does_not_allow_is_refused(tmp_path: Path) -> None:
    sdist = tmp_path / "uwsgi-2.0.31.tar.gz"
    sdist.write_bytes(b"not the real sdist")
    good = "sha256:" + hashlib.sha256(sdist.read_bytes()).hexdigest()
    uwsgi_build.verify(sdist, uwsgi_build.Pin("2.0.31", (good,)))
    with pytest.raises(uwsgi_build.BuildError, match=r"is not a hash Pipfile\.lock allows"):
        uwsgi_build.verify(sdist, uwsgi_build.Pin("2.0.31", ("sha256:" + "0" * 64,)))


def _diff(old: str, new: str) -> str:
    return f"--- a/f.c\n+++ b/f.c\n@@ -1,3 +1,3 @@\n a\n-{old}\n+{new}\n c\n"


@needs_patch
def test_a_patch_applies_only_to_the_exact_source_it_was_made_for(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "f.c").write_text("a\nb\nc\n")
    matching, stale = tmp_path / "1.patch", tmp_path / "2.patch"
    matching.write_text(_diff("b", "B"))
    stale.write_text(_diff("x", "y"))
    uwsgi_build.apply_patches(source, [matching])
    assert (source / "f.c").read_text() == "a\nB\nc\n"
    # No fuzz, no guessing: a patch whose context is not there fails the build (2.patch names the culprit).
    with pytest.raises(uwsgi_build.BuildError, match=r"applying 2\.patch failed"):
        uwsgi_build.apply_patches(source, [stale])


def test_a_changed_patch_or_interpreter_never_reuses_a_cached_wheel(tmp_path: Path) -> None:
    pin = uwsgi_build.locked_pin(LOCK)
    first, second = tmp_path / "a.patch", tmp_path / "b.patch"
    first.write_text(_diff("b", "B"))
    second.write_text(_diff("b", "C"))
    python = Path(sys.executable)
    assert uwsgi_build.cache_key(pin, [first], python) == uwsgi_build.cache_key(pin, [first], python)
    assert uwsgi_build.cache_key(pin, [first], python) != uwsgi_build.cache_key(pin, [second], python)
    other = uwsgi_build.Pin(pin.version, ("sha256:" + "1" * 64,))
    assert uwsgi_build.cache_key(pin, [first], python) != uwsgi_build.cache_key(other, [first], python)


def test_the_command_line_reports_a_bad_lock_in_one_line_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "Pipfile.lock"
    lock.write_text("{}")
    assert uwsgi_build.main(["--python", sys.executable, "--lock", str(lock)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("uwsgi_build: ") and "pipenv lock" in error


def test_the_environments_uwsgi_is_the_patched_build() -> None:
    """What `make setup` installs (the serving image runs the same build): the pipelining tests in
    tests/api/test_protocol.py fail against a stock uWSGI, and this says why."""
    binary = Path(sys.executable).with_name("uwsgi")
    reported = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    expected = uwsgi_build.expected_version(uwsgi_build.locked_pin(LOCK))
    assert reported == expected, f"{binary} is {reported}, not the patched {expected}: run `make setup`"


def test_the_sdist_download_requires_the_locks_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pin = uwsgi_build.locked_pin(LOCK)
    commands: list[list[str]] = []

    def fake_pip(command: list[str], step: str, **_: object) -> None:
        commands.append(command)
        (tmp_path / f"uwsgi-{pin.version}.tar.gz").write_bytes(b"what the index served")

    monkeypatch.setattr(uwsgi_build, "_run", fake_pip)
    # The served file is not the locked one: refused after pip, before anything is unpacked or built.
    with pytest.raises(uwsgi_build.BuildError, match="is not a hash"):
        uwsgi_build.download(pin, tmp_path)
    (command,) = commands
    assert "--require-hashes" in command and "--no-binary" in command
    requirement = Path(command[command.index("-r") + 1]).read_text()
    assert all(f"--hash={digest}" in requirement for digest in pin.hashes)


def test_make_setup_and_the_image_build_uwsgi_with_the_same_tool() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "tools/uwsgi_build.py --python $(PYTHON)" in makefile
    # The sync must not install the stock uWSGI the lock names (it would replace or race the patched one).
    assert "grep -v '^uwsgi=='" in makefile
    dockerfile = (ROOT / "api" / "Dockerfile").read_text()
    assert "tools/uwsgi_build.py --python /opt/venv/bin/python" in dockerfile
    ignored = (ROOT / "api" / "Dockerfile.dockerignore").read_text().splitlines()
    assert {"!tools/uwsgi_build.py", "!api/uwsgi"} <= set(ignored)


def _tarball(path: Path, names: list[str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 1
            archive.addfile(info, io.BytesIO(b"x"))
    return path


@pytest.mark.parametrize("filters", [True, False], ids=["with-extraction-filters", "python-before-3.11.4"])
def test_unpacking_keeps_every_member_inside_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filters: bool
) -> None:
    if not filters:  # the image-test stand-in's Debian Python 3.11.2 has no tarfile.data_filter
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    good = _tarball(tmp_path / "good.tar.gz", ["uwsgi-2.0.31/uwsgi.h"])
    assert uwsgi_build.unpack(good, tmp_path / "good") == tmp_path / "good" / "uwsgi-2.0.31"
    evil = _tarball(tmp_path / "evil.tar.gz", ["uwsgi-2.0.31/../../escaped"])
    with pytest.raises(uwsgi_build.BuildError, match="refusing to unpack"):
        uwsgi_build.unpack(evil, tmp_path / "evil")
    assert not (tmp_path / "escaped").exists()
