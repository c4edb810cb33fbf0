"""A moto_server on a free loopback port, in its own process group, stopped for sure.

Only ever binds 127.0.0.1. Every request it serves is recorded (moto's recorder) into a JSON-lines file, so tests
can check what Terraform actually sent for the attributes moto accepts but does not keep.

`python -m tools.moto_server -H 127.0.0.1 -p PORT` is moto's own server with MOTO_PATCHES applied: operations the
stack calls that moto 5.2 does not implement at all (each listed with the reason, see docs/deploy.md). Attributes
moto accepts but does not keep are not patched: they are documented gaps (tools/emulator.py KNOWN_GAPS).

    with MotoServer(log_path, recording_path) as moto:
        moto.url  # http://127.0.0.1:<port>
"""

import json
import os
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from tools.testkit.processes import free_port, stop_group

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent

# operation -> why it is patched. Each patch implements the documented AWS behaviour, nothing more.
MOTO_PATCHES = {
    "efs:PutBackupPolicy": (
        "moto 5.2 implements DescribeBackupPolicy but not PutBackupPolicy: the PUT on "
        "/2015-02-01/file-systems/<id>/backup-policy answers 500, the provider retries until its timeout, so "
        "aws_efs_backup_policy can never be created; the patch stores the status and DescribeBackupPolicy returns it"
    ),
    "efs:DeleteFileSystemPolicy": (
        "moto 5.2 implements Put/DescribeFileSystemPolicy but not DeleteFileSystemPolicy: the DELETE on "
        "/2015-02-01/file-systems/<id>/policy answers 500 and the provider retries until its timeout, so destroying "
        "aws_efs_file_system_policy hangs; the patch removes the policy"
    ),
    "application-autoscaling:ListTagsForResource/TagResource/UntagResource": (
        "moto 5.2 raises NotImplementedError (HTTP 500) for ListTagsForResource and ignores the Tags of "
        "RegisterScalableTarget; the provider reads a scalable target's tags after creating it (the stack's "
        "default_tags make every target tagged) and retries the 500 until its timeout, so aws_appautoscaling_target "
        "never finishes; the patch keeps the tags by target ARN"
    ),
    "ecs:RunTask (Fargate task without container-level memory)": (
        "moto 5.2's RunTask adds up each container's memory/memoryReservation and fails with a TypeError (HTTP "
        "500) when a container sets neither, although ECS requires only the task-level memory on Fargate "
        "(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html, "
        "'memory'); the training task's container sets none. The patch counts such a container as 0 MiB. "
        "The same RunTask then reads NetworkInterface.private_dns_name, which moto's ENI model lacks (500 again); "
        "the patch derives it as EC2 names private hosts: ip-<a-b-c-d>.<region>.compute.internal"
    ),
    "s3 object requests under a TLS-only bucket policy (aws:SecureTransport)": (
        "moto 5.2 evaluates only StringEquals conditions in bucket policies and treats any other condition as met, "
        "so the stack's `Deny ... Bool aws:SecureTransport=false` statement denies every object request (403), "
        "HTTPS or not, and the documented upload of the interactions can never succeed; a statement applies only "
        "when its condition holds (https://docs.aws.amazon.com/IAM/latest/UserGuide/"
        "reference_policies_elements_condition.html) and aws:SecureTransport is whether the request came over TLS "
        "(https://repost.aws/knowledge-center/s3-bucket-policy-for-config-rule). The patch keeps such "
        "a statement only when the request's scheme matches it; other conditions stay as moto evaluates them"
    ),
}


