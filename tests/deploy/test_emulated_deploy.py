"""The dev stack applied to moto on loopback (HTTPS) as docs/deploy.md's first deploy: step 1 (targeted apply),
step 2 (upload of the interactions), step 3 (full apply) -> checks through boto3 -> second plan -> destroy.

The stack comes from cdktf.out/stacks/recsys-dev when `make synth` wrote it after the last change to main.py or
modules/ (as in `make test`, where validate synthesizes first); otherwise `python main.py` synthesizes it into the
test's temporary folder (CDKTF_OUTDIR): the same code path either way, and nothing is written into the repository.
Terraform state, plan files, logs and moto's request recording stay in pytest's temporary folder; on a failure the
step's log path is in the message.

Attributes moto accepts but does not keep (tools/emulator.py KNOWN_GAPS) are checked in the request Terraform sent,
from moto's request recording, instead of in moto's answer.
"""

import base64
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from api.contract import APP_PORT, CONTAINER_MODEL_DIR, READINESS_PATH
from modules.router_contract import ROUTER
from tools import emulator
from tools.deploy_local import (
    NOT_IN_STEP_1,
    STACK,
    DeployStepError,
    FirstDeploy,
    LocalDeployment,
    check_second_plan,
    first_deploy_report,
    first_deploy_steps_1_and_2,
    synthesize,
)
from tools.moto_server import MotoServer
from tools.terraform import ROOT

ECS_TARGET = "AmazonEC2ContainerServiceV20141113."

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REGION = "eu-west-1"
SYNTHESIZED = ROOT / "cdktf.out" / "stacks" / STACK / "cdk.tf.json"


def synth_is_fresh() -> bool:
    if not SYNTHESIZED.is_file():
        return False
    # what main.py reads: the modules, the contracts they import (api/contract.py, logging/contract.json)
    sources = [
        ROOT / "main.py",
        ROOT / "api" / "contract.py",
        *(ROOT / "modules").rglob("*.py"),
        *(ROOT / "logging").glob("*.json"),
        ROOT / "logging" / "extra.conf",
    ]
    return SYNTHESIZED.stat().st_mtime >= max(p.stat().st_mtime for p in sources)


@dataclass
class Deployed:
    deployment: LocalDeployment
    moto: MotoServer
    work: Path
    stack: dict[str, Any]
    outputs: dict[str, Any]
    log: list[str]
    first: FirstDeploy

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.moto.url,
            verify=self.moto.verify,
            region_name=REGION,
            aws_access_key_id=emulator.FAKE_ACCESS_KEY,
            aws_secret_access_key=emulator.FAKE_SECRET_KEY,
        )

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = self.stack.get("resource", {}).get(kind, {})
        return found

    def requests(self, target: str) -> list[dict[str, Any]]:
        """Bodies of the JSON-protocol requests Terraform sent with X-Amz-Target `target`."""
        bodies = []
        for entry in self.moto.recorded_requests():
            if entry["headers"].get("X-Amz-Target") != target:
                continue
            raw = base64.b64decode(entry["body"]) if entry.get("body_encoded") else entry["body"].encode()
            bodies.append(json.loads(raw))
        return bodies


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    work = tmp_path_factory.mktemp("emulated-deploy")
    logs = work / "logs"
    stack_dir = work / STACK
    if synth_is_fresh():
        stack_dir.mkdir()
        shutil.copy2(SYNTHESIZED, stack_dir / "cdk.tf.json")
    else:
        stack_dir = synthesize(work / "cdktf.out", logs / "00-synth.log")
    stack = json.loads((stack_dir / "cdk.tf.json").read_text())
    log: list[str] = []
    moto = MotoServer(
        logs / "moto_server.log",
        work / "moto-requests.jsonl",
        ecs_running_tasks=emulator.ecs_running_tasks(stack),
        ecs_rollback_flag=work / "ecs-rolls-back",
        tls_dir=work / "tls",
    )
    saved = {k: os.environ.get(k) for k in ("NO_PROXY", "no_proxy")}
    os.environ.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")  # boto3 never via a proxy
    deployment: LocalDeployment | None = None

    def progress(line: str) -> None:
        log.append(line)
        print(line)

    try:
        moto.start()
        deployment = LocalDeployment(stack_dir, moto.url, logs, progress=progress, ca_bundle=moto.ca_bundle)
        deployment.init()
        first = first_deploy_steps_1_and_2(deployment, stack, work, progress)
        deployment.apply()
        yield Deployed(deployment, moto, work, stack, deployment.outputs(), log, first)
    finally:
        moto.stop()  # its process group: moto_server; terraform groups are stopped by each step
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if deployment is not None:
            print("wall times: " + ", ".join(f"{t.step} {t.seconds:.1f} s" for t in deployment.timings))


