"""A customer-managed KMS key with rotation and an explicit key policy."""

from dataclasses import dataclass, field
from typing import Any

from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from constructs import Construct

from modules.errors import Problems
from modules.iam import AwsContext, policy, statement

# The account keeps full administration of the key (so it can never become unmanageable), listed action by
# action because the project allows no wildcard actions.
KEY_ADMIN_ACTIONS = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
]
KEY_USER_ACTIONS = [
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
]


@dataclass(frozen=True)
class ServiceGrant:
    """Lets an AWS service principal use the key, optionally only under a condition (e.g. encryption context).

    actions: what the service may do with the key (default: KEY_USER_ACTIONS); each must be a key-user action.
    """

    service: str
    condition: dict[str, Any] | None = None
    actions: tuple[str, ...] = tuple(KEY_USER_ACTIONS)

    def __post_init__(self) -> None:
        p = Problems("ServiceGrant")
        unknown = sorted(set(self.actions) - set(KEY_USER_ACTIONS))
        p.check(not unknown, "actions", f"{unknown} are not key-user actions", f"use some of {KEY_USER_ACTIONS}")
        p.check(bool(self.actions), "actions", "empty", "list what the service does with the key")
        p.raise_if_any()


@dataclass(frozen=True)
class EncryptionKeyProps:
    """alias: `alias/<alias>` names the key. description: shown in the console.
    service_grants: service principals that may use the key (none by default: IAM principals of the account
    are granted use through their own policies, which the account-admin statement enables).
    deletion_window_days: waiting period before a scheduled deletion (default 30, the maximum).
    """

    alias: str
    description: str
    service_grants: tuple[ServiceGrant, ...] = field(default=())
    deletion_window_days: int = 30

    def __post_init__(self) -> None:
        p = Problems("EncryptionKeyProps")
        p.check(
            self.alias.replace("/", "").replace("-", "").isalnum(),
            "alias",
            f"{self.alias!r} has characters KMS aliases do not allow",
            "use letters, digits, '-' and '/'",
        )
        p.check(
            7 <= self.deletion_window_days <= 30,
            "deletion_window_days",
            f"{self.deletion_window_days} is outside 7-30",
            "pick a window from 7 to 30 days",
        )
        p.raise_if_any()


class EncryptionKey(Construct):
    def __init__(self, scope: Construct, id_: str, props: EncryptionKeyProps, context: AwsContext) -> None:
        super().__init__(scope, id_)
        # In a key policy "Resource": "*" means this key itself; nothing narrower exists.
        statements = [
            statement("AccountAdministersKey", KEY_ADMIN_ACTIONS, ["*"], principal={"AWS": context.account_root})
        ]
        for grant in props.service_grants:
            name = grant.service.split(".")[0].replace("-", " ").title().replace(" ", "")
            statements.append(
                statement(
                    f"{name}UsesKey",
                    list(grant.actions),
                    ["*"],
                    principal={"Service": grant.service},
                    condition=grant.condition,
                )
            )
        self.key = KmsKey(
            self,
            "key",
            description=props.description,
            enable_key_rotation=True,
            deletion_window_in_days=props.deletion_window_days,
            policy=policy(*statements),
        )
        KmsAlias(self, "alias", name=f"alias/{props.alias}", target_key_id=self.key.key_id)
        self.arn = self.key.arn
