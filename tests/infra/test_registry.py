"""ECR: immutable tags, scan on push, KMS encryption, bounded history."""

import json

from tests.infra.helpers import Synth, resources


def test_app_and_router_repositories_exist(dev: Synth) -> None:
    names = sorted(r["name"] for r in resources(dev, "aws_ecr_repository").values())
    assert names == ["recsys-dev/app", "recsys-dev/log-router"]


def test_repositories_are_immutable_scanned_and_kms_encrypted(prod: Synth) -> None:
    for repo in resources(prod, "aws_ecr_repository").values():
        assert repo["image_tag_mutability"] == "IMMUTABLE"
        assert repo["image_scanning_configuration"]["scan_on_push"] is True
        assert repo["encryption_configuration"][0]["encryption_type"] == "KMS"
        assert repo["encryption_configuration"][0]["kms_key"].startswith("${aws_kms_key.")
        assert repo["force_delete"] is False


def test_lifecycle_keeps_the_last_n_images_and_drops_untagged(prod: Synth) -> None:
    policies = [json.loads(p["policy"]) for p in resources(prod, "aws_ecr_lifecycle_policy").values()]
    assert len(policies) == 2
    for doc in policies:
        keep = next(r for r in doc["rules"] if r["selection"]["countType"] == "imageCountMoreThan")
        assert keep["selection"]["countNumber"] == 30
        assert any(r["selection"]["tagStatus"] == "untagged" for r in doc["rules"])
