"""The model's life in AWS: a Fargate training task that reads the interaction data from S3 and publishes a new
model version to EFS through its own read-write access point, an EventBridge Scheduler schedule that runs it, SNS
notifications when a run fails, and the bootstrap run that trains the first version before the service exists."""

import json
from dataclasses import dataclass
from typing import Any

from cdktf import DataResource, Fn, ITerraformDependable, LocalExecProvisioner
from cdktf_cdktf_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktf_cdktf_provider_aws.cloudwatch_event_target import (
    CloudwatchEventTarget,
    CloudwatchEventTargetInputTransformer,
)
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.scheduler_schedule import (
    SchedulerSchedule,
    SchedulerScheduleFlexibleTimeWindow,
    SchedulerScheduleTarget,
    SchedulerScheduleTargetEcsParameters,
    SchedulerScheduleTargetEcsParametersNetworkConfiguration,
    SchedulerScheduleTargetRetryPolicy,
)
from constructs import Construct

from api.contract import APP_GID, APP_UID, CONTAINER_MODEL_DIR, MODEL_DIR_ENV, WRITABLE_PATHS
from modules.config import LOG_RETENTION_DAYS
from modules.errors import Problems
from modules.fargate import (
    MODELS_VOLUME,
    bind_volumes,
    check_task_size,
    fargate_task_definition,
    models_volume,
    task_role,
    volume_name,
)
from modules.iam import AwsContext, assume_role_policy, policy, statement
from modules.kms import EncryptionKey, EncryptionKeyProps

TRAINER_CONTAINER = "trainer"
# The trainer image is the API Dockerfile's `train` target, pushed to the same ECR repository as the serving image
# with this suffix on the commit tag: one repository, one lifecycle policy, one pull permission, and the two images
# of a commit sit side by side (`<commit>` serves, `<commit>-train` trains).
TRAINER_TAG_SUFFIX = "-train"
TRAINER_ENTRYPOINT = ["python", "-m", "api.training"]
# Tasks started by the schedule, the bootstrap and `make train-remote` all carry this group (RunTask's default is
# `family:<family>`), which the failure notifications match.
BOOTSTRAP_STARTED_BY = "recsys-bootstrap"

# Runs once, when the model file system (or its writer access point) is created, before the service: RunTask, wait
# for the trainer to stop, succeed only on exit code 0. A task that did not start is retried: a new EFS mount
# target's DNS name can take up to 90 seconds to resolve after the target is available
# (https://docs.aws.amazon.com/efs/latest/ug/mounting-fs-mount-cmd-dns-name.html), and IAM roles created in the
# same apply can take seconds to become usable. Needs the AWS CLI where Terraform runs (CI runners and operators'
# machines have it). Written without "${" so that Terraform leaves it alone.
BOOTSTRAP_SCRIPT = r"""set -eu
network="awsvpcConfiguration={subnets=[$SUBNETS],securityGroups=[$SECURITY_GROUP],assignPublicIp=DISABLED}"
deadline=$(( $(date +%s) + DEADLINE_SECONDS ))
attempt=1
while :; do
  task=$(aws ecs run-task --cluster "$CLUSTER" --task-definition "$TASK_DEFINITION" --launch-type FARGATE \
    --network-configuration "$network" --started-by "$STARTED_BY" --query 'tasks[0].taskArn' --output text)
  case "$task" in
    arn:*) ;;
    *) echo "bootstrap: RunTask started no task ($task)" >&2; exit 1 ;;
  esac
  echo "bootstrap: training run $attempt of $ATTEMPTS: $task (logs: $LOG_GROUP)"
  while :; do
    state=$(aws ecs describe-tasks --cluster "$CLUSTER" --tasks "$task" \
      --query 'tasks[0].[lastStatus,stopCode,containers[0].exitCode]' --output text)
    set -- $state
    [ "$1" = STOPPED ] && break
    if [ "$(date +%s)" -gt "$deadline" ]; then
      echo "bootstrap: training still $1 after $DEADLINE_SECONDS s; stop it with aws ecs stop-task" >&2
      exit 1
    fi
    sleep "$POLL_SECONDS"
  done
  if [ "$3" = 0 ]; then
    echo "bootstrap: the first model version is published"
    exit 0
  fi
  if [ "$2" = TaskFailedToStart ] && [ "$attempt" -lt "$ATTEMPTS" ]; then
    echo "bootstrap: the task did not start ($state); retrying in $RETRY_SECONDS s"
    attempt=$((attempt + 1))
    sleep "$RETRY_SECONDS"
    continue
  fi
  echo "bootstrap: training failed ($state); see the log group $LOG_GROUP" >&2
  exit 1
done
"""


