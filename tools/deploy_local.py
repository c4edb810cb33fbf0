"""`make deploy-local` / `make destroy-local`: the dev stack applied to moto on loopback, the way CI applies it to AWS.

    python -m tools.deploy_local deploy [--keep]   synth -> moto -> init -> the documented first deploy (step 1:
                                                   targeted apply, step 2: upload, step 3: full apply) -> outputs
                                                   -> second plan -> destroy
    python -m tools.deploy_local destroy           destroy a kept deployment and stop its moto_server

Everything happens under .cache/deploy-local/ (ignored): the dev stack is synthesized there (CDKTF_OUTDIR), never in
cdktf.out/, so the generated provider override (tools/emulator.py) cannot reach a real deploy. Each step prints a
progress line and logs to .cache/deploy-local/logs/<step>.log; a failing step names its log. moto_server and
terraform run in their own process groups and are stopped on any failure or interrupt. With --keep, moto_server keeps
running (its pid and port are in .cache/deploy-local/session.json) until `make destroy-local`.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tools import emulator, first_deploy
from tools.moto_server import MotoServer
from tools.terraform import ROOT, TerraformSetupError
from tools.terraform import environment as terraform_environment
from tools.testkit.processes import group_alive, stop_group

STACK = "recsys-dev"
WORKDIR = ROOT / ".cache" / "deploy-local"
SESSION_FILE = WORKDIR / "session.json"
# Upper bounds per step (seconds): a hung step fails with its log instead of hanging make or CI.
TIMEOUTS = {
    "synth": 300,
    "init": 180,
    "apply": 900,
    "output": 60,
    "plan": 300,
    "show": 120,
    "destroy": 600,
    "state": 60,
    "synthetic": 120,
}


class DeployStepError(RuntimeError):
    def __init__(self, step: str, message: str, log: Path | None = None) -> None:
        self.step, self.log = step, log
        where = f"; log: {log}" if log else ""
        super().__init__(f"{step} failed: {message}{where}")


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_logged(
    step: str,
    args: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log: Path,
    timeout: float,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `args` in its own process group, output to `log`; kill the group on timeout or interrupt.

    `capture`: stdout goes to `<log>.out` and comes back as `.stdout` (stderr stays in the log).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    out_path = log.with_suffix(".out")
    with log.open("w") as out, out_path.open("w") if capture else out as stdout:
        out.write(f"$ {' '.join(args)}  (cwd {cwd})\n")
        out.flush()
        process = subprocess.Popen(
            args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=out,
            start_new_session=True, text=True,
        )  # fmt: skip
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as error:
            stop_group(process)
            raise DeployStepError(step, f"timed out after {timeout:.0f} s", log) from error
        finally:
            stop_group(process)  # a no-op once it exited; kills provider plugins left behind otherwise
    if capture:
        return subprocess.CompletedProcess(args, process.returncode, out_path.read_text(), log.read_text())
    return subprocess.CompletedProcess(args, process.returncode, log.read_text(errors="replace"), "")


@dataclass
class Timing:
    step: str
    seconds: float


class LocalDeployment:
    """One stack folder applied to one moto_server. The steps raise DeployStepError; nothing here stops moto."""

    def __init__(
        self,
        stack_dir: Path,
        endpoint: str,
        logs: Path,
        progress: Callable[[str], None] = print,
        ca_bundle: Path | None = None,
    ) -> None:
        """`ca_bundle`: moto's certificate when it serves HTTPS; Terraform and the AWS CLI trust it."""
        self.ca_bundle = ca_bundle
        self.stack_dir = stack_dir
        self.endpoint = endpoint
        self.logs = logs
        self.progress = progress
        self.timings: list[Timing] = []
        self._count = 0
        self.env = self._environment()

    def _environment(self) -> dict[str, str]:
        try:
            env = terraform_environment()
        except TerraformSetupError as error:
            raise DeployStepError("init", str(error)) from error
        env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=emulator.FAKE_ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=emulator.FAKE_SECRET_KEY,
            AWS_ENDPOINT_URL=self.endpoint,  # catch-all for any service the override does not name
            AWS_EC2_METADATA_DISABLED="true",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            TF_IN_AUTOMATION="1",
        )
        if self.ca_bundle is not None:
            env["AWS_CA_BUNDLE"] = str(self.ca_bundle)  # the bootstrap's AWS CLI, the upload's, the provider
        return env

    def terraform(
        self, step: str, *args: str, ok_codes: tuple[int, ...] = (0,), capture: bool = False
    ) -> subprocess.CompletedProcess[str]:
        self._count += 1
        log = self.logs / f"{self._count:02d}-{step}.log"
        kind = step.split("-", maxsplit=1)[0]
        self.progress(f"{step}: terraform {args[0]} ...")
        start = time.monotonic()
        result = run_logged(
            step,
            ["terraform", *args],
            cwd=self.stack_dir,
            env=self.env,
            log=log,
            timeout=TIMEOUTS[kind],
            capture=capture,
        )
        seconds = time.monotonic() - start
        self.timings.append(Timing(step, seconds))
        if result.returncode not in ok_codes:
            raise DeployStepError(step, f"terraform {args[0]} exited with {result.returncode}:\n{_tail(log)}", log)
        self.progress(f"{step}: done in {seconds:.1f} s")
        return result

    def init(self) -> None:
        emulator.write_override(self.stack_dir, self.endpoint, self.ca_bundle)
        self.terraform("init", "init", "-input=false", "-no-color")

    def apply(self, targets: list[str] | None = None) -> None:
        """The full apply, or with `targets` (`-target=<address>` arguments) the targeted apply of step 1."""
        step = "apply-targets" if targets else "apply"
        self.terraform(step, "apply", "-auto-approve", "-input=false", "-no-color", *(targets or []))

    def output(self, name: str) -> str:
        """`terraform output -raw <name>`, the way the documented commands read one output."""
        return self.terraform(f"output-{name}", "output", "-raw", "-no-color", name, capture=True).stdout.strip()

    def outputs(self) -> dict[str, Any]:
        result = self.terraform("output", "output", "-json", "-no-color", capture=True)
        raw: dict[str, Any] = json.loads(result.stdout)
        return {name: item["value"] for name, item in raw.items()}

    def second_plan(self) -> list[emulator.Change]:
        plan_file = "second.tfplan"
        self.terraform(
            "plan", "plan", "-input=false", "-no-color", "-detailed-exitcode", f"-out={plan_file}", ok_codes=(0, 2)
        )
        shown = self.terraform("show", "show", "-json", "-no-color", plan_file, capture=True)
        plan: dict[str, Any] = json.loads(shown.stdout)
        return emulator.judge_plan(plan)

    def destroy(self) -> None:
        self.terraform("destroy", "destroy", "-auto-approve", "-input=false", "-no-color")

    def state_addresses(self) -> list[str]:
        result = self.terraform("state-list", "state", "list", "-no-color", ok_codes=(0, 1), capture=True)
        return [line for line in result.stdout.splitlines() if line.strip()]