def test_override_points_every_service_the_stack_uses_at_loopback(deployed: Deployed) -> None:
    override = json.loads((deployed.deployment.stack_dir / emulator.OVERRIDE_FILE).read_text())
    endpoints = override["provider"]["aws"][0]["endpoints"][0]
    assert emulator.services_used(deployed.stack) <= set(endpoints)
    assert set(endpoints.values()) == {deployed.moto.url}
    assert deployed.moto.url.startswith("https://127.0.0.1:")
    assert override["provider"]["aws"][0]["custom_ca_bundle"] == str(deployed.moto.ca_bundle)


def test_step_1_targets_every_repository_and_bucket_with_its_protections(deployed: Deployed) -> None:
    resources = deployed.stack["resource"]
    targeted = {t.removeprefix("-target=") for t in deployed.first.targets}
    repositories = {f"aws_ecr_repository.{name}" for name in resources["aws_ecr_repository"]}
    buckets = {f"aws_s3_bucket.{name}" for name in resources["aws_s3_bucket"]}
    assert repositories | buckets <= targeted
    # the first object must land in a bucket that is already encrypted, private and TLS-only
    for kind in (
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_public_access_block",
        "aws_s3_bucket_policy",
    ):
        for bucket in buckets:
            protecting = {
                f"{kind}.{name}" for name, config in resources[kind].items() if f"${{{bucket}." in json.dumps(config)
            }
            assert protecting, f"{bucket} has no {kind}"
            assert protecting <= targeted, f"{protecting - targeted} not in step 1"


def test_step_1_creates_the_targets_and_no_service(deployed: Deployed) -> None:
    first = deployed.first
    targeted = {t.removeprefix("-target=") for t in first.targets}
    assert targeted <= set(first.state_after_step_1)
    # what Terraform added by itself: the KMS keys the targets are encrypted with, and data sources
    extra = {a.split(".")[0] for a in set(first.state_after_step_1) - targeted}
    assert extra <= {"aws_kms_key", "data"}, extra
    assert not [a for a in first.state_after_step_1 if a.split(".")[0] in NOT_IN_STEP_1]
    assert sorted(first.repositories_after_step_1) == sorted(
        r["name"] for r in deployed.resources("aws_ecr_repository").values()
    )
    assert len(first.buckets_after_step_1) == len(deployed.resources("aws_s3_bucket"))
    assert first.services_after_step_1 == []


def test_step_2_uploads_the_interactions_with_the_cli_before_the_bootstrap_run(deployed: Deployed) -> None:
    first = deployed.first
    assert first.interactions_uri == deployed.outputs["interactions_uri"]
    head = deployed.client("s3").head_object(Bucket=first.bucket, Key=first.object_key)
    assert head["ContentLength"] == first.object_bytes > 0
    assert head["ServerSideEncryption"] == "aws:kms"  # the bucket's default encryption was there before the file
    expected_tool = "aws-cli/" if shutil.which("aws") else "boto3 "
    assert first.upload_tool.startswith(expected_tool)
    entries = deployed.moto.recorded_requests()
    path = f"/{first.bucket}/{first.object_key}"
    put = [i for i, e in enumerate(entries) if e["method"] == "PUT" and urlsplit(e["url"]).path == path]
    run = [i for i, e in enumerate(entries) if e["headers"].get("X-Amz-Target") == f"{ECS_TARGET}RunTask"]
    create = [i for i, e in enumerate(entries) if e["headers"].get("X-Amz-Target") == f"{ECS_TARGET}CreateService"]
    assert put and run and create
    assert put[0] < run[0] < create[0]


def test_outputs(deployed: Deployed) -> None:
    assert set(deployed.outputs) == set(deployed.stack["output"])
    assert deployed.outputs["vpc_id"].startswith("vpc-")
    assert deployed.outputs["efs_file_system_id"].startswith("fs-")


def test_efs_encrypted_with_its_access_point(deployed: Deployed) -> None:
    efs = deployed.client("efs")
    fs_id = deployed.outputs["efs_file_system_id"]
    (file_system,) = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"]
    assert file_system["Encrypted"] is True
    assert file_system.get("KmsKeyId")
    access_points = {a["AccessPointId"]: a for a in efs.describe_access_points(FileSystemId=fs_id)["AccessPoints"]}
    assert set(access_points) == {
        deployed.outputs["efs_access_point_id"],
        deployed.outputs["efs_writer_access_point_id"],
    }
    assert {a["RootDirectory"]["Path"] for a in access_points.values()} == {"/models"}
    mount_targets = efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]
    assert len(mount_targets) == len(deployed.resources("aws_efs_mount_target"))


