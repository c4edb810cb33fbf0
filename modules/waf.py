"""AWS WAF in front of the ALB: a rate limit per client IP, the AWS managed common and known-bad-inputs rule sets,
and a body-size rule matched to the app's own limit. Metrics and sampled requests are on for every rule.

WAF does not replace the app's own defences: it cannot stop slow clients or small malformed JSON (issue 14).
"""

from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.wafv2_web_acl import (
    Wafv2WebAcl,
    Wafv2WebAclDefaultAction,
    Wafv2WebAclRule,
    Wafv2WebAclRuleAction,
    Wafv2WebAclRuleActionBlock,
    Wafv2WebAclRuleActionBlockCustomResponse,
    Wafv2WebAclRuleOverrideAction,
    Wafv2WebAclRuleVisibilityConfig,
    Wafv2WebAclVisibilityConfig,
)
from cdktf_cdktf_provider_aws.wafv2_web_acl_association import Wafv2WebAclAssociation
from cdktf_cdktf_provider_aws.wafv2_web_acl_logging_configuration import (
    Wafv2WebAclLoggingConfiguration,
    Wafv2WebAclLoggingConfigurationLoggingFilter,
    Wafv2WebAclLoggingConfigurationLoggingFilterFilter,
    Wafv2WebAclLoggingConfigurationLoggingFilterFilterCondition,
    Wafv2WebAclLoggingConfigurationLoggingFilterFilterConditionActionCondition,
)
from constructs import Construct

from api.contract import MAX_BODY_BYTES
from modules.config import LOG_RETENTION_DAYS
from modules.errors import Problems

# For an ALB, WAF inspects at most the first 8 KB of a request body, and the common rule set's SizeRestrictions_BODY
# blocks any body above that (https://docs.aws.amazon.com/waf/latest/developerguide/
# aws-managed-rule-groups-baseline.html, "Core rule set"; https://docs.aws.amazon.com/waf/latest/developerguide/
# web-request-body-inspection.html). The app accepts bodies up to MAX_BODY_BYTES (a batch request can exceed 8 KB),
# so that one rule counts instead of blocking whenever the app's limit is larger, and the body-size rule below
# enforces the app's own limit from Content-Length, which WAF sees in full.
ALB_BODY_INSPECTION_LIMIT = 8 * 1024
RATE_WINDOW_SECONDS = 300


def greater_than_pattern(limit: int) -> str:
    """A regular expression matching exactly the decimal integers (no sign, no leading zeros) above `limit`."""
    digits = str(limit)
    width = len(digits)
    options = [rf"[1-9]\d{{{width},}}"]  # more digits than the limit
    for i, digit in enumerate(digits):
        if digit == "9":
            continue
        low = str(int(digit) + 1)
        prefix = digits[:i]
        rest = width - i - 1
        tail = rf"\d{{{rest}}}" if rest else ""
        options.append(f"{prefix}[{low}-9]{tail}")
    return "^(" + "|".join(options) + ")$"


@dataclass(frozen=True)
class WebFirewallProps:
    """name: web ACL name (also its metric prefix). load_balancer_arn: the ALB it protects.
    rate_limit: requests one client IP may send per RATE_WINDOW_SECONDS before WAF blocks that IP (default 2000,
        about 6.7 requests/s). Shop back ends call from a few addresses: size it above their peak per address.
    max_body_bytes: the app's body limit (api.contract.MAX_BODY_BYTES); larger declared bodies get 413 at the edge.
    log_kms_key_arn / log_retention_days: the log group of blocked and counted requests (allowed ones are not
        logged: the app's own request log has them, and CloudWatch ingestion of every request is the cost this
        project avoids).
    """

    name: str
    load_balancer_arn: str
    log_kms_key_arn: str
    rate_limit: int = 2000
    max_body_bytes: int = MAX_BODY_BYTES
    log_retention_days: int = 90

    def __post_init__(self) -> None:
        p = Problems("WebFirewallProps")
        p.check(
            10 <= self.rate_limit <= 2_000_000_000,
            "rate_limit",
            f"{self.rate_limit} is outside the 10-2,000,000,000 WAF accepts",
            "use the requests per 5 minutes one client may send",
        )
        p.check(self.max_body_bytes >= 1, "max_body_bytes", "below 1", "use the app's body limit")
        p.check(
            self.log_retention_days in LOG_RETENTION_DAYS,
            "log_retention_days",
            f"{self.log_retention_days} is not a CloudWatch Logs retention",
            f"use one of {sorted(LOG_RETENTION_DAYS)}",
        )
        p.raise_if_any()


