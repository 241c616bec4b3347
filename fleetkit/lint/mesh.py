"""The mesh as Istio's offline analyzers see it: the service registry with ``exportTo`` scopes, pods and
workload templates with their mesh membership, label selectors and host matching.

Mirrors istio/istio ``pkg/config/analysis/analyzers/util`` (``service_lookup.go``: Services and ServiceEntries
keyed by ``<scope>/<fqdn>``, the lookup order of ``GetDestinationHost``; ``in_mesh.go``: sidecar container,
``sidecar.istio.io/inject`` label/annotation, namespace ``istio-injection`` label) and ``pkg/config/host``
(``Name.Matches`` wildcard rules, ``NamesForNamespace``). Written from those files' documented behaviour.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from fleetkit.lint.index import NETWORKING, Hit, Index, Obj, as_dict, as_int, as_list, as_str

ALL = "*"
EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"
#: Labels Istio adds to an endpoint from its node (pilot ``AugmentLabels``); unknown for a workload template.
TOPOLOGY_LABELS = (
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
)
HOSTNAME_LABEL = "kubernetes.io/hostname"
AMBIENT_REDIRECTION = "ambient.istio.io/redirection"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")


def str_map(value: Any) -> dict[str, str]:
    return {k: v for k, v in as_dict(value).items() if isinstance(k, str) and isinstance(v, str)}


def selector_str(selector: dict[str, str]) -> str:
    """Kubernetes' rendering of an equality selector (``labels.SelectorFromSet(...).String()``)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """An empty selector selects everything, as ``labels.SelectorFromSet`` does."""
    return all(labels.get(k) == v for k, v in selector.items())


def host_matches(a: str, b: str) -> bool:
    """Istio ``host.Name.Matches``: equal, or covered by a wildcard on either side."""
    aw, bw = a.startswith("*"), b.startswith("*")
    if aw and bw:
        return b[1:].endswith(a[1:]) if len(a) < len(b) else a[1:].endswith(b[1:])
    if aw:
        return b.endswith(a[1:])
    if bw:
        return a.endswith(b[1:])
    return a == b


def names_for_namespace(hosts: list[str], namespace: str) -> list[str]:
    """Gateway/Sidecar ``ns/host`` entries visible from ``namespace`` (``*/`` = every namespace)."""
    out = []
    for h in hosts:
        if "/" in h:
            ns, _, name = h.partition("/")
            if ns in (ALL, namespace):
                out.append(name)
        else:
            out.append(h)
    return out


def short_or_full(namespace: str, name: str) -> tuple[str, str]:
    """``ns/name`` or a short name in ``namespace`` (``resource.NewShortOrFullName``)."""
    if "/" in name:
        ns, _, short = name.partition("/")
        return ns, short
    return namespace, name


@dataclass(frozen=True)
class Port:
    number: int
    name: str
    protocol: str
    target: int | None  # numeric targetPort of a Service port, None when unset or named


@dataclass
class Entry:
    """A Service or ServiceEntry as a registry entry (a Service becomes an entry without workload selector)."""

    obj: Obj
    ports: list[Port]
    workload_selector: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Pod:
    """A Pod, or the pod template of a workload (``template`` True: labels known, node and injection not)."""

    obj: Obj
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    node: str
    in_mesh: bool
    template: bool


def mesh(ix: Index) -> Mesh:
    if "mesh" not in ix.memo:
        ix.memo["mesh"] = Mesh(ix)
    result: Mesh = ix.memo["mesh"]
    return result