def test_image_repositories_are_immutable_and_scanned(deployed: Deployed) -> None:
    ecr = deployed.client("ecr")
    for config in deployed.resources("aws_ecr_repository").values():
        (repo,) = ecr.describe_repositories(repositoryNames=[config["name"]])["repositories"]
        assert repo["imageTagMutability"] == "IMMUTABLE"
        assert repo["encryptionConfiguration"]["encryptionType"] == "KMS"
        assert repo["imageScanningConfiguration"]["scanOnPush"] is True


def test_log_buckets_block_public_access_and_encrypt(deployed: Deployed) -> None:
    s3 = deployed.client("s3")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert len(names) == len(deployed.resources("aws_s3_bucket"))
    assert deployed.outputs["app_log_bucket"] in names
    for name in names:
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        assert all(block.values()), block
        rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("aws:kms", "AES256")


def _task_definition(deployed: Deployed) -> dict[str, Any]:
    (family,) = [
        t["family"] for t in deployed.resources("aws_ecs_task_definition").values() if t["family"].endswith("-api")
    ]
    task_definition: dict[str, Any] = deployed.client("ecs").describe_task_definition(taskDefinition=family)[
        "taskDefinition"
    ]
    return task_definition


def test_task_definition_routes_app_logs_through_firelens(deployed: Deployed) -> None:
    containers = {c["name"]: c for c in _task_definition(deployed)["containerDefinitions"]}
    router = next(c for c in containers.values() if "firelensConfiguration" in c)
    assert router["firelensConfiguration"]["type"] == "fluentbit"
    assert router["firelensConfiguration"]["options"]["config-file-value"] == ROUTER.config_file
    assert router["logConfiguration"]["logDriver"] == "awslogs"
    app = containers[ROUTER.app_container_name]
    assert app["logConfiguration"]["logDriver"] == "awsfirelens"
    assert {"containerName": router["name"], "condition": "HEALTHY"} in app.get("dependsOn", [])
    assert [p["containerPort"] for p in app["portMappings"]] == [APP_PORT]


def test_task_definition_mounts_the_model_volume_read_only_with_transit_encryption(deployed: Deployed) -> None:
    task_definition = _task_definition(deployed)
    efs_volumes = [v for v in task_definition["volumes"] if "efsVolumeConfiguration" in v]
    assert len(efs_volumes) == 1
    volume = efs_volumes[0]
    config = volume["efsVolumeConfiguration"]
    assert config["fileSystemId"] == deployed.outputs["efs_file_system_id"]
    assert config["transitEncryption"] == "ENABLED"
    assert config["authorizationConfig"] == {
        "accessPointId": deployed.outputs["efs_access_point_id"],
        "iam": "ENABLED",
    }
    app = next(c for c in task_definition["containerDefinitions"] if c["name"] == ROUTER.app_container_name)
    (mount,) = [m for m in app["mountPoints"] if m["sourceVolume"] == volume["name"]]
    assert mount == {"sourceVolume": volume["name"], "containerPath": CONTAINER_MODEL_DIR, "readOnly": True}


def test_service_runs_the_task_definition_behind_the_target_group(deployed: Deployed) -> None:
    ecs = deployed.client("ecs")
    (service,) = ecs.describe_services(
        cluster=deployed.outputs["cluster_name"], services=[deployed.outputs["service_name"]]
    )["services"]
    assert service["taskDefinition"] == _task_definition(deployed)["taskDefinitionArn"]
    assert service["launchType"] == "FARGATE"
    (load_balancer,) = service["loadBalancers"]
    assert load_balancer["containerName"] == ROUTER.app_container_name
    assert load_balancer["containerPort"] == APP_PORT
    assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"


def test_service_asked_for_circuit_breaker_with_rollback_and_ecs_exec(deployed: Deployed) -> None:
    """moto drops these on CreateService (KNOWN_GAPS): checked in what Terraform sent, and in moto where it keeps it."""
    (request,) = deployed.requests("AmazonEC2ContainerServiceV20141113.CreateService")
    breaker = request["deploymentConfiguration"]["deploymentCircuitBreaker"]
    assert breaker == {"enable": True, "rollback": True}
    assert request["enableExecuteCommand"] is True
    assert request["deploymentConfiguration"]["alarms"]["rollback"] is True
    (service,) = deployed.client("ecs").describe_services(
        cluster=deployed.outputs["cluster_name"], services=[deployed.outputs["service_name"]]
    )["services"]
    kept = service.get("deploymentConfiguration", {}).get("deploymentCircuitBreaker")
    if kept is not None:  # a moto that keeps it must keep it right
        assert kept == {"enable": True, "rollback": True}
    if "enableExecuteCommand" in service:
        assert service["enableExecuteCommand"] is True


