"""Failing and passing cases of the guardrails in ``policies/crossguard/fleet_rules.py`` (issue 14).

Hand-built records in the shape the kit renders; ``test_crossguard_rules.CASES`` includes them, so
every rule keeps at least one case that fails and one that passes.
"""

from __future__ import annotations

from typing import Any

from policies.crossguard.rules import UNKNOWN, Resource

NS = "llm"
HOST = "m.llm.svc.cluster.local"


def _k8s(
    type_: str, kind: str, name: str, namespace: str = NS, labels: dict[str, str] | None = None, **body: Any
) -> Resource:
    md: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        md["labels"] = labels
    return Resource(
        type_,
        name,
        {"apiVersion": type_.split(":")[1].removeprefix("core/"), "kind": kind, "metadata": md, **body},
    )


def launch_template(hop: Any = 1, tokens: str = "required") -> Resource:
    return Resource(
        "aws:ec2/launchTemplate:LaunchTemplate",
        "use1-l4",
        {
            "metadataOptions": {
                "httpEndpoint": "enabled",
                "httpPutResponseHopLimit": hop,
                "httpTokens": tokens,
            }
        },
    )


def eks(public: bool = True, cidrs: Any = None) -> Resource:
    vpc: dict[str, Any] = {"endpointPublicAccess": public, "endpointPrivateAccess": True}
    if cidrs is not None:
        vpc["publicAccessCidrs"] = cidrs
    return Resource("aws:eks/cluster:Cluster", "use1", {"vpcConfig": vpc})


