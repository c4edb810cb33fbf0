"""Private S3 buckets as this stack makes them all: public access blocked, owner-enforced objects, encryption,
versioning, TLS-only access, and lifecycle rules that also expire noncurrent versions."""

from collections.abc import Callable
from typing import Any

from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleExpiration,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
    S3BucketLifecycleConfigurationRuleTransition,
)
from cdktf_cdktf_provider_aws.s3_bucket_ownership_controls import S3BucketOwnershipControls
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktf_cdktf_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import S3BucketVersioningA
from constructs import Construct

from modules.iam import policy, statement


def kms_encryption(key_arn: str) -> S3BucketServerSideEncryptionConfigurationRuleA:
    # The bucket key cuts KMS requests (and their cost) to one per bucket and time window instead of one per object.
    return S3BucketServerSideEncryptionConfigurationRuleA(
        apply_server_side_encryption_by_default={"sse_algorithm": "aws:kms", "kms_master_key_id": key_arn},
        bucket_key_enabled=True,
    )


def private_bucket(
    scope: Construct,
    *,
    id_: str,
    name: str,
    encryption_rule: S3BucketServerSideEncryptionConfigurationRuleA,
    extra_statements: list[Callable[[str], dict[str, Any]]],
    force_destroy: bool,
) -> tuple[S3Bucket, S3BucketPolicy]:
    """A bucket with public access blocked, owner-enforced objects, encryption, versioning and TLS-only access,
    and its policy (for whatever must wait until the policy grants a writer its access)."""
    bucket = S3Bucket(scope, id_, bucket=name, force_destroy=force_destroy)
    S3BucketPublicAccessBlock(
        scope,
        f"{id_}-public-access-block",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )
    S3BucketOwnershipControls(
        scope, f"{id_}-ownership", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}
    )
    S3BucketServerSideEncryptionConfigurationA(scope, f"{id_}-encryption", bucket=bucket.id, rule=[encryption_rule])
    S3BucketVersioningA(scope, f"{id_}-versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"})
    bucket_policy = S3BucketPolicy(
        scope,
        f"{id_}-policy",
        bucket=bucket.id,
        policy=policy(
            statement(
                "DenyWithoutTls",
                ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"],
                [bucket.arn, f"{bucket.arn}/*"],
                effect="Deny",
                principal={"AWS": "*"},
                condition={"Bool": {"aws:SecureTransport": "false"}},
            ),
            *(make(bucket.arn) for make in extra_statements),
        ),
    )
    return bucket, bucket_policy


def expiry_rule(
    rule_id: str, expire_days: int, transition: list[S3BucketLifecycleConfigurationRuleTransition]
) -> S3BucketLifecycleConfigurationRule:
    # Versioning is on, so overwritten or deleted objects linger as noncurrent versions: expire them too.
    return S3BucketLifecycleConfigurationRule(
        id=rule_id,
        status="Enabled",
        filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
        transition=transition or None,
        expiration=[S3BucketLifecycleConfigurationRuleExpiration(days=expire_days)],
        noncurrent_version_expiration=[
            S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(noncurrent_days=7)
        ],
        abort_incomplete_multipart_upload=[
            S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(days_after_initiation=1)
        ],
    )
