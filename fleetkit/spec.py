"""The typed stack spec: everything under the ``fleetkit:`` namespace of a stack, after inheritance.

A region stack is ``stacks/Pulumi.<stack>.yaml`` (standard Pulumi stack config). Shared fleet
definitions live in ``stacks/fleet.yaml`` and are inherited by every stack; see
:mod:`fleetkit.loader` for the precedence. Every model here forbids unknown keys. The infrastructure
half (node pools, cluster, cloud account, the config namespaces) is :mod:`fleetkit.spec_cluster`,
re-exported here.

Units are carried by types: durations are ``timedelta`` (written ``30s``), sizes in GiB carry
``_gib`` in the field name only where the value is a plain number of GiB.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, IPvAnyNetwork, field_validator, model_validator

from fleetkit.issue import MISSING
from fleetkit.spec_cluster import (
    SECRETS_NAMESPACE,
    SPEC_NAMESPACE,
    AdoptCluster,
    AwsPoolOptions,
    AzurePoolOptions,
    Cloud,
    CloudAccount,
    ClusterSpec,
    CreateCluster,
    EksAccessEntry,
    GcpPoolOptions,
    NodePoolSpec,
    Taint,
    TaintEffect,
    TerraformFoundation,
    secret_config_key,
)
from policies.common import Duration, FieldError, Name, StrictModel, seconds
from policies.policy_set import PolicySet

__all__ = [
    "Addons",
    "AdoptCluster",
    "AwsPoolOptions",
    "AzurePoolOptions",
    "CaSpec",
    "Cloud",
    "CloudAccount",
    "ClusterSpec",
    "CreateCluster",
    "EksAccessEntry",
    "GcpPoolOptions",
    "ISTIO_MIN_KUBERNETES",
    "ISTIO_VERSION",
    "ImageSpec",
    "ImagesSpec",
    "MeshSpec",
    "ModelSpec",
    "NodePoolSpec",
    "PeeringStackSpec",
    "Protection",
    "RegionStackSpec",
    "Replicas",
    "SECRETS_NAMESPACE",
    "SPEC_CLASSES",
    "SPEC_NAMESPACE",
    "Taint",
    "TaintEffect",
    "TerraformFoundation",
    "TrustRootStackSpec",
    "secret_config_key",
]

ISTIO_VERSION = "1.30.3"
#: Istio 1.30's install precheck minimum (MinK8SVersion = 32).
ISTIO_MIN_KUBERNETES = (1, 32)

_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$")


# --------------------------------------------------------------------------- models
class Replicas(StrictModel):
    min: int = Field(default=1, ge=0, description="0 allows scale-to-zero")
    max: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _order(self) -> Replicas:
        if self.min > self.max:
            raise FieldError(
                f"min {self.min} is greater than max {self.max}", ("min", self.min), ("max", self.max)
            )
        return self


class ModelSpec(StrictModel):
    """One deployable model: a vLLM Deployment of one weights revision on one GPU pool.

    Several entries may form one mesh ``service`` (e.g. a canary ``version`` or another GPU class);
    routes address ``service`` + ``version`` + GPU class.
    """

    served_name: str = Field(min_length=1, description="name clients put in the OpenAI 'model' field")
    aliases: list[str] = Field(
        default_factory=list,
        description="other names clients may send as 'model'; the edge rewrites them to served_name "
        "(the service key is always accepted too); no name may belong to two model services",
    )
    weights_uri: str = Field(description="s3://bucket/prefix holding the weights and their manifest")
    revision: str = Field(min_length=1, description="weights revision (commit or tag), part of pod identity")
    weights_digest: str | None = Field(
        default=None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="manifest digest the weights must have (printed by `fleetkit-weights publish`): every node "
        "verifies the bucket's manifest against it before serving; `fleetkit validate --check-buckets` compares",
    )
    service: Name | None = Field(
        default=None, description="mesh service this model serves as (default: its key)"
    )
    version: Name = "v1"
    pool: Name | None = Field(default=None, description="GPU node pool (key of node_pools) it runs on")
    tensor_parallel: int = Field(default=1, ge=1, le=64)
    pipeline_parallel: int = Field(default=1, ge=1, le=16)
    replicas: Replicas = Replicas()
    params_billion: float | None = Field(default=None, gt=0, description="parameter count, for sizing")
    weights_bytes: int | None = Field(
        default=None, gt=0, description="declared weight size (overrides params)"
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32", "fp8", "int8", "int4"] = "bfloat16"
    quantization: Literal["awq", "gptq", "fp8", "bitsandbytes", "compressed-tensors"] | None = None
    kv_cache_gib: float | None = Field(default=None, gt=0, description="minimum KV cache per replica, GiB")
    max_model_len: int | None = Field(default=None, ge=128)
    gpu_memory_utilization: float = Field(default=0.92, gt=0.1, le=0.99)
    enable_prefix_caching: bool = True
    max_num_seqs: int = Field(default=256, ge=1, le=4096)
    extra_args: list[str] = Field(default_factory=list, description="escape hatch: extra `vllm serve` flags")
    tier: Name | None = Field(default=None, description="QoS tier whose PriorityClass the pods run at")
    hot: bool = Field(default=True, description="prefetch the weights on every node of the pool")

    @field_validator("aliases")
    @classmethod
    def _aliases_once(cls, v: list[str]) -> list[str]:
        for i, alias in enumerate(v):
            if alias in v[:i]:
                raise FieldError(f"alias {alias!r} is listed twice", ((i,), alias))
        return v

    @field_validator("weights_uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        if not _S3_URI.match(v):
            raise ValueError("must be an S3 URI such as s3://bucket/prefix")
        return v

    @model_validator(mode="after")
    def _sizing_source(self) -> ModelSpec:
        if self.params_billion is None and self.weights_bytes is None:
            raise FieldError(
                "give params_billion or weights_bytes so the model can be sized against its GPUs",
                ("params_billion", MISSING),
            )
        return self


# --------------------------------------------------------------------------- mesh
class MeshSpec(StrictModel):
    mesh_id: str = Field(min_length=1, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    cluster_name: Name | None = Field(default=None, description="unique per cluster; remote-secret name")
    network: Name | None = Field(
        default=None, description="the cluster's network (east-west gateway per network)"
    )
    trust_domain: str = "cluster.local"
    istio_version: str = ISTIO_VERSION
    trust_root_stack: str = Field(default="mesh-root", description="stack holding the shared root CA")
    east_west_gateway: bool = True
    peers: list[str] | None = Field(
        default=None,
        description="peer stacks whose remote secrets this cluster holds; default every other region stack "
        "(multi-primary endpoint discovery needs all of them, so an explicit list must name every one)",
    )
    dns_capture: bool = Field(
        default=False, description="Istio DNS proxying; off because every cluster gets every model Service"
    )
    egress_cidrs: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="public addresses this cluster's traffic to other networks leaves from (NAT gateway, Cloud NAT, "
        "AKS outbound IPs); the peers' east-west load balancers admit only these",
    )
    east_west_source_ranges: list[IPvAnyNetwork] | None = Field(
        default=None,
        description="CIDRs the east-west gateway's load balancer admits (loadBalancerSourceRanges); default: every "
        "peer's egress_cidrs. '0.0.0.0/0' opens it to the internet deliberately",
    )
    lb_idle_timeout: Duration | None = Field(
        default=None,
        description="idle timeout set on the ingress and east-west load balancers (AWS NLB, Azure LB); default "
        "the longest route timeout, so a silent non-streaming generation keeps its connection; shorter is "
        "rejected (mesh.lb-idle-below-route-timeout)",
    )
    east_west_zones: list[str] | None = Field(
        default=None,
        description="AWS: the availability zones of the public subnets the east-west NLB lands in, one Elastic IP "
        "each (the AWS Load Balancer Controller needs exactly one allocation per NLB subnet). Default: the "
        "region's a and b zones. Independent of the node pools' zones, so editing a pool never adds or releases "
        "a mesh address (rules mesh.east-west-zone-not-in-region, mesh.east-west-zones-aws-only)",
    )


class Addons(StrictModel):
    keda: bool = Field(default=True, description="install KEDA (needed by engine: keda autoscaling)")
    node_autoscaler: Literal["auto", "external", "none"] = Field(
        default="auto",
        description=(
            "what adds nodes for pending pods. auto: on EKS the kit installs Cluster Autoscaler (Helm chart, IRSA "
            "role, ASG auto-discovery by the node groups' tags; managed node groups never scale by themselves); on "
            "GKE and AKS the pools' own autoscaling (rendered on every pool). external: one you run yourself "
            "(e.g. Karpenter). none: no node autoscaler - a pool with min_size 0 is then a spec error "
            "(pool.scale-from-zero-needs-autoscaler)"
        ),
    )
    prometheus_adapter: Literal["none", "external"] = Field(
        default="none",
        description="external: a prometheus-adapter you run serves the custom metric vllm_num_requests_waiting "
        'per pod (rule: seriesQuery vllm:num_requests_waiting{namespace!="",pod!=""}, resources namespace/pod, '
        "name as vllm_num_requests_waiting). engine: hpa needs it (rule autoscaling.hpa-needs-adapter); "
        "KEDA needs no adapter",
    )
    nvidia_device_plugin: Literal["auto", "always", "never"] = "auto"
    monitoring: Literal["kube-prometheus-stack", "external"] = Field(
        default="kube-prometheus-stack",
        description="install Prometheus Operator, Prometheus and Grafana (kube-prometheus-stack chart), or rely on "
        "an existing one ('external': its CRDs must exist and its Prometheus must select all namespaces)",
    )
    monitoring_chart_version: str = Field(
        default="80.6.0", description="kube-prometheus-stack chart version (verify against your mirror)"
    )


# --------------------------------------------------------------------------- images
#: Upstream vLLM release the kit serves with (image tags carry a ``v`` prefix); fleetkit.images pins it.
VLLM_VERSION = "0.33.0"
#: The weight-cache agent's version (``images/weight-cache/pyproject.toml``).
WEIGHTS_AGENT_VERSION = "0.1.0"
#: Registries on the public internet (a node without internet egress cannot pull from them directly).
PUBLIC_REGISTRIES = frozenset(
    {
        "docker.io",
        "registry-1.docker.io",
        "ghcr.io",
        "quay.io",
        "nvcr.io",
        "registry.k8s.io",
        "gcr.io",
        "public.ecr.aws",
        "mcr.microsoft.com",
    }
)


class ImageSpec(StrictModel):
    """One container image: ``<registry>/<repository>:<tag>[@<digest>]``."""

    registry: str = Field(
        min_length=1,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]+)?$",
        description="host[:port]: docker.io, ghcr.io, <account>.dkr.ecr.<region>.amazonaws.com, "
        "<region>-docker.pkg.dev, <name>.azurecr.io",
    )
    repository: str = Field(min_length=1, pattern=r"^[a-z0-9]+([._/-][a-z0-9]+)*$")
    tag: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
    digest: str | None = Field(
        default=None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="pins the image immutably (the runtime pulls by digest)",
    )

    @field_validator("tag")
    @classmethod
    def _pinned(cls, v: str) -> str:
        if v == "latest":
            raise ValueError("pin a version tag, not 'latest'")
        return v

    def reference(self, mirror: str | None = None) -> str:
        """The pull reference; a ``mirror`` (host/path prefix) replaces a public registry."""
        host = mirror if mirror and self.registry in PUBLIC_REGISTRIES else self.registry
        base = f"{host}/{self.repository}:{self.tag}"
        return f"{base}@{self.digest}" if self.digest else base


def _vllm_image() -> ImageSpec:
    return ImageSpec(registry="docker.io", repository="vllm/vllm-openai", tag=f"v{VLLM_VERSION}")


def _agent_image() -> ImageSpec:
    return ImageSpec(registry="ghcr.io", repository="fleetkit/fleetkit-weights", tag=WEIGHTS_AGENT_VERSION)


class ImagesSpec(StrictModel):
    """Where a stack's nodes pull the kit's images from (set fleet-wide in fleet.yaml, per stack to override).

    ``images/build-push.sh REGISTRY/NAMESPACE`` builds and pushes both images and prints this section.
    """

    vllm: ImageSpec = Field(default_factory=_vllm_image, description="the serving container (vLLM)")
    weights_agent: ImageSpec = Field(
        default_factory=_agent_image, description="weights-sync, weights-lease and the prefetch DaemonSet"
    )
    mirror: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*$",
        description="pull-through cache that stands in for public registries (ECR pull through cache, Artifact "
        "Registry remote repository, ACR cache rule), as host/path; images on a private registry are pulled as named",
    )
    internet_egress: bool = Field(
        default=True,
        description="whether the cluster's nodes reach the internet (NAT); false for private clusters, which can "
        "pull only from private registries or the mirror (a public image without a mirror is warned about)",
    )

    def unreachable(self) -> list[tuple[str, str]]:
        """(field, reference) of images a node without internet egress cannot pull."""
        if self.internet_egress or self.mirror:
            return []
        return [
            (name, img.reference())
            for name, img in (("vllm", self.vllm), ("weights_agent", self.weights_agent))
            if img.registry in PUBLIC_REGISTRIES
        ]


# --------------------------------------------------------------------------- protection
class Protection(StrictModel):
    """Pulumi resource options on what is costly or disruptive to lose (``runbooks/protection.md``).

    ``protect``: the engine refuses to delete or replace the resource (``pulumi up`` and
    ``pulumi destroy`` fail naming it until it is unprotected). ``retain_on_delete``: when the program
    stops declaring the resource, Pulumi drops it from the state and leaves it in the cloud (Pulumi
    docs, "Resource options": protect, retainOnDelete).
    """

    cluster: bool = Field(
        default=True,
        description="protect the created EKS/GKE/AKS cluster; set false (and `pulumi up`) before destroying it",
    )
    static_ips: bool = Field(
        default=True,
        description="protect the east-west gateway's static addresses (AWS Elastic IPs, GCP address, Azure public "
        "IP): peers dial them, and a released address is not given back",
    )
    retain_cluster: bool = Field(
        default=False,
        description="retain_on_delete on the created cluster and what only a created cluster has (system pool, "
        "control-plane role, IRSA provider, resource group): for a create -> adopt switch, set it (with "
        "cluster: false) and `pulumi up` before switching, so Pulumi forgets the cluster instead of deleting it",
    )


# --------------------------------------------------------------------------- stacks
class RegionStackSpec(StrictModel):
    role: Literal["region"] = "region"
    cloud: Cloud
    region: str = Field(min_length=2, pattern=r"^[a-z][a-z0-9-]*[a-z0-9]$")
    account: CloudAccount = CloudAccount()
    cluster: ClusterSpec
    node_pools: dict[Name, NodePoolSpec] = Field(min_length=1)
    models: dict[Name, ModelSpec] = Field(default_factory=dict)
    mesh: MeshSpec
    namespace: Name = "llm"
    policies: PolicySet
    addons: Addons = Addons()
    images: ImagesSpec = Field(default_factory=ImagesSpec)
    protection: Protection = Field(default_factory=Protection)

    # per-cloud pool options in the wrong cloud: ``pool.wrong-cloud-options`` in fleetkit.fleet_checks,
    # located to the file that set them

    def service_of(self, model: str) -> str:
        return self.models[model].service or model

    def lb_idle_seconds(self) -> int:
        """The load balancers' idle timeout: ``mesh.lb_idle_timeout``, else the longest route timeout."""
        if self.mesh.lb_idle_timeout is not None:
            return seconds(self.mesh.lb_idle_timeout)
        return seconds(self.policies.resilience.longest_timeout())


