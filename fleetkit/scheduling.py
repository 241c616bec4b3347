"""Where GPU pods may run: node labels, taints per cloud spelling, and the matching pod scheduling.

Pure (no ``pulumi`` import): the node pool components render labels and taints with these
functions, and the vLLM component renders the pod side (node selector + tolerations) from the same
place, so the two cannot drift apart.

Taints are written once in the spec, Kubernetes style (``NoSchedule``). The EKS managed node group
and GKE node pool APIs spell the effect ``NO_SCHEDULE``; AKS takes ``key=value:NoSchedule`` strings.
Tolerations are always rendered explicitly: AKS has no ExtendedResourceToleration admission
plugin, so a pod requesting ``nvidia.com/gpu`` is not tolerated there automatically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetkit.pools import aws_ami_type, gpu_class_of
from fleetkit.spec import NodePoolSpec, RegionStackSpec, Taint
from policies.common import LABEL_GPU_CLASS

#: Node label naming the fleetkit pool a node belongs to (the pod node selector uses it).
LABEL_POOL = "fleetkit.dev/pool"
#: GPU label the Kubernetes cluster-autoscaler's AWS provider looks for; EKS does not set it.
LABEL_AWS_ACCELERATOR = "k8s.amazonaws.com/accelerator"
#: Label the NVIDIA device plugin chart's default node affinity selects; set only on pools that
#: need the plugin, so it never runs beside a plugin an image already ships (Bottlerocket).
LABEL_GPU_PRESENT = "nvidia.com/gpu.present"
#: Taint/label AKS puts on Spot nodes by itself.
AKS_SPOT_KEY = "kubernetes.azure.com/scalesetpriority"

#: The extended resource GPU pods request.
GPU_RESOURCE = "nvidia.com/gpu"

_API_EFFECT = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}

#: Label key prefixes a cloud reserves for itself on node pools (setting them is rejected or ignored).
RESERVED_LABEL_PREFIXES: dict[str, tuple[str, ...]] = {
    "aws": ("kubernetes.io/", "k8s.io/", "eks.amazonaws.com/"),
    "gcp": ("kubernetes.io/", "k8s.io/", "cloud.google.com/"),
    "azure": ("kubernetes.io/", "k8s.io/", "kubernetes.azure.com/"),
}


@dataclass(frozen=True)
class PodScheduling:
    """Node selector and tolerations (Kubernetes-style dicts) that put a pod on one GPU pool."""

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------- node side
def pool_needs_device_plugin(spec: RegionStackSpec, pool: NodePoolSpec) -> bool:
    """Whether nodes of this pool come up without an NVIDIA device plugin of their own.

    AL2023 NVIDIA AMIs ship the driver but not the plugin; Bottlerocket NVIDIA AMIs include it. GKE
    deploys its own plugin. AKS images ship the driver, not the plugin; with ``gpu_driver: None``
    the GPU Operator owns driver and plugin.
    """
    if spec.cloud == "aws":
        return aws_ami_type(pool).startswith("AL2023")
    if spec.cloud == "azure":
        return (pool.azure.gpu_driver if pool.azure else "Install") == "Install"
    return False


def device_plugin_pools(spec: RegionStackSpec) -> list[str]:
    """Pools the kit's device plugin DaemonSet must run on, sorted (empty when it is not installed)."""
    mode = spec.addons.nvidia_device_plugin
    if mode == "never":
        return []
    if mode == "always":
        return sorted(spec.node_pools)
    return sorted(n for n, p in spec.node_pools.items() if pool_needs_device_plugin(spec, p))


def needs_device_plugin(spec: RegionStackSpec) -> bool:
    """Whether the stack installs the NVIDIA device plugin Helm release (``addons.nvidia_device_plugin``)."""
    return bool(device_plugin_pools(spec))


def node_labels(spec: RegionStackSpec, pool_name: str) -> dict[str, str]:
    """Labels every node of the pool carries: the spec's own, then the kit's (which win)."""
    pool = spec.node_pools[pool_name]
    labels = dict(pool.labels)
    gclass = gpu_class_of(spec, pool_name)
    labels[LABEL_GPU_CLASS] = gclass
    labels[LABEL_POOL] = pool_name
    if spec.cloud == "aws":
        labels[LABEL_AWS_ACCELERATOR] = f"nvidia-{gclass}"
    if pool_name in device_plugin_pools(spec):
        labels[LABEL_GPU_PRESENT] = "true"
    return dict(sorted(labels.items()))


def eks_taints(taints: list[Taint]) -> list[dict[str, str]]:
    """Taints for ``aws.eks.NodeGroup`` (``NO_SCHEDULE`` spelling; EKS requires a value key)."""
    return [{"key": t.key, "value": t.value, "effect": _API_EFFECT[t.effect]} for t in taints]


def gke_taints(taints: list[Taint]) -> list[dict[str, str]]:
    """Taints for ``gcp.container.NodePool.node_config.taints`` (``NO_SCHEDULE`` spelling)."""
    return [{"key": t.key, "value": t.value, "effect": _API_EFFECT[t.effect]} for t in taints]


def aks_taints(taints: list[Taint]) -> list[str]:
    """Taints for ``AgentPool.node_taints``: ``key=value:NoSchedule`` (``key:NoSchedule`` without value)."""
    return [f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}" for t in taints]


# --------------------------------------------------------------------------- pod side
def toleration(taint: Taint) -> dict[str, Any]:
    """The toleration matching one taint exactly."""
    if taint.value:
        return {"key": taint.key, "operator": "Equal", "value": taint.value, "effect": taint.effect}
    return {"key": taint.key, "operator": "Exists", "effect": taint.effect}


def pool_tolerations(spec: RegionStackSpec, pool_name: str) -> list[dict[str, Any]]:
    """Tolerations a pod needs to land on the pool: its taints plus the ones the cloud adds itself."""
    pool = spec.node_pools[pool_name]
    out = [toleration(t) for t in pool.taints]
    if spec.cloud == "azure" and pool.spot:
        out.append({"key": AKS_SPOT_KEY, "operator": "Equal", "value": "spot", "effect": "NoSchedule"})
    unique: dict[str, dict[str, Any]] = {}
    for t in out:
        unique.setdefault(repr(sorted(t.items())), t)
    return list(unique.values())


def pod_scheduling(spec: RegionStackSpec, pool_name: str) -> PodScheduling:
    """Node selector (the pool label) and tolerations that place a pod on ``pool_name`` only."""
    if pool_name not in spec.node_pools:
        raise KeyError(f"no node pool {pool_name!r} (pools: {', '.join(sorted(spec.node_pools))})")
    return PodScheduling(
        node_selector={LABEL_POOL: pool_name},
        tolerations=pool_tolerations(spec, pool_name),
    )


def device_plugin_scheduling(spec: RegionStackSpec) -> PodScheduling:
    """Scheduling of the device plugin DaemonSet: every pool that needs it, whatever its taints."""
    pools = device_plugin_pools(spec)
    tolerations: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for name in pools:
        for t in pool_tolerations(spec, name):
            key = (t["key"], t["effect"])
            if key not in seen:
                seen.add(key)
                tolerations.append({"key": t["key"], "operator": "Exists", "effect": t["effect"]})
    return PodScheduling(node_selector={LABEL_GPU_PRESENT: "true"}, tolerations=tolerations)
