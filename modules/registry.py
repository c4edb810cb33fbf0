"""ECR repositories for the app and the log router images."""

import json
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.ecr_lifecycle_policy import EcrLifecyclePolicy
from cdktf_cdktf_provider_aws.ecr_repository import EcrRepository, EcrRepositoryEncryptionConfiguration
from constructs import Construct

from modules.errors import Problems
from modules.iam import AwsContext
from modules.kms import EncryptionKey, EncryptionKeyProps


@dataclass(frozen=True)
class RegistryProps:
    """name: prefix of the repository names (`<name>/app`, `<name>/log-router`).
    keep_images: images each repository keeps; older ones expire (untagged ones after a day).
    force_delete: let `terraform destroy` delete repositories that still hold images (dev only; default False).
    """

    name: str
    keep_images: int = 30
    force_delete: bool = False

    def __post_init__(self) -> None:
        p = Problems("RegistryProps")
        p.check(1 <= self.keep_images <= 1000, "keep_images", f"{self.keep_images} is outside 1-1000", "keep e.g. 30")
        p.raise_if_any()


def lifecycle_policy(keep_images: int) -> str:
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": "Expire untagged images (interrupted pushes) after a day",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": 1,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"Keep the last {keep_images} images",
                    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep_images},
                    "action": {"type": "expire"},
                },
            ]
        }
    )


class Registry(Construct):
    def __init__(self, scope: Construct, id_: str, props: RegistryProps, context: AwsContext) -> None:
        super().__init__(scope, id_)
        self._key = EncryptionKey(
            self, "key", EncryptionKeyProps(alias=f"{props.name}/ecr", description=f"{props.name} images"), context
        )
        self.app = self._repository("app", props)
        self.router = self._repository("log-router", props)

    def _repository(self, kind: str, props: RegistryProps) -> EcrRepository:
        repo = EcrRepository(
            self,
            kind,
            name=f"{props.name}/{kind}",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configuration=[
                EcrRepositoryEncryptionConfiguration(encryption_type="KMS", kms_key=self._key.arn)
            ],
            force_delete=props.force_delete,
        )
        EcrLifecyclePolicy(self, f"{kind}-lifecycle", repository=repo.name, policy=lifecycle_policy(props.keep_images))
        return repo