def _visibility(metric: str) -> Wafv2WebAclRuleVisibilityConfig:
    return Wafv2WebAclRuleVisibilityConfig(
        cloudwatch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


def _managed(name: str, group: str, priority: int, overrides: list[dict[str, Any]]) -> Wafv2WebAclRule:
    statement: dict[str, Any] = {"managed_rule_group_statement": {"name": group, "vendor_name": "AWS"}}
    if overrides:
        statement["managed_rule_group_statement"]["rule_action_override"] = overrides
    return Wafv2WebAclRule(
        name=name,
        priority=priority,
        override_action=Wafv2WebAclRuleOverrideAction(none={}),
        statement=statement,
        visibility_config=_visibility(f"{name}"),
    )


class WebFirewall(Construct):
    def __init__(self, scope: Construct, id_: str, props: WebFirewallProps) -> None:
        super().__init__(scope, id_)
        body_overrides = (
            [{"name": "SizeRestrictions_BODY", "action_to_use": {"count": {}}}]
            if props.max_body_bytes > ALB_BODY_INSPECTION_LIMIT
            else []
        )
        rules = [
            # Rate-based rule per client IP (https://docs.aws.amazon.com/waf/latest/developerguide/
            # waf-rule-statement-type-rate-based.html): an IP above the limit is blocked until it falls below.
            Wafv2WebAclRule(
                name="rate-per-ip",
                priority=0,
                action=Wafv2WebAclRuleAction(block=Wafv2WebAclRuleActionBlock()),
                statement={
                    "rate_based_statement": {
                        "limit": props.rate_limit,
                        "aggregate_key_type": "IP",
                        "evaluation_window_sec": RATE_WINDOW_SECONDS,
                    }
                },
                visibility_config=_visibility("rate-per-ip"),
            ),
            Wafv2WebAclRule(
                name="body-over-app-limit",
                priority=1,
                action=Wafv2WebAclRuleAction(
                    block=Wafv2WebAclRuleActionBlock(
                        custom_response=Wafv2WebAclRuleActionBlockCustomResponse(response_code=413)
                    )
                ),
                statement={
                    "regex_match_statement": {
                        "regex_string": greater_than_pattern(props.max_body_bytes),
                        "field_to_match": {"single_header": {"name": "content-length"}},
                        "text_transformation": [{"priority": 0, "type": "NONE"}],
                    }
                },
                visibility_config=_visibility("body-over-app-limit"),
            ),
            _managed("aws-common", "AWSManagedRulesCommonRuleSet", 2, body_overrides),
            # Log4j and other known exploit payloads.
            _managed("aws-known-bad-inputs", "AWSManagedRulesKnownBadInputsRuleSet", 3, []),
            # Tor exits and anonymising proxies are not how a shop back end calls; hosting providers are (shops run
            # in clouds), so that rule of the group only counts
            # (https://docs.aws.amazon.com/waf/latest/developerguide/aws-managed-rule-groups-ip-rep.html).
            _managed(
                "aws-anonymous-ip",
                "AWSManagedRulesAnonymousIpList",
                4,
                [{"name": "HostingProviderIPList", "action_to_use": {"count": {}}}],
            ),
        ]
        self.web_acl = Wafv2WebAcl(
            self,
            "web-acl",
            name=props.name,
            description="Rate limit per client IP, AWS managed rules, body size matched to the app",
            scope="REGIONAL",
            default_action=Wafv2WebAclDefaultAction(allow={}),
            rule=rules,
            visibility_config=Wafv2WebAclVisibilityConfig(
                cloudwatch_metrics_enabled=True, metric_name=props.name, sampled_requests_enabled=True
            ),
        )
        Wafv2WebAclAssociation(self, "association", resource_arn=props.load_balancer_arn, web_acl_arn=self.web_acl.arn)
        # WAF logs to CloudWatch only into groups named aws-waf-logs-*, and adds the log delivery's resource policy
        # itself (https://docs.aws.amazon.com/waf/latest/developerguide/logging-cw-logs.html).
        self.log_group = CloudwatchLogGroup(
            self,
            "logs",
            name=f"aws-waf-logs-{props.name}",
            retention_in_days=props.log_retention_days,
            kms_key_id=props.log_kms_key_arn,
        )
        keep = [
            Wafv2WebAclLoggingConfigurationLoggingFilterFilter(
                behavior="KEEP",
                requirement="MEETS_ANY",
                condition=[
                    Wafv2WebAclLoggingConfigurationLoggingFilterFilterCondition(
                        action_condition=Wafv2WebAclLoggingConfigurationLoggingFilterFilterConditionActionCondition(
                            action=action
                        )
                    )
                    for action in ("BLOCK", "COUNT")
                ],
            )
        ]
        Wafv2WebAclLoggingConfiguration(
            self,
            "logging",
            resource_arn=self.web_acl.arn,
            log_destination_configs=[self.log_group.arn],
            logging_filter=Wafv2WebAclLoggingConfigurationLoggingFilter(default_behavior="DROP", filter=keep),
        )
