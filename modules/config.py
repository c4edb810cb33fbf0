"""Typed per-environment configuration: data, validated as a whole before any resource is created."""

import ipaddress
import re
from dataclasses import dataclass, field

from modules.errors import Problems

# Values CloudWatch Logs accepts for retention_in_days.
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)
# Fargate task sizes: cpu units -> allowed memory (MiB).
FARGATE_MEMORY = {
    256: range(512, 2048 + 1, 512),
    512: range(1024, 4096 + 1, 1024),
    1024: range(2048, 8192 + 1, 1024),
    2048: range(4096, 16384 + 1, 1024),
    4096: range(8192, 30720 + 1, 1024),
    8192: range(16384, 61440 + 1, 4096),
    16384: range(32768, 122880 + 1, 8192),
}
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CERT_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# EventBridge Scheduler recurring expressions (https://docs.aws.amazon.com/scheduler/latest/UserGuide/
# schedule-types.html): cron with six fields, or rate with a positive value and unit.
_SCHEDULE = re.compile(r"^(cron\((\S+ ){5}\S+\)|rate\([1-9]\d* (minute|minutes|hour|hours|day|days)\))$")


@dataclass(frozen=True)
class StateBackend:
    """Remote Terraform state in S3 with S3-native locking (`use_lockfile`, Terraform >= 1.10).

    bucket: an existing, versioned bucket. key: object key of this stack's state. region: the bucket's region.
    """

    bucket: str
    key: str
    region: str


@dataclass(frozen=True)
class ScheduledCapacity:
    """At `schedule` (a `cron(...)`, `at(...)` or `rate(...)` expression, UTC) set the task range to min..max."""

    name: str
    schedule: str
    min_count: int
    max_count: int


