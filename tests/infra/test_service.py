"""ECS cluster and service: Fargate in protected subnets, safe deployments, ECS Exec, autoscaling."""

import json

from api.contract import APP_PORT
from modules.router_contract import ROUTER
from tests.infra.helpers import Synth, named, only, ref, resources


def test_cluster_has_container_insights_and_audited_exec(dev: Synth) -> None:
    cluster = only(dev, "aws_ecs_cluster")
    assert cluster["setting"] == [{"name": "containerInsights", "value": "enabled"}]
    exec_config = cluster["configuration"]["execute_command_configuration"]
    assert exec_config["kms_key_id"] == ref(dev, "aws_kms_key", "exec-key", "arn")
    assert exec_config["logging"] == "OVERRIDE"
    assert exec_config["log_configuration"]["cloud_watch_encryption_enabled"] is True
    audit = named(dev, "aws_cloudwatch_log_group", "exec-audit")
    assert audit["kms_key_id"].startswith("${aws_kms_key.")


def test_service_runs_fargate_tasks_without_public_ips_in_protected_subnets(dev: Synth) -> None:
    service = only(dev, "aws_ecs_service")
    assert (service["launch_type"], service["platform_version"]) == ("FARGATE", "LATEST")
    network = service["network_configuration"]
    assert network["assign_public_ip"] is False
    protected = sorted(f"${{aws_subnet.{k}.id}}" for k in resources(dev, "aws_subnet") if "protected" in k)
    assert sorted(network["subnets"]) == protected
    assert network["security_groups"] == [ref(dev, "aws_security_group", "security-groups_tasks")]


def test_desired_count_comes_from_config_and_autoscaling_owns_it_afterwards(dev: Synth, prod: Synth) -> None:
    assert only(dev, "aws_ecs_service")["desired_count"] == 2
    assert only(prod, "aws_ecs_service")["desired_count"] == 3
    assert only(prod, "aws_ecs_service")["lifecycle"]["ignore_changes"] == ["desired_count"]


def test_failing_deployments_roll_back(dev: Synth) -> None:
    service = only(dev, "aws_ecs_service")
    assert service["deployment_circuit_breaker"] == {"enable": True, "rollback": True}
    assert (service["deployment_minimum_healthy_percent"], service["deployment_maximum_percent"]) == (100, 200)
    alarms = service["alarms"]
    assert alarms["enable"] is True and alarms["rollback"] is True
    names = alarms["alarm_names"]
    assert names == [
        ref(dev, "aws_cloudwatch_metric_alarm", "target-5xx", "alarm_name"),
        ref(dev, "aws_cloudwatch_metric_alarm", "latency-p99", "alarm_name"),
    ]
    assert not any("UnHealthyHost" in json.dumps(a) for a in resources(dev, "aws_cloudwatch_metric_alarm").values())


def test_apply_fails_when_ecs_rolled_the_deployment_back(dev: Synth) -> None:
    service = only(dev, "aws_ecs_service")
    assert service["wait_for_steady_state"] is True
    [postcondition] = service["lifecycle"]["postcondition"]
    task = next(k for k in resources(dev, "aws_ecs_task_definition") if "task_task-definition" in k)
    assert postcondition["condition"] == f"${{self.task_definition == aws_ecs_task_definition.{task}.arn}}"
    assert "rolled this deployment back" in postcondition["error_message"]


def test_grace_period_covers_the_model_load(dev: Synth) -> None:
    assert only(dev, "aws_ecs_service")["health_check_grace_period_seconds"] == 60 + 30


def test_ecs_exec_is_on_and_tags_propagate(dev: Synth) -> None:
    service = only(dev, "aws_ecs_service")
    assert service["enable_execute_command"] is True
    assert service["propagate_tags"] == "SERVICE"


def test_service_waits_for_every_mount_target_and_the_listener(prod: Synth) -> None:
    depends = set(only(prod, "aws_ecs_service")["depends_on"])
    mount_targets = {f"aws_efs_mount_target.{k}" for k in resources(prod, "aws_efs_mount_target")}
    listeners = {f"aws_lb_listener.{k}" for k in resources(prod, "aws_lb_listener")}
    assert len(mount_targets) == 3
    assert mount_targets | listeners <= depends


def test_app_container_joins_the_target_group_on_the_app_port(dev: Synth) -> None:
    [lb] = only(dev, "aws_ecs_service")["load_balancer"]
    assert lb == {
        "target_group_arn": ref(dev, "aws_lb_target_group", "targets", "arn"),
        "container_name": ROUTER.app_container_name,
        "container_port": APP_PORT,
    }


def test_tasks_admit_the_app_port_from_the_alb_only(dev: Synth) -> None:
    tasks = ref(dev, "aws_security_group", "security-groups_tasks")
    ingress = [
        r for r in resources(dev, "aws_vpc_security_group_ingress_rule").values() if r["security_group_id"] == tasks
    ]
    assert len(ingress) == 1
    assert (ingress[0]["from_port"], ingress[0]["to_port"]) == (APP_PORT, APP_PORT)
    assert ingress[0]["referenced_security_group_id"] == ref(dev, "aws_security_group", "security-groups_alb")


def test_autoscaling_tracks_cpu_and_requests_per_target(prod: Synth) -> None:
    target = only(prod, "aws_appautoscaling_target")
    assert (target["min_capacity"], target["max_capacity"]) == (3, 12)
    assert target["scalable_dimension"] == "ecs:service:DesiredCount"
    metrics = sorted(
        p["target_tracking_scaling_policy_configuration"]["predefined_metric_specification"]["predefined_metric_type"]
        for p in resources(prod, "aws_appautoscaling_policy").values()
    )
    assert metrics == ["ALBRequestCountPerTarget", "ECSServiceAverageCPUUtilization"]


def test_stack_outputs_what_operators_need(prod: Synth) -> None:
    assert set(prod["output"]) >= {
        "service_url",
        "alb_dns_name",
        "cluster_name",
        "service_name",
        "app_repository_url",
        "router_repository_url",
        "efs_file_system_id",
        "app_log_bucket",
        "error_log_group",
        "notification_topic_arn",
    }
    assert prod["output"]["service_url"]["value"] == f"https://{ref(prod, 'aws_lb', 'alb', 'dns_name')}"


def test_scaling_target_is_registered_after_the_service_exists(dev: Synth) -> None:
    target = only(dev, "aws_appautoscaling_target")
    service = ref(dev, "aws_ecs_service", "service", "name")
    cluster = ref(dev, "aws_ecs_cluster", "cluster", "name")
    assert target["resource_id"] == f"service/{cluster}/{service}"


def test_5xx_the_load_balancer_answers_itself_page_but_do_not_roll_back(dev: Synth) -> None:
    alarm = named(dev, "aws_cloudwatch_metric_alarm", "elb-5xx")
    assert (alarm["namespace"], alarm["metric_name"], alarm["statistic"]) == (
        "AWS/ApplicationELB",
        "HTTPCode_ELB_5XX_Count",
        "Sum",
    )
    # per load balancer: these 5xx never reached a target group
    assert set(alarm["dimensions"]) == {"LoadBalancer"}
    assert alarm["threshold"] == named(dev, "aws_cloudwatch_metric_alarm", "target-5xx")["threshold"]
    assert alarm["alarm_actions"] == alarm["ok_actions"] != []
    rollback = only(dev, "aws_ecs_service")["alarms"]["alarm_names"]
    assert ref(dev, "aws_cloudwatch_metric_alarm", "elb-5xx", "alarm_name") not in rollback