@dataclass(frozen=True)
class TrainingProps:
    """name: the stack name; the task family is `<name>-train` and every resource name starts with it.
    image / repository_arn: the trainer image `<repository url>:<commit>-train` and the only repository it comes from.
    cluster_arn / subnet_ids / security_group_id: where it runs (protected subnets, no public IP, the training group).
    file_system_id / file_system_arn / writer_access_point_id / writer_access_point_arn: the model file system and
        the read-write access point the trainer alone may write through.
    data_uri / data_bucket_arn / data_prefix / data_key_arn: the interaction files it reads (s3://bucket/prefix).
    log_kms_key_arn / retention_days: its CloudWatch log group's encryption and retention.
    topic_arn: where failed runs are reported.
    cpu / memory / cpu_architecture: Fargate task size (see EnvironmentConfig.training_cpu).
    schedule: EventBridge Scheduler expression (UTC) or None for no schedule.
    keep_versions: model versions the trainer keeps after publishing (see EnvironmentConfig.model_versions_kept).
    bootstrap: run the trainer once when the model file system is created, before the service (default on).
    bootstrap_ready: what must exist before that run can mount EFS (mount targets, NFS security group rules).
    bootstrap_attempts / bootstrap_retry_seconds / bootstrap_poll_seconds / bootstrap_deadline_seconds: its retry of
        a task that did not start (3 attempts, 60 s apart), how often it polls (15 s) and how long it waits (3 h).
    """

    name: str
    image: str
    repository_arn: str
    cluster_arn: str
    subnet_ids: tuple[str, ...]
    security_group_id: str
    file_system_id: str
    file_system_arn: str
    writer_access_point_id: str
    writer_access_point_arn: str
    data_uri: str
    data_bucket_arn: str
    data_prefix: str
    data_key_arn: str
    log_kms_key_arn: str
    topic_arn: str
    retention_days: int = 90
    cpu: int = 2048
    memory: int = 8192
    cpu_architecture: str = "X86_64"
    schedule: str | None = None
    keep_versions: int = 5
    bootstrap: bool = True
    bootstrap_ready: tuple[ITerraformDependable, ...] = ()
    bootstrap_attempts: int = 3
    bootstrap_retry_seconds: int = 60
    bootstrap_poll_seconds: int = 15
    bootstrap_deadline_seconds: int = 3 * 3600

    def __post_init__(self) -> None:
        p = Problems("TrainingProps")
        check_task_size(p, self.cpu, self.memory, self.cpu_architecture)
        p.check(bool(self.subnet_ids), "subnet_ids", "empty", "pass the protected subnets")
        p.check(
            self.data_prefix.endswith("/") and not self.data_prefix.startswith("/"),
            "data_prefix",
            f"{self.data_prefix!r} is not a relative folder prefix",
            "use e.g. 'interactions/'",
        )
        p.check(
            self.retention_days in LOG_RETENTION_DAYS,
            "retention_days",
            f"{self.retention_days} is not a CloudWatch Logs retention",
            f"use one of {sorted(LOG_RETENTION_DAYS)}",
        )
        p.check(
            not self.bootstrap or bool(self.bootstrap_ready),
            "bootstrap_ready",
            "empty: the bootstrap run would start before EFS can be mounted",
            "pass the mount targets and the NFS security group rules",
        )
        p.check(self.bootstrap_attempts >= 1, "bootstrap_attempts", "below 1", "use 1 or more")
        for field in ("bootstrap_retry_seconds", "bootstrap_poll_seconds", "bootstrap_deadline_seconds"):
            p.check(getattr(self, field) >= 1, field, "below 1 s", "use a positive number of seconds")
        p.raise_if_any()

    @property
    def family(self) -> str:
        return f"{self.name}-train"


def trainer_container(props: TrainingProps, log_group_name: str, region: str) -> dict[str, Any]:
    # As for the app container, values ECS fills in are written out so the second plan shows no diff.
    return {
        "name": TRAINER_CONTAINER,
        "image": props.image,
        "essential": True,
        "cpu": 0,
        "user": f"{APP_UID}:{APP_GID}",
        "readonlyRootFilesystem": True,
        "entryPoint": TRAINER_ENTRYPOINT,
        "command": [
            "--interactions",
            props.data_uri,
            "--model-dir",
            CONTAINER_MODEL_DIR,
            "--keep-versions",
            str(props.keep_versions),
        ],
        "environment": [
            # pyarrow's S3 file system needs the region; the credentials come from the task role.
            {"name": "AWS_REGION", "value": region},
            {"name": MODEL_DIR_ENV, "value": CONTAINER_MODEL_DIR},
        ],
        "mountPoints": [
            {"sourceVolume": MODELS_VOLUME, "containerPath": CONTAINER_MODEL_DIR, "readOnly": False},
            *({"sourceVolume": volume_name(path), "containerPath": path, "readOnly": False} for path in WRITABLE_PATHS),
        ],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group_name,
                "awslogs-region": region,
                "awslogs-stream-prefix": TRAINER_CONTAINER,
                # A batch job, unlike the API: its last lines explain a failure, and waiting on CloudWatch costs
                # nothing a user feels (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/
                # API_LogConfiguration.html, `mode`).
                "mode": "blocking",
            },
        },
    }


