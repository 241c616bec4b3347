"""The rendered fleet as the simulator sees it: plain data read from Kubernetes/Istio manifests.

:func:`build_fleet` reads, per cluster, the objects a preview renders — ``VirtualService``,
``DestinationRule``, ``Service``, ``Deployment`` (pod-template labels, ``--served-model-name``,
``nodeSelector``), ``ScaledObject``/``HorizontalPodAutoscaler`` (min/max replicas),
``EnvoyFilter`` and ``RequestAuthentication`` (the edge, see :mod:`.edge`) — plus the mesh
topology (:class:`ClusterInfo`: cluster id, network, region, the zones of each node pool), which
the manifests do not carry. Nothing here knows the kit's policy classes: whatever the renderers
emit is read as Istio and Kubernetes would read it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from fleetkit.simulate.edge import Edge, read_edge

#: Label keys Istio and Kubernetes use for topology (istio.io/api ``label`` package, well-known labels).
LABEL_NETWORK = "topology.istio.io/network"
LABEL_CLUSTER = "topology.istio.io/cluster"
LABEL_REGION = "topology.kubernetes.io/region"
LABEL_ZONE = "topology.kubernetes.io/zone"
#: The kit's pod labels read for display (any Deployment without them still simulates).
LABEL_GPU_CLASS = "fleetkit.dev/gpu-class"
LABEL_VERSION = "version"
LABEL_APP = "app"
#: Istio's ``maxEjectionPercent`` default (networking/v1 DestinationRule reference: 10%).
DEFAULT_MAX_EJECTION_PERCENT = 10


@dataclass(frozen=True)
class ClusterInfo:
    """One mesh cluster: its id (``topology.istio.io/cluster``), network and region."""

    name: str
    network: str
    region: str
    stack: str = ""
    #: node pool (nodeSelector value) -> zones its nodes run in; empty: unknown (zone scenarios skip it)
    pool_zones: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.name, self.network, self.region, self.stack))


@dataclass(frozen=True)
class Workload:
    """One Deployment in one cluster."""

    cluster: str
    namespace: str
    name: str
    labels: Mapping[str, str]
    #: names vLLM accepts in the request body's ``model`` (``--served-model-name``, else the model path)
    served_names: tuple[str, ...]
    min_replicas: int
    max_replicas: int
    #: nodeSelector values (the pool names)
    pools: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    #: engine facts for the capacity view (``--tensor-parallel-size``, ``--dtype``; size from the spec)
    tensor_parallel: int = 1
    dtype: str = ""
    params_billion: float | None = None

    @cached_property
    def key(self) -> str:
        return f"{self.cluster}/{self.name}"

    @property
    def model(self) -> str:
        return self.labels.get(LABEL_APP, self.name)

    @property
    def version(self) -> str:
        return self.labels.get(LABEL_VERSION, "")

    @property
    def gpu_class(self) -> str:
        return self.labels.get(LABEL_GPU_CLASS, "")


@dataclass(frozen=True)
class Subset:
    name: str
    labels: Mapping[str, str]
    policy: Mapping[str, Any]


@dataclass(frozen=True)
class DestinationRule:
    host: str
    policy: Mapping[str, Any]
    subsets: Mapping[str, Subset]

    def effective(self, subset: str | None) -> dict[str, Any]:
        """The traffic policy of one subset: each top-level field of the subset's policy replaces the
        rule's (Istio ``MergeTrafficPolicy``: ``connectionPool``, ``loadBalancer``, ``outlierDetection``
        … are taken whole from the subset when it sets them)."""
        out = dict(self.policy)
        if subset is not None and subset in self.subsets:
            out.update(self.subsets[subset].policy)
        return out


@dataclass(frozen=True)
class Destination:
    host: str
    subset: str | None
    weight: int


@dataclass(frozen=True)
class Route:
    name: str
    matches: tuple[Mapping[str, Any], ...]
    destinations: tuple[Destination, ...]
    direct_response: tuple[int, str] | None = None


@dataclass
class ClusterConfig:
    """What the ingress gateway of one cluster is configured with (each primary's istiod reads its
    own cluster's Istio config; endpoints come from every cluster)."""

    routes: list[Route] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    rules: dict[str, DestinationRule] = field(default_factory=dict)
    #: fully qualified service host -> pod selector
    services: dict[str, Mapping[str, str]] = field(default_factory=dict)
    edge: Edge = field(default_factory=Edge)


@dataclass
class Fleet:
    clusters: dict[str, ClusterInfo]
    config: dict[str, ClusterConfig]
    workloads: list[Workload]
    #: what could not be read, said once (e.g. an unsupported match field)
    notes: list[str] = field(default_factory=list)

    def workloads_in(self, cluster: str) -> list[Workload]:
        return [w for w in self.workloads if w.cluster == cluster]


# --------------------------------------------------------------------------- reading manifests
def fqdn(host: str, namespace: str) -> str:
    """A VirtualService/DestinationRule host as Istio resolves short names (relative to the
    namespace of the rule)."""
    if "." not in host:
        return f"{host}.{namespace}.svc.cluster.local"
    parts = host.split(".")
    if len(parts) == 2:
        return f"{host}.svc.cluster.local"
    return host


def _argv(container: Mapping[str, Any]) -> list[str]:
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    return shlex.split(argv[0]) if len(argv) == 1 and " " in argv[0] else argv


def _flag(argv: list[str], name: str) -> str | None:
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def _served_names(container: Mapping[str, Any]) -> tuple[str, ...]:
    """``vllm serve MODEL --served-model-name A B …``: the names vLLM accepts (vLLM
    ``cli_args``: ``--served-model-name`` takes one or more names; without it the model path)."""
    argv = _argv(container)
    names: list[str] = []
    model: str | None = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--served-model-name":
            i += 1
            while i < len(argv) and not argv[i].startswith("--"):
                names.append(argv[i])
                i += 1
            continue
        if a.startswith("--served-model-name="):
            names += [n for n in a.split("=", 1)[1].split(",") if n]
        elif a == "--model" and i + 1 < len(argv):
            model = argv[i + 1]
        elif (
            model is None
            and not a.startswith("-")
            and a not in ("vllm", "serve")
            and i > 0
            and argv[i - 1] in ("serve", "vllm")
        ):
            model = a
        i += 1
    return tuple(names) if names else ((model,) if model else ())


def _deployment(
    cluster: str,
    obj: Mapping[str, Any],
    scale: Mapping[str, tuple[int, int]],
    info: ClusterInfo,
    sizes: Mapping[str, float],
) -> Workload | None:
    md = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    tpl = spec.get("template") or {}
    labels = dict((tpl.get("metadata") or {}).get("labels") or {})
    pod = tpl.get("spec") or {}
    containers = pod.get("containers") or []
    served: tuple[str, ...] = ()
    argv: list[str] = []
    for c in containers:
        served = _served_names(c)
        if served:
            argv = _argv(c)
            break
    if not served:
        return None  # not a model server
    name = str(md.get("name"))
    replicas = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    lo, hi = scale.get(name, (replicas, replicas))
    pools = tuple(sorted(str(v) for v in (pod.get("nodeSelector") or {}).values()))
    zones: list[str] = []
    for p in pools:
        zones += [z for z in info.pool_zones.get(p, ()) if z not in zones]
    tp = _flag(argv, "--tensor-parallel-size")
    return Workload(
        cluster,
        str(md.get("namespace") or "default"),
        name,
        labels,
        served,
        lo,
        hi,
        pools,
        tuple(zones),
        int(tp) if tp and tp.isdigit() else 1,
        _flag(argv, "--dtype") or "",
        sizes.get(name),
    )


def _scale_targets(objs: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """Deployment name -> (min, max) replicas from KEDA ScaledObjects and HPAs."""
    out: dict[str, tuple[int, int]] = {}
    for o in objs:
        spec = o.get("spec") or {}
        target = (spec.get("scaleTargetRef") or {}).get("name")
        if not target:
            continue
        if o.get("kind") == "ScaledObject":
            lo = int(spec.get("minReplicaCount", 0))
            hi = int(spec.get("maxReplicaCount", 100))
        else:
            lo = int(spec.get("minReplicas", 1))
            hi = int(spec.get("maxReplicas", lo))
        out[str(target)] = (lo, hi)
    return out


def _route(http: Mapping[str, Any], namespace: str, index: int) -> Route:
    dests = tuple(
        Destination(
            fqdn(str((d.get("destination") or {}).get("host")), namespace),
            (d.get("destination") or {}).get("subset"),
            int(d.get("weight", 100 if len(http.get("route") or []) == 1 else 0)),
        )
        for d in http.get("route") or []
    )
    direct = None
    if http.get("directResponse"):
        dr = http["directResponse"]
        direct = (int(dr.get("status", 200)), str((dr.get("body") or {}).get("string", "")))
    return Route(str(http.get("name") or f"http[{index}]"), tuple(http.get("match") or ({},)), dests, direct)


def _cluster_config(objs: list[Mapping[str, Any]]) -> tuple[ClusterConfig, str | None]:
    cfg = ClusterConfig()
    network = None
    for o in sorted(
        (o for o in objs if o.get("kind") == "VirtualService"),
        key=lambda o: (
            (o.get("metadata") or {}).get("namespace", ""),
            (o.get("metadata") or {}).get("name", ""),
        ),
    ):
        spec = o.get("spec") or {}
        if not [g for g in spec.get("gateways") or [] if g != "mesh"]:
            continue  # only routes bound to a gateway apply at the ingress
        ns = str((o.get("metadata") or {}).get("namespace") or "default")
        cfg.hosts += [h for h in spec.get("hosts") or [] if h not in cfg.hosts]
        cfg.routes += [_route(h, ns, i) for i, h in enumerate(spec.get("http") or [])]
    for o in objs:
        kind = o.get("kind")
        md = o.get("metadata") or {}
        ns = str(md.get("namespace") or "default")
        spec = o.get("spec") or {}
        if kind == "DestinationRule":
            host = fqdn(str(spec.get("host")), ns)
            subsets = {
                str(s.get("name")): Subset(
                    str(s.get("name")), dict(s.get("labels") or {}), dict(s.get("trafficPolicy") or {})
                )
                for s in spec.get("subsets") or []
            }
            cfg.rules[host] = DestinationRule(host, dict(spec.get("trafficPolicy") or {}), subsets)
        elif kind == "Service" and spec.get("selector"):
            cfg.services[f"{md.get('name')}.{ns}.svc.cluster.local"] = dict(spec["selector"])
        elif kind == "Namespace" and (md.get("labels") or {}).get(LABEL_NETWORK):
            network = str(md["labels"][LABEL_NETWORK])
    cfg.edge = read_edge(objs)
    return cfg, network


def build_fleet(
    manifests: Mapping[str, Sequence[Mapping[str, Any]]],
    topology: Mapping[str, ClusterInfo],
    sizes: Mapping[str, Mapping[str, float]] | None = None,
) -> Fleet:
    """The fleet from per-stack manifests and each stack's :class:`ClusterInfo` (stacks without one,
    e.g. the trust root, are skipped). ``sizes``: stack -> Deployment -> parameters in billions
    (for the capacity view; without it the size is read from a served name such as ``…-70B-…``)."""
    clusters: dict[str, ClusterInfo] = {}
    config: dict[str, ClusterConfig] = {}
    workloads: list[Workload] = []
    notes: list[str] = []
    for stack in sorted(manifests):
        info = topology.get(stack)
        if info is None:
            continue
        objs = list(manifests[stack])
        cfg, ns_network = _cluster_config(objs)
        if ns_network and ns_network != info.network:
            notes.append(
                f"{stack}: istio-system is labelled network {ns_network!r}, the topology says {info.network!r}"
            )
        clusters[info.name] = info
        config[info.name] = cfg
        scale = _scale_targets(
            o for o in objs if o.get("kind") in ("ScaledObject", "HorizontalPodAutoscaler")
        )
        rewrites = _inbound_rewrites(objs)
        for o in objs:
            if o.get("kind") == "Deployment":
                w = _deployment(info.name, o, scale, info, (sizes or {}).get(stack, {}))
                if w is not None:
                    workloads.append(_with_rewrites(w, rewrites))
    workloads.sort(key=lambda w: (w.cluster, w.namespace, w.name))
    return Fleet(clusters, config, workloads, notes)


#: the inbound Lua filter the kit puts on a fallback model's pods (``policies.edge.render_fallback_rewrites``)
_REWRITE_FILTER = "fleetkit.fallback.rewrite"
_REWRITE_TABLE = re.compile(r"local REWRITE = \{(.*?)\}\n", re.S)
_LUA_KEY = re.compile(r'\["((?:[^"\\]|\\.)*)"\] =')


def _inbound_rewrites(objs: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, str], tuple[str, ...]]]:
    """(workload selector, body models rewritten to the pod's own name) of each inbound rewrite filter.

    A sidecar-inbound Lua filter that replaces the body's ``model`` before vLLM parses it makes the pod
    answer those names too (Envoy runs HTTP filters in order before the router forwards the body; Lua
    ``body:setBytes`` replaces the buffered body — Envoy Lua filter docs)."""
    out = []
    for o in objs:
        if o.get("kind") != "EnvoyFilter":
            continue
        spec = o.get("spec") or {}
        selector = (spec.get("workloadSelector") or {}).get("labels") or {}
        for patch in spec.get("configPatches") or []:
            if (patch.get("match") or {}).get("context") != "SIDECAR_INBOUND":
                continue
            value = (patch.get("patch") or {}).get("value") or {}
            if value.get("name") != _REWRITE_FILTER:
                continue
            code = str(
                (((value.get("typed_config") or {}).get("default_source_code") or {}).get("inline_string"))
                or ""
            )
            table = _REWRITE_TABLE.search(code)
            if table:
                names = tuple(_lua_unescape(k) for k in _LUA_KEY.findall(table.group(1)))
                out.append((selector, names))
    return out


def _lua_unescape(text: str) -> str:
    return re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1))), text)


def _with_rewrites(w: Workload, rewrites: list[tuple[Mapping[str, str], tuple[str, ...]]]) -> Workload:
    """The workload with the names its inbound rewrite filters accept appended after its own names
    (so an answer to one of them is reported as another model answering — the fallback)."""
    extra = [
        n
        for sel, names in rewrites
        if sel and selects(sel, w.labels)
        for n in names
        if n not in w.served_names
    ]
    return replace(w, served_names=(*w.served_names, *dict.fromkeys(extra))) if extra else w


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())
