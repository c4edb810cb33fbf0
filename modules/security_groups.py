"""The ALB's and the service tasks' security groups, and the only path between them (the app port)."""

from dataclasses import dataclass
from ipaddress import ip_network

from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from api.contract import APP_PORT
from modules.errors import Problems

LISTENER_PORTS = (80, 443)


@dataclass(frozen=True)
class ServiceSecurityGroupsProps:
    """name: prefix of the group names. vpc_id: the VPC.
    ingress_cidrs: who may reach the ALB on 80 and 443 (port 80 only redirects when HTTPS is configured).
    Tasks accept the app port from the ALB only and may open HTTPS to AWS APIs and the registry; NFS to the
    model file system is added by the storage construct.
    """

    name: str
    vpc_id: str
    ingress_cidrs: tuple[str, ...]

    def __post_init__(self) -> None:
        p = Problems("ServiceSecurityGroupsProps")
        p.check(bool(self.ingress_cidrs), "ingress_cidrs", "empty", "list at least one CIDR")
        p.raise_if_any()


class ServiceSecurityGroups(Construct):
    def __init__(self, scope: Construct, id_: str, props: ServiceSecurityGroupsProps) -> None:
        super().__init__(scope, id_)
        self.alb = SecurityGroup(
            self,
            "alb",
            name=f"{props.name}-alb",
            description="Internet-facing load balancer",
            vpc_id=props.vpc_id,
            tags={"Name": f"{props.name}-alb"},
        )
        self.tasks = SecurityGroup(
            self,
            "tasks",
            name=f"{props.name}-tasks",
            description="Service tasks: the app port from the ALB only",
            vpc_id=props.vpc_id,
            tags={"Name": f"{props.name}-tasks"},
        )
        # The training task accepts nothing; it opens HTTPS to S3, ECR and CloudWatch Logs (NFS is added by the
        # storage construct).
        self.training = SecurityGroup(
            self,
            "training",
            name=f"{props.name}-training",
            description="Training task: no ingress; HTTPS out, NFS to the model file system",
            vpc_id=props.vpc_id,
            tags={"Name": f"{props.name}-training"},
        )
        VpcSecurityGroupEgressRule(
            self,
            "training-https-out",
            security_group_id=self.training.id,
            description="HTTPS to S3, ECR and CloudWatch Logs (through NAT or VPC endpoints)",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4="0.0.0.0/0",
        )
        for i, cidr in enumerate(props.ingress_cidrs):
            ipv6 = ip_network(cidr).version == 6
            for port in LISTENER_PORTS:
                VpcSecurityGroupIngressRule(
                    self,
                    f"alb-in-{port}-{i}",
                    security_group_id=self.alb.id,
                    description=f"Listener port {port} from {cidr}",
                    ip_protocol="tcp",
                    from_port=port,
                    to_port=port,
                    cidr_ipv4=None if ipv6 else cidr,
                    cidr_ipv6=cidr if ipv6 else None,
                )
        VpcSecurityGroupEgressRule(
            self,
            "alb-to-tasks",
            security_group_id=self.alb.id,
            description="Forward to the app port of the tasks",
            ip_protocol="tcp",
            from_port=APP_PORT,
            to_port=APP_PORT,
            referenced_security_group_id=self.tasks.id,
        )
        VpcSecurityGroupIngressRule(
            self,
            "tasks-from-alb",
            security_group_id=self.tasks.id,
            description="App port from the ALB",
            ip_protocol="tcp",
            from_port=APP_PORT,
            to_port=APP_PORT,
            referenced_security_group_id=self.alb.id,
        )
        VpcSecurityGroupEgressRule(
            self,
            "tasks-https-out",
            security_group_id=self.tasks.id,
            description="HTTPS to AWS APIs and ECR (through NAT or VPC endpoints)",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4="0.0.0.0/0",
        )