def failure_patterns(cluster_arn: str, family: str) -> dict[str, dict[str, Any]]:
    """EventBridge patterns of a training run that failed: the trainer exited non-zero, or the task never started.

    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html
    """
    common = {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
    }
    task = {"clusterArn": [cluster_arn], "group": [f"family:{family}"], "lastStatus": ["STOPPED"]}
    return {
        "training-failed": {
            **common,
            "detail": {**task, "containers": {"name": [TRAINER_CONTAINER], "exitCode": [{"anything-but": 0}]}},
        },
        "training-not-started": {**common, "detail": {**task, "stopCode": ["TaskFailedToStart"]}},
    }


class Training(Construct):
    def __init__(self, scope: Construct, id_: str, props: TrainingProps, context: AwsContext) -> None:
        super().__init__(scope, id_)
        self.log_group = CloudwatchLogGroup(
            self,
            "logs",
            name=f"/{props.name}/training",
            retention_in_days=props.retention_days,
            kms_key_id=props.log_kms_key_arn,
        )
        self.execution_role = task_role(self, "execution-role", f"{props.family}-execution", context)
        execution_policy = IamRolePolicy(
            self,
            "execution-policy",
            role=self.execution_role.id,
            policy=policy(
                # GetAuthorizationToken has no resource-level permission: AWS accepts only "*" for it.
                statement("RegistryLogin", ["ecr:GetAuthorizationToken"], ["*"]),
                statement(
                    "PullTrainerImage",
                    ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                    [props.repository_arn],
                ),
                statement(
                    "TrainerLogs",
                    ["logs:CreateLogStream", "logs:PutLogEvents"],
                    [f"{self.log_group.arn}:log-stream:*"],
                ),
            ),
        )
        self.task_role = task_role(self, "task-role", f"{props.family}-task", context)
        task_policy = IamRolePolicy(self, "task-policy", role=self.task_role.id, policy=_task_policy(props))
        self.task_definition = fargate_task_definition(
            self,
            family=props.family,
            cpu=props.cpu,
            memory=props.memory,
            cpu_architecture=props.cpu_architecture,
            execution_role=self.execution_role,
            role=self.task_role,
            containers=[trainer_container(props, self.log_group.name, context.region)],
            volumes=[
                models_volume(props.file_system_id, props.writer_access_point_id),
                *bind_volumes(list(WRITABLE_PATHS)),
            ],
        )
        self.schedule: SchedulerSchedule | None = None
        if props.schedule is not None:
            self.schedule = self._schedule(props, context)
        for rule_id, pattern in failure_patterns(props.cluster_arn, props.family).items():
            rule = CloudwatchEventRule(
                self,
                rule_id,
                name=f"{props.name}-{rule_id}",
                description="A training run failed: no new model version was published",
                event_pattern=json.dumps(pattern),
            )
            CloudwatchEventTarget(
                self,
                f"{rule_id}-target",
                rule=rule.name,
                arn=props.topic_arn,
                input_transformer=CloudwatchEventTargetInputTransformer(
                    input_paths={"task": "$.detail.taskArn", "reason": "$.detail.stoppedReason", "time": "$.time"},
                    input_template=f'"[{props.name}] <time> training task <task> failed ({rule_id}): <reason>. '
                    f'The service keeps its current model. Logs: {props.name}/training"',
                ),
            )
        self.bootstrap: DataResource | None = None
        if props.bootstrap:
            self.bootstrap = DataResource(
                self,
                "bootstrap",
                # Only a new (empty) file system or a new writer access point trains again; new images do not.
                triggers_replace={
                    "file_system": props.file_system_id,
                    "writer_access_point": props.writer_access_point_id,
                },
                depends_on=[
                    *props.bootstrap_ready,
                    self.task_definition,
                    execution_policy,
                    task_policy,
                ],
                provisioners=[
                    LocalExecProvisioner(
                        type="local-exec",
                        interpreter=["/bin/sh", "-c"],
                        command=BOOTSTRAP_SCRIPT,
                        environment={
                            "AWS_REGION": context.region,
                            "AWS_DEFAULT_REGION": context.region,
                            "CLUSTER": props.cluster_arn,
                            "TASK_DEFINITION": self.task_definition.arn,
                            "SUBNETS": Fn.join(",", list(props.subnet_ids)),
                            "SECURITY_GROUP": props.security_group_id,
                            "STARTED_BY": BOOTSTRAP_STARTED_BY,
                            "LOG_GROUP": self.log_group.name,
                            "ATTEMPTS": str(props.bootstrap_attempts),
                            "RETRY_SECONDS": str(props.bootstrap_retry_seconds),
                            "POLL_SECONDS": str(props.bootstrap_poll_seconds),
                            "DEADLINE_SECONDS": str(props.bootstrap_deadline_seconds),
                        },
                    )
                ],
            )

    def _schedule(self, props: TrainingProps, context: AwsContext) -> SchedulerSchedule:
        # EventBridge Scheduler runs the task with its own role: RunTask on this family in this cluster, and
        # PassRole of exactly the two roles the task definition names
        # (https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role).
        # A key of its own for the schedule's stored target; Scheduler decrypts it with the execution role's
        # permission (https://docs.aws.amazon.com/scheduler/latest/UserGuide/encryption-rest.html).
        key = EncryptionKey(
            self,
            "scheduler-key",
            EncryptionKeyProps(alias=f"{props.name}/scheduler", description=f"{props.family} schedule"),
            context,
        )
        role = IamRole(
            self,
            "scheduler-role",
            name=f"{props.family}-scheduler",
            assume_role_policy=assume_role_policy("scheduler.amazonaws.com", context),
        )
        IamRolePolicy(
            self,
            "scheduler-policy",
            role=role.id,
            policy=policy(
                statement(
                    "RunTrainingTask",
                    ["ecs:RunTask"],
                    [f"{self.task_definition.arn_without_revision}:*"],
                    condition={"ArnEquals": {"ecs:cluster": props.cluster_arn}},
                ),
                statement(
                    "PassTrainingRoles",
                    ["iam:PassRole"],
                    [self.execution_role.arn, self.task_role.arn],
                    condition={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
                ),
                statement("DecryptSchedule", ["kms:Decrypt"], [key.arn]),
            ),
        )
        return SchedulerSchedule(
            self,
            "schedule",
            name=props.family,
            description="Train a new model version from the interaction data",
            schedule_expression=props.schedule or "",
            schedule_expression_timezone="UTC",
            kms_key_arn=key.arn,
            flexible_time_window=SchedulerScheduleFlexibleTimeWindow(mode="OFF"),
            state="ENABLED",
            target=SchedulerScheduleTarget(
                arn=props.cluster_arn,
                role_arn=role.arn,
                ecs_parameters=SchedulerScheduleTargetEcsParameters(
                    task_definition_arn=self.task_definition.arn,
                    launch_type="FARGATE",
                    task_count=1,
                    network_configuration=SchedulerScheduleTargetEcsParametersNetworkConfiguration(
                        subnets=list(props.subnet_ids),
                        security_groups=[props.security_group_id],
                        assign_public_ip=False,
                    ),
                ),
                # RunTask errors (capacity, throttling) are retried for an hour; a run that starts and fails is
                # reported by the failure rules instead.
                retry_policy=SchedulerScheduleTargetRetryPolicy(
                    maximum_event_age_in_seconds=3600, maximum_retry_attempts=3
                ),
            ),
        )


def _task_policy(props: TrainingProps) -> str:
    # pyarrow lists the prefix, then reads each object; the bucket's SSE-KMS key decrypts them.
    return policy(
        statement(
            "ListInteractions",
            ["s3:ListBucket"],
            [props.data_bucket_arn],
            condition={"StringLike": {"s3:prefix": [f"{props.data_prefix}*"]}},
        ),
        statement("ReadInteractions", ["s3:GetObject"], [f"{props.data_bucket_arn}/{props.data_prefix}*"]),
        statement("DecryptInteractions", ["kms:Decrypt"], [props.data_key_arn]),
        # Read-write only through the writer access point: the condition ties both actions to it, so the same
        # role could not write through the serving tasks' access point or the file system root.
        statement(
            "WriteModelsThroughWriterAccessPoint",
            ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
            [props.file_system_arn],
            condition={"StringEquals": {"elasticfilesystem:AccessPointArn": props.writer_access_point_arn}},
        ),
    )
