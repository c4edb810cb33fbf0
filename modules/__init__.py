"""CDK for Terraform constructs for recsys-fargate, one concern per module, and the per-environment config."""