def check_second_plan(changes: list[emulator.Change], progress: Callable[[str], None] = print) -> None:
    """Fails on any change that is not a documented moto gap; prints the gaps it accepted."""
    for change in changes:
        progress(("known gap " if emulator.acceptable(change) else "UNEXPECTED ") + change.describe())
    bad = [c for c in changes if not emulator.acceptable(c)]
    if bad:
        raise DeployStepError(
            "plan",
            "the plan after apply is not empty beyond known moto gaps (tools/emulator.py KNOWN_GAPS):\n"
            + "\n".join(c.describe() for c in bad),
        )
    if not changes:
        progress("second plan: no changes")


ECS_TARGET = "AmazonEC2ContainerServiceV20141113."
INTERACTIONS_FILE = "interactions.parquet"  # the file name docs/deploy.md step 2 uploads
# The trainer's format from its own generator; small, because moto's request recording keeps every request body.
SYNTHETIC_ARGS = ["--users", "200", "--items", "100", "--segments", "4"]
# Step 1 must not create anything that needs an image or the interaction data.
NOT_IN_STEP_1 = ("aws_ecs_service", "aws_ecs_task_definition", "terraform_data")


def _moto_client(endpoint: str, region: str, service: str, ca_bundle: Path | None) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        verify=str(ca_bundle) if ca_bundle else None,
        region_name=region,
        aws_access_key_id=emulator.FAKE_ACCESS_KEY,
        aws_secret_access_key=emulator.FAKE_SECRET_KEY,
    )