class CaSpec(StrictModel):
    organization: str = "fleetkit"
    root_validity_hours: int = Field(default=87600, ge=24)
    intermediate_validity_hours: int = Field(default=17520, ge=24)
    key_algorithm: Literal["RSA", "ECDSA"] = "ECDSA"


class TrustRootStackSpec(StrictModel):
    """The small stack that holds the mesh's shared root CA (region stacks reference it)."""

    role: Literal["trust-root"]
    mesh: MeshSpec
    ca: CaSpec = CaSpec()


class PeeringStackSpec(StrictModel):
    """The mesh's peering stack: every cluster's remote secrets, written into every cluster.

    It reads every region stack with a ``pulumi.StackReference`` (their API server, CA and reader
    token exports) and applies, in each cluster, one remote secret per peer. Region stacks then
    reference only the trust root, so each comes up with one ``pulumi up`` in any order; adding a
    region is its own ``pulumi up`` plus one of this stack (``docs/mesh.md``).
    """

    role: Literal["peering"]
    mesh: MeshSpec


StackSpec = Annotated[RegionStackSpec | TrustRootStackSpec | PeeringStackSpec, Field(discriminator="role")]
#: Stack roles whose spec inherits only these sections of the fleet file.
INHERITED_SECTIONS: dict[str, tuple[str, ...]] = {"trust-root": ("mesh", "ca"), "peering": ("mesh",)}
#: The spec class of each stack role (``fleetkit:role``; region when unset).
SPEC_CLASSES: dict[str, type[StrictModel]] = {
    "region": RegionStackSpec,
    "trust-root": TrustRootStackSpec,
    "peering": PeeringStackSpec,
}
