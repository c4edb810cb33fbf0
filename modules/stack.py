"""One environment's stack: provider, state backend and the constructs, wired by typed attributes."""

from cdktf import LocalBackend, S3Backend, TerraformOutput, TerraformStack
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct

from modules.config import EnvironmentConfig
from modules.iam import AwsContext
from modules.log_destinations import LogDestinations, LogDestinationsProps
from modules.network import Network, NetworkProps
from modules.registry import Registry, RegistryProps
from modules.security_groups import ServiceSecurityGroups, ServiceSecurityGroupsProps
from modules.storage import ModelStorage, ModelStorageProps


class RecsysStack(TerraformStack):
    def __init__(self, scope: Construct, config: EnvironmentConfig) -> None:
        super().__init__(scope, config.stack_name)
        name = config.stack_name
        AwsProvider(
            self,
            "aws",
            region=config.region,
            default_tags=[
                AwsProviderDefaultTags(
                    tags={"project": "recsys-fargate", "environment": config.name, "managed-by": "cdktf"}
                )
            ],
        )
        if config.state_backend is None:
            LocalBackend(self, path=f"terraform.{name}.tfstate")
        else:
            S3Backend(
                self,
                bucket=config.state_backend.bucket,
                key=config.state_backend.key,
                region=config.state_backend.region,
                encrypt=True,
            )
            # cdktf 0.21's S3Backend predates S3-native locking (Terraform >= 1.10), so it is set directly.
            self.add_override("terraform.backend.s3.use_lockfile", True)
        identity = DataAwsCallerIdentity(self, "identity")
        partition = DataAwsPartition(self, "partition")
        context = AwsContext(identity.account_id, partition.partition, config.region)

        logs = LogDestinations(
            self,
            "logs",
            LogDestinationsProps(
                name=name,
                retention_days=config.log_retention_days,
                app_log_expiration_days=config.app_log_expiration_days,
                force_destroy=not config.deletion_protection,
            ),
            context,
        )
        network = Network(
            self,
            "network",
            NetworkProps(
                name=name,
                cidr=config.vpc_cidr,
                availability_zones=config.availability_zones,
                nat_per_az=config.nat_per_az,
                vpc_endpoints=config.vpc_endpoints,
                flow_log_retention_days=config.log_retention_days,
                log_kms_key_arn=logs.key_arn,
            ),
            context,
        )
        registry = Registry(
            self,
            "registry",
            RegistryProps(name=name, keep_images=config.ecr_keep_images, force_delete=not config.deletion_protection),
            context,
        )
        security_groups = ServiceSecurityGroups(
            self,
            "security-groups",
            ServiceSecurityGroupsProps(name=name, vpc_id=network.vpc_id, ingress_cidrs=config.ingress_cidrs),
        )
        storage = ModelStorage(
            self,
            "storage",
            ModelStorageProps(
                name=name,
                vpc_id=network.vpc_id,
                subnet_ids=tuple(network.protected_subnet_ids),
                client_security_group_id=security_groups.tasks.id,
                backup=config.efs_backup,
            ),
            context,
        )

        TerraformOutput(self, "app_repository_url", value=registry.app.repository_url)
        TerraformOutput(self, "router_repository_url", value=registry.router.repository_url)
        TerraformOutput(self, "efs_file_system_id", value=storage.file_system_id)
        TerraformOutput(self, "efs_access_point_id", value=storage.access_point.id)
        TerraformOutput(self, "app_log_bucket", value=logs.app_log_bucket.bucket)
        TerraformOutput(self, "error_log_group", value=logs.error_log_group.name)
        TerraformOutput(self, "vpc_id", value=network.vpc_id)
