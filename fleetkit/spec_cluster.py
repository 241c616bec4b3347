"""The typed stack spec, infrastructure half: GPU node pools, the cluster (create / adopt / a Terraform
foundation, EKS access entries) and the cloud account; plus the config namespaces of the kit.

:mod:`fleetkit.spec` holds the rest (models, mesh, add-ons, images, protection, the stack kinds) and
re-exports every public name here, so ``from fleetkit.spec import NodePoolSpec`` keeps working. Every
model here forbids unknown keys.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from fleetkit.issue import SECRET_VALUE
from policies.common import FieldError, Name, StrictModel

Cloud = Literal["aws", "gcp", "azure"]
TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]

_K8S_VERSION = re.compile(r"^1\.(\d+)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

#: Pulumi config namespace of the kit's settings: every ``fleetkit:*`` key is a spec value.
SPEC_NAMESPACE = "fleetkit"
#: Pulumi config namespace of credentials (kubeconfigs, backend tokens): set with
#: ``pulumi config set --secret fleetkit-secrets:<key>``; never read as a spec setting.
SECRETS_NAMESPACE = "fleetkit-secrets"


def secret_config_key(key: str) -> tuple[str, str]:
    """``(namespace, name)`` of a credential's config key; a bare name is in :data:`SECRETS_NAMESPACE`."""
    namespace, _, name = key.rpartition(":")
    return namespace or SECRETS_NAMESPACE, name


#: a Pulumi config key: ``[namespace:]name`` (a pasted credential has spaces, newlines or ``: ``)
_CONFIG_KEY = re.compile(r"^([A-Za-z][\w.-]*:)?[A-Za-z][\w./-]*$")


def _check_secret_key(key: str) -> str:
    if not _CONFIG_KEY.match(key):
        raise FieldError(
            "name the Pulumi secret config key that holds the credential (e.g. 'adoptKubeconfig'), never the "
            "credential itself: this value is not a config key name",
            ((), SECRET_VALUE),
        )
    namespace, name = secret_config_key(key)
    if not name:
        raise ValueError("name the Pulumi secret config key, e.g. 'adoptKubeconfig'")
    if namespace == SPEC_NAMESPACE:
        raise ValueError(
            f"credentials never live under '{SPEC_NAMESPACE}:' (every key there is a spec setting); use "
            f"'{SECRETS_NAMESPACE}:{name}' (or the bare name '{name}')"
        )
    return key


# --------------------------------------------------------------------------- node pools
class Taint(StrictModel):
    """A node taint in the one spelling the kit takes (Kubernetes style ``NoSchedule``).

    Each cloud renders its own spelling (EKS/GKE APIs: ``NO_SCHEDULE``; AKS: ``key=value:NoSchedule``),
    and model pods get the matching toleration.
    """

    key: str = Field(min_length=1, max_length=253)
    value: str = Field(default="", max_length=63)
    effect: TaintEffect = "NoSchedule"


def _default_gpu_taints() -> list[Taint]:
    return [Taint(key="nvidia.com/gpu", value="present", effect="NoSchedule")]


class AwsPoolOptions(StrictModel):
    ami_type: Literal[
        "AL2023_x86_64_NVIDIA",
        "BOTTLEROCKET_x86_64_NVIDIA",
        "AL2023_ARM_64_NVIDIA",
        "BOTTLEROCKET_ARM_64_NVIDIA",
    ] = "AL2023_x86_64_NVIDIA"
    instance_store_cache: bool | None = Field(
        default=None,
        description=(
            "RAID0 the instance-store NVMe for kubelet/containerd (and so the weight cache) with nodeadm "
            "localStorage; AL2023 AMIs only. None (default): on when the AMI is AL2023 and the type has "
            "instance-store NVMe. true with a Bottlerocket AMI (whose cache lives on the /dev/xvdb data "
            "volume, sized by root_volume_gib) or with a type without NVMe is a spec error"
        ),
    )


class GcpPoolOptions(StrictModel):
    gpu_driver_version: Literal["DEFAULT", "LATEST", "INSTALLATION_DISABLED"] = Field(
        default="LATEST",
        description="left unset GKE installs no driver; INSTALLATION_DISABLED for the GPU Operator",
    )
    local_ssd_count: int | None = Field(
        default=None,
        ge=0,
        description=(
            "local NVMe SSDs (375 GiB each) backing ephemeral storage, i.e. the weight cache. None: the "
            "disks a type bundles (a2-ultragpu, a3, a4), none otherwise. On a bundling type any other "
            "count than the bundled one is a spec error"
        ),
    )


