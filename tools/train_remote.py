"""`make train-remote ENV=<env>`: run the training task once in AWS and wait for the trainer's exit code.

    python -m tools.train_remote --env dev [--stack-dir DIR] [--poll-seconds 15] [--timeout-seconds 10800]

The cluster, task definition, subnets and security group come from the deployed stack's outputs
(`terraform -chdir=cdktf.out/stacks/recsys-<env> output -json`), so the run uses exactly the network the schedule
uses. Credentials and region are the usual AWS ones (environment, profile). Exits with the trainer's exit code
(1 if the task never started); the serving tasks pick up a published version by themselves, without a deploy.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tools.terraform import ROOT

TRAINER_CONTAINER = "trainer"  # modules/training.py TRAINER_CONTAINER (tools/ never imports modules/)
REQUIRED_OUTPUTS = (
    "cluster_name",
    "training_task_definition_arn",
    "training_subnet_ids",
    "training_security_group_id",
    "training_log_group",
)


class TrainRemoteError(RuntimeError):
    """The run could not be started or followed; the message says why and what to do."""


def stack_outputs(stack_dir: Path) -> dict[str, Any]:
    if not stack_dir.is_dir():
        raise TrainRemoteError(f"{stack_dir} does not exist: run `make synth` and deploy the stack first")
    result = subprocess.run(
        ["terraform", f"-chdir={stack_dir}", "output", "-json"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise TrainRemoteError(f"terraform output failed in {stack_dir}: {result.stderr.strip()}")
    outputs = {name: item["value"] for name, item in json.loads(result.stdout or "{}").items()}
    missing = [name for name in REQUIRED_OUTPUTS if name not in outputs]
    if missing:
        raise TrainRemoteError(f"the stack in {stack_dir} has no outputs {missing}: deploy the current code first")
    return outputs


def run_once(ecs: Any, outputs: dict[str, Any], poll_seconds: float, timeout_seconds: float) -> int:
    """Start the training task, wait until it stops, return the trainer's exit code (1 if it never ran)."""
    started = ecs.run_task(
        cluster=outputs["cluster_name"],
        taskDefinition=outputs["training_task_definition_arn"],
        launchType="FARGATE",
        startedBy="train-remote",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": list(outputs["training_subnet_ids"]),
                "securityGroups": [outputs["training_security_group_id"]],
                "assignPublicIp": "DISABLED",
            }
        },
    )
    if not started.get("tasks"):
        raise TrainRemoteError(f"RunTask started nothing: {started.get('failures')}")
    task_arn = started["tasks"][0]["taskArn"]
    print(f"train-remote: started {task_arn} (logs: {outputs['training_log_group']})", flush=True)
    deadline = time.monotonic() + timeout_seconds
    last = ""
    while True:
        (task,) = ecs.describe_tasks(cluster=outputs["cluster_name"], tasks=[task_arn])["tasks"]
        if task["lastStatus"] != last:
            last = task["lastStatus"]
            print(f"train-remote: {last}", flush=True)
        if last == "STOPPED":
            break
        if time.monotonic() > deadline:
            raise TrainRemoteError(
                f"{task_arn} still {last} after {timeout_seconds:.0f} s; stop it with aws ecs stop-task"
            )
        time.sleep(poll_seconds)
    trainer: dict[str, Any] = next((c for c in task.get("containers", []) if c["name"] == TRAINER_CONTAINER), {})
    code = trainer.get("exitCode")
    if code is None:
        print(f"train-remote: the trainer never ran: {task.get('stopCode')}: {task.get('stoppedReason')}", flush=True)
        return 1
    print(f"train-remote: trainer exited with {code}", flush=True)
    return int(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, help="environment name, e.g. dev (stack recsys-<env>)")
    parser.add_argument(
        "--stack-dir", type=Path, help="synthesized stack folder (default cdktf.out/stacks/recsys-<env>)"
    )
    parser.add_argument("--poll-seconds", type=float, default=15.0)
    parser.add_argument("--timeout-seconds", type=float, default=3 * 3600.0)
    args = parser.parse_args(argv)
    stack_dir = args.stack_dir or ROOT / "cdktf.out" / "stacks" / f"recsys-{args.env}"
    try:
        import boto3

        outputs = stack_outputs(stack_dir)
        return run_once(boto3.client("ecs"), outputs, args.poll_seconds, args.timeout_seconds)
    except TrainRemoteError as error:
        print(f"train-remote: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
