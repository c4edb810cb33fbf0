"""Notifications: encrypted SNS topic, e-mail subscribers, ECS events and alarms as one-line messages."""

import json

from tests.infra.helpers import Synth, named, only, ref, resources


def test_topic_is_kms_encrypted_and_publishable_by_eventbridge_and_cloudwatch(dev: Synth) -> None:
    topic = only(dev, "aws_sns_topic")
    assert topic["kms_master_key_id"] == ref(dev, "aws_kms_key", "notifications_key", "arn")
    doc = json.loads(only(dev, "aws_sns_topic_policy")["policy"])
    publish = next(s for s in doc["Statement"] if s["Sid"] == "EventsAndAlarmsPublish")
    assert sorted(publish["Principal"]["Service"]) == ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    assert "aws:SourceAccount" in publish["Condition"]["StringEquals"]


def test_key_lets_eventbridge_and_alarms_publish_without_unsupported_conditions(dev: Synth) -> None:
    # SNS: aws:SourceAccount / aws:SourceArn are not supported in the key policy statement for service principals
    # publishing to encrypted topics; with them EventBridge deliveries fail (FailedInvocations).
    # https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html
    key = json.loads(named(dev, "aws_kms_key", "notifications_key")["policy"])
    by_service = {
        s["Principal"]["Service"]: s for s in key["Statement"] if isinstance(s.get("Principal", {}).get("Service"), str)
    }
    for service in ("events.amazonaws.com", "cloudwatch.amazonaws.com"):
        grant = by_service[service]
        assert "Condition" not in grant, grant
        assert grant["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]


def test_alert_emails_subscribe_to_the_topic(dev: Synth, prod: Synth) -> None:
    assert resources(dev, "aws_sns_topic_subscription") == {}
    [sub] = resources(prod, "aws_sns_topic_subscription").values()
    assert (sub["protocol"], sub["endpoint"]) == ("email", "recsys-oncall@example.com")


def patterns(stack: Synth) -> dict[str, dict[str, object]]:
    return {r["name"]: json.loads(r["event_pattern"]) for r in resources(stack, "aws_cloudwatch_event_rule").values()}


def test_failed_deployments_impaired_services_and_crashed_tasks_are_reported(dev: Synth) -> None:
    rules = patterns(dev)
    deployment = rules["recsys-dev-deployment-failed"]
    assert deployment["detail-type"] == ["ECS Deployment State Change"]
    assert deployment["detail"] == {"eventName": ["SERVICE_DEPLOYMENT_FAILED"]}
    cluster = ref(dev, "aws_ecs_cluster", "cluster", "name")
    assert deployment["resources"] == [
        "arn:${data.aws_partition.partition.partition}:ecs:eu-west-1:"
        f"${{data.aws_caller_identity.identity.account_id}}:service/{cluster}/recsys-dev-api"
    ]
    impaired = rules["recsys-dev-service-impaired"]
    assert impaired["detail-type"] == ["ECS Service Action"]
    assert "SERVICE_TASK_PLACEMENT_FAILURE" in impaired["detail"]["eventName"]  # type: ignore[index]
    assert "SERVICE_TASK_START_IMPAIRED" in impaired["detail"]["eventName"]  # type: ignore[index]
    crashed = rules["recsys-dev-task-crashed"]["detail"]
    assert crashed["lastStatus"] == ["STOPPED"]  # type: ignore[index]
    assert crashed["containers"] == {"exitCode": [{"anything-but": 0}]}  # type: ignore[index]


def test_every_rule_sends_one_readable_line_to_the_topic(dev: Synth) -> None:
    targets = list(resources(dev, "aws_cloudwatch_event_target").values())
    assert len(targets) == 5  # deployment, service, task crash; training failed, training not started
    for target in targets:
        assert target["arn"] == ref(dev, "aws_sns_topic", "topic", "arn")
        transformer = target["input_transformer"]
        template = transformer["input_template"]
        assert template.startswith('"') and template.endswith('"') and "\n" not in template
        for placeholder in transformer["input_paths"]:
            assert f"<{placeholder}>" in template


def test_alarms_watch_target_and_alb_5xx_p99_and_missing_tasks_and_notify(dev: Synth) -> None:
    alarms = {
        a["alarm_name"].removeprefix("recsys-dev-"): a for a in resources(dev, "aws_cloudwatch_metric_alarm").values()
    }
    assert set(alarms) == {"target-5xx", "elb-5xx", "latency-p99", "tasks-below-desired"}
    assert alarms["target-5xx"]["metric_name"] == "HTTPCode_Target_5XX_Count"
    assert alarms["elb-5xx"]["metric_name"] == "HTTPCode_ELB_5XX_Count"
    assert alarms["latency-p99"]["extended_statistic"] == "p99"
    expressions = [q.get("expression") for q in alarms["tasks-below-desired"]["metric_query"]]
    assert "desired - running" in expressions
    topic = ref(dev, "aws_sns_topic", "topic", "arn")
    assert all(a["alarm_actions"] == [topic] for a in alarms.values())


def test_missing_tasks_alarm_does_not_page_before_the_service_reports(dev: Synth) -> None:
    # No Container Insights data exists until the first tasks report; a crash loop still reports RunningTaskCount.
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-and-missing-data
    alarm = next(
        a for a in resources(dev, "aws_cloudwatch_metric_alarm").values() if a["alarm_name"].endswith("below-desired")
    )
    assert alarm["treat_missing_data"] == "notBreaching"
