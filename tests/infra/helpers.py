"""Queries over a synthesized stack (the JSON `Testing.synth` returns)."""

import json
from typing import Any

Synth = dict[str, Any]


def resources(stack: Synth, kind: str) -> dict[str, dict[str, Any]]:
    """Resources of one Terraform type, by logical name."""
    found: dict[str, dict[str, Any]] = stack.get("resource", {}).get(kind, {})
    return found


def only(stack: Synth, kind: str) -> dict[str, Any]:
    found = resources(stack, kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    return next(iter(found.values()))


def named(stack: Synth, kind: str, fragment: str) -> dict[str, Any]:
    """The one resource of `kind` whose logical name contains `fragment`."""
    matches = {k: v for k, v in resources(stack, kind).items() if fragment in k}
    assert len(matches) == 1, f"expected one {kind} named *{fragment}*, found {sorted(matches)}"
    return next(iter(matches.values()))


def ref(stack: Synth, kind: str, fragment: str, attribute: str = "id") -> str:
    """The Terraform reference `${kind.name.attribute}` of the one resource whose name contains `fragment`."""
    matches = [k for k in resources(stack, kind) if fragment in k]
    assert len(matches) == 1, f"expected one {kind} named *{fragment}*, found {matches}"
    return f"${{{kind}.{matches[0]}.{attribute}}}"


def policy_documents(stack: Synth) -> list[dict[str, Any]]:
    """Every IAM-style JSON document in the stack (resource policies, key policies, role policies, trust)."""
    docs = []
    for kind, items in stack.get("resource", {}).items():
        for config in items.values():
            for key in ("policy", "assume_role_policy"):
                value = config.get(key)
                if isinstance(value, str) and value.lstrip().startswith("{") and '"Statement"' in value:
                    docs.append({"kind": kind, **json.loads(value)})
    return docs


def serving_task(stack: Synth) -> dict[str, Any]:
    """The serving task definition (the stack also holds the training task's)."""
    return named(stack, "aws_ecs_task_definition", "task_task-definition")


def containers(stack: Synth, task: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """A task definition's container definitions (the serving one's by default), by container name."""
    task = task if task is not None else serving_task(stack)
    return {c["name"]: c for c in json.loads(task["container_definitions"])}


def role_policy(stack: Synth, fragment: str) -> list[dict[str, Any]]:
    """Statements of the inline role policy whose logical name contains `fragment`."""
    statements: list[dict[str, Any]] = json.loads(named(stack, "aws_iam_role_policy", fragment)["policy"])["Statement"]
    return statements