class AzurePoolOptions(StrictModel):
    spot_max_price: float = Field(
        default=-1, description="-1 = pay up to the on-demand price; only with spot: true (else a spec error)"
    )
    spot_eviction_policy: Literal["Delete", "Deallocate"] = Field(
        default="Delete", description="only with spot: true (else a spec error)"
    )
    mig_profile: Literal["MIG1g", "MIG2g", "MIG3g", "MIG4g", "MIG7g"] | None = None
    gpu_driver: Literal["Install", "None"] = Field(
        default="Install", description="None when the GPU Operator owns drivers"
    )


class NodePoolSpec(StrictModel):
    instance_type: str = Field(min_length=1)
    min_size: int = Field(
        default=0, ge=0, description="0 lets the pool scale to zero where the cloud allows it"
    )
    max_size: int = Field(default=1, ge=1)
    desired_size: int | None = Field(default=None, ge=0)
    spot: bool = False
    zones: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=_default_gpu_taints)
    root_volume_gib: int = Field(default=200, ge=20, le=16384)
    aws: AwsPoolOptions | None = None
    gcp: GcpPoolOptions | None = None
    azure: AzurePoolOptions | None = None

    @model_validator(mode="after")
    def _sizes(self) -> NodePoolSpec:
        if self.min_size > self.max_size:
            raise FieldError(
                f"min_size {self.min_size} is greater than max_size {self.max_size}",
                ("min_size", self.min_size),
                ("max_size", self.max_size),
            )
        if self.desired_size is not None and not (self.min_size <= self.desired_size <= self.max_size):
            raise FieldError(
                f"desired_size {self.desired_size} is outside min_size..max_size ({self.min_size}..{self.max_size})",
                ("desired_size", self.desired_size),
            )
        for k, v in self.labels.items():
            if not _LABEL_VALUE.match(v) or len(v) > 63:
                raise FieldError(f"label {k}={v!r}: not a valid Kubernetes label value", (("labels", k), v))
        return self


# --------------------------------------------------------------------------- clusters
class TerraformFoundation(StrictModel):
    """Read network/cluster ids from a Terraform-managed foundation's state outputs.

    Read with the ``pulumi_terraform.state`` functions (``getS3Reference``, ``getAzureRMReference``,
    ``getRemoteReference``, ``getLocalReference``). ``gcs`` is accepted by the schema but reported as
    a spec error: pulumi-terraform 6.x has no GCS state reader.
    """

    backend: Literal["s3", "gcs", "azurerm", "remote", "local"]
    config: dict[str, str] = Field(
        description="backend settings, as in the foundation's backend block (bucket, key, region, ...); "
        "credentials never go here (see secret_config)"
    )
    secret_config: dict[str, str] = Field(
        default_factory=dict,
        description="backend setting -> Pulumi secret config key holding it, e.g. {token: tfeToken}; a bare "
        "name is in the `fleetkit-secrets` namespace (`pulumi config set --secret fleetkit-secrets:tfeToken …`), "
        "never `fleetkit:`",
    )
    outputs: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "kit input -> Terraform output name, e.g. {vpc_id: vpc_id, subnet_ids: private_subnets}. Kit "
            "inputs: vpc_id (AWS VPC / GCP network / Azure VNet), subnet_ids (list, or one id), "
            "cluster_name (adopt), resource_group (Azure), pods_range_name and services_range_name (GKE)"
        ),
    )
    workspace: str | None = None

    @field_validator("secret_config")
    @classmethod
    def _secret_keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v.values():
            _check_secret_key(key)
        return v


class CreateCluster(StrictModel):
    kubernetes_version: str = "1.33"
    vpc_id: str | None = Field(
        default=None,
        description="AWS VPC id / GCP network name or self link / Azure VNet id; a foundation output wins. "
        "Unset: the account's default VPC (AWS), the 'default' network (GCP), an AKS-managed VNet (Azure)",
    )
    subnet_ids: list[str] = Field(
        default_factory=list,
        description="AWS: the cluster's subnets (two AZs at least; unset: the default VPC's default subnets); "
        "GCP and Azure: at most one subnetwork / VNet subnet",
    )
    system_instance_type: str | None = Field(
        default=None,
        description="machine type of the small CPU pool for system pods, istiod, gateways and KEDA "
        "(default m6i.xlarge / e2-standard-4 / Standard_D4ds_v5)",
    )
    public_endpoint: bool = Field(default=True, description="peer clusters' istiod must reach the API server")
    authorized_networks: list[str] = Field(
        default_factory=list,
        description=(
            "CIDRs allowed to reach the public API endpoint (EKS publicAccessCidrs, GKE master authorized "
            "networks, AKS authorizedIPRanges): your admin networks and the NAT egress of every peer cluster. "
            "Required with public_endpoint: true; 0.0.0.0/0 is refused (rule cluster.api-open-to-internet)"
        ),
    )
    deletion_protection: bool = Field(
        default=True,
        description="EKS/GKE deletion protection; set false before `pulumi destroy` (no AKS equivalent)",
    )
    bootstrap_creator_admin: bool = Field(
        default=True,
        description=(
            "EKS: give the identity that creates the cluster an admin access entry (accessConfig."
            "bootstrapClusterCreatorAdminPermissions). Read by EKS only when the cluster is created; later edits "
            "are ignored (changing it would replace the cluster, pulumi/pulumi-aws#3997). true: do not list that "
            "identity in cluster.access_entries too (one principal, one access entry). false: list it there"
        ),
    )

    @field_validator("authorized_networks")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        for i, cidr in enumerate(v):
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise FieldError(f"not a CIDR such as 203.0.113.0/24 ({exc})", ((i,), cidr)) from None
        return v

    @field_validator("kubernetes_version")
    @classmethod
    def _k8s(cls, v: str) -> str:
        if not _K8S_VERSION.match(v):
            raise ValueError("write the Kubernetes minor version as '1.NN', e.g. '1.33'")
        return v


