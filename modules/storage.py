"""Encrypted EFS file system holding the models: serving tasks mount it read-only through the `/models` access point,
the training task writes new versions through a second access point on the same directory."""

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.efs_access_point import EfsAccessPoint
from cdktf_cdktf_provider_aws.efs_backup_policy import EfsBackupPolicy
from cdktf_cdktf_provider_aws.efs_file_system import EfsFileSystem
from cdktf_cdktf_provider_aws.efs_file_system_policy import EfsFileSystemPolicy
from cdktf_cdktf_provider_aws.efs_mount_target import EfsMountTarget
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from api.contract import APP_GID, APP_UID
from modules.errors import Problems
from modules.iam import AwsContext, policy, statement
from modules.kms import EncryptionKey, EncryptionKeyProps

NFS_PORT = 2049
ACCESS_POINT_ROOT = "/models"
EFS_CLIENT_ACTIONS = [
    "elasticfilesystem:ClientMount",
    "elasticfilesystem:ClientWrite",
    "elasticfilesystem:ClientRootAccess",
]


@dataclass(frozen=True)
class ModelStorageProps:
    """name: prefix of resource names. vpc_id / subnet_ids: one mount target per (protected) subnet.
    client_security_group_ids: the only security groups admitted on NFS (TCP 2049): serving and training tasks.
    posix_uid / posix_gid: identity every access through the access point gets; defaults to the app image's
        user so files the trainer writes are readable by the app.
    throughput_mode: "elastic" by default: bursting credits run out when many tasks load a model at scale-out.
    backup: AWS Backup daily backups of the file system (default on).
    """

    name: str
    vpc_id: str
    subnet_ids: tuple[str, ...]
    client_security_group_ids: tuple[str, ...]
    posix_uid: int = APP_UID
    posix_gid: int = APP_GID
    throughput_mode: str = "elastic"
    backup: bool = True

    def __post_init__(self) -> None:
        p = Problems("ModelStorageProps")
        p.check(len(self.subnet_ids) >= 1, "subnet_ids", "no subnet given", "pass the protected subnets")
        p.check(
            len(self.client_security_group_ids) >= 1,
            "client_security_group_ids",
            "no NFS client given",
            "pass the serving and training tasks' security groups",
        )
        p.check(
            self.throughput_mode in ("elastic", "bursting"),
            "throughput_mode",
            f"{self.throughput_mode!r} is not supported here",
            "use 'elastic' (or 'bursting' for tiny models)",
        )
        p.check(
            self.posix_uid > 0 and self.posix_gid > 0,
            "posix_uid",
            "root (0) would bypass file permissions",
            "use the app image's non-root uid/gid",
        )
        p.raise_if_any()


class ModelStorage(Construct):
    def __init__(self, scope: Construct, id_: str, props: ModelStorageProps, context: AwsContext) -> None:
        super().__init__(scope, id_)
        key = EncryptionKey(
            self,
            "key",
            EncryptionKeyProps(alias=f"{props.name}/efs", description=f"{props.name} model file system"),
            context,
        )
        self.file_system = EfsFileSystem(
            self,
            "file-system",
            creation_token=f"{props.name}-models",
            encrypted=True,
            kms_key_id=key.arn,
            throughput_mode=props.throughput_mode,
            performance_mode="generalPurpose",
            tags={"Name": f"{props.name}-models"},
        )
        self.file_system_id = self.file_system.id
        self.file_system_arn = self.file_system.arn
        EfsBackupPolicy(
            self,
            "backup",
            file_system_id=self.file_system.id,
            backup_policy={"status": "ENABLED" if props.backup else "DISABLED"},
        )
        self.security_group = SecurityGroup(
            self,
            "sg",
            name=f"{props.name}-efs",
            description="NFS from the service tasks only",
            vpc_id=props.vpc_id,
            tags={"Name": f"{props.name}-efs"},
        )
        self.client_rules: list[VpcSecurityGroupIngressRule | VpcSecurityGroupEgressRule] = []
        for i, client in enumerate(props.client_security_group_ids):
            # The first client keeps the ids it had before training existed, so its rules are not replaced.
            suffix = "" if i == 0 else f"-{i}"
            ingress = VpcSecurityGroupIngressRule(
                self,
                f"nfs-from-clients{suffix}",
                security_group_id=self.security_group.id,
                description="NFS from the tasks that mount the models",
                ip_protocol="tcp",
                from_port=NFS_PORT,
                to_port=NFS_PORT,
                referenced_security_group_id=client,
            )
            egress = VpcSecurityGroupEgressRule(
                self,
                f"clients-to-nfs{suffix}",
                security_group_id=client,
                description="NFS to the model file system",
                ip_protocol="tcp",
                from_port=NFS_PORT,
                to_port=NFS_PORT,
                referenced_security_group_id=self.security_group.id,
            )
            self.client_rules += [ingress, egress]
        self.mount_targets = [
            EfsMountTarget(
                self,
                f"mount-target-{i}",
                file_system_id=self.file_system.id,
                subnet_id=subnet_id,
                security_groups=[self.security_group.id],
            )
            for i, subnet_id in enumerate(props.subnet_ids)
        ]
        self.access_point = EfsAccessPoint(
            self,
            "access-point",
            file_system_id=self.file_system.id,
            posix_user={"uid": props.posix_uid, "gid": props.posix_gid},
            root_directory={
                "path": ACCESS_POINT_ROOT,
                "creation_info": {
                    "owner_uid": props.posix_uid,
                    "owner_gid": props.posix_gid,
                    "permissions": "0755",
                },
            },
            tags={"Name": f"{props.name}-models"},
        )
        # The trainer's own door to the same directory. Identical POSIX identity, so what it writes the serving
        # tasks can read; IAM decides who may write: only the training task role is granted ClientWrite, and only
        # with elasticfilesystem:AccessPointArn equal to this access point
        # (https://docs.aws.amazon.com/efs/latest/ug/iam-access-control-nfs-efs.html).
        self.writer_access_point = EfsAccessPoint(
            self,
            "writer-access-point",
            file_system_id=self.file_system.id,
            posix_user={"uid": props.posix_uid, "gid": props.posix_gid},
            root_directory={
                "path": ACCESS_POINT_ROOT,
                "creation_info": {
                    "owner_uid": props.posix_uid,
                    "owner_gid": props.posix_gid,
                    "permissions": "0755",
                },
            },
            tags={"Name": f"{props.name}-models-writer"},
        )
        # A file system policy that grants only this account's IAM principals makes NFS clients without IAM
        # authorization anonymous and therefore refused; the deny statement refuses any access without TLS.
        EfsFileSystemPolicy(
            self,
            "policy",
            file_system_id=self.file_system.id,
            policy=policy(
                statement(
                    "AccountPrincipalsThroughMountTargets",
                    ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                    [self.file_system.arn],
                    principal={"AWS": context.account_root},
                    condition={"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}},
                ),
                statement(
                    "DenyWithoutTls",
                    EFS_CLIENT_ACTIONS,
                    [self.file_system.arn],
                    effect="Deny",
                    principal={"AWS": "*"},
                    condition={"Bool": {"aws:SecureTransport": "false"}},
                ),
            ),
        )
