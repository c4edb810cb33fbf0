"""Plain JSON policy documents (not Fn.jsonencode, which hides them from checkov) and the account context."""

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AwsContext:
    """Account, partition and region of the stack, as Terraform references resolved at plan time."""

    account_id: str
    partition: str
    region: str

    @property
    def account_root(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:root"


def statement(
    sid: str,
    actions: list[str],
    resources: list[str],
    *,
    effect: str = "Allow",
    principal: dict[str, Any] | None = None,
    condition: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if any(action == "*" or action.endswith(":*") for action in actions):
        raise ValueError(f"statement {sid}: wildcard actions are not allowed; list the actions it needs")
    doc: dict[str, Any] = {"Sid": sid, "Effect": effect, "Action": sorted(actions), "Resource": resources}
    if principal is not None:
        doc["Principal"] = principal
    if condition is not None:
        doc["Condition"] = condition
    return doc


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, indent=None, sort_keys=False)


def assume_role_policy(service: str, context: AwsContext | None = None) -> str:
    """Trust policy for an AWS service; with a context, only on behalf of this account (confused deputy)."""
    # Trust statements name no Resource.
    trust: dict[str, Any] = {
        "Sid": "ServiceAssumesRole",
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Principal": {"Service": service},
    }
    if context is not None:
        trust["Condition"] = {"StringEquals": {"aws:SourceAccount": context.account_id}}
    return policy(trust)