class AdoptCluster(StrictModel):
    kubernetes_version: str = "1.33"
    kubeconfig_secret: str | None = Field(
        default=None,
        description=(
            "Pulumi secret config key holding the kubeconfig the Kubernetes provider uses (e.g. "
            "`adoptKubeconfig`, set with `pulumi config set --secret fleetkit-secrets:adoptKubeconfig`; no "
            "namespace means `fleetkit-secrets`, and `fleetkit:` is refused). Unset: built from the cloud's API "
            "(exec auth on EKS/GKE, user credentials on AKS). Cluster facts (endpoint, CA, OIDC issuer, "
            "network) are always read from the cloud's API"
        ),
    )
    resource_group: str | None = Field(
        default=None,
        description="Azure: the cluster's resource group (default: account.azure_resource_group)",
    )
    location: str | None = Field(
        default=None, description="GKE: the cluster's location when it is zonal (default: the stack's region)"
    )

    @field_validator("kubernetes_version")
    @classmethod
    def _k8s(cls, v: str) -> str:
        return CreateCluster._k8s(v)

    @field_validator("kubeconfig_secret")
    @classmethod
    def _secret_key(cls, v: str | None) -> str | None:
        return None if v is None else _check_secret_key(v)


#: EKS access policies an access entry can be associated with (EKS docs, "Review access policy permissions").
EksAccessPolicy = Literal[
    "AmazonEKSClusterAdminPolicy",
    "AmazonEKSAdminPolicy",
    "AmazonEKSEditPolicy",
    "AmazonEKSViewPolicy",
    "AmazonEKSAdminViewPolicy",
]


class EksAccessEntry(StrictModel):
    """An IAM principal that may use an EKS cluster's Kubernetes API: an access entry plus one access policy.

    Keyed by a stable name in ``cluster.access_entries`` (the key names the Pulumi resources). The ARN
    is checked by ``cluster.access-entry-arn``: an IAM role (a path is allowed) or user ARN of the
    region's partition, never an STS ``assumed-role`` session ARN.
    """

    principal_arn: str = Field(
        min_length=1, description="arn:aws:iam::<account>:role/<path/name> (a CI role, an operators' role)"
    )
    policy: EksAccessPolicy = Field(
        default="AmazonEKSClusterAdminPolicy",
        description="the EKS access policy associated with the entry",
    )
    namespaces: list[Name] = Field(
        default_factory=list,
        description="empty: the policy applies to the whole cluster; else only to these namespaces",
    )


class ClusterSpec(StrictModel):
    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-zA-Z0-9][-a-zA-Z0-9_]*$")
    create: CreateCluster | None = None
    adopt: AdoptCluster | None = None
    foundation: TerraformFoundation | None = None
    access_entries: dict[Name, EksAccessEntry] = Field(
        default_factory=dict,
        description=(
            "EKS only: IAM roles/users (CI deployer roles, operators) given Kubernetes API access, as EKS access "
            "entries with an access policy, created or adopted cluster alike (an adopted cluster's authentication "
            "mode must be API or API_AND_CONFIG_MAP). Without one, only the identity that created the cluster can "
            "reach it"
        ),
    )

    @model_validator(mode="after")
    def _one(self) -> ClusterSpec:
        if (self.create is None) == (self.adopt is None):
            both = self.create is not None
            raise FieldError(
                "set exactly one of create (a new cluster) or adopt (an existing one)",
                *((("adopt", "adopt"), ("create", "create")) if both else ()),
            )
        return self

    @property
    def kubernetes_version(self) -> str:
        src = self.create or self.adopt
        assert src is not None
        return src.kubernetes_version


class CloudAccount(StrictModel):
    """Cloud account coordinates a real ``pulumi up`` needs."""

    gcp_project: str | None = Field(
        default=None, description="required on GCP (workload pool, node service account)"
    )
    azure_resource_group: str | None = Field(
        default=None,
        description="an existing resource group for the cluster; unset: fleetkit creates `rg-<cluster name>`",
    )
    azure_subscription_id: str | None = None
