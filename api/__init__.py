"""recsys-fargate inference API."""