def stack_region(stack: dict[str, Any]) -> str:
    (provider,) = stack["provider"]["aws"]
    region: str = provider["region"]
    return region


@dataclass
class FirstDeploy:
    """What steps 1 and 2 of the documented first deploy did, as seen in Terraform's state and in moto."""

    targets: list[str]
    state_after_step_1: list[str]
    repositories_after_step_1: list[str]
    buckets_after_step_1: list[str]
    services_after_step_1: list[str]
    upload_tool: str  # "aws-cli/<version> ..." or "boto3 <version> (no AWS CLI on this machine)"
    interactions_uri: str  # s3://<bucket>/interactions/
    object_key: str  # the uploaded file's key in that bucket
    object_bytes: int

    @property
    def bucket(self) -> str:
        return self.interactions_uri.removeprefix("s3://").split("/", 1)[0]


def first_deploy_steps_1_and_2(
    deployment: LocalDeployment, stack: dict[str, Any], work: Path, progress: Callable[[str], None] = print
) -> FirstDeploy:
    """docs/deploy.md "First deploy of an empty account", steps 1 and 2, against moto; step 3 is `apply()`.

    Step 1 is the targeted apply with the list of `python3 -m tools.first_deploy targets` (the same function), and
    must leave the repositories and buckets and no service. Step 2 cannot push images (no registry here) and says
    so; it uploads a synthetic interaction file the way the docs do, with the AWS CLI when the machine has one.
    """
    targets = first_deploy.targets(stack)
    progress(f"step 1: terraform apply of {len(targets)} targets (python3 -m tools.first_deploy targets)")
    deployment.apply(targets)
    state = deployment.state_addresses()
    missing = [t.removeprefix("-target=") for t in targets if t.removeprefix("-target=") not in state]
    early = [a for a in state if a.split(".")[0] in NOT_IN_STEP_1]
    if missing or early:
        raise DeployStepError("apply-targets", f"after step 1 the state misses {missing} and already holds {early}")
    region = stack_region(stack)

    def client(service: str) -> Any:
        return _moto_client(deployment.endpoint, region, service, deployment.ca_bundle)

    repositories = [r["repositoryName"] for r in client("ecr").describe_repositories()["repositories"]]
    buckets = [b["Name"] for b in client("s3").list_buckets()["Buckets"]]
    ecs = client("ecs")
    services = [s for c in ecs.list_clusters()["clusterArns"] for s in ecs.list_services(cluster=c)["serviceArns"]]
    progress(
        f"step 1: {len(state)} resources in state: repositories {repositories}, buckets {buckets}, "
        f"ECS services {services}"
    )
    if services:
        raise DeployStepError("apply-targets", f"step 1 created ECS services {services}")

    app = deployment.output("app_repository_url")
    router = deployment.output("router_repository_url")
    progress(
        "step 2: images NOT pushed: this machine has no container registry (moto's ECR keeps repositories, not "
        f"images, and runs no containers); in AWS: {app}:$IMAGE_TAG, {app}:$IMAGE_TAG-train, {router}:$IMAGE_TAG"
    )
    interactions = work / INTERACTIONS_FILE
    generated = run_logged(
        "synthetic",
        [sys.executable, "-m", "api.training.synthetic", "--out", str(interactions), *SYNTHETIC_ARGS],
        cwd=ROOT,
        env=dict(os.environ),
        log=deployment.logs / "synthetic.log",
        timeout=TIMEOUTS["synthetic"],
    )
    if generated.returncode != 0:
        raise DeployStepError("synthetic", f"exited with {generated.returncode}", deployment.logs / "synthetic.log")
    uri = deployment.output("interactions_uri")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    key = prefix + INTERACTIONS_FILE
    tool = _upload(deployment, interactions, uri, region=region)
    size = int(client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"])
    progress(f"step 2: uploaded {interactions.name} ({size} bytes) to s3://{bucket}/{key} with {tool}")
    return FirstDeploy(targets, state, repositories, buckets, services, tool, uri, key, size)


def _upload(deployment: LocalDeployment, path: Path, uri: str, *, region: str) -> str:
    """`aws s3 cp <file> <interactions_uri>` as documented, or boto3's upload where no AWS CLI is installed."""
    aws = shutil.which("aws")
    if aws is None:
        import boto3

        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        _moto_client(deployment.endpoint, region, "s3", deployment.ca_bundle).upload_file(
            str(path), bucket, prefix + path.name
        )
        return f"boto3 {boto3.__version__} (no AWS CLI on this machine)"
    # The CLI reads moto's address from AWS_ENDPOINT_URL and its certificate from AWS_CA_BUNDLE (deployment.env, as
    # for the bootstrap run); a config file of our own keeps a user's ~/.aws profiles out, and path-style addressing
    # keeps the bucket name out of the host name (127.0.0.1 has no subdomains).
    deployment.logs.mkdir(parents=True, exist_ok=True)
    config = deployment.logs / "aws-config"
    config.write_text("[default]\ns3 =\n    addressing_style = path\n")
    env = dict(deployment.env, AWS_DEFAULT_REGION=region, AWS_CONFIG_FILE=str(config))
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    log = deployment.logs / "upload.log"
    result = run_logged("upload", [aws, "s3", "cp", str(path), uri], cwd=ROOT, env=env, log=log, timeout=120)
    if result.returncode != 0:
        raise DeployStepError("upload", f"aws s3 cp exited with {result.returncode}:\n{_tail(log)}", log)
    version = run_logged(
        "upload", [aws, "--version"], cwd=ROOT, env=env, log=log.with_name("aws-version.log"), timeout=60, capture=True
    )
    found = re.search(r"aws-cli/\S+", version.stdout + version.stderr)  # v1 printed it on stderr
    return found.group(0) if found else "the AWS CLI"


def _first_index(entries: list[dict[str, Any]], match: Callable[[dict[str, Any]], bool]) -> int | None:
    return next((i for i, entry in enumerate(entries) if match(entry)), None)


def first_deploy_report(
    moto: MotoServer,
    outputs: dict[str, Any],
    progress: Callable[[str], None] = print,
    uploaded: FirstDeploy | None = None,
) -> None:
    """Shows, from moto's state and its request log, that the first deploy trained before the service existed:
    the training task definition, its writer access point, the schedule, and a RunTask of the trainer requested
    before CreateService (and, given the upload of step 2, after the interaction file arrived). Fails if the order
    is wrong or a piece is missing."""
    region = outputs["training_task_definition_arn"].split(":")[3]

    def client(service: str) -> Any:
        return _moto_client(moto.url, region, service, moto.ca_bundle)

    task = client("ecs").describe_task_definition(taskDefinition=outputs["training_task_definition_arn"])
    definition = task["taskDefinition"]
    (container,) = definition["containerDefinitions"]
    progress(f"training task definition {definition['family']}:{definition['revision']}: {container['image']}")
    progress(f"  command {' '.join(container.get('entryPoint', []) + container.get('command', []))}")
    (efs,) = [v["efsVolumeConfiguration"] for v in definition["volumes"] if "efsVolumeConfiguration" in v]
    access_point = efs["authorizationConfig"]["accessPointId"]
    if access_point != outputs["efs_writer_access_point_id"]:
        raise DeployStepError("first-deploy", f"the trainer mounts {access_point}, not the writer access point")
    (found,) = client("efs").describe_access_points(AccessPointId=access_point)["AccessPoints"]
    progress(f"  writes through access point {access_point} (root {found['RootDirectory']['Path']})")
    if "training_schedule_name" in outputs:
        schedule = client("scheduler").get_schedule(Name=outputs["training_schedule_name"])
        progress(f"schedule {schedule['Name']}: {schedule['ScheduleExpression']} ({schedule['State']})")
    entries = moto.recorded_requests()

    def target(operation: str) -> Callable[[dict[str, Any]], bool]:
        return lambda entry: entry["headers"].get("X-Amz-Target") == f"{ECS_TARGET}{operation}"

    run = _first_index(entries, target("RunTask"))
    create = _first_index(entries, target("CreateService"))
    if run is None or create is None or run > create:
        raise DeployStepError(
            "first-deploy", f"expected the bootstrap RunTask before CreateService (request #{run} vs #{create})"
        )
    if uploaded is not None:
        # path-style S3 (the override's s3_use_path_style, the CLI's addressing_style): PUT /<bucket>/<key>
        path = f"/{uploaded.bucket}/{uploaded.object_key}"
        put = _first_index(entries, lambda e: e["method"] == "PUT" and urlsplit(e["url"]).path == path)
        if put is None or put > run:
            raise DeployStepError(
                "first-deploy", f"expected the upload of {path} before the bootstrap RunTask (#{put} vs #{run})"
            )
        progress(f"order: PutObject {path} was request #{put}, before the bootstrap RunTask")
    progress(f"bootstrap: RunTask was request #{run}, CreateService #{create}: trained before the service")


def synthesize(outdir: Path, log: Path, env_extra: dict[str, str] | None = None) -> Path:
    """`python main.py` into `outdir` (CDKTF_OUTDIR), the same code path as `make synth`; returns the dev stack dir."""
    env = dict(os.environ, CDKTF_OUTDIR=str(outdir), **(env_extra or {}))
    env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    env.setdefault("JSII_RUNTIME_PACKAGE_CACHE_ROOT", str(ROOT / ".cache" / "jsii"))
    result = run_logged("synth", [sys.executable, "main.py"], cwd=ROOT, env=env, log=log, timeout=TIMEOUTS["synth"])
    stack_dir = outdir / "stacks" / STACK
    if result.returncode != 0 or not (stack_dir / "cdk.tf.json").is_file():
        raise DeployStepError("synth", f"main.py exited with {result.returncode}:\n{_tail(log)}", log)
    return stack_dir


@contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """SIGTERM/SIGHUP raise SystemExit, so `finally` blocks stop moto and terraform."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def say(message: str) -> None:
    print(f"[deploy-local] {message}", flush=True)


def read_session() -> dict[str, Any] | None:
    try:
        session: dict[str, Any] = json.loads(SESSION_FILE.read_text())
    except (OSError, ValueError):
        return None
    return session


def _first_deploy(moto: MotoServer, deployment: LocalDeployment, stack: dict[str, Any]) -> None:
    """The three documented steps, then the outputs and the proof of their order."""
    uploaded = first_deploy_steps_1_and_2(deployment, stack, WORKDIR, say)
    say("step 3: the full apply (trainer -> bootstrap run -> service)")
    deployment.apply()
    outputs = deployment.outputs()
    for name, value in sorted(outputs.items()):
        say(f"output {name} = {json.dumps(value)}")
    first_deploy_report(moto, outputs, say, uploaded)


def deploy(keep: bool) -> int:
    session = read_session()
    if session and group_alive(session["pgid"]):
        say(f"a kept deployment is running (moto on {session['endpoint']}); run `make destroy-local` first")
        return 1
    shutil.rmtree(WORKDIR, ignore_errors=True)
    logs = WORKDIR / "logs"
    started = time.monotonic()
    moto: MotoServer | None = None
    keep_running = False
    try:
        with terminate_on_sigterm():
            say("synth: python main.py into .cache/deploy-local/cdktf.out ...")
            t0 = time.monotonic()
            stack_dir = synthesize(WORKDIR / "cdktf.out", logs / "00-synth.log")
            say(f"synth: done in {time.monotonic() - t0:.1f} s ({stack_dir.relative_to(ROOT)})")
            stack = json.loads((stack_dir / "cdk.tf.json").read_text())
            moto = MotoServer(
                logs / "moto_server.log",
                recording_path=WORKDIR / "moto-requests.jsonl",
                ecs_running_tasks=emulator.ecs_running_tasks(stack),
                tls_dir=WORKDIR / "tls",
            )
            moto.start()
            say(f"moto_server: listening on {moto.url} (log {moto.log_path.relative_to(ROOT)})")
            deployment = LocalDeployment(stack_dir, moto.url, logs, say, ca_bundle=moto.ca_bundle)
            deployment.init()
            _first_deploy(moto, deployment, stack)
            check_second_plan(deployment.second_plan(), say)
            if keep:
                assert moto.process is not None
                SESSION_FILE.write_text(
                    json.dumps(
                        {
                            "pgid": moto.process.pid,
                            "endpoint": moto.url,
                            "stack_dir": str(stack_dir),
                            "ca_bundle": str(moto.ca_bundle),
                        }
                    )
                )
                keep_running = True
                say(f"kept: moto_server pid {moto.process.pid} on {moto.url}; try")
                say(f"  AWS_ENDPOINT_URL={moto.url} AWS_CA_BUNDLE={moto.ca_bundle} \\")
                say("  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \\")
                say("  AWS_DEFAULT_REGION=eu-west-1 aws ecs list-clusters")
                say("then `make destroy-local` destroys the stack and stops moto_server")
            else:
                deployment.destroy()
                left = deployment.state_addresses()
                if left:
                    raise DeployStepError("destroy", f"state still holds {left}")
                say("destroy: state empty")
    except DeployStepError as error:
        say(f"FAILED {error}")
        return 1
    except (KeyboardInterrupt, SystemExit):
        say("interrupted: stopping terraform and moto_server")
        raise
    finally:
        if moto is not None and not keep_running:
            moto.stop()
            say("moto_server: stopped")
    say(f"ok in {time.monotonic() - started:.1f} s")
    return 0


def destroy() -> int:
    session = read_session()
    if session is None:
        say("nothing to destroy: no kept deployment (.cache/deploy-local/session.json)")
        return 0
    pgid = int(session["pgid"])
    try:
        with terminate_on_sigterm():
            if not group_alive(pgid):
                say("moto_server of the kept deployment is gone, and its resources with it; cleaning up")
                return 0
            deployment = LocalDeployment(
                Path(session["stack_dir"]),
                session["endpoint"],
                WORKDIR / "logs" / "destroy",
                say,
                ca_bundle=Path(session["ca_bundle"]) if session.get("ca_bundle") else None,
            )
            deployment.destroy()
            say("destroy: done")
            return 0
    except DeployStepError as error:
        say(f"FAILED {error}")
        return 1
    finally:
        _kill_group(pgid)
        SESSION_FILE.unlink(missing_ok=True)
        say("moto_server: stopped")


def _kill_group(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        for _ in range(50):
            if not group_alive(pgid):
                return
            time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    deploy_parser = sub.add_parser("deploy", help="apply the dev stack to moto, check the second plan")
    deploy_parser.add_argument("--keep", action="store_true", help="keep the deployment and moto_server running")
    sub.add_parser("destroy", help="destroy a kept deployment and stop its moto_server")
    args = parser.parse_args()
    if args.command == "deploy":
        return deploy(args.keep)
    return destroy()


if __name__ == "__main__":
    sys.exit(main())
