"""VPC: public subnets for the ALB, protected subnets (egress only) for tasks and EFS, flow logs, endpoints."""

import ipaddress
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.default_security_group import DefaultSecurityGroup
from cdktf_cdktf_provider_aws.eip import Eip
from cdktf_cdktf_provider_aws.flow_log import FlowLog
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.internet_gateway import InternetGateway
from cdktf_cdktf_provider_aws.nat_gateway import NatGateway
from cdktf_cdktf_provider_aws.route import Route
from cdktf_cdktf_provider_aws.route_table import RouteTable
from cdktf_cdktf_provider_aws.route_table_association import RouteTableAssociation
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.subnet import Subnet
from cdktf_cdktf_provider_aws.vpc import Vpc
from cdktf_cdktf_provider_aws.vpc_endpoint import VpcEndpoint
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from modules.errors import Problems
from modules.iam import AwsContext, assume_role_policy, policy, statement

# What tasks reach without NAT when endpoints are on: image pulls, logs, ECS Exec sessions, EFS API.
INTERFACE_ENDPOINT_SERVICES = ("ecr.api", "ecr.dkr", "logs", "ssmmessages", "elasticfilesystem")
MAX_ZONES = 4


@dataclass(frozen=True)
class NetworkProps:
    """name: prefix of every resource name. cidr: the VPC block (/16 to /20).
    availability_zones: one public and one protected subnet in each (2 to 4 zones).
    nat_per_az: one NAT gateway per zone (zone-independent egress) instead of one shared in the first zone.
    vpc_endpoints: add the S3 gateway endpoint and the interface endpoints in INTERFACE_ENDPOINT_SERVICES.
    flow_log_retention_days / log_kms_key_arn: the flow-log group's retention and encryption key.

    Subnets are carved from the block: protected subnets take the first blocks of prefix+4 (a /20 each in a
    /16), public subnets split the last such block at prefix+8, but no smaller than /26.
    """

    name: str
    cidr: str
    availability_zones: tuple[str, ...]
    nat_per_az: bool
    vpc_endpoints: bool
    flow_log_retention_days: int
    log_kms_key_arn: str

    def __post_init__(self) -> None:
        p = Problems("NetworkProps")
        p.check(
            2 <= len(self.availability_zones) <= MAX_ZONES,
            "availability_zones",
            f"{len(self.availability_zones)} zones given",
            f"use 2 to {MAX_ZONES} zones",
        )
        try:
            block = ipaddress.ip_network(self.cidr)
            p.check(16 <= block.prefixlen <= 20, "cidr", f"{self.cidr} is not /16 to /20", "use a /16 to /20 block")
        except ValueError:
            p.check(False, "cidr", f"{self.cidr!r} is not a CIDR block", "use a block like '10.0.0.0/16'")
        p.raise_if_any()

    def subnet_cidrs(self) -> tuple[list[str], list[str]]:
        """(public, protected) CIDR blocks, one per zone, in zone order."""
        vpc = ipaddress.IPv4Network(self.cidr)
        blocks = list(vpc.subnets(new_prefix=vpc.prefixlen + 4))
        protected = [str(b) for b in blocks[: len(self.availability_zones)]]
        public_prefix = min(vpc.prefixlen + 8, 26)
        public = [str(b) for b in list(blocks[-1].subnets(new_prefix=public_prefix))[: len(self.availability_zones)]]
        return public, protected


