"""What the policies need to know about the fleet to render and to check references.

The context is plain data built from the stack spec (``fleetkit.spec``) so that policies stay pure
and can be unit-tested with a hand-written context.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from policies.common import service_host

#: The GPU class of a variant whose pool names an instance type the catalog does not know (that is
#: reported on the pool): references to a GPU class of such a service are not judged, since any
#: problem found would be a follow-on of the pool's mistake.
UNKNOWN_GPU_CLASS = "unknown"


@dataclass(frozen=True)
class Variant:
    """One deployable of a model service: a version on a GPU class (a vLLM Deployment)."""

    model: str  # the model entry key (Deployment identity)
    version: str
    gpu_class: str
    stack: str = ""
    #: replicas the Deployment never goes below (0: it may have no endpoints at all)
    min_replicas: int = 1
    max_replicas: int = 1


@dataclass(frozen=True)
class ServiceInfo:
    """A model service as the mesh sees it: one host, possibly several versions and GPU classes."""

    name: str
    served_name: str
    variants: tuple[Variant, ...] = ()
    #: other names clients may put in the OpenAI ``model`` field (the edge maps them to this service)
    aliases: tuple[str, ...] = ()

    @property
    def versions(self) -> set[str]:
        return {v.version for v in self.variants}

    def gpu_classes(self, version: str | None = None) -> set[str]:
        return {v.gpu_class for v in self.variants if version is None or v.version == version}

    def gpu_classes_known(self, version: str | None = None) -> bool:
        """Whether every variant (of ``version``) runs on a GPU class the catalog knows."""
        return UNKNOWN_GPU_CLASS not in self.gpu_classes(version)

    def always_on(self, stack: str, version: str | None = None) -> list[Variant]:
        """Variants in ``stack`` (every stack when it is "") that never scale below one replica."""
        return [
            v
            for v in self.variants
            if (not stack or v.stack == stack)
            and v.min_replicas >= 1
            and (version is None or v.version == version)
        ]


@dataclass(frozen=True)
class LocalModel:
    """A model deployment in this stack (what autoscaling attaches to)."""

    model: str
    service: str
    served_name: str
    min_replicas: int
    max_replicas: int
    version: str = "v1"


@dataclass(frozen=True)
class RenderContext:
    """Everything a policy needs: where model services live and which exist in the fleet."""

    namespace: str
    services: dict[str, ServiceInfo]
    #: the stack (cluster) being rendered; "" = unknown, every variant counts as local
    stack: str = ""
    #: services with a Deployment in this stack (the rest are reached across the mesh)
    local_services: frozenset[str] = frozenset()
    local_models: tuple[LocalModel, ...] = ()
    cluster_domain: str = "cluster.local"
    trust_domain: str = "cluster.local"
    system_namespace: str = "istio-system"
    #: the ingress gateway workload: its selector label and its service account
    ingress_gateway_name: str = "fleetkit-ingress"
    ingress_service_account: str = "fleetkit-ingress"
    monitoring_namespace: str = "monitoring"
    #: every region of the fleet, for failover checks (empty = unknown, no check)
    fleet_regions: frozenset[str] = frozenset()
    extra: dict[str, str] = field(default_factory=dict)

    def host(self, service: str) -> str:
        return service_host(service, self.namespace, self.cluster_domain)

    @property
    def gateway_ref(self) -> str:
        return f"{self.system_namespace}/{self.ingress_gateway_name}"

    @property
    def ingress_principal(self) -> str:
        return f"{self.trust_domain}/ns/{self.system_namespace}/sa/{self.ingress_service_account}"