def apply_patches() -> None:
    """Add the operations in MOTO_PATCHES to moto (in this process only)."""
    from moto.efs import models as efs_models
    from moto.efs.responses import EFSResponse

    def backup_policy(self: Any) -> dict[str, str] | None:
        status = getattr(self, "_backup_status", None)
        if status is not None:
            return {"Status": status}
        return {"Status": "ENABLED"} if self._backup else None

    def put_backup_policy(self: Any) -> tuple[str, dict[str, Any]]:
        file_system_id = self._get_param("FileSystemId")
        status = self._get_param("BackupPolicy")["Status"]
        _, found = self.efs_backend.describe_file_systems(file_system_id=file_system_id)
        found[0]._backup_status = status
        return json.dumps({"BackupPolicy": {"Status": status}}), {"Content-Type": "application/json"}

    def delete_file_system_policy(self: Any) -> tuple[str, dict[str, Any]]:
        file_system_id = self._get_param("FileSystemId")
        _, found = self.efs_backend.describe_file_systems(file_system_id=file_system_id)
        found[0].file_system_policy = None
        return "", {"status": 200}

    efs_models.FileSystem.backup_policy = property(backup_policy)  # type: ignore[assignment]
    EFSResponse.put_backup_policy = put_backup_policy  # type: ignore[attr-defined]
    EFSResponse.delete_file_system_policy = delete_file_system_policy  # type: ignore[attr-defined]

    from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse

    tags: dict[str, dict[str, str]] = {}  # scalable target ARN -> tags (one moto process, one account and region)
    register = ApplicationAutoScalingResponse.register_scalable_target

    def register_scalable_target(self: Any) -> str:
        body: str = register(self)
        arn = json.loads(body)["ScalableTargetARN"]
        tags.setdefault(arn, {}).update(self._get_param("Tags") or {})
        return body

    def list_tags_for_resource(self: Any) -> str:
        return json.dumps({"Tags": tags.get(self._get_param("ResourceARN"), {})})

    def tag_resource(self: Any) -> str:
        tags.setdefault(self._get_param("ResourceARN"), {}).update(self._get_param("Tags") or {})
        return "{}"

    def untag_resource(self: Any) -> str:
        for key in self._get_param("TagKeys") or []:
            tags.get(self._get_param("ResourceARN"), {}).pop(key, None)
        return "{}"

    ApplicationAutoScalingResponse.register_scalable_target = register_scalable_target  # type: ignore[method-assign]
    ApplicationAutoScalingResponse.list_tags_for_resource = list_tags_for_resource  # type: ignore[attr-defined]
    ApplicationAutoScalingResponse.tag_resource = tag_resource  # type: ignore[attr-defined]
    ApplicationAutoScalingResponse.untag_resource = untag_resource  # type: ignore[attr-defined]
    _patch_fargate_run_task()
    _patch_s3_secure_transport()


SECURE_TRANSPORT = "aws:securetransport"  # condition keys are case-insensitive


def secure_transport_applies(statement: dict[str, Any], secure: bool) -> bool | None:
    """For a statement whose only condition is `Bool aws:SecureTransport`: whether it applies to a request over
    TLS (`secure`) or not. None for any other statement (moto evaluates it as before)."""
    condition = statement.get("Condition") or {}
    if list(condition) != ["Bool"] or [k.lower() for k in condition["Bool"]] != [SECURE_TRANSPORT]:
        return None
    (expected,) = condition["Bool"].values()
    values = expected if isinstance(expected, list) else [expected]
    return str(secure).lower() in [str(v).lower() for v in values]


def _patch_s3_secure_transport() -> None:
    import contextvars

    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket
    from moto.s3.responses import S3Response

    secure: contextvars.ContextVar[bool | None] = contextvars.ContextVar("secure_transport", default=None)
    key_response = S3Response.key_response

    def key_response_knowing_the_scheme(self: Any, request: Any, full_url: str, headers: Any) -> Any:
        token = secure.set(full_url.startswith("https:"))
        try:
            return key_response(self, request, full_url, headers)
        finally:
            secure.reset(token)

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        document = json.loads(self.policy.decode())
        statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
        over_tls = secure.get()
        kept = []
        for statement in statements:
            applies = None if over_tls is None else secure_transport_applies(statement, over_tls)
            if applies is None:
                kept.append(statement)
            elif applies:
                kept.append({k: v for k, v in statement.items() if k != "Condition"})
        if not kept:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps({**document, "Statement": kept})).is_action_permitted(action, resource)

    S3Response.key_response = key_response_knowing_the_scheme  # type: ignore[method-assign]
    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


def _patch_fargate_run_task() -> None:
    from moto.ecs.models import EC2ContainerServiceBackend

    calculate = EC2ContainerServiceBackend._calculate_task_resource_requirements

    def requirements_with_task_level_memory(task_definition: Any) -> dict[str, Any]:
        saved = task_definition.container_definitions
        task_definition.container_definitions = [
            c if {"memory", "memoryReservation", "Memory", "MemoryReservation"} & set(c) else {**c, "memory": 0}
            for c in saved
        ]
        try:
            return calculate(task_definition)
        finally:
            task_definition.container_definitions = saved

    from moto.ec2.models.elastic_network_interfaces import NetworkInterface

    if not hasattr(NetworkInterface, "private_dns_name"):
        # moto sets the attribute itself only in VPCs with DNS hostnames; keep that value when it does.
        def get_private_dns_name(self: Any) -> str:
            derived = f"ip-{self.private_ip_address.replace('.', '-')}.{self.ec2_backend.region_name}.compute.internal"
            return str(self.__dict__.get("_private_dns_name", derived))

        def set_private_dns_name(self: Any, value: str) -> None:
            self.__dict__["_private_dns_name"] = value

        NetworkInterface.private_dns_name = property(  # type: ignore[assignment]
            get_private_dns_name, set_private_dns_name
        )

    EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(  # type: ignore[method-assign]
        requirements_with_task_level_memory
    )


