"""One environment's stack: provider, state backend and the constructs, wired by typed attributes."""

from cdktf import LocalBackend, S3Backend, TerraformOutput, TerraformStack
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct

from modules.alarms import ServiceAlarms, ServiceAlarmsProps
from modules.alb import LoadBalancer, LoadBalancerProps
from modules.cluster import Cluster, ClusterProps
from modules.config import EnvironmentConfig
from modules.data import InteractionData, InteractionDataProps
from modules.iam import AwsContext
from modules.log_destinations import LogDestinations, LogDestinationsProps
from modules.network import Network, NetworkProps
from modules.notifications import Notifications, NotificationsProps
from modules.registry import Registry, RegistryProps
from modules.scaling import Scaling, ScalingProps
from modules.security_groups import ServiceSecurityGroups, ServiceSecurityGroupsProps
from modules.service import AppService, AppServiceProps
from modules.storage import ModelStorage, ModelStorageProps
from modules.task_definition import AppTask, AppTaskProps
from modules.training import TRAINER_TAG_SUFFIX, Training, TrainingProps
from modules.waf import WebFirewall, WebFirewallProps


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
                client_security_group_ids=(security_groups.tasks.id, security_groups.training.id),
                backup=config.efs_backup,
            ),
            context,
        )

        cluster = Cluster(
            self,
            "cluster",
            ClusterProps(name=name, log_kms_key_arn=logs.key_arn, retention_days=config.log_retention_days),
            context,
        )
        service_name = f"{name}-api"
        task = AppTask(
            self,
            "task",
            AppTaskProps(
                family=service_name,
                app_image=f"{registry.app.repository_url}:{config.app_image_tag}",
                router_image=f"{registry.router.repository_url}:{config.router_image_tag}",
                file_system_id=storage.file_system_id,
                file_system_arn=storage.file_system_arn,
                access_point_id=storage.access_point.id,
                access_point_arn=storage.access_point.arn,
                app_log_bucket=logs.app_log_bucket.bucket,
                app_log_bucket_arn=logs.app_log_bucket.arn,
                log_kms_key_arn=logs.key_arn,
                error_log_group_arn=logs.error_log_group.arn,
                error_log_group_name=logs.error_log_group.name,
                router_log_group_arn=logs.router_log_group.arn,
                router_log_group_name=logs.router_log_group.name,
                exec_log_group_arn=cluster.exec_log_group.arn,
                exec_kms_key_arn=cluster.exec_key.arn,
                app_repository_arn=registry.app.arn,
                router_repository_arn=registry.router.arn,
                model_load_seconds=config.model_load_seconds,
                cpu=config.task_cpu,
                memory=config.task_memory,
                cpu_architecture=config.cpu_architecture,
            ),
            context,
        )
        alb = LoadBalancer(
            self,
            "alb",
            LoadBalancerProps(
                name=name,
                vpc_id=network.vpc_id,
                subnet_ids=tuple(network.public_subnet_ids),
                security_group_id=security_groups.alb.id,
                access_log_bucket=logs.alb_log_bucket.bucket,
                access_log_prefix=logs.alb_log_prefix,
                access_log_ready=logs.alb_log_bucket_policy,
                certificate_arn=config.certificate_arn,
                deletion_protection=config.deletion_protection,
            ),
        )
        if config.waf:
            firewall = WebFirewall(
                self,
                "waf",
                WebFirewallProps(
                    name=name,
                    load_balancer_arn=alb.lb.arn,
                    log_kms_key_arn=logs.key_arn,
                    rate_limit=config.waf_rate_limit,
                    log_retention_days=config.log_retention_days,
                ),
            )
            TerraformOutput(self, "web_acl_arn", value=firewall.web_acl.arn)
        data = InteractionData(
            self,
            "data",
            InteractionDataProps(
                name=name,
                expiration_days=config.interaction_expiration_days,
                force_destroy=not config.deletion_protection,
            ),
            context,
        )
        notifications = Notifications(
            self,
            "notifications",
            NotificationsProps(
                name=name,
                cluster_arn=cluster.arn,
                cluster_name=cluster.name,
                service_name=service_name,
                emails=config.alert_emails,
            ),
            context,
        )
        # The trainer exists, and has published the first model version, before the service is created: the
        # service depends on the bootstrap run below (docs/deploy.md, "First deploy").
        training = Training(
            self,
            "training",
            TrainingProps(
                name=name,
                image=f"{registry.app.repository_url}:{config.app_image_tag}{TRAINER_TAG_SUFFIX}",
                repository_arn=registry.app.arn,
                cluster_arn=cluster.arn,
                subnet_ids=tuple(network.protected_subnet_ids),
                security_group_id=security_groups.training.id,
                file_system_id=storage.file_system_id,
                file_system_arn=storage.file_system_arn,
                writer_access_point_id=storage.writer_access_point.id,
                writer_access_point_arn=storage.writer_access_point.arn,
                data_uri=data.uri,
                data_bucket_arn=data.bucket.arn,
                data_prefix=data.prefix,
                data_key_arn=data.key.arn,
                log_kms_key_arn=logs.key_arn,
                topic_arn=notifications.topic_arn,
                retention_days=config.log_retention_days,
                cpu=config.training_cpu,
                memory=config.training_memory,
                cpu_architecture=config.cpu_architecture,
                schedule=config.training_schedule,
                keep_versions=config.model_versions_kept,
                bootstrap_ready=(*storage.mount_targets, *storage.client_rules),
            ),
            context,
        )
        alarms = ServiceAlarms(
            self,
            "alarms",
            ServiceAlarmsProps(
                name=name,
                alb_arn_suffix=alb.arn_suffix,
                target_group_arn_suffix=alb.target_group_arn_suffix,
                cluster_name=cluster.name,
                service_name=service_name,
                topic_arn=notifications.topic_arn,
            ),
        )
        service = AppService(
            self,
            "service",
            AppServiceProps(
                name=service_name,
                cluster_arn=cluster.arn,
                subnet_ids=tuple(network.protected_subnet_ids),
                security_group_id=security_groups.tasks.id,
                target_group_arn=alb.target_group.arn,
                desired_count=config.desired_count,
                model_load_seconds=config.model_load_seconds,
                rollback_alarm_names=tuple(alarms.rollback_alarm_names),
                depends_on=(
                    *storage.mount_targets,
                    *alb.listeners,
                    *((training.bootstrap,) if training.bootstrap is not None else ()),
                ),
            ),
            task,
        )
        Scaling(
            self,
            "scaling",
            ScalingProps(
                cluster_name=cluster.name,
                service_name=service.name,
                min_count=config.min_count,
                max_count=config.max_count,
                request_label=f"{alb.arn_suffix}/{alb.target_group_arn_suffix}",
                scheduled=config.scheduled_capacity,
            ),
        )

        host = config.domain_name or alb.dns_name
        TerraformOutput(self, "service_url", value=f"{alb.scheme}://{host}")
        TerraformOutput(self, "alb_dns_name", value=alb.dns_name)
        TerraformOutput(self, "cluster_name", value=cluster.name)
        TerraformOutput(self, "service_name", value=service.name)
        TerraformOutput(self, "notification_topic_arn", value=notifications.topic_arn)
        TerraformOutput(self, "app_repository_url", value=registry.app.repository_url)
        TerraformOutput(self, "router_repository_url", value=registry.router.repository_url)
        TerraformOutput(self, "efs_file_system_id", value=storage.file_system_id)
        TerraformOutput(self, "efs_access_point_id", value=storage.access_point.id)
        TerraformOutput(self, "app_log_bucket", value=logs.app_log_bucket.bucket)
        TerraformOutput(self, "error_log_group", value=logs.error_log_group.name)
        TerraformOutput(self, "vpc_id", value=network.vpc_id)
        # What `make train-remote` needs to run the training task once, and where the exporter writes.
        TerraformOutput(self, "interactions_uri", value=data.uri)
        TerraformOutput(self, "training_task_definition_arn", value=training.task_definition.arn)
        TerraformOutput(self, "training_security_group_id", value=security_groups.training.id)
        TerraformOutput(self, "training_subnet_ids", value=network.protected_subnet_ids)
        TerraformOutput(self, "training_log_group", value=training.log_group.name)
        TerraformOutput(self, "efs_writer_access_point_id", value=storage.writer_access_point.id)
        if training.schedule is not None:
            TerraformOutput(self, "training_schedule_name", value=training.schedule.name)
