"""Operations notifications: an encrypted SNS topic, e-mail subscriptions, and EventBridge rules that turn ECS
deployment, service and task events into one readable line each."""

import json
from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktf_cdktf_provider_aws.cloudwatch_event_target import (
    CloudwatchEventTarget,
    CloudwatchEventTargetInputTransformer,
)
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct

from modules.errors import Problems
from modules.iam import AwsContext, policy, statement
from modules.kms import EncryptionKey, EncryptionKeyProps, ServiceGrant

PUBLISHERS = ("events.amazonaws.com", "cloudwatch.amazonaws.com")
# What a service needs of the topic's key to publish (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html).
PUBLISHER_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
# ECS Service Action events that mean tasks cannot start (ERROR or WARN events worth a page).
SERVICE_ACTION_EVENTS = (
    "SERVICE_TASK_START_IMPAIRED",
    "SERVICE_TASK_PLACEMENT_FAILURE",
    "SERVICE_TASK_CONFIGURATION_FAILURE",
)


@dataclass(frozen=True)
class NotificationsProps:
    """name: topic name. cluster_arn / cluster_name / service_name: whose ECS events are reported.
    emails: e-mail subscriptions (each address must confirm). With none, the topic still exists for other
    subscribers (chat, paging) to be added.
    """

    name: str
    cluster_arn: str
    cluster_name: str
    service_name: str
    emails: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        p = Problems("NotificationsProps")
        p.check(all("@" in e for e in self.emails), "emails", "an entry is not an e-mail address", "fix the list")
        p.raise_if_any()


@dataclass(frozen=True)
class EventRoute:
    """One EventBridge rule: which events, and the one-line message made from them."""

    id: str
    description: str
    pattern: dict[str, Any]
    input_paths: dict[str, str]
    template: str


def event_routes(props: NotificationsProps, context: AwsContext) -> list[EventRoute]:
    service_arn = (
        f"arn:{context.partition}:ecs:{context.region}:{context.account_id}"
        f":service/{props.cluster_name}/{props.service_name}"
    )
    common = {"source": ["aws.ecs"]}
    return [
        EventRoute(
            "deployment-failed",
            "ECS deployment failed (the circuit breaker rolls it back)",
            {
                **common,
                "detail-type": ["ECS Deployment State Change"],
                "resources": [service_arn],
                "detail": {"eventName": ["SERVICE_DEPLOYMENT_FAILED"]},
            },
            {
                "event": "$.detail.eventName",
                "deployment": "$.detail.deploymentId",
                "reason": "$.detail.reason",
                "time": "$.time",
            },
            f'"[{props.name}] <time> ECS deployment <deployment> of {props.service_name}: <event>: <reason>"',
        ),
        EventRoute(
            "service-impaired",
            "ECS cannot start or place the service's tasks",
            {
                **common,
                "detail-type": ["ECS Service Action"],
                "resources": [service_arn],
                "detail": {"eventName": list(SERVICE_ACTION_EVENTS)},
            },
            {"event": "$.detail.eventName", "reason": "$.detail.reason", "time": "$.time"},
            f'"[{props.name}] <time> {props.service_name}: <event>: <reason>"',
        ),
        EventRoute(
            "task-crashed",
            "A service task stopped because an essential container exited with a non-zero code",
            {
                **common,
                "detail-type": ["ECS Task State Change"],
                "detail": {
                    "clusterArn": [props.cluster_arn],
                    "group": [f"service:{props.service_name}"],
                    "lastStatus": ["STOPPED"],
                    "stopCode": ["EssentialContainerExited"],
                    "containers": {"exitCode": [{"anything-but": 0}]},
                },
            },
            {"task": "$.detail.taskArn", "reason": "$.detail.stoppedReason", "time": "$.time"},
            f'"[{props.name}] <time> {props.service_name} task <task> stopped: <reason>"',
        ),
    ]


class Notifications(Construct):
    def __init__(self, scope: Construct, id_: str, props: NotificationsProps, context: AwsContext) -> None:
        super().__init__(scope, id_)
        # EventBridge and CloudWatch alarms publish to a KMS-encrypted topic only if the key policy lets their service
        # principals use the key, and the SNS documentation says the aws:SourceAccount / aws:SourceArn condition keys
        # are not supported in that key policy statement: with them every delivery fails (FailedInvocations) and
        # nobody hears of a failed deployment (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html,
        # "Enable compatibility between event sources from AWS services and encrypted topics"). The grant is
        # therefore unconditioned but limited to the two actions publishing needs; who may publish to the topic is
        # restricted by the topic policy below, where aws:SourceAccount is supported.
        key = EncryptionKey(
            self,
            "key",
            EncryptionKeyProps(
                alias=f"{props.name}/notifications",
                description=f"{props.name} notification topic",
                service_grants=tuple(ServiceGrant(s, actions=PUBLISHER_KEY_ACTIONS) for s in PUBLISHERS),
            ),
            context,
        )
        self.topic = SnsTopic(self, "topic", name=props.name, kms_master_key_id=key.arn)
        SnsTopicPolicy(
            self,
            "topic-policy",
            arn=self.topic.arn,
            policy=policy(
                statement(
                    "AccountManagesTopic",
                    [
                        "sns:GetTopicAttributes",
                        "sns:SetTopicAttributes",
                        "sns:Subscribe",
                        "sns:ListSubscriptionsByTopic",
                        "sns:Publish",
                    ],
                    [self.topic.arn],
                    principal={"AWS": context.account_root},
                ),
                statement(
                    "EventsAndAlarmsPublish",
                    ["sns:Publish"],
                    [self.topic.arn],
                    principal={"Service": list(PUBLISHERS)},
                    condition={"StringEquals": {"aws:SourceAccount": context.account_id}},
                ),
            ),
        )
        for i, email in enumerate(props.emails):
            SnsTopicSubscription(self, f"email-{i}", topic_arn=self.topic.arn, protocol="email", endpoint=email)
        self.rules = []
        for route in event_routes(props, context):
            rule = CloudwatchEventRule(
                self,
                route.id,
                name=f"{props.name}-{route.id}",
                description=route.description,
                event_pattern=json.dumps(route.pattern),
            )
            CloudwatchEventTarget(
                self,
                f"{route.id}-target",
                rule=rule.name,
                arn=self.topic.arn,
                input_transformer=CloudwatchEventTargetInputTransformer(
                    input_paths=route.input_paths, input_template=route.template
                ),
            )
            self.rules.append(rule)
        self.topic_arn = self.topic.arn
