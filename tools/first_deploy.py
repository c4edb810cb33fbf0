"""Step 1 of the first deploy of an empty account: what must exist before images can be pushed or data uploaded.

    python3 -m tools.first_deploy targets cdktf.out/stacks/recsys-dev    one `-target=<address>` per line

README, docs/deploy.md, the deploy workflow and `make deploy-local` (tools/deploy_local.py) all take the list from
here, so the documented command and the emulated one cannot drift apart. Standard library only: a user runs it
with any Python 3 before any environment exists.

The list is every image repository and bucket of the stack with what protects them (encryption, public access
block, TLS-only policy, versioning, ownership), so the first interaction file lands in a
bucket that is already locked down, never in a bare one. Terraform adds what they reference (the KMS keys) by
itself (https://developer.hashicorp.com/terraform/cli/commands/plan#resource-targeting).
"""

import json
import sys
from pathlib import Path
from typing import Any

# Resource types created by step 1. Each one references only the repository or bucket it configures, a KMS key
# or a data source, so targeting them pulls in nothing that needs an image or the interaction data. Lifecycle rules
# (ECR and S3) only expire things later: they wait for step 3, which keeps step 1 short (the provider waits for an
# S3 lifecycle configuration to read back the same, 55 s against moto).
FIRST_TYPES = (
    "aws_ecr_repository",
    "aws_s3_bucket",
    "aws_s3_bucket_server_side_encryption_configuration",
    "aws_s3_bucket_public_access_block",
    "aws_s3_bucket_ownership_controls",
    "aws_s3_bucket_policy",
    "aws_s3_bucket_versioning",
)
STACK_FILE = "cdk.tf.json"


class FirstDeployError(ValueError):
    """The stack folder cannot be read; the message names the fix."""


def targets(stack: dict[str, Any]) -> list[str]:
    """The `-target=` arguments of step 1, in FIRST_TYPES order then by name (stable across runs)."""
    resources: dict[str, dict[str, Any]] = stack.get("resource", {})
    found = [f"-target={kind}.{name}" for kind in FIRST_TYPES for name in sorted(resources.get(kind, {}))]
    if not any(kind in resources for kind in ("aws_ecr_repository", "aws_s3_bucket")):
        raise FirstDeployError("the stack has no image repository and no bucket: is this a recsys stack?")
    return found


def read_stack(stack_dir: Path) -> dict[str, Any]:
    path = stack_dir / STACK_FILE
    try:
        stack: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise FirstDeployError(f"{path} does not exist; run `make synth` first (with IMAGE_TAG set)") from None
    except ValueError as error:
        raise FirstDeployError(f"{path} is not JSON ({error}); run `make synth` again") from None
    return stack


USAGE = "usage: python3 -m tools.first_deploy targets <stack folder, e.g. cdktf.out/stacks/recsys-dev>"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "targets":
        print(USAGE, file=sys.stderr)
        return 2
    try:
        print("\n".join(targets(read_stack(Path(argv[1])))))
    except FirstDeployError as error:
        print(f"tools.first_deploy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
