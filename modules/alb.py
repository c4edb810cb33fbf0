"""Internet-facing Application Load Balancer in front of the service's tasks."""

from dataclasses import dataclass

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_aws.lb import Lb, LbAccessLogs
from cdktf_cdktf_provider_aws.lb_listener import LbListener, LbListenerDefaultAction, LbListenerDefaultActionRedirect
from cdktf_cdktf_provider_aws.lb_target_group import LbTargetGroup, LbTargetGroupHealthCheck
from constructs import Construct

from api.contract import APP_PORT, KEEPALIVE_TIMEOUT_SECONDS, READINESS_PATH
from modules.errors import Problems

# TLS 1.3 with TLS 1.2 fallback and only forward-secret ciphers.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# Below the app's keep-alive timeout, so the app never closes a connection the ALB is about to reuse.
IDLE_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class LoadBalancerProps:
    """name: load balancer name (<= 32 characters). vpc_id / subnet_ids: the public subnets.
    security_group_id: the ALB's group (see security_groups.py).
    certificate_arn: with one, HTTPS on 443 (TLS_POLICY) and port 80 redirects; without, plain HTTP on 80,
        which is for development only.
    access_log_bucket / access_log_prefix: where access logs go (always on).
    access_log_ready: the access-log bucket's policy. Enabling access logs makes ELB write a test object at once and
        fail with "Access Denied for bucket" when the policy granting it is not in place yet, so the load balancer
        is created after it (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/
        enable-access-logging.html).
    deletion_protection: refuse deletion (production).
    deregistration_delay_seconds: how long a draining target keeps its in-flight requests (default 30: the app's
        requests take milliseconds; the shutdown grace covers the rest).
    healthy_threshold / health_check_interval_seconds: readiness checks before a task takes traffic (2 x 10 s).
    """

    name: str
    vpc_id: str
    subnet_ids: tuple[str, ...]
    security_group_id: str
    access_log_bucket: str
    access_log_prefix: str
    access_log_ready: ITerraformDependable
    certificate_arn: str | None = None
    deletion_protection: bool = False
    deregistration_delay_seconds: int = 30
    healthy_threshold: int = 2
    health_check_interval_seconds: int = 10

    def __post_init__(self) -> None:
        p = Problems("LoadBalancerProps")
        p.check(len(self.name) <= 32, "name", f"{self.name!r} is over 32 characters", "shorten the stack name")
        p.check(len(self.subnet_ids) >= 2, "subnet_ids", "an ALB needs subnets in 2 zones", "pass the public subnets")
        p.check(
            0 <= self.deregistration_delay_seconds <= 3600,
            "deregistration_delay_seconds",
            f"{self.deregistration_delay_seconds} is outside 0-3600",
            "use a few tens of seconds",
        )
        p.check(
            2 <= self.healthy_threshold <= 10,
            "healthy_threshold",
            f"{self.healthy_threshold} is outside 2-10",
            "use 2 to 10",
        )
        p.check(
            6 <= self.health_check_interval_seconds <= 300,
            "health_check_interval_seconds",
            f"{self.health_check_interval_seconds} is outside 6-300",
            "use e.g. 10",
        )
        p.check(
            IDLE_TIMEOUT_SECONDS < KEEPALIVE_TIMEOUT_SECONDS,
            "idle_timeout",
            "the ALB would keep idle connections longer than the app",
            "lower IDLE_TIMEOUT_SECONDS",
        )
        p.raise_if_any()


class LoadBalancer(Construct):
    def __init__(self, scope: Construct, id_: str, props: LoadBalancerProps) -> None:
        super().__init__(scope, id_)
        self.lb = Lb(
            self,
            "alb",
            name=props.name,
            internal=False,
            load_balancer_type="application",
            subnets=list(props.subnet_ids),
            security_groups=[props.security_group_id],
            drop_invalid_header_fields=True,
            desync_mitigation_mode="defensive",
            idle_timeout=IDLE_TIMEOUT_SECONDS,
            enable_deletion_protection=props.deletion_protection,
            access_logs=LbAccessLogs(bucket=props.access_log_bucket, prefix=props.access_log_prefix, enabled=True),
            depends_on=[props.access_log_ready],
        )
        self.target_group = LbTargetGroup(
            self,
            "targets",
            name=f"{props.name[:28]}-app",
            port=APP_PORT,
            protocol="HTTP",
            target_type="ip",
            vpc_id=props.vpc_id,
            deregistration_delay=str(props.deregistration_delay_seconds),
            health_check=LbTargetGroupHealthCheck(
                enabled=True,
                path=READINESS_PATH,
                port="traffic-port",
                protocol="HTTP",
                matcher="200",
                healthy_threshold=props.healthy_threshold,
                unhealthy_threshold=3,
                interval=props.health_check_interval_seconds,
                timeout=max(2, props.health_check_interval_seconds // 2),
            ),
        )
        forward = LbListenerDefaultAction(type="forward", target_group_arn=self.target_group.arn)
        if props.certificate_arn is None:
            self.listeners = [
                LbListener(
                    self, "http", load_balancer_arn=self.lb.arn, port=80, protocol="HTTP", default_action=[forward]
                )
            ]
            self.scheme = "http"
        else:
            self.listeners = [
                LbListener(
                    self,
                    "https",
                    load_balancer_arn=self.lb.arn,
                    port=443,
                    protocol="HTTPS",
                    ssl_policy=TLS_POLICY,
                    certificate_arn=props.certificate_arn,
                    default_action=[forward],
                ),
                LbListener(
                    self,
                    "http-redirect",
                    load_balancer_arn=self.lb.arn,
                    port=80,
                    protocol="HTTP",
                    default_action=[
                        LbListenerDefaultAction(
                            type="redirect",
                            redirect=LbListenerDefaultActionRedirect(
                                port="443", protocol="HTTPS", status_code="HTTP_301"
                            ),
                        )
                    ],
                ),
            ]
            self.scheme = "https"
        self.dns_name = self.lb.dns_name
        self.arn_suffix = self.lb.arn_suffix
        self.target_group_arn_suffix = self.target_group.arn_suffix