def deployment(name: str, labels: dict[str, str], replicas: int | None = None) -> Resource:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"fleetkit.dev/model": name}},
        "template": {
            "metadata": {"labels": {"fleetkit.dev/model": name, **labels}},
            "spec": {"containers": [{"name": "vllm"}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return _k8s("kubernetes:apps/v1:Deployment", "Deployment", name, spec=spec)


def pod_monitor(name: str) -> Resource:
    relabel = [
        {
            "action": "replace",
            "sourceLabels": ["__meta_kubernetes_pod_ip"],
            "regex": "(.+)",
            "targetLabel": "__address__",
            "replacement": "$1:15020",
        },
        {"action": "replace", "targetLabel": "fleetkit_model", "replacement": name},
    ]
    return _k8s(
        "kubernetes:monitoring.coreos.com/v1:PodMonitor",
        "PodMonitor",
        name,
        spec={
            "selector": {"matchLabels": {"fleetkit.dev/model": name}},
            "podMetricsEndpoints": [{"port": "http", "path": "/stats/prometheus", "relabelings": relabel}],
        },
    )


def scaled_object(target: str, query: str, min_replicas: int = 1) -> Resource:
    return _k8s(
        "kubernetes:keda.sh/v1alpha1:ScaledObject",
        "ScaledObject",
        target,
        spec={
            "scaleTargetRef": {"name": target},
            "minReplicaCount": min_replicas,
            "triggers": [
                {"type": "prometheus", "name": "queue", "metadata": {"query": query, "threshold": "5"}}
            ],
        },
    )


def two_versions() -> list[Resource]:
    return [
        deployment("m", {"app": "m", "version": "v1"}),
        deployment("m-v2", {"app": "m", "version": "v2"}),
        pod_monitor("m"),
        pod_monitor("m-v2"),
    ]


def service() -> Resource:
    return _k8s("kubernetes:core/v1:Service", "Service", "m", spec={"selector": {"app": "m"}})


def destination_rule(subsets: dict[str, dict[str, str]], priority: list[str] | None = None) -> Resource:
    spec: dict[str, Any] = {"host": HOST, "subsets": [{"name": n, "labels": lb} for n, lb in subsets.items()]}
    if priority is not None:
        spec["trafficPolicy"] = {
            "loadBalancer": {"localityLbSetting": {"enabled": True, "failoverPriority": priority}}
        }
    return _k8s("kubernetes:networking.istio.io/v1:DestinationRule", "DestinationRule", "m", spec=spec)


def virtual_service(route: dict[str, Any]) -> Resource:
    return _k8s(
        "kubernetes:networking.istio.io/v1:VirtualService",
        "VirtualService",
        "routes",
        spec={"hosts": ["api"], "http": [{"name": "r", **route}]},
    )


def dest(subset: str, weight: int) -> dict[str, Any]:
    return {"destination": {"host": HOST, "port": {"number": 8000}, "subset": subset}, "weight": weight}


GPU = {"l4": {"fleetkit.dev/gpu-class": "l4"}, "a10g": {"fleetkit.dev/gpu-class": "a10g"}}


def gpu_split(a10g_min: int) -> list[Resource]:
    return [
        service(),
        destination_rule(GPU),
        deployment("m", {"app": "m", "fleetkit.dev/gpu-class": "l4"}),
        deployment("m-a10g", {"app": "m", "fleetkit.dev/gpu-class": "a10g"}),
        scaled_object("m-a10g", 'sum(x{fleetkit_model="m-a10g"})', min_replicas=a10g_min),
        virtual_service({"route": [dest("l4", 2), dest("a10g", 1)]}),
    ]


def mirror(target_min: int) -> list[Resource]:
    return [
        service(),
        destination_rule({"v2": {"version": "v2"}}),
        deployment("m-v2", {"app": "m", "version": "v2"}),
        scaled_object("m-v2", 'sum(x{fleetkit_model="m-v2"})', min_replicas=target_min),
        virtual_service(
            {
                "route": [{"destination": {"host": HOST}}],
                "mirror": {"host": HOST, "subset": "v2"},
                "mirrorPercentage": {"value": 5},
            }
        ),
    ]


NETWORK_NS = _k8s(
    "kubernetes:core/v1:Namespace",
    "Namespace",
    "istio-system",
    "",
    labels={"topology.istio.io/network": "net-a"},
)
TOPOLOGY = ["topology.istio.io/network", "topology.istio.io/cluster"]


def metrics_policy(paths: list[str]) -> Resource:
    return _k8s(
        "kubernetes:security.istio.io/v1:AuthorizationPolicy",
        "AuthorizationPolicy",
        "allow",
        spec={
            "action": "ALLOW",
            "rules": [
                {
                    "from": [{"source": {"namespaces": ["monitoring"]}}],
                    "to": [{"operation": {"methods": ["GET"], "paths": paths}}],
                }
            ],
        },
    )


def node_group(lo: int, hi: int) -> Resource:
    return Resource(
        "aws:eks/nodeGroup:NodeGroup", "use1-l40s", {"scalingConfig": {"minSize": lo, "maxSize": hi}}
    )


CA_DEPLOYMENT = _k8s(
    "kubernetes:apps/v1:Deployment",
    "Deployment",
    "cluster-autoscaler",
    "kube-system",
    spec={"template": {"metadata": {"labels": {"app": "ca"}}, "spec": {"containers": []}}},
)


def hpa(metric_type: str) -> Resource:
    return _k8s(
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        "HorizontalPodAutoscaler",
        "m",
        spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "m"},
            "minReplicas": 1,
            "maxReplicas": 4,
            "metrics": [{"type": metric_type}],
        },
    )


FLEET_CASES: list[tuple[str, str, list[Resource], bool]] = [
    ("node-autoscaler-present", "scale-from-zero-alone", [node_group(0, 6)], True),
    ("node-autoscaler-present", "with-cluster-autoscaler", [node_group(0, 6), CA_DEPLOYMENT], False),
    ("node-autoscaler-present", "fixed-size", [node_group(2, 2)], False),
    ("hpa-custom-metric-needs-adapter", "pods-metric-no-adapter", [hpa("Pods")], True),
    ("hpa-custom-metric-needs-adapter", "cpu-only", [hpa("Resource")], False),
    ("imds-hop-limit", "hop-limit-2", [launch_template(hop=2)], True),
    ("imds-hop-limit", "imdsv1-allowed", [launch_template(tokens="optional")], True),
    ("imds-hop-limit", "hop-limit-1-v2-only", [launch_template()], False),
    ("imds-hop-limit", "hop-limit-unknown", [launch_template(hop=UNKNOWN)], False),
    ("api-endpoint-restricted", "eks-open-by-default", [eks()], True),
    ("api-endpoint-restricted", "eks-open-explicitly", [eks(cidrs=["0.0.0.0/0"])], True),
    ("api-endpoint-restricted", "eks-listed-ranges", [eks(cidrs=["203.0.113.0/24"])], False),
    ("api-endpoint-restricted", "eks-private-only", [eks(public=False)], False),
    (
        "api-endpoint-restricted",
        "gke-no-authorized-networks",
        [Resource("gcp:container/cluster:Cluster", "c", {})],
        True,
    ),
    (
        "api-endpoint-restricted",
        "aks-authorized-ranges",
        [
            Resource(
                "azure-native:containerservice:ManagedCluster",
                "c",
                {"apiServerAccessProfile": {"authorizedIPRanges": ["203.0.113.0/24"]}},
            )
        ],
        False,
    ),
    (
        "autoscaler-selects-one-deployment",
        "served-name-shared-by-versions",
        [
            *two_versions(),
            scaled_object("m", 'sum(vllm:num_requests_waiting{model_name="org/m",namespace="llm"})'),
        ],
        True,
    ),
    (
        "autoscaler-selects-one-deployment",
        "deployment-label",
        [
            *two_versions(),
            scaled_object("m", 'sum(vllm:num_requests_waiting{fleetkit_model="m",namespace="llm"})'),
        ],
        False,
    ),
    ("weighted-subsets-have-endpoints", "a10g-may-be-at-zero", gpu_split(a10g_min=0), True),
    ("weighted-subsets-have-endpoints", "both-classes-always-on", gpu_split(a10g_min=1), False),
    ("mirror-target-local", "target-scales-to-zero", mirror(target_min=0), True),
    ("mirror-target-local", "target-always-on", mirror(target_min=1), False),
    (
        "failover-priority-topology-only",
        "custom-label-first",
        [NETWORK_NS, destination_rule({}, ["fallback.fleetkit.dev/m-p1=1", *TOPOLOGY])],
        True,
    ),
    (
        "failover-priority-topology-only",
        "topology-labels",
        [NETWORK_NS, destination_rule({}, TOPOLOGY)],
        False,
    ),
    (
        "failover-priority-topology-only",
        "single-network",
        [destination_rule({}, ["custom=1", *TOPOLOGY])],
        False,
    ),
    (
        "no-dead-metrics-rule",
        "metrics-path-on-merged-metrics-pods",
        [*two_versions(), metrics_policy(["/metrics"])],
        True,
    ),
    ("no-dead-metrics-rule", "api-paths-only", [*two_versions(), metrics_policy(["/v1/*"])], False),
]
