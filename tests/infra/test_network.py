"""Network: public subnets for the ALB, protected subnets for tasks and EFS, NAT, flow logs, endpoints."""

import ipaddress

from tests.infra.helpers import Synth, only, ref, resources


def subnets(stack: Synth, tier: str) -> list[dict[str, object]]:
    return [s for s in resources(stack, "aws_subnet").values() if s["tags"]["Tier"] == tier]


def test_vpc_resolves_and_names_private_hosts(dev: Synth) -> None:
    vpc = only(dev, "aws_vpc")
    assert vpc["enable_dns_support"] is True
    assert vpc["enable_dns_hostnames"] is True


def test_every_zone_has_a_public_and_a_protected_subnet(dev: Synth, prod: Synth) -> None:
    for stack, zones in ((dev, 2), (prod, 3)):
        for tier in ("public", "protected"):
            tier_subnets = subnets(stack, tier)
            assert len(tier_subnets) == zones
            assert len({s["availability_zone"] for s in tier_subnets}) == zones


def test_subnets_never_hand_out_public_ips(prod: Synth) -> None:
    assert all(s["map_public_ip_on_launch"] is False for s in resources(prod, "aws_subnet").values())


def test_subnet_blocks_lie_inside_the_vpc_and_do_not_overlap(prod: Synth) -> None:
    vpc = ipaddress.ip_network(only(prod, "aws_vpc")["cidr_block"])
    blocks = [ipaddress.ip_network(s["cidr_block"]) for s in resources(prod, "aws_subnet").values()]
    assert all(b.subnet_of(vpc) for b in blocks)  # type: ignore[arg-type]
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])


def test_dev_shares_one_nat_gateway_and_prod_has_one_per_zone(dev: Synth, prod: Synth) -> None:
    assert len(resources(dev, "aws_nat_gateway")) == 1
    assert len(resources(prod, "aws_nat_gateway")) == 3


def test_protected_subnets_leave_through_nat_and_public_through_the_internet_gateway(prod: Synth) -> None:
    routes = resources(prod, "aws_route").values()
    nat_routes = [r for r in routes if "nat_gateway_id" in r]
    igw_routes = [r for r in routes if "gateway_id" in r]
    assert len(nat_routes) == 3
    assert len({r["nat_gateway_id"] for r in nat_routes}) == 3
    assert [r["gateway_id"] for r in igw_routes] == [ref(prod, "aws_internet_gateway", "igw")]


def test_default_security_group_is_stripped_of_all_rules(dev: Synth) -> None:
    default = only(dev, "aws_default_security_group")
    assert "ingress" not in default and "egress" not in default


def test_flow_logs_capture_all_traffic_to_an_encrypted_group(dev: Synth) -> None:
    flow = only(dev, "aws_flow_log")
    assert flow["traffic_type"] == "ALL"
    group = next(g for g in resources(dev, "aws_cloudwatch_log_group").values() if "flow" in g["name"])
    assert group["kms_key_id"].startswith("${aws_kms_key.")
    assert group["retention_in_days"] == 90


def test_endpoints_let_prod_tasks_reach_aws_without_nat(dev: Synth, prod: Synth) -> None:
    assert resources(dev, "aws_vpc_endpoint") == {}
    endpoints = resources(prod, "aws_vpc_endpoint").values()
    services = sorted(e["service_name"].removeprefix("com.amazonaws.eu-west-1.") for e in endpoints)
    assert services == ["ecr.api", "ecr.dkr", "elasticfilesystem", "logs", "s3", "ssmmessages"]
    interface = [e for e in endpoints if e["vpc_endpoint_type"] == "Interface"]
    assert all(e["private_dns_enabled"] is True for e in interface)
    gateway = next(e for e in endpoints if e["vpc_endpoint_type"] == "Gateway")
    assert len(gateway["route_table_ids"]) == 3
