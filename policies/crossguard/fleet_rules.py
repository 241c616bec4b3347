"""Guardrails on node access, API exposure, autoscaling signals and mesh traffic (issue-14 defects).

Checks only (pure functions over :class:`~policies.crossguard.records.Resource` records):
:mod:`policies.crossguard.rules` wraps each in a ``Rule`` and runs it in the pack and in
``fleetkit preview``. Standard library only. What each check relies on:

* ``imds-hop-limit`` — with IMDSv2 and ``HttpPutResponseHopLimit`` 1 the token response cannot cross
  the extra hop into a pod's network namespace, so pods cannot read the node role's credentials and
  must use their own identity (IRSA). EC2 user guide "Configure the instance metadata options"
  ("in a container environment, we recommend setting the hop limit to 1"), EKS best practices
  "Restrict access to the instance profile assigned to the worker node".
* ``api-endpoint-restricted`` — EKS ``vpcConfig.publicAccessCidrs`` defaults to ``0.0.0.0/0`` when
  the public endpoint is on (EKS API ``VpcConfigRequest``); GKE without
  ``masterAuthorizedNetworksConfig`` and AKS without ``apiServerAccessProfile.authorizedIPRanges``
  accept any source address.
* ``autoscaler-selects-one-deployment`` — a KEDA Prometheus trigger's query must select the series of
  the scale target alone: some ``label="value"`` matcher must be a target label that the PodMonitor
  of that Deployment (and of no other) sets (prometheus-operator ``RelabelConfig``, ``replace`` with
  a static ``replacement``). Otherwise one Deployment scales on another's load.
* ``weighted-subsets-have-endpoints`` — every GPU-class subset (one selecting
  ``fleetkit.dev/gpu-class``) a route splits traffic over (two or more weighted destinations)
  selects a Deployment of this cluster that never scales below one replica. (A version subset, e.g.
  a canary, may live in another cluster; that it keeps a replica somewhere is the fleet-wide spec
  check ``routing.weighted-subset-may-be-empty``.)
  Each subset is its own Envoy cluster: a weighted destination with no endpoints answers 503 for
  its share (istio/istio#27092), and a VirtualService cannot fail over between subsets
  (istio/istio#41787). Minimum replicas: the ScaledObject's ``minReplicaCount`` (KEDA's default is
  0), the HPA's ``minReplicas`` (default 1), else the Deployment's ``replicas`` (default 1).
* ``mirror-target-local`` — a route's mirror destination selects such a Deployment in this cluster:
  otherwise Envoy mirrors to wherever the target's endpoints are, across networks and clouds.
* ``failover-priority-topology-only`` — in a multi-network mesh (an ``istio-system`` namespace or
  gateway labelled ``topology.istio.io/network``) a DestinationRule's ``failoverPriority`` may only
  use topology labels: istiod gives remote networks' east-west gateway endpoints only the cluster
  and network labels (``labelutil.AugmentLabels(nil, gw.Cluster, "", gw.Network)`` in
  ``EndpointsByNetworkFilter``, ``pilot/pkg/xds/endpoints/ep_filters.go``), so a custom label never
  matches a remote endpoint and sorts it to the lowest priority.
* ``node-autoscaler-present`` (advisory) — an EKS managed node group that may grow (``minSize`` 0 or
  below ``maxSize``) in a stack that runs no Cluster Autoscaler Deployment and no Karpenter: managed
  node groups never add nodes for pending pods by themselves (EKS user guide, "Scale cluster compute
  with Karpenter and Cluster Autoscaler"). Advisory because an autoscaler installed outside the
  stack is invisible here; the spec check ``pool.scale-from-zero-needs-autoscaler`` is the gate.
* ``hpa-custom-metric-needs-adapter`` (advisory) — an HPA on a ``Pods``/``Object``/``External`` metric
  in a stack that installs no metrics adapter (a prometheus-adapter release or a
  ``custom.metrics.k8s.io`` APIService): the HPA only reports "unable to get metric" (Kubernetes
  docs, "HorizontalPodAutoscaler Walkthrough", custom metrics). The spec check
  ``autoscaling.hpa-needs-adapter`` is the gate.
* ``no-dead-metrics-rule`` (advisory) — an AuthorizationPolicy allowing ``/metrics`` on pods that
  Prometheus scrapes on Istio's merged-metrics port 15020: istio-agent serves that port outside the
  sidecar's inbound authorization (Istio "Prometheus", metrics merging), so the rule never matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .records import UNKNOWN, Resource, as_list, as_map

OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})
ISTIO_MERGED_METRICS_PORT = 15020
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"]*)"')

Record = Resource
Finding = tuple[Record | None, str]


def _k8s(res: Record, group_version: str, kind: str) -> bool:
    return bool(res.type == f"kubernetes:{group_version}:{kind}")


def _selects(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """``matchLabels`` only (what the kit renders); an empty selector selects nothing here."""
    match = as_map(selector.get("matchLabels")) if "matchLabels" in selector else selector
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def pod_labels(dep: Record) -> Mapping[str, Any]:
    return as_map(dep.get("spec", "template", "metadata", "labels"))


# --------------------------------------------------------------------------- node metadata (IMDS)
def check_imds_hop_limit(res: Record) -> Iterator[str]:
    if res.type != "aws:ec2/launchTemplate:LaunchTemplate":
        return
    opts = as_map(res.get("metadataOptions"))
    hop = opts.get("httpPutResponseHopLimit")
    if hop != UNKNOWN and (hop is None or (isinstance(hop, int) and hop > 1)):
        shown = "unset (1 only when IMDSv2 is required and the AMI says so)" if hop is None else str(hop)
        yield (
            f"launch template {res.name}: IMDS httpPutResponseHopLimit is {shown}; a pod can then fetch the node "
            "role's credentials from IMDS and bypass its IRSA role - set it to 1"
        )
    tokens = opts.get("httpTokens")
    if tokens not in ("required", UNKNOWN):
        yield f"launch template {res.name}: httpTokens is {tokens or 'unset'}; require IMDSv2 (httpTokens: required)"


# --------------------------------------------------------------------------- API endpoint exposure
def check_api_endpoint(res: Record) -> Iterator[str]:
    if res.type == "aws:eks/cluster:Cluster":
        vpc = as_map(res.get("vpcConfig"))
        public = vpc.get("endpointPublicAccess", True)
        cidrs = vpc.get("publicAccessCidrs")
        if public is True and cidrs != UNKNOWN:
            ranges = [c for c in as_list(cidrs) if isinstance(c, str)]
            if not ranges or OPEN_CIDRS & set(ranges):
                yield (
                    f"EKS cluster {res.name}: the public API endpoint accepts {', '.join(ranges) or '0.0.0.0/0 (the default)'}; "
                    "list the admin and peer-cluster egress CIDRs in publicAccessCidrs or turn the public endpoint off"
                )
    elif res.type == "gcp:container/cluster:Cluster":
        private = as_map(res.get("privateClusterConfig")).get("enablePrivateEndpoint") is True
        blocks = [
            b.get("cidrBlock")
            for b in as_list(as_map(res.get("masterAuthorizedNetworksConfig")).get("cidrBlocks"))
            if isinstance(b, Mapping)
        ]
        if not private and (not blocks or OPEN_CIDRS & set(blocks)):
            yield (
                f"GKE cluster {res.name}: no master authorized networks restrict the public API endpoint; "
                "set masterAuthorizedNetworksConfig.cidrBlocks"
            )
    elif res.type == "azure-native:containerservice:ManagedCluster":
        access = as_map(res.get("apiServerAccessProfile"))
        ranges = [c for c in as_list(access.get("authorizedIPRanges")) if isinstance(c, str)]
        if access.get("enablePrivateCluster") is not True and (not ranges or OPEN_CIDRS & set(ranges)):
            yield (
                f"AKS cluster {res.name}: no authorizedIPRanges restrict the public API server; set "
                "apiServerAccessProfile.authorizedIPRanges or make the cluster private"
            )


# --------------------------------------------------------------------------- autoscaling signals
def _static_target_labels(monitor: Record) -> dict[str, str]:
    """Labels a PodMonitor gives every series of its targets: static ``replace`` relabelings + namespace."""
    out = {"namespace": monitor.namespace}
    for endpoint in as_list(monitor.get("spec", "podMetricsEndpoints")):
        for rl in as_list(as_map(endpoint).get("relabelings")):
            rl = as_map(rl)
            if (
                rl.get("action", "replace") == "replace"
                and not rl.get("sourceLabels")
                and rl.get("targetLabel")
            ):
                out[str(rl["targetLabel"])] = str(rl.get("replacement", ""))
    return out


def _labels_by_deployment(resources: Sequence[Record]) -> dict[tuple[str, str], list[dict[str, str]]]:
    """(namespace, Deployment) -> static series labels of every PodMonitor that scrapes its pods."""
    monitors = [r for r in resources if _k8s(r, "monitoring.coreos.com/v1", "PodMonitor")]
    out: dict[tuple[str, str], list[dict[str, str]]] = {}
    for dep in resources:
        if not _k8s(dep, "apps/v1", "Deployment"):
            continue
        labels = pod_labels(dep)
        out[(dep.namespace, dep.k8s_name)] = [
            _static_target_labels(m)
            for m in monitors
            if m.namespace == dep.namespace and _selects(as_map(m.get("spec", "selector")), labels)
        ]
    return out


def check_autoscaler_signals(resources: Sequence[Record]) -> Iterator[Finding]:
    scraped = _labels_by_deployment(resources)
    for so in resources:
        if not _k8s(so, "keda.sh/v1alpha1", "ScaledObject"):
            continue
        target = (so.namespace, str(so.get("spec", "scaleTargetRef", "name", default="")))
        if target not in scraped:
            continue  # not a Deployment of this stack
        for trig in as_list(so.get("spec", "triggers")):
            trig = as_map(trig)
            query = as_map(trig.get("metadata")).get("query")
            if trig.get("type") != "prometheus" or not isinstance(query, str) or query == UNKNOWN:
                continue
            matchers = set(_MATCHER.findall(query))
            owners = {
                pair: {dep for dep, sets in scraped.items() if any(s.get(pair[0]) == pair[1] for s in sets)}
                for pair in matchers
            }
            if any(deps == {target} for deps in owners.values()):
                continue
            shared = sorted({d[1] for deps in owners.values() for d in deps if d != target})
            why = (
                f"its matchers also select Deployment(s) {', '.join(shared)}"
                if shared
                else "no matcher is a label the Deployment's PodMonitor sets"
            )
            yield (
                so,
                (
                    f"ScaledObject {so.ref} trigger {trig.get('name', '?')}: the query does not select the series "
                    f"of Deployment {target[1]} alone ({why}); filter on the PodMonitor's per-Deployment label, "
                    f'e.g. fleetkit_model="{target[1]}"'
                ),
            )


# --------------------------------------------------------------------------- dead AuthorizationPolicy rules
def _scraped_on_merged_port(labels: Mapping[str, Any], resources: Sequence[Record], ns: str) -> bool:
    for m in resources:
        if not _k8s(m, "monitoring.coreos.com/v1", "PodMonitor") or m.namespace != ns:
            continue
        if not _selects(as_map(m.get("spec", "selector")), labels):
            continue
        for endpoint in as_list(m.get("spec", "podMetricsEndpoints")):
            for rl in as_list(as_map(endpoint).get("relabelings")):
                rl = as_map(rl)
                if rl.get("targetLabel") == "__address__" and str(rl.get("replacement", "")).endswith(
                    f":{ISTIO_MERGED_METRICS_PORT}"
                ):
                    return True
    return False


def check_dead_metrics_rule(resources: Sequence[Record]) -> Iterator[Finding]:
    deployments = [r for r in resources if _k8s(r, "apps/v1", "Deployment")]
    for ap in resources:
        if not (
            ap.type.startswith("kubernetes:security.istio.io/") and ap.type.endswith(":AuthorizationPolicy")
        ):
            continue
        if ap.get("spec", "action", default="ALLOW") != "ALLOW":
            continue
        selector = as_map(ap.get("spec", "selector"))
        pods = [
            d
            for d in deployments
            if d.namespace == ap.namespace and (not selector or _selects(selector, pod_labels(d)))
        ]
        merged = [d for d in pods if _scraped_on_merged_port(pod_labels(d), resources, ap.namespace)]
        if not merged:
            continue
        for i, rule in enumerate(as_list(ap.get("spec", "rules"))):
            paths = [
                p
                for to in as_list(as_map(rule).get("to"))
                for p in as_list(as_map(as_map(to).get("operation")).get("paths"))
            ]
            if "/metrics" in paths:
                yield (
                    ap,
                    (
                        f"AuthorizationPolicy {ap.ref} rule {i} allows /metrics, but Prometheus scrapes "
                        f"{', '.join(sorted(d.k8s_name for d in merged))} through Istio's merged metrics on "
                        f":{ISTIO_MERGED_METRICS_PORT} (istio-agent, outside sidecar authorization): the rule never "
                        "matches; remove it"
                    ),
                )


# --------------------------------------------------------------------------- subsets, mirrors, failover
TOPOLOGY_LABELS = frozenset(
    {
        "topology.istio.io/network",
        "topology.istio.io/cluster",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "topology.istio.io/subzone",
    }
)
NETWORK_LABEL = "topology.istio.io/network"
GPU_CLASS_LABEL = "fleetkit.dev/gpu-class"


def _min_replicas(dep: Record, resources: Sequence[Record]) -> int:
    name, ns = dep.k8s_name, dep.namespace
    for r in resources:
        if r.namespace != ns or as_map(r.get("spec", "scaleTargetRef")).get("name") != name:
            continue
        if _k8s(r, "keda.sh/v1alpha1", "ScaledObject"):
            value = r.get("spec", "minReplicaCount", default=0)
            return value if isinstance(value, int) else 0
        if r.type.startswith("kubernetes:autoscaling/") and r.type.endswith(":HorizontalPodAutoscaler"):
            value = r.get("spec", "minReplicas", default=1)
            return value if isinstance(value, int) else 1
    value = dep.get("spec", "replicas", default=1)
    return value if isinstance(value, int) else 1


class _Mesh:
    """Services, subsets and Deployments of one stack, to answer "which pods does host/subset select?"."""

    def __init__(self, resources: Sequence[Record]) -> None:
        self.resources = resources
        self.services = {
            (r.namespace, r.k8s_name): as_map(r.get("spec", "selector"))
            for r in resources
            if _k8s(r, "core/v1", "Service")
        }
        self.subsets: dict[tuple[str, str], Mapping[str, Any]] = {}
        for dr in resources:
            if dr.type.startswith("kubernetes:networking.istio.io/") and dr.type.endswith(":DestinationRule"):
                host = str(dr.get("spec", "host", default=""))
                for sub in as_list(dr.get("spec", "subsets")):
                    sub = as_map(sub)
                    self.subsets[(host, str(sub.get("name")))] = as_map(sub.get("labels"))
        self.deployments = [r for r in resources if _k8s(r, "apps/v1", "Deployment")]

    def always_on(self, host: str, subset: str | None) -> list[str]:
        """Local Deployments selected by host (+ subset) whose minimum replicas is at least one."""
        name, _, rest = host.partition(".")
        ns = rest.split(".", 1)[0] if rest else ""
        selector = self.services.get((ns, name))
        if selector is None:
            return []
        wanted = {
            **selector,
            **(self.subsets.get((host, subset), {"": "(undefined subset)"}) if subset else {}),
        }
        return sorted(
            d.k8s_name
            for d in self.deployments
            if d.namespace == ns
            and all(pod_labels(d).get(k) == v for k, v in wanted.items())
            and _min_replicas(d, self.resources) >= 1
        )


def _virtual_services(resources: Sequence[Record]) -> Iterator[Record]:
    for r in resources:
        if r.type.startswith("kubernetes:networking.istio.io/") and r.type.endswith(":VirtualService"):
            yield r


def _where(dest: Mapping[str, Any]) -> str:
    return f"{dest.get('host')}" + (f" subset {dest['subset']}" if dest.get("subset") else "")


def check_weighted_subsets(resources: Sequence[Record]) -> Iterator[Finding]:
    mesh = _Mesh(resources)
    for vs in _virtual_services(resources):
        for route in as_list(vs.get("spec", "http")):
            route = as_map(route)
            weighted = [
                as_map(as_map(d).get("destination"))
                for d in as_list(route.get("route"))
                if as_map(d).get("weight", 0) != 0
            ]
            if len(weighted) < 2:
                continue
            for dest in weighted:
                host, subset = str(dest.get("host", "")), dest.get("subset")
                if GPU_CLASS_LABEL not in mesh.subsets.get((host, str(subset)), {}):
                    continue
                if not mesh.always_on(host, subset):
                    yield (
                        vs,
                        (
                            f"VirtualService {vs.ref} route {route.get('name', '?')}: weighted destination "
                            f"{_where(dest)} selects no Deployment of this cluster that keeps a replica; its share "
                            "of requests gets 503 whenever it has no endpoints (istio/istio#27092), with no failover "
                            "to the other subsets (istio/istio#41787) - weight only local always-on GPU classes"
                        ),
                    )


def check_mirror_local(resources: Sequence[Record]) -> Iterator[Finding]:
    mesh = _Mesh(resources)
    for vs in _virtual_services(resources):
        for route in as_list(vs.get("spec", "http")):
            route = as_map(route)
            mirror = as_map(route.get("mirror"))
            if mirror and not mesh.always_on(str(mirror.get("host", "")), mirror.get("subset")):
                yield (
                    vs,
                    (
                        f"VirtualService {vs.ref} route {route.get('name', '?')}: mirror target {_where(mirror)} "
                        "has no always-on Deployment in this cluster, so mirrored requests cross to another "
                        "cluster's (or cloud's) endpoints; mirror only where the target runs"
                    ),
                )


def _multi_network(resources: Sequence[Record]) -> bool:
    for r in resources:
        if NETWORK_LABEL in as_map(r.get("metadata", "labels")) or NETWORK_LABEL in as_map(
            r.get("values", "labels")
        ):
            return True
    return False


def check_failover_priority(resources: Sequence[Record]) -> Iterator[Finding]:
    if not _multi_network(resources):
        return
    for dr in resources:
        if not (
            dr.type.startswith("kubernetes:networking.istio.io/") and dr.type.endswith(":DestinationRule")
        ):
            continue
        policies = [as_map(dr.get("spec", "trafficPolicy"))]
        policies += [as_map(as_map(s).get("trafficPolicy")) for s in as_list(dr.get("spec", "subsets"))]
        for tp in policies:
            prio = as_list(
                as_map(as_map(tp.get("loadBalancer")).get("localityLbSetting")).get("failoverPriority")
            )
            custom = [p for p in prio if isinstance(p, str) and p.split("=", 1)[0] not in TOPOLOGY_LABELS]
            if custom:
                yield (
                    dr,
                    (
                        f"DestinationRule {dr.ref}: failoverPriority uses {', '.join(custom)}, which remote "
                        "networks' endpoints never carry (the east-west gateway endpoint has only cluster and "
                        "network labels): healthy remote endpoints sort below every local match - use "
                        "topology labels only, and an aggregate cluster for model fallback"
                    ),
                )


# --------------------------------------------------------------------------- node and metrics autoscalers
def _is_release_of(res: Record, chart: str) -> bool:
    return res.type.startswith("kubernetes:helm.sh/") and chart in str(res.get("chart", default=""))


def check_node_autoscaler(resources: Sequence[Record]) -> Iterator[Finding]:
    if any(
        _k8s(r, "apps/v1", "Deployment") and r.k8s_name in ("cluster-autoscaler", "karpenter")
        for r in resources
    ):
        return
    if any(_is_release_of(r, "cluster-autoscaler") or _is_release_of(r, "karpenter") for r in resources):
        return
    for ng in resources:
        if ng.type != "aws:eks/nodeGroup:NodeGroup":
            continue
        scaling = as_map(ng.get("scalingConfig"))
        lo, hi = scaling.get("minSize"), scaling.get("maxSize")
        if isinstance(lo, int) and isinstance(hi, int) and (lo == 0 or lo < hi):
            yield (
                ng,
                (
                    f"EKS node group {ng.name} may scale ({lo}..{hi} nodes) but the stack runs no Cluster "
                    "Autoscaler or Karpenter: managed node groups never add a node for a pending pod, so "
                    f"{'it stays at zero' if lo == 0 else 'it stays at its desired size'}"
                ),
            )


def check_hpa_adapter(resources: Sequence[Record]) -> Iterator[Finding]:
    adapter = any(_is_release_of(r, "prometheus-adapter") for r in resources) or any(
        r.type.endswith(":APIService") and "custom.metrics.k8s.io" in r.k8s_name for r in resources
    )
    if adapter:
        return
    for hpa in resources:
        if not (
            hpa.type.startswith("kubernetes:autoscaling/") and hpa.type.endswith(":HorizontalPodAutoscaler")
        ):
            continue
        custom = [
            str(as_map(m).get("type"))
            for m in as_list(hpa.get("spec", "metrics"))
            if as_map(m).get("type") in ("Pods", "Object", "External")
        ]
        if custom:
            yield (
                hpa,
                (
                    f"HorizontalPodAutoscaler {hpa.ref} scales on {', '.join(sorted(set(custom)))} metrics but the "
                    "stack installs no metrics adapter (prometheus-adapter): it never scales - use KEDA, or "
                    "install the adapter"
                ),
            )