class Mesh:
    def __init__(self, ix: Index):
        self.ix = ix

    # -- registry ----------------------------------------------------------------------------------------------

    def fqdn(self, host: str, namespace: str) -> str:
        return self.ix.fqdn(host, namespace)

    @cached_property
    def registry(self) -> tuple[dict[tuple[str, str], Entry], list[tuple[str, str, Entry]]]:
        exact: dict[tuple[str, str], Entry] = {}
        wild: list[tuple[str, str, Entry]] = []

        def put(scope: str, fq: str, entry: Entry) -> None:
            if fq.startswith("*"):
                wild.append((scope, fq, entry))
            exact.setdefault((scope, fq), entry)

        for se in self.ix.of(NETWORKING, "ServiceEntry"):
            ports = [Port(as_int(p.get("number")) or 0, as_str(p.get("name")), as_str(p.get("protocol")), None)
                     for p in map(as_dict, as_list(se.spec.get("ports")))]  # fmt: skip
            entry = Entry(se, ports, str_map(as_dict(se.spec.get("workloadSelector")).get("labels")))
            export = [e for e in as_list(se.spec.get("exportTo")) if isinstance(e, str)]
            scopes = (
                [ALL] if not export or ALL in export else [se.namespace if e == "." else e for e in export]
            )
            for h in as_list(se.spec.get("hosts")):
                if isinstance(h, str):
                    for scope in scopes:
                        put(scope, self.fqdn(h, se.namespace), entry)
        for svc in self.ix.of("", "Service"):
            ports = []
            for p in map(as_dict, as_list(svc.spec.get("ports"))):
                target = p.get("targetPort")
                ports.append(Port(as_int(p.get("port")) or 0, as_str(p.get("name")),
                                  as_str(p.get("protocol")) or "TCP", as_int(target)))  # fmt: skip
            entry = Entry(svc, ports)
            anno = as_str(svc.annotations.get(EXPORT_TO_ANNOTATION))
            scopes = (
                [svc.namespace if e.strip() == "." else e.strip() for e in anno.split(",")] if anno else [ALL]
            )
            for scope in scopes:
                put(scope, self.ix.service_fqdn(svc.name, svc.namespace), entry)
        return exact, wild

    @property
    def has_services(self) -> bool:
        return bool(self.ix.of("", "Service") or self.ix.of(NETWORKING, "ServiceEntry"))

    def lookup(self, source_ns: str, export_to: list[str], host: str) -> Entry | None:
        """``GetDestinationHost``: the entry for ``host`` visible from ``source_ns``, or None."""
        exact, wild = self.registry
        fq = self.fqdn(host, source_ns)
        found = exact.get((ALL, fq))
        if found is not None:
            return found
        scopes = [source_ns] if not export_to else [source_ns if e == "." else e for e in export_to]
        for scope in scopes:
            found = exact.get((scope, fq))
            if found is not None:
                return found
        bare = host.removeprefix("*")
        for scope, se_host, entry in wild:
            if scope in (ALL, source_ns) and bare.endswith(se_host[1:]):
                return entry
        return None

    # -- pods --------------------------------------------------------------------------------------------------

    @cached_property
    def namespaces(self) -> dict[str, dict[str, str]]:
        """Namespace objects in the input: name -> labels."""
        return {o.name: str_map(o.labels) for o in self.ix.of("", "Namespace")}

    @cached_property
    def nodes(self) -> dict[str, dict[str, str]]:
        return {o.name: str_map(o.labels) for o in self.ix.of("", "Node")}

    def _in_mesh(self, labels: dict[str, str], annotations: dict[str, str], namespace: str,
                 containers: list[Any], template: bool) -> bool:  # fmt: skip
        if any(as_dict(c).get("name") == "istio-proxy" and as_dict(c).get("image") for c in containers):
            return True
        if annotations.get(AMBIENT_REDIRECTION) == "enabled":
            return True  # captured by ztunnel (ambient mode)
        for meta in (labels, annotations):
            if "sidecar.istio.io/inject" in meta:
                return meta["sidecar.istio.io/inject"] == "true"
        ns = self.namespaces.get(namespace)
        if ns is None:
            return template  # a template in a namespace the input does not describe: assume it is meshed
        return (
            ns.get("istio-injection") == "enabled"
            or bool(ns.get("istio.io/rev"))
            or (ns.get("istio.io/dataplane-mode") == "ambient")
        )

    @cached_property
    def pods(self) -> list[Pod]:
        out = []
        for o in self.ix.of("", "Pod"):
            spec = o.spec
            containers = [*as_list(spec.get("containers")), *as_list(spec.get("initContainers"))]
            labels, annos = str_map(o.labels), str_map(o.annotations)
            out.append(Pod(o, o.namespace, labels, annos, as_str(spec.get("nodeName")),
                           self._in_mesh(labels, annos, o.namespace, containers, False), False))  # fmt: skip
        for kind in WORKLOAD_KINDS:
            for o in self.ix.of("apps", kind):
                tmpl = as_dict(o.spec.get("template"))
                meta, spec = as_dict(tmpl.get("metadata")), as_dict(tmpl.get("spec"))
                labels, annos = str_map(meta.get("labels")), str_map(meta.get("annotations"))
                containers = as_list(spec.get("containers"))
                out.append(Pod(o, o.namespace, labels, annos, "",
                               self._in_mesh(labels, annos, o.namespace, containers, True), True))  # fmt: skip
        return out

    def endpoint_matches(self, selector: dict[str, str], pod: Pod) -> bool:
        """Whether ``selector`` (e.g. subset labels) selects the endpoints of ``pod``, with node topology labels
        added as Istio does; on a workload template the topology labels are unknown and count as matching."""
        labels = dict(pod.labels)
        node = self.nodes.get(pod.node) if pod.node else None
        if node is not None:
            labels.update({k: node[k] for k in TOPOLOGY_LABELS if k in node})
            labels[HOSTNAME_LABEL] = pod.node
        for k, v in selector.items():
            if labels.get(k) == v:
                continue
            if pod.template and (k in TOPOLOGY_LABELS or k == HOSTNAME_LABEL) and k not in labels:
                continue
            return False
        return True

    @cached_property
    def _label_index(self) -> dict[tuple[str, str], list[int]]:
        out: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, p in enumerate(self.pods):
            for kv in p.labels.items():
                out[kv].append(i)
        return out

    def endpoints_matching(self, selector: dict[str, str]) -> list[Pod]:
        """Pods/templates whose endpoints ``selector`` selects (see :meth:`endpoint_matches`), via a label index."""
        keyed = [kv for kv in selector.items() if kv[0] not in TOPOLOGY_LABELS and kv[0] != HOSTNAME_LABEL]
        if keyed:
            candidates = [self.pods[i] for i in min((self._label_index.get(kv, []) for kv in keyed), key=len)]
        else:
            candidates = self.pods
        return [p for p in candidates if self.endpoint_matches(selector, p)]

    def has_endpoints(self, selector: dict[str, str]) -> bool:
        """Whether any pod/template has endpoints ``selector`` selects (cached per selector)."""
        key = tuple(sorted(selector.items()))
        cache: dict[tuple[tuple[str, str], ...], bool] = self.ix.memo.setdefault("has_endpoints", {})
        if key not in cache:
            keyed = [kv for kv in key if kv[0] not in TOPOLOGY_LABELS and kv[0] != HOSTNAME_LABEL]
            candidates: Iterator[Pod]
            if keyed:
                candidates = (
                    self.pods[i] for i in min((self._label_index.get(kv, []) for kv in keyed), key=len)
                )
            else:
                candidates = iter(self.pods)
            cache[key] = any(self.endpoint_matches(selector, p) for p in candidates)
        return cache[key]

    @cached_property
    def pods_by_namespace(self) -> dict[str, list[Pod]]:
        out: dict[str, list[Pod]] = defaultdict(list)
        for p in self.pods:
            out[p.namespace].append(p)
        return out

    @cached_property
    def known_namespaces(self) -> set[str]:
        return set(self.namespaces) | {o.namespace for o in self.ix.objs if o.namespace}


NOT_CHECKED = "not-checked"


def skipped(obj: Obj, checks: str, why: str) -> Hit:
    """A note, not a finding: which checks could not run on this input and why. The engine collects these for
    the report's summary, so partial input never ends in a silent "No problems found"."""
    return Hit(obj, (), NOT_CHECKED, f"{checks}: {why}", "lint the referenced objects together with this one")


def gateways(ix: Index) -> dict[tuple[str, str], Obj]:
    return {(g.namespace, g.name): g for g in ix.of(NETWORKING, "Gateway")}
