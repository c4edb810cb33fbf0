"""Where logs land: an S3 bucket for all app logs, one for ALB access logs, CloudWatch groups for errors and
for the log router itself, and the KMS key that encrypts them."""

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.data_aws_elb_service_account import DataAwsElbServiceAccount
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRuleTransition,
)
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationRuleA,
)
from constructs import Construct

from modules.buckets import expiry_rule, kms_encryption, private_bucket
from modules.config import LOG_RETENTION_DAYS
from modules.errors import Problems
from modules.iam import AwsContext, statement
from modules.kms import EncryptionKey, EncryptionKeyProps, ServiceGrant

ALB_LOG_PREFIX = "alb"


@dataclass(frozen=True)
class LogDestinationsProps:
    """name: prefix of every name. retention_days: CloudWatch retention of the error and router groups (90).
    app_log_ia_days / app_log_glacier_days / app_log_expiration_days: app logs move to Standard-IA, then
        Glacier Instant Retrieval, then expire (30 / 90 / 365 days by default; Athena still reads them all).
    force_destroy: let `terraform destroy` empty the buckets (off by default; dev environments turn it on).
    """

    name: str
    retention_days: int = 90
    app_log_ia_days: int = 30
    app_log_glacier_days: int = 90
    app_log_expiration_days: int = 365
    force_destroy: bool = False

    def __post_init__(self) -> None:
        p = Problems("LogDestinationsProps")
        p.check(
            self.retention_days in LOG_RETENTION_DAYS,
            "retention_days",
            f"{self.retention_days} is not a CloudWatch Logs retention",
            f"use one of {sorted(LOG_RETENTION_DAYS)}",
        )
        # S3 requires 30 days in Standard before IA, and 30 more before the next transition.
        p.check(self.app_log_ia_days >= 30, "app_log_ia_days", f"{self.app_log_ia_days} < 30", "use 30 or more")
        p.check(
            self.app_log_glacier_days >= self.app_log_ia_days + 30,
            "app_log_glacier_days",
            "fewer than 30 days after the Standard-IA transition",
            "use app_log_ia_days + 30 or more",
        )
        p.check(
            self.app_log_expiration_days > self.app_log_glacier_days,
            "app_log_expiration_days",
            "logs would expire before or when they reach Glacier",
            "expire later than app_log_glacier_days",
        )
        p.raise_if_any()


class LogDestinations(Construct):
    def __init__(self, scope: Construct, id_: str, props: LogDestinationsProps, context: AwsContext) -> None:
        super().__init__(scope, id_)
        self.key = EncryptionKey(
            self,
            "key",
            EncryptionKeyProps(
                alias=f"{props.name}/logs",
                description=f"{props.name} logs (CloudWatch Logs groups, app log bucket)",
                service_grants=(
                    ServiceGrant(
                        f"logs.{context.region}.amazonaws.com",
                        {
                            "ArnLike": {
                                "kms:EncryptionContext:aws:logs:arn": (
                                    f"arn:{context.partition}:logs:{context.region}:{context.account_id}:*"
                                )
                            }
                        },
                    ),
                ),
            ),
            context,
        )
        self.key_arn = self.key.arn
        self.error_log_group = CloudwatchLogGroup(
            self,
            "errors",
            name=f"/{props.name}/app-errors",
            retention_in_days=props.retention_days,
            kms_key_id=self.key.arn,
        )
        self.router_log_group = CloudwatchLogGroup(
            self,
            "router",
            name=f"/{props.name}/log-router",
            retention_in_days=props.retention_days,
            kms_key_id=self.key.arn,
        )
        self.app_log_bucket, _ = private_bucket(
            self,
            id_="app-logs",
            name=f"{props.name}-app-logs-{context.account_id}-{context.region}",
            encryption_rule=kms_encryption(self.key.arn),
            extra_statements=[],
            force_destroy=props.force_destroy,
        )
        S3BucketLifecycleConfiguration(
            self,
            "app-logs-lifecycle",
            bucket=self.app_log_bucket.id,
            rule=[
                expiry_rule(
                    "tier-then-expire",
                    props.app_log_expiration_days,
                    transition=[
                        S3BucketLifecycleConfigurationRuleTransition(
                            days=props.app_log_ia_days, storage_class="STANDARD_IA"
                        ),
                        S3BucketLifecycleConfigurationRuleTransition(
                            days=props.app_log_glacier_days, storage_class="GLACIER_IR"
                        ),
                    ],
                )
            ],
        )
        elb = DataAwsElbServiceAccount(self, "elb-account")
        self.alb_log_bucket, self.alb_log_bucket_policy = private_bucket(
            self,
            id_="alb-logs",
            name=f"{props.name}-alb-logs-{context.account_id}-{context.region}",
            # ALB access logs can only be delivered to SSE-S3 buckets.
            encryption_rule=S3BucketServerSideEncryptionConfigurationRuleA(
                apply_server_side_encryption_by_default={"sse_algorithm": "AES256"}
            ),
            extra_statements=[
                # Regions older than August 2022 deliver as the regional ELB account, newer ones as the service.
                lambda arn: statement(
                    "ElbAccountDelivers",
                    ["s3:PutObject"],
                    [f"{arn}/{ALB_LOG_PREFIX}/AWSLogs/{context.account_id}/*"],
                    principal={"AWS": elb.arn},
                ),
                lambda arn: statement(
                    "ElbServiceDelivers",
                    ["s3:PutObject"],
                    [f"{arn}/{ALB_LOG_PREFIX}/AWSLogs/{context.account_id}/*"],
                    principal={"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
                ),
            ],
            force_destroy=props.force_destroy,
        )
        S3BucketLifecycleConfiguration(
            self,
            "alb-logs-lifecycle",
            bucket=self.alb_log_bucket.id,
            rule=[expiry_rule("expire", props.app_log_glacier_days, transition=[])],
        )
        self.alb_log_prefix = ALB_LOG_PREFIX