class RetryReplay:
    """An AWS SDK retry of a request moto already answered gets that answer again, not a second run.

    The SDKs retry an attempt that failed or timed out (https://docs.aws.amazon.com/sdkref/latest/guide/
    feature-retry-behavior.html); every attempt of one call carries the same `amz-sdk-invocation-id` header and its
    number in `amz-sdk-request` ("attempt=2; max=25", as moto's recording of Terraform's requests shows).
    On a busy 2-core machine moto sometimes answers after the client has given up on the attempt: the moto log shows
    200 for attempt 1 of DescribeSecurityGroups, the recording shows attempt 2 with the same invocation id. For a read
    that is harmless; for CreateAlias the second run answers AlreadyExistsException for the alias the first run made,
    and the emulated deploy failed on it (1 run in 4). AWS answers in milliseconds, so a lost answer is an emulator
    artefact: replaying it removes the artefact without hiding a real error (a second *call*, a new invocation id, still
    runs; a 5xx is not kept, so its retry runs again).
    """

    MAX_KEPT = 4096
    MAX_BODY = 1 << 20

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: OrderedDict[str, tuple[str, list[tuple[str, str]], bytes]] = OrderedDict()
        self._running: dict[str, threading.Event] = {}
        self.replayed = 0

    def handle(self, app: Any, environ: dict[str, Any], start_response: Any) -> Any:
        invocation = environ.get("HTTP_AMZ_SDK_INVOCATION_ID")
        if not invocation:
            return app(environ, start_response)
        if not environ.get("HTTP_AMZ_SDK_REQUEST", "attempt=1;").startswith("attempt=1;"):
            with self._lock:
                running = self._running.get(invocation)
            if running is not None:
                running.wait(timeout=120)  # the earlier attempt is still in moto: its answer is the one to give
            with self._lock:
                answer = self._answers.get(invocation)
                if answer is not None:
                    self.replayed += 1
            if answer is not None:
                status, headers, body = answer
                start_response(status, headers)
                return [body]
        event = threading.Event()
        with self._lock:
            self._running[invocation] = event
        try:
            return self._run(app, invocation, environ, start_response)
        finally:
            with self._lock:
                if self._running.get(invocation) is event:
                    del self._running[invocation]
            event.set()

    def _run(self, app: Any, invocation: str, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.update(status=status, headers=headers)
            return start_response(status, headers, exc_info)

        result = app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        status = str(captured.get("status", "500"))
        if not status.startswith("5") and len(body) <= self.MAX_BODY:
            with self._lock:
                self._answers[invocation] = (status, list(captured.get("headers", [])), body)
                while len(self._answers) > self.MAX_KEPT:
                    self._answers.popitem(last=False)
        return [body]


def replay_retries() -> None:
    """Answer SDK retries through RetryReplay in moto's WSGI application (in this process only)."""
    from moto.moto_server import werkzeug_app

    dispatch = werkzeug_app.DomainDispatcherApplication.__call__
    replay = RetryReplay()

    def call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        return replay.handle(lambda env, respond: dispatch(self, env, respond), environ, start_response)

    werkzeug_app.DomainDispatcherApplication.__call__ = call  # type: ignore[method-assign]


# Fault injection for tests, not a gap fix: while the file this variable names exists, UpdateService keeps the
# service on its current task definition, which is what ECS shows after the circuit breaker rolled a deployment back.
ECS_ROLLBACK_FLAG_ENV = "RECSYS_MOTO_ECS_ROLLBACK_FLAG"


def inject_ecs_rollback(flag: Path) -> None:
    from moto.ecs.models import EC2ContainerServiceBackend

    update = EC2ContainerServiceBackend.update_service

    def update_service(self: Any, service_properties: dict[str, Any]) -> Any:
        if flag.exists():
            service_properties.pop("task_definition", None)
        return update(self, service_properties)

    EC2ContainerServiceBackend.update_service = update_service  # type: ignore[method-assign]


def write_loopback_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (valid one day) and its key; the certificate is its own CA bundle.

    AWS endpoints only speak HTTPS, and the stack's buckets deny requests without TLS (`aws:SecureTransport`, which
    moto evaluates from the request's scheme): an emulator on plain HTTP would refuse the documented upload.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "moto on 127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "moto-cert.pem", directory / "moto-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class MotoStartError(RuntimeError):
    """moto_server did not come up; the message names its log."""


class MotoServer:
    """moto_server on 127.0.0.1:<free port>; `start()`/`stop()` or a context manager."""

    def __init__(
        self,
        log_path: Path,
        recording_path: Path | None = None,
        ecs_running_tasks: int = 0,
        startup_timeout: float = 60.0,
        ecs_rollback_flag: Path | None = None,
        *,
        tls_dir: Path | None = None,
    ) -> None:
        """`ecs_running_tasks`: the running count moto reports for every ECS service (MOTO_ECS_SERVICE_RUNNING);
        the stack's desired count, so that services waiting for a steady state reach it.
        `ecs_rollback_flag`: while this file exists, ECS deployments "roll back" (see inject_ecs_rollback).
        `tls_dir`: serve HTTPS with a certificate written there (`ca_bundle` for clients); plain HTTP without."""
        self.tls_dir = tls_dir
        self.ca_bundle: Path | None = None
        self._tls_key: Path | None = None
        self.ecs_rollback_flag = ecs_rollback_flag
        self.log_path = log_path
        self.ecs_running_tasks = ecs_running_tasks
        self.recording_path = recording_path
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_dir else 'http'}://{HOST}:{self.port}"

    @property
    def verify(self) -> str | bool:
        """What clients pass as `verify` (boto3, requests): the certificate under TLS."""
        return str(self.ca_bundle) if self.ca_bundle else True

    def start(self) -> "MotoServer":
        """Start and wait until it answers. It runs in its own session: it outlives this process unless stopped."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            MOTO_ECS_SERVICE_RUNNING=str(self.ecs_running_tasks),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        )
        if self.ecs_rollback_flag is not None:
            env[ECS_ROLLBACK_FLAG_ENV] = str(self.ecs_rollback_flag)
        if self.recording_path is not None:
            self.recording_path.parent.mkdir(parents=True, exist_ok=True)
            self.recording_path.write_text("")
            env.update(MOTO_ENABLE_RECORDING="true", MOTO_RECORDER_FILEPATH=str(self.recording_path))
        tls: list[str] = []
        if self.tls_dir is not None:
            self.ca_bundle, self._tls_key = write_loopback_certificate(self.tls_dir)
            tls = ["-c", str(self.ca_bundle), "-k", str(self._tls_key)]
        last_error = ""
        for _attempt in range(3):  # the port may be taken between free_port() and bind
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "tools.moto_server", "-H", HOST, "-p", str(self.port), *tls],
                    cwd=ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # own process group: stop() kills it and nothing else
                    close_fds=True,
                )
            try:
                self._wait_ready()
                return self
            except MotoStartError as error:
                last_error = str(error)
                self.stop()
        raise MotoStartError(last_error)

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MotoStartError(f"moto_server exited with {self.process.returncode}; see {self.log_path}")
            try:
                with requests.Session() as session:
                    session.trust_env = False  # never through a proxy
                    # a GET here has no effect (only POST changes moto's auth settings): a cheap liveness probe
                    probe = session.get(f"{self.url}/moto-api/reset-auth", timeout=2, verify=self.verify)
                    if probe.status_code < 500:
                        return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise MotoStartError(
            f"moto_server not ready on {self.url} after {self.startup_timeout:.0f} s; see {self.log_path}"
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
            self.process = None

    def recorded_requests(self) -> list[dict[str, Any]]:
        """The requests moto served so far (moto's recorder format: method, url, headers, body)."""
        if self.recording_path is None or not self.recording_path.is_file():
            return []
        return [json.loads(line) for line in self.recording_path.read_text().splitlines() if line.strip()]

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str]) -> None:
    """moto_server with MOTO_PATCHES; refuses any host but loopback."""
    if "-H" not in argv or argv[argv.index("-H") + 1] != HOST:
        sys.exit(f"tools.moto_server: bind {HOST} only: pass -H {HOST}")
    from moto.server import main as moto_main

    apply_patches()
    replay_retries()
    if flag := os.environ.get(ECS_ROLLBACK_FLAG_ENV):
        inject_ecs_rollback(Path(flag))
    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
