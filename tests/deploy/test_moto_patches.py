"""The emulator's moto_server: loopback only, stopped with its process group, and the operations it patches in."""

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
import requests

from tools.moto_server import HOST, MOTO_PATCHES, MotoServer, RetryReplay, secure_transport_applies
from tools.testkit.processes import group_alive

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    work = tmp_path_factory.mktemp("moto")
    server = MotoServer(work / "moto.log", work / "requests.jsonl", ecs_running_tasks=1)
    saved = os.environ.get("NO_PROXY")
    os.environ["NO_PROXY"] = HOST
    try:
        yield server.start()
    finally:
        server.stop()
        if saved is None:
            os.environ.pop("NO_PROXY", None)
        else:
            os.environ["NO_PROXY"] = saved


def client(moto: MotoServer, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=moto.url,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_listens_on_loopback_only(moto: MotoServer) -> None:
    assert moto.url.startswith(f"http://{HOST}:")
    result = subprocess.run(
        [sys.executable, "-m", "tools.moto_server", "-H", "0.0.0.0", "-p", "1"],
        cwd=Path(__file__).resolve().parent.parent.parent,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0 and "127.0.0.1 only" in result.stderr


def test_every_patch_says_why() -> None:
    assert all(len(reason) > 80 for reason in MOTO_PATCHES.values())


def test_efs_backup_policy_can_be_put_and_read_back(moto: MotoServer) -> None:
    efs = client(moto, "efs")
    fs_id = efs.create_file_system(CreationToken="patch-test", Encrypted=True)["FileSystemId"]
    efs.put_backup_policy(FileSystemId=fs_id, BackupPolicy={"Status": "DISABLED"})
    assert efs.describe_backup_policy(FileSystemId=fs_id)["BackupPolicy"] == {"Status": "DISABLED"}
    efs.put_backup_policy(FileSystemId=fs_id, BackupPolicy={"Status": "ENABLED"})
    assert efs.describe_backup_policy(FileSystemId=fs_id)["BackupPolicy"] == {"Status": "ENABLED"}


def test_efs_file_system_policy_can_be_deleted(moto: MotoServer) -> None:
    efs = client(moto, "efs")
    fs_id = efs.create_file_system(CreationToken="policy-test", Encrypted=True)["FileSystemId"]
    policy = '{"Version": "2012-10-17", "Statement": []}'
    efs.put_file_system_policy(FileSystemId=fs_id, Policy=policy)
    assert efs.describe_file_system_policy(FileSystemId=fs_id)["Policy"]
    efs.delete_file_system_policy(FileSystemId=fs_id)
    with pytest.raises(efs.exceptions.PolicyNotFound):
        efs.describe_file_system_policy(FileSystemId=fs_id)


def test_scalable_target_tags_are_kept(moto: MotoServer) -> None:
    ecs = client(moto, "ecs")
    ecs.create_cluster(clusterName="c")
    ecs.register_task_definition(family="t", containerDefinitions=[{"name": "a", "image": "a", "memory": 128}])
    ecs.create_service(cluster="c", serviceName="s", taskDefinition="t", desiredCount=1)
    scaling = client(moto, "application-autoscaling")
    arn = scaling.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId="service/c/s",
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=1,
        MaxCapacity=2,
        Tags={"project": "recsys-fargate"},
    )["ScalableTargetARN"]
    assert scaling.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"project": "recsys-fargate"}
    scaling.tag_resource(ResourceARN=arn, Tags={"environment": "dev"})
    scaling.untag_resource(ResourceARN=arn, TagKeys=["project"])
    assert scaling.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"environment": "dev"}


def test_requests_are_recorded(moto: MotoServer) -> None:
    client(moto, "sts").get_caller_identity()
    assert any("GetCallerIdentity" in (r.get("body") or "") or r["body_encoded"] for r in moto.recorded_requests())


def test_stop_ends_the_process_group(tmp_path: Path) -> None:
    server = MotoServer(tmp_path / "moto.log").start()
    assert server.process is not None
    pgid = server.process.pid
    server.stop()
    assert not group_alive(pgid)


def test_fargate_run_task_needs_only_task_level_memory(moto: MotoServer) -> None:
    ec2 = client(moto, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.99.1.0/24")["Subnet"]["SubnetId"]
    hostnames = ec2.create_vpc(CidrBlock="10.98.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=hostnames, EnableDnsHostnames={"Value": True})
    named = ec2.create_subnet(VpcId=hostnames, CidrBlock="10.98.1.0/24")["Subnet"]["SubnetId"]
    # moto sets the ENI's DNS name itself here (a NAT gateway creates one): the patch must not get in the way
    ec2.create_nat_gateway(SubnetId=named, AllocationId=ec2.allocate_address(Domain="vpc")["AllocationId"])
    group = ec2.create_security_group(GroupName="trainer", Description="trainer", VpcId=vpc)["GroupId"]
    ecs = client(moto, "ecs")
    cluster = ecs.create_cluster(clusterName="patch-run-task")["cluster"]["clusterArn"]
    definition = ecs.register_task_definition(
        family="no-container-memory",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "trainer", "image": "x", "essential": True}],
    )["taskDefinition"]["taskDefinitionArn"]
    network = {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group], "assignPublicIp": "DISABLED"}}
    (task,) = ecs.run_task(
        cluster=cluster, taskDefinition=definition, launchType="FARGATE", networkConfiguration=network
    )["tasks"]
    (described,) = ecs.describe_tasks(cluster=cluster, tasks=[task["taskArn"]])["tasks"]
    assert described["taskDefinitionArn"] == definition


