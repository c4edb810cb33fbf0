"""The interaction-data bucket: where the shop's exporter drops interaction files for the training task to read."""

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import S3BucketLifecycleConfiguration
from constructs import Construct

from modules.buckets import expiry_rule, kms_encryption, private_bucket
from modules.errors import Problems
from modules.iam import AwsContext
from modules.kms import EncryptionKey, EncryptionKeyProps

# Exported files go under this prefix, in the trainer's formats (CSV or Parquet with user_id, item_id, timestamp and
# an optional weight; see docs/deploy.md). The training task reads this prefix and nothing else.
INTERACTIONS_PREFIX = "interactions/"


@dataclass(frozen=True)
class InteractionDataProps:
    """name: prefix of every name. expiration_days: days an exported file is kept (730 by default: two years of
    seasonality for the trainer's time split). force_destroy: let `terraform destroy` empty the bucket (dev only).
    """

    name: str
    expiration_days: int = 730
    force_destroy: bool = False

    def __post_init__(self) -> None:
        p = Problems("InteractionDataProps")
        p.check(self.expiration_days >= 30, "expiration_days", f"{self.expiration_days} < 30", "use 30 or more")
        p.raise_if_any()


class InteractionData(Construct):
    """KMS-encrypted (own key), TLS-only, versioned, public access blocked; files expire after expiration_days and
    overwritten versions after 7 days."""

    def __init__(self, scope: Construct, id_: str, props: InteractionDataProps, context: AwsContext) -> None:
        super().__init__(scope, id_)
        self.key = EncryptionKey(
            self,
            "key",
            EncryptionKeyProps(alias=f"{props.name}/data", description=f"{props.name} interaction data"),
            context,
        )
        self.bucket, _ = private_bucket(
            self,
            id_="interactions",
            name=f"{props.name}-data-{context.account_id}-{context.region}",
            encryption_rule=kms_encryption(self.key.arn),
            extra_statements=[],
            force_destroy=props.force_destroy,
        )
        S3BucketLifecycleConfiguration(
            self,
            "lifecycle",
            bucket=self.bucket.id,
            rule=[expiry_rule("expire-exports", props.expiration_days, transition=[])],
        )
        self.prefix = INTERACTIONS_PREFIX
        self.uri = f"s3://{self.bucket.bucket}/{INTERACTIONS_PREFIX}"
