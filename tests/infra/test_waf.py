"""AWS WAF at the edge: on where the environment says so, rate limit per IP, managed rules, body size of the app."""

import json
import re

import pytest

from api.contract import MAX_BODY_BYTES
from modules.waf import ALB_BODY_INSPECTION_LIMIT, greater_than_pattern
from tests.infra.helpers import Synth, only, ref, resources


def rules(stack: Synth) -> dict[str, dict[str, object]]:
    return {r["name"]: r for r in only(stack, "aws_wafv2_web_acl")["rule"]}


def test_waf_is_on_in_prod_and_off_in_dev_by_config(dev: Synth, prod: Synth) -> None:
    assert resources(dev, "aws_wafv2_web_acl") == {}
    acl = only(prod, "aws_wafv2_web_acl")
    assert acl["scope"] == "REGIONAL"
    assert acl["default_action"] == {"allow": {}}
    association = only(prod, "aws_wafv2_web_acl_association")
    assert association["resource_arn"] == ref(prod, "aws_lb", "alb", "arn")
    assert association["web_acl_arn"] == ref(prod, "aws_wafv2_web_acl", "web-acl", "arn")


def test_rate_limit_per_client_ip_comes_from_the_config(prod: Synth, stacks: dict[str, Synth]) -> None:
    rate = rules(prod)["rate-per-ip"]
    assert rate["action"] == {"block": {}}
    assert rate["statement"] == {
        "rate_based_statement": {"limit": 2000, "aggregate_key_type": "IP", "evaluation_window_sec": 300}
    }
    assert rules(stacks["https"])["rate-per-ip"]["statement"]["rate_based_statement"]["limit"] == 500  # type: ignore[index]


def test_managed_common_rules_count_the_8kb_body_rule_because_the_app_takes_more(prod: Synth) -> None:
    common = rules(prod)["aws-common"]
    statement = common["statement"]["managed_rule_group_statement"]  # type: ignore[index]
    assert (statement["vendor_name"], statement["name"]) == ("AWS", "AWSManagedRulesCommonRuleSet")
    assert MAX_BODY_BYTES > ALB_BODY_INSPECTION_LIMIT
    assert statement["rule_action_override"] == [{"name": "SizeRestrictions_BODY", "action_to_use": {"count": {}}}]
    assert common["override_action"] == {"none": {}}
    assert "aws-known-bad-inputs" in rules(prod)
    anonymous = rules(prod)["aws-anonymous-ip"]["statement"]["managed_rule_group_statement"]  # type: ignore[index]
    # shops call from cloud hosting: only Tor and anonymising proxies are blocked
    assert anonymous["rule_action_override"] == [{"name": "HostingProviderIPList", "action_to_use": {"count": {}}}]


def test_blocked_and_counted_requests_are_logged_encrypted(prod: Synth) -> None:
    config = only(prod, "aws_wafv2_web_acl_logging_configuration")
    group = ref(prod, "aws_cloudwatch_log_group", "waf_logs", "arn")
    assert config["log_destination_configs"] == [group]
    logging_filter = config["logging_filter"]
    assert logging_filter["default_behavior"] == "DROP"
    actions = {c["action_condition"]["action"] for f in logging_filter["filter"] for c in f["condition"]}
    assert actions == {"BLOCK", "COUNT"}


def test_declared_bodies_over_the_app_limit_get_413_at_the_edge(prod: Synth) -> None:
    body = rules(prod)["body-over-app-limit"]
    assert body["action"] == {"block": {"custom_response": {"response_code": 413}}}
    regex = body["statement"]["regex_match_statement"]  # type: ignore[index]
    assert regex["field_to_match"] == {"single_header": {"name": "content-length"}}
    assert regex["regex_string"] == greater_than_pattern(MAX_BODY_BYTES)


@pytest.mark.parametrize("limit", [MAX_BODY_BYTES, 8192, 1, 9, 10, 99, 100, 109999, 65535])
def test_greater_than_pattern_matches_exactly_the_larger_numbers(limit: int) -> None:
    pattern = re.compile(greater_than_pattern(limit))
    candidates = {*range(0, 3 * limit + 20, max(1, limit // 997)), *range(max(0, limit - 50), limit + 50)}
    for n in [*sorted(candidates), 10**12]:
        assert bool(pattern.match(str(n))) == (n > limit), (limit, n)
    assert pattern.match("0" + str(limit + 1)) is None  # leading zeros: the app still enforces its limit
    assert not pattern.match("-1") and not pattern.match("")


def test_every_rule_and_the_acl_publish_metrics_and_sampled_requests(prod: Synth) -> None:
    acl = only(prod, "aws_wafv2_web_acl")
    configs = [acl["visibility_config"], *(r["visibility_config"] for r in acl["rule"])]
    assert all(c["cloudwatch_metrics_enabled"] is True and c["sampled_requests_enabled"] is True for c in configs)
    assert len({c["metric_name"] for c in configs}) == len(configs)
    assert json.dumps(acl).count("priority") >= 4
