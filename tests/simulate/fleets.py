"""Small hand-written fleets for the scenario corpus: plain manifests, as a renderer would emit them."""

from __future__ import annotations

from typing import Any

from fleetkit.simulate.fleet import ClusterInfo, SimulatedFleet, build_fleet

NS = "llm"
GATEWAY = "istio-system/ingress"
HOST = "api.example.com"
OUTLIER = {"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "30s", "maxEjectionPercent": 100}
TOPOLOGY = [
    "topology.istio.io/network",
    "topology.istio.io/cluster",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
]


def fqdn(service: str) -> str:
    return f"{service}.{NS}.svc.cluster.local"


def deployment(
    name: str,
    app: str,
    *,
    served: list[str],
    version: str = "v1",
    gpu: str = "l4",
    replicas: int = 1,
    pool: str = "gpu",
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    labels = {"app": app, "version": version, "fleetkit.dev/gpu-class": gpu, **(extra_labels or {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"fleetkit.dev/pool": pool},
                    "containers": [
                        {
                            "name": "vllm",
                            "command": ["vllm", "serve"],
                            "args": [f"/models/{served[0]}", "--served-model-name", *served],
                        }
                    ],
                },
            },
        },
    }


def scaled(name: str, lo: int, hi: int) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"scaleTargetRef": {"name": name}, "minReplicaCount": lo, "maxReplicaCount": hi},
    }


def service(name: str, selector: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": selector or {"app": name}, "ports": [{"port": 8000}]},
    }


def rule(
    service_name: str,
    subsets: dict[str, dict[str, str]] | None = None,
    *,
    outlier: dict | None = OUTLIER,
    failover: list[str] | None = None,
    subset_policy: dict[str, dict] | None = None,
    pool: dict | None = None,
) -> dict[str, Any]:
    policy: dict[str, Any] = {"loadBalancer": {"simple": "LEAST_REQUEST"}}
    if failover is not None:
        policy["loadBalancer"]["localityLbSetting"] = {"enabled": True, "failoverPriority": failover}
    if outlier is not None:
        policy["outlierDetection"] = outlier
    if pool is not None:
        policy["connectionPool"] = pool
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": service_name, "namespace": NS},
        "spec": {
            "host": fqdn(service_name),
            "trafficPolicy": policy,
            "subsets": [
                {
                    "name": n,
                    "labels": lab,
                    **({"trafficPolicy": (subset_policy or {})[n]} if n in (subset_policy or {}) else {}),
                }
                for n, lab in (subsets or {}).items()
            ],
        },
    }


def vs(*routes: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "routes", "namespace": NS},
        "spec": {"hosts": [HOST], "gateways": [GATEWAY], "http": list(routes)},
    }


def route(
    name: str, dests: list[tuple[str, str | None, int]], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "route": [
            {
                "destination": {
                    "host": fqdn(s),
                    "port": {"number": 8000},
                    **({"subset": sub} if sub else {}),
                },
                "weight": w,
            }
            for s, sub, w in dests
        ],
    }
    if headers:
        out["match"] = [{"headers": {k: {"exact": v} for k, v in headers.items()}}]
    return out


def cluster(name: str, network: str, region: str, zones: tuple[str, ...] = ()) -> ClusterInfo:
    return ClusterInfo(name, network, region, name, {"gpu": zones} if zones else {})


def fleet(stacks: dict[ClusterInfo, list[dict[str, Any]]]) -> SimulatedFleet:
    return build_fleet({c.name: objs for c, objs in stacks.items()}, {c.name: c for c in stacks})


def aggregate_cluster_patch(agg: str, members: list[str], context: str | None = None) -> dict[str, Any]:
    """An EnvoyFilter CLUSTER patch adding an Envoy aggregate cluster (the kit's fallback design)."""
    patch: dict[str, Any] = {
        "applyTo": "CLUSTER",
        "patch": {
            "operation": "ADD",
            "value": {
                "name": agg,
                "cluster_type": {"name": "envoy.clusters.aggregate", "typed_config": {"clusters": members}},
            },
        },
    }
    if context is not None:
        patch["match"] = {"context": context}
    return patch