@dataclass(frozen=True)
class EnvironmentConfig:
    """Everything that differs between environments. One instance per environment in `modules/environments.py`.

    name: environment name; the stack is `recsys-<name>` and every resource name starts with it.
    region / availability_zones: where to deploy; at least 2 zones of that region (3 for production).
    vpc_cidr: the VPC range, /16 to /20; subnets are carved from it (see modules/network.py).
    nat_per_az: one NAT gateway per zone (survives a zone outage) instead of one shared (cheaper, dev).
    vpc_endpoints: S3 gateway + interface endpoints (ECR, Logs, SSM messages, EFS) so tasks need no NAT for AWS.
    app_image_tag / router_image_tag: immutable image tags, the git commit hash the images were built from.
    desired_count / min_count / max_count: ECS tasks at deploy time and the autoscaling range.
    scheduled_capacity: optional scheduled changes of that range (e.g. before a sale).
    task_cpu / task_memory: Fargate task size (a valid Fargate combination). cpu_architecture: X86_64 or ARM64.
    model_load_seconds: time the app needs to load its model; the ALB health-check grace period is derived from it.
    alert_emails: addresses subscribed to the notifications topic (each must confirm by e-mail).
    certificate_arn / domain_name: ACM certificate for HTTPS (HTTP is redirected); without one the ALB serves
        plain HTTP, which is for development only.
    ingress_cidrs: who may reach the ALB.
    log_retention_days: CloudWatch Logs retention of the error and router log groups.
    app_log_expiration_days: days S3 keeps application logs (after moving them to cheaper classes).
    ecr_keep_images: images each ECR repository keeps; older ones expire.
    efs_backup: AWS Backup of the model file system.
    deletion_protection: protects the ALB and keeps buckets/repositories from being destroyed while not empty.
    state_backend: S3 state with locking; None keeps state in a local file (terraform.<stack>.tfstate).
    training_cpu / training_memory: Fargate size of the training task (default 2048 / 8192: the demo data trains
        in about a minute). For 10M interactions use 4096 / 16384: the interaction matrix in CSR and CSC form is
        about 10M x 12 bytes x 2 = 240 MB, factors for 1M users and 100k items at 64 floats are about 280 MB, and
        the tuner holds a few fits and the evaluation split at once; 16 GiB leaves room for pyarrow's read buffers.
    training_schedule: EventBridge Scheduler expression (UTC) that runs the training task, e.g.
        'cron(0 3 * * ? *)' for 03:00 daily; None turns scheduled training off (on demand: make train-remote).
    interaction_expiration_days: days the interaction-data bucket keeps an exported file (default 730).
    model_versions_kept: model versions the trainer keeps on EFS after publishing (default 5, at least 2); it never
        deletes `current` or the version before it, so a bad version can always be rolled back by one switch.
    waf: an AWS WAF web ACL in front of the ALB (rate limit per client IP, AWS managed common rules).
    waf_rate_limit: requests per client IP per 5 minutes above which WAF blocks that IP (default 2000).
    """

    name: str
    region: str
    availability_zones: tuple[str, ...]
    app_image_tag: str
    router_image_tag: str
    vpc_cidr: str = "10.0.0.0/16"
    nat_per_az: bool = False
    vpc_endpoints: bool = False
    desired_count: int = 3
    min_count: int = 2
    max_count: int = 10
    scheduled_capacity: tuple[ScheduledCapacity, ...] = ()
    task_cpu: int = 2048
    task_memory: int = 4096
    cpu_architecture: str = "X86_64"
    model_load_seconds: int = 60
    alert_emails: tuple[str, ...] = ()
    certificate_arn: str | None = None
    domain_name: str | None = None
    ingress_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    log_retention_days: int = 90
    app_log_expiration_days: int = 365
    ecr_keep_images: int = 30
    efs_backup: bool = True
    deletion_protection: bool = False
    state_backend: StateBackend | None = field(default=None)
    training_cpu: int = 2048
    training_memory: int = 8192
    training_schedule: str | None = None
    interaction_expiration_days: int = 730
    model_versions_kept: int = 5
    waf: bool = False
    waf_rate_limit: int = 2000

    @property
    def stack_name(self) -> str:
        return f"recsys-{self.name}"

    def __post_init__(self) -> None:
        p = Problems(f"EnvironmentConfig[{self.name!r}]")
        p.check(
            re.fullmatch(r"[a-z][a-z0-9-]{1,14}", self.name) is not None,
            "name",
            f"{self.name!r} is not 2-15 lowercase letters, digits or '-'",
            "use a short lowercase name such as 'dev' or 'prod'",
        )
        p.check(
            _REGION.match(self.region) is not None,
            "region",
            f"{self.region!r} is not an AWS region name",
            "use a region such as 'eu-west-1'",
        )
        self._check_zones(p)
        self._check_cidrs(p)
        for attr in ("app_image_tag", "router_image_tag"):
            tag = getattr(self, attr)
            p.check(
                _COMMIT.match(tag) is not None,
                attr,
                f"{tag!r} is not a git commit hash (tags are immutable and name the commit built)",
                "pass the commit hash the image was built from, e.g. IMAGE_TAG=$(git rev-parse HEAD)",
            )
        self._check_counts(p)
        allowed = FARGATE_MEMORY.get(self.task_cpu)
        p.check(
            allowed is not None,
            "task_cpu",
            f"{self.task_cpu} is not a Fargate cpu size",
            f"use one of {sorted(FARGATE_MEMORY)}",
        )
        if allowed is not None:
            p.check(
                self.task_memory in allowed,
                "task_memory",
                f"{self.task_memory} MiB is not allowed with {self.task_cpu} cpu units",
                f"use {allowed.start}-{allowed.stop - 1} MiB in steps of {allowed.step}",
            )
        p.check(
            self.cpu_architecture in ("X86_64", "ARM64"),
            "cpu_architecture",
            f"{self.cpu_architecture!r} is not a Fargate architecture",
            "use 'X86_64' or 'ARM64' (and build the images for it)",
        )
        p.check(
            10 <= self.model_load_seconds <= 600,
            "model_load_seconds",
            f"{self.model_load_seconds} is outside 10-600",
            "measure the app's start-to-ready time and round up",
        )
        for email in self.alert_emails:
            p.check(
                _EMAIL.match(email) is not None,
                "alert_emails",
                f"{email!r} is not an e-mail address",
                "list addresses like 'oncall@example.com'",
            )
        self._check_https(p)
        p.check(
            self.log_retention_days in LOG_RETENTION_DAYS,
            "log_retention_days",
            f"{self.log_retention_days} is not a retention CloudWatch Logs accepts",
            f"use one of {sorted(LOG_RETENTION_DAYS)}",
        )
        p.check(
            self.app_log_expiration_days >= 120,
            "app_log_expiration_days",
            f"{self.app_log_expiration_days} is shorter than the 120 days the storage-class transitions need",
            "keep application logs 120 days or more",
        )
        p.check(
            1 <= self.ecr_keep_images <= 1000,
            "ecr_keep_images",
            f"{self.ecr_keep_images} is outside 1-1000",
            "keep enough images to roll back a few deployments, e.g. 30",
        )
        self._check_training(p)
        p.check(
            10 <= self.waf_rate_limit <= 2_000_000_000,
            "waf_rate_limit",
            f"{self.waf_rate_limit} is outside the 10-2,000,000,000 WAF accepts",
            "use the requests per 5 minutes one client may send, e.g. 2000",
        )
        if self.state_backend is not None:
            p.check(
                _BUCKET.match(self.state_backend.bucket) is not None,
                "state_backend.bucket",
                f"{self.state_backend.bucket!r} is not an S3 bucket name",
                "name an existing versioned bucket",
            )
            p.check(
                _REGION.match(self.state_backend.region) is not None,
                "state_backend.region",
                f"{self.state_backend.region!r} is not an AWS region name",
                "use the bucket's region",
            )
            p.check(
                self.state_backend.key.endswith(".tfstate") and not self.state_backend.key.startswith("/"),
                "state_backend.key",
                f"{self.state_backend.key!r} is not a relative key ending in .tfstate",
                "use a key like 'recsys/prod/terraform.tfstate'",
            )
        p.raise_if_any()

    def _check_training(self, p: Problems) -> None:
        allowed = FARGATE_MEMORY.get(self.training_cpu)
        p.check(
            allowed is not None and self.training_memory in allowed,
            "training_memory",
            f"{self.training_cpu} cpu / {self.training_memory} MiB is not a Fargate size",
            "pick a valid Fargate pair, e.g. training_cpu=2048, training_memory=8192",
        )
        if self.training_schedule is not None:
            p.check(
                _SCHEDULE.match(self.training_schedule) is not None,
                "training_schedule",
                f"{self.training_schedule!r} is not a recurring EventBridge Scheduler expression",
                "use e.g. 'cron(0 3 * * ? *)' (six fields, UTC) or 'rate(1 day)', or None to switch it off",
            )
        p.check(
            self.interaction_expiration_days >= 30,
            "interaction_expiration_days",
            f"{self.interaction_expiration_days} is under 30 days",
            "keep exported interactions at least as long as the training window, e.g. 730",
        )
        p.check(
            self.model_versions_kept >= 2,
            "model_versions_kept",
            f"{self.model_versions_kept} would leave no version to roll back to",
            "keep at least 2 (the serving version and the one before it), e.g. 5",
        )

    def _check_zones(self, p: Problems) -> None:
        zones = self.availability_zones
        p.check(
            len(zones) >= 2,
            "availability_zones",
            f"{len(zones)} zone(s) given; the ALB and a highly available service need at least 2",
            "list 2 or more zones of the region",
        )
        p.check(
            len(set(zones)) == len(zones),
            "availability_zones",
            "a zone is listed twice",
            "list each zone once",
        )
        for zone in zones:
            p.check(
                zone.startswith(self.region) and len(zone) == len(self.region) + 1 and zone[-1].isalpha(),
                "availability_zones",
                f"{zone!r} is not a zone of {self.region}",
                f"use names like '{self.region}a'",
            )

    def _check_cidrs(self, p: Problems) -> None:
        try:
            vpc = ipaddress.ip_network(self.vpc_cidr)
        except ValueError:
            p.check(False, "vpc_cidr", f"{self.vpc_cidr!r} is not a CIDR block", "use a block like '10.0.0.0/16'")
        else:
            p.check(
                vpc.version == 4 and vpc.is_private and 16 <= vpc.prefixlen <= 20,
                "vpc_cidr",
                f"{self.vpc_cidr} is not a private IPv4 block from /16 to /20",
                "use a private block such as '10.0.0.0/16'",
            )
        p.check(bool(self.ingress_cidrs), "ingress_cidrs", "no CIDR may reach the ALB", "list at least one CIDR")
        for cidr in self.ingress_cidrs:
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                p.check(False, "ingress_cidrs", f"{cidr!r} is not a CIDR block", "use blocks like '203.0.113.0/24'")

    def _check_counts(self, p: Problems) -> None:
        p.check(self.min_count >= 1, "min_count", f"{self.min_count} is below 1", "run at least one task")
        p.check(
            self.min_count <= self.desired_count <= self.max_count,
            "desired_count",
            f"{self.desired_count} is outside min_count..max_count ({self.min_count}..{self.max_count})",
            "pick desired_count between min_count and max_count",
        )
        p.check(self.max_count <= 100, "max_count", f"{self.max_count} is above 100", "raise it deliberately")

    def _check_https(self, p: Problems) -> None:
        if self.certificate_arn is not None:
            p.check(
                _CERT_ARN.match(self.certificate_arn) is not None,
                "certificate_arn",
                f"{self.certificate_arn!r} is not an ACM certificate ARN",
                "use 'arn:aws:acm:<region>:<account>:certificate/<uuid>'",
            )
            p.check(
                f":acm:{self.region}:" in self.certificate_arn,
                "certificate_arn",
                "the certificate is not in the stack's region",
                f"request or import the certificate in {self.region}",
            )
        if self.domain_name is not None:
            p.check(
                _DOMAIN.match(self.domain_name) is not None,
                "domain_name",
                f"{self.domain_name!r} is not a lowercase DNS name",
                "use a name like 'recs.example.com'",
            )
            p.check(
                self.certificate_arn is not None,
                "domain_name",
                "a domain name without a certificate would serve plain HTTP on a public name",
                "set certificate_arn for the domain",
            )
