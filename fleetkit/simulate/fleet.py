"""The rendered fleet as the simulator sees it, and the reader of a fleet's manifests.

The model (:class:`SimulatedFleet`): per mesh cluster its :class:`ClusterInfo` (cluster id, network,
region, the zones of each node pool — the mesh topology, which the manifests do not carry) and
its :class:`ClusterConfig` (what its ingress gateway is programmed with: ``VirtualService``,
``DestinationRule``, ``Service`` selectors, the edge filters of :mod:`.edge`), plus one
:class:`Workload` per model Deployment. A workload holds two kinds of facts:

* **routing facts**, read from the rendered objects on every input path because they are what
  Istio and Envoy act on: the pod labels that Services and subsets select (R5), the names an
  inbound rewrite filter makes a pod answer to (R11);
* **deployed model facts**: service, version, GPU class, pool and its zones, replica bounds,
  served names (``--served-model-name``), tensor parallel, weight bytes, ``--max-num-seqs``.

Two builders fill the second kind, and must agree on the fleets both can read
(``tests/simulate/test_sources_agree.py``):

* :func:`fleetkit.simulate.source.fleet_from_stacks` (the stack path: ``fleetkit simulate``,
  ``fleetkit review``, the golden files) takes them from the resolve step
  (:class:`fleetkit.resolve.ResolvedStack`), the replica bounds from the model's autoscaler policy and
  the engine arguments from the resolved model (:attr:`fleetkit.resolve.ResolvedModel.engine`) — the
  objects the renderer itself reads, so no fact has a second owner here;
* :func:`build_fleet` (this module: ``fleetkit simulate --from DIR``, the hand-written scenario
  corpus, the benchmark) infers them from the manifests alone: ``Deployment`` (pod-template
  labels ``app``/``version``/``fleetkit.dev/gpu-class``, ``--served-model-name``,
  ``--tensor-parallel-size``, ``--dtype``, ``--max-num-seqs``, ``nodeSelector``) and
  ``ScaledObject``/``HorizontalPodAutoscaler`` (min/max replicas). It stays because its inputs
  have no stack files to resolve: a preview directory may have been rendered from another
  revision (a CI artifact, another branch), whose specs are not the project's, and the corpus and
  benchmark are plain manifests. What it cannot know it estimates and says so: a quantized model
  renders ``--dtype auto`` (vLLM reads the quantization from the checkpoint), so its weight bytes
  are counted at two bytes a parameter; the size comes from ``weights`` when given, else from a
  served name such as ``…-70B-…``.

Nothing here knows the kit's policy classes: whatever the renderers emit is read as Istio and
Kubernetes would read it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from fleetkit.capacity import bytes_per_param
from fleetkit.simulate.edge import Edge, read_edge

# the kit's pod labels, read for display (a Deployment without them still simulates); policies own them
from policies.common import LABEL_APP, LABEL_GPU_CLASS, LABEL_VERSION

#: Label keys Istio and Kubernetes use for topology (istio.io/api ``label`` package, well-known labels).
LABEL_NETWORK = "topology.istio.io/network"
LABEL_CLUSTER = "topology.istio.io/cluster"
LABEL_REGION = "topology.kubernetes.io/region"
LABEL_ZONE = "topology.kubernetes.io/zone"
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
    """One model Deployment in one cluster (routing facts and deployed model facts: module docstring)."""

    cluster: str
    namespace: str
    name: str
    #: the pod template's labels: what Service selectors and DestinationRule subsets select (R5)
    labels: Mapping[str, str]
    #: the mesh service the model serves as (its pods' ``app`` label)
    model: str
    version: str
    #: ``l4``, ``h100`` … ("" unknown)
    gpu_class: str
    #: names vLLM accepts in the request body's ``model`` (``--served-model-name``, else the model
    #: path), then the names an inbound rewrite filter maps to them
    served_names: tuple[str, ...]
    min_replicas: int
    max_replicas: int
    #: the node pools the pods are scheduled on (nodeSelector values)
    pools: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    #: engine facts for the capacity view: GPUs a replica's weights are split over, bytes of the
    #: weights (None: unknown) and the sequences vLLM batches per step (None: not set)
    tensor_parallel: int = 1
    weights_bytes: float | None = None
    max_num_seqs: int | None = None

    @cached_property
    def key(self) -> str:
        return f"{self.cluster}/{self.name}"


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
class MeshDestination:
    host: str
    subset: str | None
    weight: int


@dataclass(frozen=True)
class MeshRoute:
    name: str
    matches: tuple[Mapping[str, Any], ...]
    destinations: tuple[MeshDestination, ...]
    direct_response: tuple[int, str] | None = None


@dataclass
class ClusterConfig:
    """What the ingress gateway of one cluster is configured with (each primary's istiod reads its
    own cluster's Istio config; endpoints come from every cluster)."""

    routes: list[MeshRoute] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    rules: dict[str, DestinationRule] = field(default_factory=dict)
    #: fully qualified service host -> pod selector
    services: dict[str, Mapping[str, str]] = field(default_factory=dict)
    edge: Edge = field(default_factory=Edge)


@dataclass
class SimulatedFleet:
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


def _weights_bytes(served: tuple[str, ...], dtype: str, declared: float | None) -> float | None:
    """Bytes of the weights: declared (the project's specs), else the parameters a served name such
    as ``…-70B-…`` states at the rendered ``--dtype`` (``auto``: two bytes, see the module docstring)."""
    if declared:
        return declared
    m = re.search(r"(\d+(?:\.\d+)?)[Bb]\b", served[0] if served else "")
    if not m:
        return None
    try:
        return float(m.group(1)) * bytes_per_param(dtype or "bfloat16") * 1e9
    except ValueError:  # a --dtype the sizing table does not know
        return None


def _deployment(
    cluster: str,
    obj: Mapping[str, Any],
    scale: Mapping[str, tuple[int, int]],
    info: ClusterInfo,
    weights: Mapping[str, float],
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
    seqs = _flag(argv, "--max-num-seqs")
    return Workload(
        cluster=cluster,
        namespace=str(md.get("namespace") or "default"),
        name=name,
        labels=labels,
        model=labels.get(LABEL_APP, name),
        version=labels.get(LABEL_VERSION, ""),
        gpu_class=labels.get(LABEL_GPU_CLASS, ""),
        served_names=served,
        min_replicas=lo,
        max_replicas=hi,
        pools=pools,
        zones=tuple(zones),
        tensor_parallel=int(tp) if tp and tp.isdigit() else 1,
        weights_bytes=_weights_bytes(served, _flag(argv, "--dtype") or "", weights.get(name)),
        max_num_seqs=int(seqs) if seqs and seqs.isdigit() else None,
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


def _route(http: Mapping[str, Any], namespace: str, index: int) -> MeshRoute:
    dests = tuple(
        MeshDestination(
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
    return MeshRoute(
        str(http.get("name") or f"http[{index}]"), tuple(http.get("match") or ({},)), dests, direct
    )


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


@dataclass
class RenderedCluster:
    """What one cluster's manifests say, before any Deployment is read as a workload."""

    config: ClusterConfig
    #: Deployment objects by (namespace, name)
    deployments: dict[tuple[str, str], Mapping[str, Any]]
    #: Deployment name -> (min, max) replicas its autoscaler holds it between
    scale: dict[str, tuple[int, int]]
    #: (workload selector, body models rewritten to the pod's own name) per inbound rewrite filter
    rewrites: list[tuple[Mapping[str, str], tuple[str, ...]]]
    notes: list[str]


def read_cluster(stack: str, info: ClusterInfo, objs: Sequence[Mapping[str, Any]]) -> RenderedCluster:
    """Read one stack's manifests (both builders start here)."""
    cfg, ns_network = _cluster_config(list(objs))
    notes = []
    if ns_network and ns_network != info.network:
        notes.append(
            f"{stack}: istio-system is labelled network {ns_network!r}, the topology says {info.network!r}"
        )
    deployments = {
        (
            str((o.get("metadata") or {}).get("namespace") or "default"),
            str((o.get("metadata") or {}).get("name")),
        ): o
        for o in objs
        if o.get("kind") == "Deployment"
    }
    scale = _scale_targets(o for o in objs if o.get("kind") in ("ScaledObject", "HorizontalPodAutoscaler"))
    return RenderedCluster(cfg, deployments, scale, _inbound_rewrites(objs), notes)


def build_fleet(
    manifests: Mapping[str, Sequence[Mapping[str, Any]]],
    topology: Mapping[str, ClusterInfo],
    weights: Mapping[str, Mapping[str, float]] | None = None,
) -> SimulatedFleet:
    """The fleet from per-stack manifests alone and each stack's :class:`ClusterInfo` (stacks without
    one, e.g. the trust root, are skipped). ``weights``: stack -> Deployment -> bytes of the weights
    (for the capacity view; without it the size is read from a served name such as ``…-70B-…``)."""
    clusters: dict[str, ClusterInfo] = {}
    config: dict[str, ClusterConfig] = {}
    workloads: list[Workload] = []
    notes: list[str] = []
    for stack in sorted(manifests):
        info = topology.get(stack)
        if info is None:
            continue
        rendered = read_cluster(stack, info, manifests[stack])
        notes += rendered.notes
        clusters[info.name] = info
        config[info.name] = rendered.config
        for o in rendered.deployments.values():
            w = _deployment(info.name, o, rendered.scale, info, (weights or {}).get(stack, {}))
            if w is not None:
                workloads.append(with_rewrites(w, rendered.rewrites))
    workloads.sort(key=lambda w: (w.cluster, w.namespace, w.name))
    return SimulatedFleet(clusters, config, workloads, notes)


#: the inbound Lua filter the kit puts on a fallback model's pods (``policies.fallback_rewrite.render_fallback_rewrites``)
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


def with_rewrites(w: Workload, rewrites: list[tuple[Mapping[str, str], tuple[str, ...]]]) -> Workload:
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
