"""`make train-remote`: one run of the training task with the stack's network, waited for, its exit code returned."""

from typing import Any

import pytest

from tools.train_remote import TrainRemoteError, run_once, stack_outputs

OUTPUTS = {
    "cluster_name": "recsys-dev",
    "training_task_definition_arn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/recsys-dev-train:3",
    "training_subnet_ids": ["subnet-a", "subnet-b"],
    "training_security_group_id": "sg-train",
    "training_log_group": "/recsys-dev/training",
}


class FakeEcs:
    """Replays DescribeTasks answers; records RunTask."""

    def __init__(self, states: list[dict[str, Any]]) -> None:
        self.states = states
        self.runs: list[dict[str, Any]] = []

    def run_task(self, **request: Any) -> dict[str, Any]:
        self.runs.append(request)
        return {"tasks": [{"taskArn": "arn:task/1"}]}

    def describe_tasks(self, **_: Any) -> dict[str, Any]:
        return {"tasks": [self.states.pop(0)]}


def test_runs_with_the_stack_network_and_returns_the_trainer_exit_code() -> None:
    ecs = FakeEcs(
        [
            {"lastStatus": "PROVISIONING"},
            {"lastStatus": "STOPPED", "containers": [{"name": "trainer", "exitCode": 3}]},
        ]
    )
    assert run_once(ecs, OUTPUTS, poll_seconds=0, timeout_seconds=5) == 3
    [run] = ecs.runs
    assert run["taskDefinition"] == OUTPUTS["training_task_definition_arn"]
    assert run["networkConfiguration"]["awsvpcConfiguration"] == {
        "subnets": ["subnet-a", "subnet-b"],
        "securityGroups": ["sg-train"],
        "assignPublicIp": "DISABLED",
    }


def test_a_task_that_never_ran_is_a_failure() -> None:
    ecs = FakeEcs([{"lastStatus": "STOPPED", "stopCode": "TaskFailedToStart", "containers": [{"name": "trainer"}]}])
    assert run_once(ecs, OUTPUTS, poll_seconds=0, timeout_seconds=5) == 1


def test_a_missing_stack_says_what_to_do(tmp_path: Any) -> None:
    with pytest.raises(TrainRemoteError, match="make synth"):
        stack_outputs(tmp_path / "nope")
