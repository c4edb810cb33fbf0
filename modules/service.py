"""The ECS service: Fargate tasks in the protected subnets behind the ALB, rolled back by the circuit breaker
or by alarms, with ECS Exec, and an apply that fails when a deployment was rolled back."""

from dataclasses import dataclass

from cdktf import ITerraformDependable, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.ecs_service import (
    EcsService,
    EcsServiceAlarms,
    EcsServiceDeploymentCircuitBreaker,
    EcsServiceLoadBalancer,
    EcsServiceNetworkConfiguration,
)
from constructs import Construct

from api.contract import APP_PORT
from modules.errors import Problems
from modules.task_definition import APP_CONTAINER, AppTask

# Extra time beyond the model load before ALB health checks count against a new task.
GRACE_MARGIN_SECONDS = 30


@dataclass(frozen=True)
class AppServiceProps:
    """name: service name. cluster_arn: the cluster. subnet_ids: protected subnets (tasks get no public IP).
    security_group_id: the tasks' group. target_group_arn: the ALB target group the app container joins.
    desired_count: tasks at creation; afterwards autoscaling owns the count and Terraform ignores drift.
    model_load_seconds: the health-check grace period is this plus GRACE_MARGIN_SECONDS.
    rollback_alarm_names: alarms whose ALARM state during a deployment rolls it back.
    depends_on: resources tasks need before they can start (every EFS mount target, the listeners).
    """

    name: str
    cluster_arn: str
    subnet_ids: tuple[str, ...]
    security_group_id: str
    target_group_arn: str
    desired_count: int
    model_load_seconds: int
    rollback_alarm_names: tuple[str, ...]
    depends_on: tuple[ITerraformDependable, ...]

    def __post_init__(self) -> None:
        p = Problems("AppServiceProps")
        p.check(self.desired_count >= 1, "desired_count", f"{self.desired_count} < 1", "run at least one task")
        p.check(bool(self.subnet_ids), "subnet_ids", "empty", "pass the protected subnets")
        p.check(
            bool(self.depends_on),
            "depends_on",
            "empty: tasks would start before EFS mount targets exist (ResourceInitializationError)",
            "pass the mount targets and listeners",
        )
        p.raise_if_any()

    @property
    def grace_period_seconds(self) -> int:
        return self.model_load_seconds + GRACE_MARGIN_SECONDS


class AppService(Construct):
    def __init__(self, scope: Construct, id_: str, props: AppServiceProps, task: AppTask) -> None:
        super().__init__(scope, id_)
        self.service = EcsService(
            self,
            "service",
            name=props.name,
            cluster=props.cluster_arn,
            task_definition=task.arn,
            desired_count=props.desired_count,
            launch_type="FARGATE",
            platform_version="LATEST",
            network_configuration=EcsServiceNetworkConfiguration(
                subnets=list(props.subnet_ids), security_groups=[props.security_group_id], assign_public_ip=False
            ),
            load_balancer=[
                EcsServiceLoadBalancer(
                    target_group_arn=props.target_group_arn, container_name=APP_CONTAINER, container_port=APP_PORT
                )
            ],
            health_check_grace_period_seconds=props.grace_period_seconds,
            deployment_circuit_breaker=EcsServiceDeploymentCircuitBreaker(enable=True, rollback=True),
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            alarms=EcsServiceAlarms(alarm_names=list(props.rollback_alarm_names), enable=True, rollback=True),
            enable_execute_command=True,
            enable_ecs_managed_tags=True,
            propagate_tags="SERVICE",
            wait_for_steady_state=True,
            depends_on=list(props.depends_on),
            lifecycle=TerraformResourceLifecycle(ignore_changes=["desired_count"]),
        )
        # After a rollback the service settles on the previous task definition and the provider reports success
        # (terraform-provider-aws #19519, #20858). Reading back which definition is live makes apply fail instead.
        self.service.add_override(
            "lifecycle.postcondition",
            [
                {
                    "condition": f"${{self.task_definition == aws_ecs_task_definition."
                    f"{task.task_definition.friendly_unique_id}.arn}}",
                    "error_message": "ECS rolled this deployment back (circuit breaker or alarm): the service runs "
                    "the previous task definition. See the service events and the stopped tasks' reasons.",
                }
            ],
        )
        # A reference, so that the scaling target that names the service is registered after it exists.
        self.name = self.service.name
