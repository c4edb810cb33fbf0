"""ECS cluster with Container Insights and audited ECS Exec (session logs to CloudWatch, KMS-encrypted)."""

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.ecs_cluster import (
    EcsCluster,
    EcsClusterConfiguration,
    EcsClusterConfigurationExecuteCommandConfiguration,
    EcsClusterConfigurationExecuteCommandConfigurationLogConfiguration,
    EcsClusterSetting,
)
from constructs import Construct

from modules.iam import AwsContext
from modules.kms import EncryptionKey, EncryptionKeyProps


@dataclass(frozen=True)
class ClusterProps:
    """name: the cluster name. log_kms_key_arn / retention_days: encryption and retention of the ECS Exec
    audit log group (every command and its output). ECS Exec sessions themselves are encrypted with a key of
    the cluster's own.
    """

    name: str
    log_kms_key_arn: str
    retention_days: int


class Cluster(Construct):
    def __init__(self, scope: Construct, id_: str, props: ClusterProps, context: AwsContext) -> None:
        super().__init__(scope, id_)
        self.exec_key = EncryptionKey(
            self,
            "exec-key",
            EncryptionKeyProps(alias=f"{props.name}/ecs-exec", description="ECS Exec sessions"),
            context,
        )
        self.exec_log_group = CloudwatchLogGroup(
            self,
            "exec-audit",
            name=f"/{props.name}/ecs-exec-audit",
            retention_in_days=props.retention_days,
            kms_key_id=props.log_kms_key_arn,
        )
        self.cluster = EcsCluster(
            self,
            "cluster",
            name=props.name,
            setting=[EcsClusterSetting(name="containerInsights", value="enabled")],
            configuration=EcsClusterConfiguration(
                execute_command_configuration=EcsClusterConfigurationExecuteCommandConfiguration(
                    kms_key_id=self.exec_key.arn,
                    logging="OVERRIDE",
                    log_configuration=EcsClusterConfigurationExecuteCommandConfigurationLogConfiguration(
                        cloud_watch_log_group_name=self.exec_log_group.name,
                        cloud_watch_encryption_enabled=True,
                    ),
                )
            ),
        )
        # References (not the plain name) so that whatever names the cluster is created after it.
        self.name = self.cluster.name
        self.arn = self.cluster.arn
