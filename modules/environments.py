"""The environments this repository deploys: configuration as data, one EnvironmentConfig each.

Edit these values for your account (alert e-mails, certificate, ingress ranges, state bucket). Image tags are
the commit the images were built from and come from the caller (see main.py).
"""

from modules.config import EnvironmentConfig, StateBackend


def environments(image_tag: str) -> tuple[EnvironmentConfig, ...]:
    return (
        EnvironmentConfig(
            name="dev",
            region="eu-west-1",
            availability_zones=("eu-west-1a", "eu-west-1b"),
            vpc_cidr="10.10.0.0/16",
            nat_per_az=False,
            vpc_endpoints=False,
            app_image_tag=image_tag,
            router_image_tag=image_tag,
            desired_count=2,
            min_count=1,
            max_count=4,
            alert_emails=(),
            efs_backup=False,
            deletion_protection=False,
            # Weekly in dev (Mondays 03:00 UTC); `make train-remote ENV=dev` trains on demand.
            training_schedule="cron(0 3 ? * MON *)",
        ),
        EnvironmentConfig(
            name="prod",
            region="eu-west-1",
            availability_zones=("eu-west-1a", "eu-west-1b", "eu-west-1c"),
            vpc_cidr="10.20.0.0/16",
            nat_per_az=True,
            vpc_endpoints=True,
            app_image_tag=image_tag,
            router_image_tag=image_tag,
            desired_count=3,
            min_count=3,
            max_count=12,
            alert_emails=("recsys-oncall@example.com",),
            # Replace with your ACM certificate in this region (and set domain_name): prod serves HTTPS only.
            certificate_arn="arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-4000-8000-000000000000",
            efs_backup=True,
            deletion_protection=True,
            # Nightly at 02:00 UTC, after the shop's exporter has dropped the day's interactions.
            training_schedule="cron(0 2 * * ? *)",
            waf=True,
            # Replace with your versioned state bucket: CI plans and deploys need state that outlives the runner.
            state_backend=StateBackend(
                bucket="recsys-terraform-state-123456789012", key="recsys/prod/terraform.tfstate", region="eu-west-1"
            ),
        ),
    )