TLS_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "DenyWithoutTls",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": ["arn:aws:s3:::tls-only", "arn:aws:s3:::tls-only/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ],
}


@pytest.fixture(scope="module")
def tls_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    work = tmp_path_factory.mktemp("moto-tls")
    server = MotoServer(work / "moto.log", tls_dir=work / "tls")
    try:
        yield server.start()
    finally:
        server.stop()


def tls_only_bucket(moto: MotoServer) -> Any:
    s3 = boto3.client(
        "s3",
        endpoint_url=moto.url,
        verify=moto.verify,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket="tls-only")
    s3.put_bucket_policy(Bucket="tls-only", Policy=json.dumps(TLS_ONLY))
    return s3


def test_tls_only_bucket_accepts_objects_over_https(tls_moto: MotoServer) -> None:
    assert tls_moto.url.startswith(f"https://{HOST}:")
    assert tls_moto.ca_bundle is not None and tls_moto.ca_bundle.is_file()
    s3 = tls_only_bucket(tls_moto)
    s3.put_object(Bucket="tls-only", Key="interactions/a.csv", Body=b"user_id,item_id\n")
    assert s3.get_object(Bucket="tls-only", Key="interactions/a.csv")["Body"].read() == b"user_id,item_id\n"


def test_tls_only_bucket_refuses_objects_over_http(moto: MotoServer) -> None:
    s3 = tls_only_bucket(moto)
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        s3.put_object(Bucket="tls-only", Key="interactions/a.csv", Body=b"user_id,item_id\n")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


@pytest.mark.parametrize(
    ("condition", "secure", "applies"),
    [
        ({"Bool": {"aws:SecureTransport": "false"}}, False, True),
        ({"Bool": {"aws:SecureTransport": "false"}}, True, False),
        ({"Bool": {"aws:securetransport": ["true"]}}, True, True),
        ({"StringEquals": {"aws:SourceAccount": "1"}}, True, None),
        ({"Bool": {"aws:SecureTransport": "false", "aws:ViaAWSService": "false"}}, True, None),
    ],
)
def test_only_secure_transport_conditions_are_decided_by_the_patch(
    condition: dict[str, Any], secure: bool, applies: bool | None
) -> None:
    assert secure_transport_applies({"Effect": "Deny", "Condition": condition}, secure) is applies


def _sent_again(request: Any, attempt: int) -> requests.Response:
    """The exact request botocore sent, sent again as that call's attempt number `attempt`."""
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    headers["amz-sdk-request"] = f"attempt={attempt}; max=3"
    with requests.Session() as session:
        session.trust_env = False
        return session.post(request.url, data=request.body, headers=headers, timeout=30)


def test_a_retry_of_a_create_moto_already_answered_gets_that_answer_not_already_exists(moto: MotoServer) -> None:
    kms = client(moto, "kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    sent: list[Any] = []
    kms.meta.events.register("before-send.kms.CreateAlias", lambda request, **_: sent.append(request))
    kms.create_alias(AliasName="alias/retried-after-a-lost-answer", TargetKeyId=key)
    retried = _sent_again(sent[0], attempt=2)
    assert retried.status_code == 200, retried.text
    # a second call (new invocation id) is refused as AWS refuses it: nothing real is hidden
    with pytest.raises(kms.exceptions.AlreadyExistsException):
        kms.create_alias(AliasName="alias/retried-after-a-lost-answer", TargetKeyId=key)
    # and a first attempt that carries an old invocation id runs again rather than being answered from memory
    assert _sent_again(sent[0], attempt=1).status_code == 400


def _environ(invocation: str, attempt: int) -> dict[str, Any]:
    return {"HTTP_AMZ_SDK_INVOCATION_ID": invocation, "HTTP_AMZ_SDK_REQUEST": f"attempt={attempt}; max=3"}


def test_a_retry_arriving_while_the_first_attempt_runs_waits_for_its_answer() -> None:
    replay = RetryReplay()
    runs: list[str] = []
    release = threading.Event()

    def slow_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        runs.append(environ["HTTP_AMZ_SDK_REQUEST"])
        release.wait(timeout=10)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"run": 1}']

    first: list[bytes] = []
    worker = threading.Thread(target=lambda: first.extend(replay.handle(slow_app, _environ("a", 1), _ignore)))
    worker.start()
    while not runs:
        time.sleep(0.01)
    retried: list[bytes] = []
    retry = threading.Thread(target=lambda: retried.extend(replay.handle(slow_app, _environ("a", 2), _ignore)))
    retry.start()
    time.sleep(0.1)
    release.set()
    worker.join(timeout=10)
    retry.join(timeout=10)
    assert runs == ["attempt=1; max=3"] and retried == first == [b'{"run": 1}'] and replay.replayed == 1


def test_a_retry_of_a_server_error_runs_again() -> None:
    replay = RetryReplay()
    statuses = iter(["500 Internal Server Error", "200 OK"])

    def flaky_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        status = next(statuses)
        start_response(status, [])
        return [status.encode()]

    assert replay.handle(flaky_app, _environ("b", 1), _ignore) == [b"500 Internal Server Error"]
    assert replay.handle(flaky_app, _environ("b", 2), _ignore) == [b"200 OK"]
    assert replay.replayed == 0


def _ignore(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    return None
