"""Application Auto Scaling of the service: target tracking on CPU and on ALB requests per target."""

from dataclasses import dataclass, field

from cdktf_cdktf_provider_aws.appautoscaling_policy import (
    AppautoscalingPolicy,
    AppautoscalingPolicyTargetTrackingScalingPolicyConfiguration,
    AppautoscalingPolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecification,
)
from cdktf_cdktf_provider_aws.appautoscaling_scheduled_action import (
    AppautoscalingScheduledAction,
    AppautoscalingScheduledActionScalableTargetAction,
)
from cdktf_cdktf_provider_aws.appautoscaling_target import AppautoscalingTarget
from constructs import Construct

from modules.config import ScheduledCapacity
from modules.errors import Problems


@dataclass(frozen=True)
class ScalingProps:
    """cluster_name / service_name: the service. min_count / max_count: the range autoscaling keeps.
    cpu_target_percent: average CPU the CPU policy aims at (default 60).
    requests_per_target: ALB requests per target per minute the request policy aims at (default 3000).
    request_label: `<alb arn suffix>/<target group arn suffix>`.
    scheduled: optional scheduled range changes (e.g. more tasks before a sale).
    Scale-in is slower than scale-out (300 s vs 60 s cool-down): loading the model makes new tasks slow to start.
    """

    cluster_name: str
    service_name: str
    min_count: int
    max_count: int
    request_label: str
    cpu_target_percent: float = 60
    requests_per_target: float = 3000
    scheduled: tuple[ScheduledCapacity, ...] = field(default=())

    def __post_init__(self) -> None:
        p = Problems("ScalingProps")
        p.check(
            1 <= self.min_count <= self.max_count,
            "min_count",
            f"{self.min_count}..{self.max_count} is empty",
            "use 1 <= min_count <= max_count",
        )
        p.check(
            10 <= self.cpu_target_percent <= 90,
            "cpu_target_percent",
            f"{self.cpu_target_percent} outside 10-90",
            "use e.g. 60",
        )
        p.check(self.requests_per_target > 0, "requests_per_target", "not positive", "use e.g. 3000")
        for action in self.scheduled:
            p.check(
                action.schedule.startswith(("cron(", "at(", "rate(")),
                "scheduled",
                f"{action.schedule!r} is not a schedule expression",
                "use cron(...), at(...) or rate(...)",
            )
        p.raise_if_any()


class Scaling(Construct):
    def __init__(self, scope: Construct, id_: str, props: ScalingProps) -> None:
        super().__init__(scope, id_)
        target = AppautoscalingTarget(
            self,
            "target",
            service_namespace="ecs",
            resource_id=f"service/{props.cluster_name}/{props.service_name}",
            scalable_dimension="ecs:service:DesiredCount",
            min_capacity=props.min_count,
            max_capacity=props.max_count,
        )
        for policy_id, metric, value, label in (
            ("cpu", "ECSServiceAverageCPUUtilization", props.cpu_target_percent, None),
            ("requests", "ALBRequestCountPerTarget", props.requests_per_target, props.request_label),
        ):
            AppautoscalingPolicy(
                self,
                policy_id,
                name=f"{props.service_name}-{policy_id}",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                resource_id=target.resource_id,
                scalable_dimension=target.scalable_dimension,
                target_tracking_scaling_policy_configuration=AppautoscalingPolicyTargetTrackingScalingPolicyConfiguration(
                    target_value=value,
                    scale_in_cooldown=300,
                    scale_out_cooldown=60,
                    predefined_metric_specification=(
                        AppautoscalingPolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecification(
                            predefined_metric_type=metric, resource_label=label
                        )
                    ),
                ),
            )
        for action in props.scheduled:
            AppautoscalingScheduledAction(
                self,
                f"scheduled-{action.name}",
                name=f"{props.service_name}-{action.name}",
                service_namespace=target.service_namespace,
                resource_id=target.resource_id,
                scalable_dimension=target.scalable_dimension,
                schedule=action.schedule,
                scalable_target_action=AppautoscalingScheduledActionScalableTargetAction(
                    min_capacity=str(action.min_count), max_capacity=str(action.max_count)
                ),
            )
