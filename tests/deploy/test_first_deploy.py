"""Step 1 of the first deploy: one list of `-target`s for the docs, the workflow and the emulated deploy.

The emulated deploy (test_emulated_deploy.py) checks the list against the real dev stack and applies it; these
tests hold the command line that users type and the list's rules, without a synth.
"""

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tools import deploy_local
from tools.first_deploy import FIRST_TYPES, FirstDeployError, main, targets
from tools.moto_server import MotoServer
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


@pytest.fixture(scope="module")
def tls_only_data_bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoServer, str]]:
    """A moto on HTTPS with a bucket whose policy refuses requests without TLS, as the stack's data bucket."""
    work = tmp_path_factory.mktemp("upload")
    server = MotoServer(work / "moto.log", tls_dir=work / "tls")
    try:
        server.start()
        s3 = boto3.client(
            "s3", endpoint_url=server.url, verify=server.verify, region_name="eu-west-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip
        s3.create_bucket(Bucket="data", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        deny = {
            "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": ["s3:PutObject", "s3:GetObject"],
            "Resource": ["arn:aws:s3:::data/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }  # fmt: skip
        s3.put_bucket_policy(Bucket="data", Policy=json.dumps({"Version": "2012-10-17", "Statement": [deny]}))
        yield server, "s3://data/interactions/"
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("with_cli", [True, False], ids=["aws-cli", "boto3-without-cli"])
def test_step_2_upload_lands_under_the_prefix_over_tls(
    tls_only_data_bucket: tuple[MotoServer, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_cli: bool
) -> None:
    moto, uri = tls_only_data_bucket
    if with_cli and shutil.which("aws") is None:
        pytest.skip("the AWS CLI (`aws`) is not installed on this machine")
    if not with_cli:
        monkeypatch.setattr(shutil, "which", lambda _name: None)
    deployment = deploy_local.LocalDeployment(tmp_path, moto.url, tmp_path / "logs", ca_bundle=moto.ca_bundle)
    path = tmp_path / deploy_local.INTERACTIONS_FILE
    path.write_bytes(b"user_id,item_id\nu1,i1\n" if with_cli else b"user_id,item_id\nu2,i2\n")
    tool = deploy_local._upload(deployment, path, uri, region="eu-west-1")
    assert tool.startswith("aws-cli/" if with_cli else "boto3 ")
    s3 = boto3.client(
        "s3", endpoint_url=moto.url, verify=moto.verify, region_name="eu-west-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    body = s3.get_object(Bucket="data", Key=f"interactions/{path.name}")["Body"].read()
    assert body == path.read_bytes()