def test_target_group_checks_readiness_on_the_app_port(deployed: Deployed) -> None:
    elbv2 = deployed.client("elbv2")
    name = next(iter(deployed.resources("aws_lb_target_group").values()))["name"]
    (group,) = elbv2.describe_target_groups(Names=[name])["TargetGroups"]
    assert group["HealthCheckPath"] == READINESS_PATH
    assert group["Port"] == APP_PORT
    assert group["TargetType"] == "ip"
    assert group["HealthCheckEnabled"] is True


def test_notification_topic_is_encrypted_with_the_stack_subscriptions(deployed: Deployed) -> None:
    sns = deployed.client("sns")
    topic_arn = deployed.outputs["notification_topic_arn"]
    attributes = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    assert attributes.get("KmsMasterKeyId")
    subscribed = {
        (s["Protocol"], s["Endpoint"]) for s in sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    }
    expected = {(s["protocol"], s["endpoint"]) for s in deployed.resources("aws_sns_topic_subscription").values()}
    assert subscribed == expected


def test_ecs_events_reach_the_topic(deployed: Deployed) -> None:
    events = deployed.client("events")
    topic_arn = deployed.outputs["notification_topic_arn"]
    rules = deployed.resources("aws_cloudwatch_event_rule")
    assert rules, "the stack has no EventBridge rule"
    for config in rules.values():
        rule = events.describe_rule(Name=config["name"])
        assert json.loads(rule["EventPattern"])["source"] == ["aws.ecs"]
        assert rule["State"] == "ENABLED"
        targets = events.list_targets_by_rule(Rule=config["name"])["Targets"]
        assert [t["Arn"] for t in targets] == [topic_arn]
        assert all("InputTransformer" in t for t in targets)


def test_first_deploy_trains_through_the_writer_access_point_before_the_service_exists(deployed: Deployed) -> None:
    lines: list[str] = []
    first_deploy_report(deployed.moto, deployed.outputs, lines.append, deployed.first)
    assert any(line.startswith("bootstrap: RunTask was request #") for line in lines), lines
    assert any(line.startswith("order: PutObject ") for line in lines), lines
    (run,) = deployed.requests(f"{ECS_TARGET}RunTask")
    assert run["taskDefinition"] == deployed.outputs["training_task_definition_arn"]
    assert run["launchType"] == "FARGATE"
    network = run["networkConfiguration"]["awsvpcConfiguration"]
    assert network["assignPublicIp"] == "DISABLED"
    assert network["securityGroups"] == [deployed.outputs["training_security_group_id"]]
    assert sorted(network["subnets"]) == sorted(deployed.outputs["training_subnet_ids"])


def test_training_schedule_targets_the_training_task(deployed: Deployed) -> None:
    schedule = deployed.client("scheduler").get_schedule(Name=deployed.outputs["training_schedule_name"])
    assert schedule["ScheduleExpression"] == "cron(0 3 ? * MON *)"
    ecs = schedule["Target"]["EcsParameters"]
    assert ecs["TaskDefinitionArn"] == deployed.outputs["training_task_definition_arn"]
    assert ecs["NetworkConfiguration"]["awsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"


def test_second_plan_shows_only_known_moto_gaps(deployed: Deployed) -> None:
    changes = deployed.deployment.second_plan()
    check_second_plan(changes, progress=print)


def test_apply_fails_when_ecs_rolls_the_deployment_back(deployed: Deployed) -> None:
    # A new image tag means a new task definition; this emulated ECS then "rolls back" as the circuit breaker
    # would, leaving the service on the old definition. terraform apply must fail rather than report success.
    stack_file = deployed.deployment.stack_dir / "cdk.tf.json"
    stack = json.loads(stack_file.read_text())
    (task,) = [t for t in stack["resource"]["aws_ecs_task_definition"].values() if t["family"].endswith("-api")]
    containers = json.loads(task["container_definitions"])
    for container in containers:
        container["image"] = container["image"].rsplit(":", 1)[0] + ":" + "f" * 40
    task["container_definitions"] = json.dumps(containers)
    stack_file.write_text(json.dumps(stack))
    flag = deployed.work / "ecs-rolls-back"
    flag.touch()
    try:
        with pytest.raises(DeployStepError) as failed:
            deployed.deployment.apply()
    finally:
        flag.unlink()
    assert failed.value.log is not None
    assert "ECS rolled this deployment back" in failed.value.log.read_text()


def test_destroy_leaves_nothing(deployed: Deployed) -> None:
    deployed.deployment.destroy()
    assert deployed.deployment.state_addresses() == []
    ec2 = deployed.client("ec2")
    assert [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]] == []
    ecs = deployed.client("ecs")
    clusters = ecs.list_clusters()["clusterArns"]
    assert not clusters or {c["status"] for c in ecs.describe_clusters(clusters=clusters)["clusters"]} == {"INACTIVE"}
    assert deployed.client("efs").describe_file_systems()["FileSystems"] == []
    assert deployed.client("elbv2").describe_load_balancers()["LoadBalancers"] == []
