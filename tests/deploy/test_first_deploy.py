"""Step 1 of the first deploy: one list of `-target`s for the docs, the workflow and the emulated deploy.

The emulated deploy (test_emulated_deploy.py) checks the list against the real dev stack and applies it; these
tests hold the command line that users type and the list's rules, without a synth.
"""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools.first_deploy import FIRST_TYPES, FirstDeployError, main, targets
from tools.terraform import ROOT

STACK: dict[str, Any] = {
    "resource": {
        "aws_ecr_repository": {"registry_app": {}, "registry_router": {}},
        "aws_ecr_lifecycle_policy": {"registry_app-lifecycle": {}},
        "aws_s3_bucket": {"data_interactions": {}, "logs_app": {}},
        "aws_s3_bucket_policy": {"data_policy": {}},
        "aws_s3_bucket_public_access_block": {"data_block": {}},
        "aws_ecs_service": {"service": {}},
        "terraform_data": {"bootstrap": {}},
        "aws_kms_key": {"data_key": {}},
    }
}
STEP_1_COMMAND = "TARGETS=$(python3 -m tools.first_deploy targets $STACK) && terraform -chdir=$STACK apply $TARGETS"


def test_targets_are_the_repositories_and_buckets_with_their_configuration_only() -> None:
    assert targets(STACK) == [
        "-target=aws_ecr_repository.registry_app",
        "-target=aws_ecr_repository.registry_router",
        "-target=aws_s3_bucket.data_interactions",
        "-target=aws_s3_bucket.logs_app",
        "-target=aws_s3_bucket_public_access_block.data_block",
        "-target=aws_s3_bucket_policy.data_policy",
    ]


def test_only_repository_and_bucket_types_are_targeted() -> None:
    assert all(kind.startswith(("aws_ecr_", "aws_s3_bucket")) for kind in FIRST_TYPES)


def test_a_stack_without_repositories_or_buckets_is_refused() -> None:
    with pytest.raises(FirstDeployError, match="no image repository and no bucket"):
        targets({"resource": {"aws_ecs_service": {"service": {}}}})


def test_cli_runs_on_the_standard_library_alone(tmp_path: Path) -> None:
    # -S: no site-packages, -E: no PYTHONPATH; a user runs step 1 with any python3 before any environment exists.
    (tmp_path / "cdk.tf.json").write_text(json.dumps(STACK))
    result = subprocess.run(
        [sys.executable, "-S", "-E", "-m", "tools.first_deploy", "targets", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == targets(STACK)


def test_cli_names_make_synth_when_the_stack_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["targets", str(tmp_path / "nowhere")]) == 1
    assert "run `make synth` first" in capsys.readouterr().err


def test_cli_prints_usage_on_unknown_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["target"]) == 2
    assert "usage: python3 -m tools.first_deploy targets" in capsys.readouterr().err


@pytest.mark.parametrize("document", ["README.md", "docs/deploy.md"])
def test_documented_step_1_takes_its_targets_from_the_tool(document: str) -> None:
    text = (ROOT / document).read_text()
    assert STEP_1_COMMAND in text
    # no second, hand-written list of target types next to it
    assert not re.search(r'"aws_ecr_repository",\s*"aws_s3_bucket"', text)
