"""CloudWatch alarms on what users feel (the app's and the load balancer's 5xx, p99 latency) and on capacity (running <
desired tasks)."""

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import (
    CloudwatchMetricAlarm,
    CloudwatchMetricAlarmMetricQuery,
    CloudwatchMetricAlarmMetricQueryMetric,
)
from constructs import Construct

from modules.errors import Problems


@dataclass(frozen=True)
class ServiceAlarmsProps:
    """name: alarm name prefix. alb_arn_suffix / target_group_arn_suffix: the ALB metrics' dimensions.
    cluster_name / service_name: the Container Insights dimensions. topic_arn: where alarms notify.
    max_5xx_per_minute: target 5xx responses per minute that count as a breach (default 5); the same threshold applies
    to the 5xx the load balancer itself answers (502/503/504: no healthy target, a target that closed or timed out).
    max_p99_seconds: p99 target response time that counts as a breach (default 0.25 s).
    The 5xx and latency alarms also drive the ECS deployment's alarm-based rollback; UnHealthyHostCount is
    deliberately absent, because every deployment drains targets and would trip it.
    """

    name: str
    alb_arn_suffix: str
    target_group_arn_suffix: str
    cluster_name: str
    service_name: str
    topic_arn: str
    max_5xx_per_minute: int = 5
    max_p99_seconds: float = 0.25

    def __post_init__(self) -> None:
        p = Problems("ServiceAlarmsProps")
        p.check(self.max_5xx_per_minute >= 1, "max_5xx_per_minute", "below 1", "use 1 or more")
        p.check(
            0 < self.max_p99_seconds <= 60,
            "max_p99_seconds",
            f"{self.max_p99_seconds} outside (0, 60]",
            "use the latency objective",
        )
        p.raise_if_any()


class ServiceAlarms(Construct):
    def __init__(self, scope: Construct, id_: str, props: ServiceAlarmsProps) -> None:
        super().__init__(scope, id_)
        alb = {"LoadBalancer": props.alb_arn_suffix, "TargetGroup": props.target_group_arn_suffix}
        self.target_5xx = self._count_of_5xx(
            props, "target-5xx", "HTTPCode_Target_5XX_Count", alb, "The app answers with 5xx: users see errors"
        )
        # 5xx that the ALB answers itself never reach HTTPCode_Target_5XX_Count: no healthy target (503), a target that
        # closed the connection without an answer (502: e.g. a request head larger than uWSGI's router can carry, see
        # api/uwsgi.ini) or did not answer in time (504). HTTPCode_ELB_5XX_Count counts them, per load balancer
        # (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html).
        # It notifies but does not roll deployments back: a new task definition is not the likely cause of these.
        self.elb_5xx = self._count_of_5xx(
            props,
            "elb-5xx",
            "HTTPCode_ELB_5XX_Count",
            {"LoadBalancer": props.alb_arn_suffix},
            "The load balancer answers 5xx itself (no healthy target, target closed or timed out)",
        )
        self.latency_p99 = self._alb_alarm(
            props,
            "latency-p99",
            "TargetResponseTime",
            alb,
            "p99 target response time above the objective",
            extended_statistic="p99",
            evaluation_periods=5,
            datapoints_to_alarm=3,
            threshold=props.max_p99_seconds,
        )
        insights = {"ClusterName": props.cluster_name, "ServiceName": props.service_name}
        self.tasks_below_desired = CloudwatchMetricAlarm(
            self,
            "tasks-below-desired",
            alarm_name=f"{props.name}-tasks-below-desired",
            alarm_description="Fewer tasks run than desired for 5 minutes (crash loop, placement or capacity)",
            evaluation_periods=5,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            # Container Insights publishes nothing for a service until its first tasks report, so "breaching" paged
            # right after every creation. A crash loop still reports RunningTaskCount 0 (data, not missing), so the
            # alarm keeps catching it (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
            # AlarmThatSendsEmail.html#alarms-and-missing-data).
            treat_missing_data="notBreaching",
            alarm_actions=[props.topic_arn],
            ok_actions=[props.topic_arn],
            metric_query=[
                CloudwatchMetricAlarmMetricQuery(
                    id="missing", expression="desired - running", return_data=True, label="tasks missing"
                ),
                *(
                    CloudwatchMetricAlarmMetricQuery(
                        id=query_id,
                        metric=CloudwatchMetricAlarmMetricQueryMetric(
                            namespace="ECS/ContainerInsights",
                            metric_name=metric,
                            dimensions=insights,
                            period=60,
                            stat="Average",
                        ),
                    )
                    for query_id, metric in (("desired", "DesiredTaskCount"), ("running", "RunningTaskCount"))
                ),
            ],
        )
        self.rollback_alarm_names = [self.target_5xx.alarm_name, self.latency_p99.alarm_name]

    def _count_of_5xx(
        self, props: ServiceAlarmsProps, id_: str, metric: str, dimensions: dict[str, str], description: str
    ) -> CloudwatchMetricAlarm:
        return self._alb_alarm(
            props,
            id_,
            metric,
            dimensions,
            description,
            statistic="Sum",
            evaluation_periods=3,
            datapoints_to_alarm=2,
            threshold=props.max_5xx_per_minute,
        )

    def _alb_alarm(
        self,
        props: ServiceAlarmsProps,
        id_: str,
        metric: str,
        dimensions: dict[str, str],
        description: str,
        *,
        evaluation_periods: int,
        datapoints_to_alarm: int,
        threshold: float,
        statistic: str | None = None,
        extended_statistic: str | None = None,
    ) -> CloudwatchMetricAlarm:
        """An alarm on a per-minute ALB metric above `threshold` that notifies on breach and on recovery; one of
        `statistic` (Sum, Average...) or `extended_statistic` (a percentile such as p99)."""
        return CloudwatchMetricAlarm(
            self,
            id_,
            alarm_name=f"{props.name}-{id_}",
            alarm_description=description,
            namespace="AWS/ApplicationELB",
            metric_name=metric,
            dimensions=dimensions,
            period=60,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            threshold=threshold,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[props.topic_arn],
            ok_actions=[props.topic_arn],
            statistic=statistic,
            extended_statistic=extended_statistic,
        )