class Network(Construct):
    def __init__(self, scope: Construct, id_: str, props: NetworkProps, context: AwsContext) -> None:
        super().__init__(scope, id_)
        zones = props.availability_zones
        public_cidrs, protected_cidrs = props.subnet_cidrs()
        self.cidr = props.cidr
        self.vpc = Vpc(
            self,
            "vpc",
            cidr_block=props.cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={"Name": props.name},
        )
        self.vpc_id = self.vpc.id
        # Managing the default security group with no rules removes AWS's allow-all defaults.
        DefaultSecurityGroup(self, "default-sg", vpc_id=self.vpc.id, tags={"Name": f"{props.name}-default-deny"})

        igw = InternetGateway(self, "igw", vpc_id=self.vpc.id, tags={"Name": props.name})
        public_rt = RouteTable(self, "public-rt", vpc_id=self.vpc.id, tags={"Name": f"{props.name}-public"})
        Route(
            self, "public-default", route_table_id=public_rt.id, destination_cidr_block="0.0.0.0/0", gateway_id=igw.id
        )

        public_subnets: list[Subnet] = []
        protected_subnets: list[Subnet] = []
        for i, zone in enumerate(zones):
            public = Subnet(
                self,
                f"public-{i}",
                vpc_id=self.vpc.id,
                cidr_block=public_cidrs[i],
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={"Name": f"{props.name}-public-{zone}", "Tier": "public"},
            )
            RouteTableAssociation(self, f"public-rta-{i}", subnet_id=public.id, route_table_id=public_rt.id)
            public_subnets.append(public)
            protected_subnets.append(
                Subnet(
                    self,
                    f"protected-{i}",
                    vpc_id=self.vpc.id,
                    cidr_block=protected_cidrs[i],
                    availability_zone=zone,
                    map_public_ip_on_launch=False,
                    tags={"Name": f"{props.name}-protected-{zone}", "Tier": "protected"},
                )
            )

        nat_count = len(zones) if props.nat_per_az else 1
        nats = []
        for i in range(nat_count):
            eip = Eip(self, f"nat-eip-{i}", domain="vpc", tags={"Name": f"{props.name}-nat-{zones[i]}"})
            nats.append(
                NatGateway(
                    self,
                    f"nat-{i}",
                    allocation_id=eip.id,
                    subnet_id=public_subnets[i].id,
                    tags={"Name": f"{props.name}-{zones[i]}"},
                    depends_on=[igw],
                )
            )
        protected_rts: list[RouteTable] = []
        for i, subnet in enumerate(protected_subnets):
            rt = RouteTable(
                self, f"protected-rt-{i}", vpc_id=self.vpc.id, tags={"Name": f"{props.name}-protected-{zones[i]}"}
            )
            Route(
                self,
                f"protected-default-{i}",
                route_table_id=rt.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nats[i % nat_count].id,
            )
            RouteTableAssociation(self, f"protected-rta-{i}", subnet_id=subnet.id, route_table_id=rt.id)
            protected_rts.append(rt)

        self.public_subnet_ids = [s.id for s in public_subnets]
        self.protected_subnet_ids = [s.id for s in protected_subnets]
        self.protected_route_table_ids = [rt.id for rt in protected_rts]
        self._flow_logs(props, context)
        if props.vpc_endpoints:
            self._endpoints(props, context)

    def _flow_logs(self, props: NetworkProps, context: AwsContext) -> None:
        group = CloudwatchLogGroup(
            self,
            "flow-log-group",
            name=f"/{props.name}/vpc-flow-logs",
            retention_in_days=props.flow_log_retention_days,
            kms_key_id=props.log_kms_key_arn,
        )
        role = IamRole(
            self,
            "flow-log-role",
            name=f"{props.name}-vpc-flow-logs",
            assume_role_policy=assume_role_policy("vpc-flow-logs.amazonaws.com", context),
        )
        IamRolePolicy(
            self,
            "flow-log-policy",
            role=role.id,
            policy=policy(
                statement(
                    "WriteFlowLogs",
                    ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    [group.arn, f"{group.arn}:*"],
                ),
                # DescribeLogGroups has no resource-level permission: AWS accepts only "*" for it.
                statement("FindFlowLogGroup", ["logs:DescribeLogGroups"], ["*"]),
            ),
        )
        FlowLog(
            self,
            "flow-log",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=600,
        )

    def _endpoints(self, props: NetworkProps, context: AwsContext) -> None:
        sg = SecurityGroup(
            self,
            "endpoints-sg",
            name=f"{props.name}-vpc-endpoints",
            description="HTTPS from inside the VPC to the AWS interface endpoints",
            vpc_id=self.vpc.id,
            tags={"Name": f"{props.name}-vpc-endpoints"},
        )
        VpcSecurityGroupIngressRule(
            self,
            "endpoints-https",
            security_group_id=sg.id,
            description="HTTPS from the VPC",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4=props.cidr,
        )
        VpcEndpoint(
            self,
            "s3-endpoint",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{context.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=self.protected_route_table_ids,
            tags={"Name": f"{props.name}-s3"},
        )
        for service in INTERFACE_ENDPOINT_SERVICES:
            VpcEndpoint(
                self,
                f"endpoint-{service.replace('.', '-')}",
                vpc_id=self.vpc.id,
                service_name=f"com.amazonaws.{context.region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=self.protected_subnet_ids,
                security_group_ids=[sg.id],
                tags={"Name": f"{props.name}-{service}"},
            )
