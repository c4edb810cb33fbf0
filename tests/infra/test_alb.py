"""ALB: public, hardened, logs on, readiness-checked target group, HTTPS when a certificate is set."""

from api.contract import APP_PORT, KEEPALIVE_TIMEOUT_SECONDS, READINESS_PATH
from tests.infra.conftest import CERTIFICATE
from tests.infra.helpers import Synth, only, ref, resources


def test_alb_is_internet_facing_in_the_public_subnets(dev: Synth) -> None:
    lb = only(dev, "aws_lb")
    assert lb["internal"] is False and lb["load_balancer_type"] == "application"
    public = sorted(f"${{aws_subnet.{k}.id}}" for k in resources(dev, "aws_subnet") if "public" in k)
    assert sorted(lb["subnets"]) == public


def test_alb_drops_bad_headers_mitigates_desync_and_logs_access(dev: Synth) -> None:
    lb = only(dev, "aws_lb")
    assert lb["drop_invalid_header_fields"] is True
    assert lb["desync_mitigation_mode"] == "defensive"
    assert lb["access_logs"]["enabled"] is True
    assert lb["access_logs"]["bucket"] == ref(dev, "aws_s3_bucket", "alb-logs", "bucket")
    assert lb["idle_timeout"] < KEEPALIVE_TIMEOUT_SECONDS


def test_alb_is_created_after_the_access_log_bucket_policy(dev: Synth) -> None:
    # Enabling access logs makes ELB write a test object at once; without the policy it fails with Access Denied.
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/application/enable-access-logging.html
    policies = [k for k in resources(dev, "aws_s3_bucket_policy") if "alb-logs" in k]
    assert len(policies) == 1
    assert f"aws_s3_bucket_policy.{policies[0]}" in only(dev, "aws_lb").get("depends_on", [])


def test_deletion_protection_only_in_prod(dev: Synth, prod: Synth) -> None:
    assert only(dev, "aws_lb")["enable_deletion_protection"] is False
    assert only(prod, "aws_lb")["enable_deletion_protection"] is True


def test_target_group_checks_readiness_on_the_app_port(dev: Synth) -> None:
    tg = only(dev, "aws_lb_target_group")
    assert (tg["target_type"], tg["port"], tg["protocol"]) == ("ip", APP_PORT, "HTTP")
    check = tg["health_check"]
    assert check["path"] == READINESS_PATH
    assert (check["healthy_threshold"], check["interval"]) == (2, 10)
    assert check["timeout"] < check["interval"]
    assert tg["deregistration_delay"] == "30"


def test_alb_admits_listener_ports_from_configured_cidrs(dev: Synth) -> None:
    alb_sg = ref(dev, "aws_security_group", "security-groups_alb")
    rules = [
        r for r in resources(dev, "aws_vpc_security_group_ingress_rule").values() if r["security_group_id"] == alb_sg
    ]
    assert sorted((r["from_port"], r["cidr_ipv4"]) for r in rules) == [(80, "0.0.0.0/0"), (443, "0.0.0.0/0")]


def test_without_a_certificate_dev_forwards_plain_http(dev: Synth) -> None:
    [listener] = resources(dev, "aws_lb_listener").values()
    assert (listener["port"], listener["protocol"]) == (80, "HTTP")
    assert listener["default_action"][0]["type"] == "forward"


def test_with_a_certificate_https_serves_and_http_redirects(stacks: dict[str, Synth]) -> None:
    listeners = {listener["port"]: listener for listener in resources(stacks["https"], "aws_lb_listener").values()}
    https = listeners[443]
    assert (https["protocol"], https["certificate_arn"]) == ("HTTPS", CERTIFICATE)
    assert https["ssl_policy"].startswith("ELBSecurityPolicy-TLS13")
    redirect = listeners[80]["default_action"][0]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"] == {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}
    assert stacks["https"]["output"]["service_url"]["value"] == "https://recs.example.com"
