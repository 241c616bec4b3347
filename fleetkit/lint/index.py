"""Cross-object view of everything being linted: objects by kind, hosts resolved to FQDNs, traffic policies.

Analyzers never trust the shape of their input (schema errors are reported separately), so every accessor here
tolerates missing or mistyped fields.
"""

from __future__ import annotations

import ipaddress
import posixpath
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from fleetkit.lint.documents import Document
from fleetkit.lint.model import LintConfig, Severity
from fleetkit.schema import namespaced

Path = tuple[str | int, ...]

NETWORKING = "networking.istio.io"
SECURITY = "security.istio.io"
KEDA = "keda.sh"


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class Obj:
    """One linted object with its identity resolved (namespace defaulted for namespaced kinds)."""

    doc: Document
    api_version: str
    group: str
    kind: str
    name: str
    namespace: str
    ref: str

    @classmethod
    def from_document(cls, doc: Document, config: LintConfig) -> Obj:
        raw = doc.obj
        api_version = as_str(raw.get("apiVersion"))
        kind = as_str(raw.get("kind"))
        meta = as_dict(raw.get("metadata"))
        name = as_str(meta.get("name")) or as_str(meta.get("generateName")) or "(unnamed)"
        ns = ""
        if namespaced(api_version, kind):
            ns = as_str(meta.get("namespace")) or config.default_namespace
        ref = f"{kind}/{ns}/{name}" if ns else f"{kind}/{name}"
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        return cls(doc, api_version, group, kind, name, ns, ref)

    @property
    def raw(self) -> dict[str, Any]:
        return self.doc.obj

    @property
    def spec(self) -> dict[str, Any]:
        return as_dict(self.doc.obj.get("spec"))

    @property
    def file(self) -> str:
        return self.doc.file

    @property
    def annotations(self) -> dict[str, Any]:
        return as_dict(as_dict(self.doc.obj.get("metadata")).get("annotations"))

    @property
    def labels(self) -> dict[str, Any]:
        return as_dict(as_dict(self.doc.obj.get("metadata")).get("labels"))


@dataclass
class Hit:
    """A finding before suppression and formatting: which object, where inside it, what and how to fix it."""

    obj: Obj
    path: Path
    rule: str
    message: str
    fix: str
    severity: Severity | None = None  # None: the rule's default
    ist: str | None = None  # None: the rule's IST code; "": none for this hit


@dataclass(frozen=True)
class RouteDest:
    """One destination of a VirtualService route (route, mirror or mirrors entry)."""

    vs: Obj
    path: Path  # path of the destination object
    route_path: Path  # path of the http/tcp/tls route holding it
    host: str  # as written
    fqdn: str  # resolved
    subset: str
    port: int | None
    weight: int | None
    mirror: bool


class Index:
    def __init__(self, objs: Sequence[Obj], config: LintConfig):
        self.objs = list(objs)
        self.config = config
        self.memo: dict[str, Any] = {}  # derived views built once per run (see fleetkit.lint.mesh)
        self._by_kind: dict[tuple[str, str], list[Obj]] = defaultdict(list)
        for obj in self.objs:
            self._by_kind[(obj.group, obj.kind)].append(obj)

    def of(self, group: str, kind: str) -> list[Obj]:
        return self._by_kind.get((group, kind), [])

    @cached_property
    def _multi_cluster(self) -> bool:
        dirs: dict[str, set[str]] = defaultdict(set)
        for o in self.objs:
            dirs[o.ref].add(posixpath.dirname(o.file))
        return any(len(d) > 1 for d in dirs.values())

    def cluster_of(self, obj: Obj) -> str:
        """Which cluster's manifests ``obj`` belongs to: when one object (same kind/namespace/name) appears in
        several directories, the input holds several clusters' rendered manifests (``fleetkit lint out/``) and
        the directory tells them apart; otherwise everything is one cluster ("")."""
        return posixpath.dirname(obj.file) if self._multi_cluster else ""

    # -- hosts -------------------------------------------------------------------------------------------------

    @property
    def domain(self) -> str:
        return self.config.cluster_domain

    def fqdn(self, host: str, namespace: str) -> str:
        """Istio's short-name rule: only a host without any dot is expanded (``<host>.<ns>.svc.<domain>``)."""
        if not host or host == "*" or "." in host or (":" in host and is_ip(host)):
            return host
        return f"{host}.{namespace}.svc.{self.domain}"

    def service_fqdn(self, name: str, namespace: str) -> str:
        return f"{name}.{namespace}.svc.{self.domain}"

    def split_fqdn(self, fqdn: str) -> tuple[str, str] | None:
        """``(service, namespace)`` for ``<svc>.<ns>.svc.<domain>``, else None."""
        suffix = f".svc.{self.domain}"
        if not fqdn.endswith(suffix):
            return None
        parts = fqdn[: -len(suffix)].split(".")
        return (parts[0], parts[1]) if len(parts) == 2 else None

    @cached_property
    def services(self) -> dict[tuple[str, str], Obj]:
        return {(o.namespace, o.name): o for o in self.of("", "Service")}

    @cached_property
    def service_namespaces(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for ns, name in self.services:
            out[name].add(ns)
        return out

    @cached_property
    def namespaces(self) -> set[str]:
        names = {o.namespace for o in self.objs if o.namespace}
        names.update(o.name for o in self.of("", "Namespace"))
        return names

    @cached_property
    def service_entry_hosts(self) -> set[str]:
        hosts: set[str] = set()
        for se in self.of(NETWORKING, "ServiceEntry"):
            hosts.update(h for h in as_list(se.spec.get("hosts")) if isinstance(h, str))
            hosts.update(a for a in as_list(se.spec.get("addresses")) if isinstance(a, str))
        return hosts

    @cached_property
    def _drs(self) -> tuple[dict[str, list[Obj]], list[tuple[str, Obj]]]:
        exact: dict[str, list[Obj]] = defaultdict(list)
        wild: list[tuple[str, Obj]] = []
        for dr in self.of(NETWORKING, "DestinationRule"):
            host = as_str(dr.spec.get("host"))
            if not host:
                continue
            fq = self.fqdn(host, dr.namespace)
            if fq.startswith("*"):
                wild.append((fq[1:], dr))
            else:
                exact[fq].append(dr)
        return exact, wild

    def drs_for(self, fqdn: str) -> list[Obj]:
        """DestinationRules whose host matches ``fqdn`` (exact first, then wildcard suffixes)."""
        exact, wild = self._drs
        found = list(exact.get(fqdn, []))
        found.extend(dr for suffix, dr in wild if fqdn.endswith(suffix) and not fqdn.startswith("*"))
        return found

    # -- routes ------------------------------------------------------------------------------------------------

    @cached_property
    def route_dests(self) -> list[RouteDest]:
        out: list[RouteDest] = []
        for vs in self.of(NETWORKING, "VirtualService"):
            spec = vs.spec
            for section in ("http", "tcp", "tls"):
                for i, route in enumerate(as_list(spec.get(section))):
                    route = as_dict(route)
                    rpath: Path = ("spec", section, i)
                    for j, entry in enumerate(as_list(route.get("route"))):
                        entry = as_dict(entry)
                        out.append(
                            self._dest(vs, (*rpath, "route", j, "destination"), rpath, entry.get("destination"),
                                       as_int(entry.get("weight")), False)
                        )  # fmt: skip
                    if section == "http":
                        if "mirror" in route:
                            out.append(
                                self._dest(vs, (*rpath, "mirror"), rpath, route.get("mirror"), None, True)
                            )
                        for j, m in enumerate(as_list(route.get("mirrors"))):
                            out.append(
                                self._dest(vs, (*rpath, "mirrors", j, "destination"), rpath,
                                           as_dict(m).get("destination"), None, True)
                            )  # fmt: skip
        return [d for d in out if d.host]

    def _dest(
        self, vs: Obj, path: Path, rpath: Path, dest: Any, weight: int | None, mirror: bool
    ) -> RouteDest:
        dest = as_dict(dest)
        host = as_str(dest.get("host"))
        port = as_int(as_dict(dest.get("port")).get("number"))
        return RouteDest(vs, path, rpath, host, self.fqdn(host, vs.namespace), as_str(dest.get("subset")),
                         port, weight, mirror)  # fmt: skip

    @cached_property
    def dests_by_fqdn(self) -> dict[str, list[RouteDest]]:
        out: dict[str, list[RouteDest]] = defaultdict(list)
        for d in self.route_dests:
            out[d.fqdn].append(d)
        return out

    # -- workloads ---------------------------------------------------------------------------------------------

    @cached_property
    def workloads(self) -> dict[tuple[str, str, str], Obj]:
        """Deployments/StatefulSets/DaemonSets keyed by (namespace, kind, name)."""
        out = {}
        for kind in ("Deployment", "StatefulSet", "DaemonSet"):
            for o in self.of("apps", kind):
                out[(o.namespace, kind, o.name)] = o
        return out

    def pod_labels(self, workload: Obj) -> dict[str, str]:
        cache: dict[int, dict[str, str]] = self.memo.setdefault("pod_labels", {})
        key = id(workload)
        if key not in cache:
            tmpl = as_dict(as_dict(workload.spec.get("template")).get("metadata"))
            cache[key] = {k: v for k, v in as_dict(tmpl.get("labels")).items() if isinstance(v, str)}
        return cache[key]

    @cached_property
    def pod_labels_by_namespace(self) -> dict[str, list[dict[str, str]]]:
        out: dict[str, list[dict[str, str]]] = defaultdict(list)
        for (ns, _, _), w in sorted(self.workloads.items()):
            out[ns].append(self.pod_labels(w))
        return out

    def workload_labels_for_service(self, namespace: str, name: str) -> list[dict[str, str]]:
        """Pod label sets behind a Service (the Service selector itself when no workload is in the input)."""
        svc = self.services.get((namespace, name))
        if svc is None:
            return []
        selector = {k: v for k, v in as_dict(svc.spec.get("selector")).items() if isinstance(v, str)}
        if not selector:
            return []
        pods = [
            labels
            for labels in self.pod_labels_by_namespace.get(namespace, [])
            if selector.items() <= labels.items()
        ]
        return pods or [selector]


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


# -- traffic policies ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """One trafficPolicy (or port-level settings) inside a DestinationRule, with where it sits."""

    dr: Obj
    path: Path
    body: dict[str, Any]
    subset: str | None  # subset name, None for the top level
    port: int | None  # port number for portLevelSettings entries


def traffic_policies(dr: Obj) -> Iterator[Policy]:
    """Every traffic policy a DestinationRule writes: top level, port level, subsets, subset port level."""
    spec = dr.spec
    yield from _policy_and_ports(dr, ("spec", "trafficPolicy"), as_dict(spec.get("trafficPolicy")), None)
    for i, subset in enumerate(as_list(spec.get("subsets"))):
        subset = as_dict(subset)
        name = as_str(subset.get("name"))
        body = as_dict(subset.get("trafficPolicy"))
        yield from _policy_and_ports(dr, ("spec", "subsets", i, "trafficPolicy"), body, name)


def _policy_and_ports(dr: Obj, path: Path, body: dict[str, Any], subset: str | None) -> Iterator[Policy]:
    if not body:
        return
    yield Policy(dr, path, body, subset, None)
    for i, pls in enumerate(as_list(body.get("portLevelSettings"))):
        pls = as_dict(pls)
        port = as_int(as_dict(pls.get("port")).get("number"))
        yield Policy(dr, (*path, "portLevelSettings", i), pls, subset, port)


_POLICY_FIELDS = ("loadBalancer", "connectionPool", "outlierDetection", "tls")


def effective_policy(dr: Obj, subset: str, port: int | None) -> dict[str, Any]:
    """The policy Istio applies to (subset, port): subset fields override top-level ones field by field;
    matching port-level settings replace those four fields entirely (they do not inherit)."""
    spec = dr.spec
    top = as_dict(spec.get("trafficPolicy"))
    merged = {k: top.get(k) for k in _POLICY_FIELDS}
    source = top
    if subset:
        for s in as_list(spec.get("subsets")):
            s = as_dict(s)
            if s.get("name") == subset:
                sub = as_dict(s.get("trafficPolicy"))
                for k in _POLICY_FIELDS:
                    if sub.get(k) is not None:
                        merged[k] = sub[k]
                if sub.get("portLevelSettings"):
                    source = sub
                break
    if port is not None:
        for pls in as_list(source.get("portLevelSettings")):
            pls = as_dict(pls)
            if as_int(as_dict(pls.get("port")).get("number")) == port:
                merged = {k: pls.get(k) for k in _POLICY_FIELDS}
                break
    return {k: v for k, v in merged.items() if v is not None}
