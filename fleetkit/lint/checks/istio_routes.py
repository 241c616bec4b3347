"""istioctl's VirtualService reference analyzers, offline: gateways, destination hosts and ports, hosts shared
by mesh VirtualServices, JWT claim routing.

Same logic as istio/istio ``pkg/config/analysis/analyzers/virtualservice``: ``gateways.go`` (IST0101 missing
gateway, IST0132 host not in gateway), ``destinationhosts.go`` (IST0101 host / host:port, IST0112),
``conflictingmeshgatewayhosts.go`` (IST0109), ``jwtclaimroute.go`` (IST0149). Message texts follow
``pkg/config/analysis/msg/messages.yaml``. A reference is reported missing only when the input holds at least
one object of the referenced kind; otherwise an FK005 finding says the check was skipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from fleetkit.lint.index import NETWORKING, SECURITY, Hit, Index, Obj, as_dict, as_int, as_list, as_str
from fleetkit.lint.mesh import (
    ALL,
    gateways,
    host_matches,
    mesh,
    names_for_namespace,
    selects,
    short_or_full,
    skipped,
    str_map,
)

MESH = "mesh"
JWT_CLAIM_PREFIX = "@request.auth.claims"


def _strings(value: object) -> list[str]:
    return [v for v in as_list(value) if isinstance(v, str)]


def _gateway_hosts(gw: Obj) -> list[str]:
    """Server hosts with ``./`` resolved to the gateway's namespace and ``*/`` dropped (``*/*`` is ``*``)."""
    out = []
    for server in map(as_dict, as_list(gw.spec.get("servers"))):
        hosts = _strings(server.get("hosts"))
        fixed = []
        for h in hosts:
            ns, sep, name = h.partition("/")
            if not sep:
                fixed.append(h)
            elif ns == ".":
                fixed.append(f"{gw.namespace}/{name}")
            elif ns == ALL:
                if name == ALL:
                    fixed = [ALL]
                    break
                fixed.append(name)
            else:
                fixed.append(h)
        out.extend(fixed)
    return out


def check_gateways(ix: Index) -> Iterator[Hit]:
    """FK109 (IST0101 gateway) and FK113 (IST0132)."""
    gws = gateways(ix)
    note_done = False
    for vs in ix.of(NETWORKING, "VirtualService"):
        hosts = _strings(vs.spec.get("hosts"))
        for i, name in enumerate(_strings(vs.spec.get("gateways"))):
            if name == MESH:
                continue
            if not gws:
                if not note_done:
                    note_done = True
                    yield skipped(vs, "Gateway references (IST0101, IST0132)", "no Gateway is in the input")
                continue
            key = short_or_full(vs.namespace, name)
            gw = gws.get(key)
            path = ("spec", "gateways", i)
            if gw is None:
                yield Hit(vs, path, "FK109", f'Referenced gateway not found: "{name}"',
                          "create the Gateway or fix the name (<namespace>/<name> for another namespace)")  # fmt: skip
            gw_hosts = names_for_namespace(_gateway_hosts(gw), vs.namespace) if gw else []
            if not any(host_matches(g, h) for g in gw_hosts for h in hosts):
                yield Hit(vs, path, "FK113",
                          f"one or more host [{' '.join(hosts)}] defined in VirtualService {vs.namespace}/{vs.name} "
                          f"not found in Gateway {key[0]}/{key[1]}.",
                          "add the host to a server of the Gateway (or a wildcard covering it), or bind the "
                          "VirtualService to the Gateway that serves it")  # fmt: skip


def _destinations(vs: Obj) -> Iterator[tuple[tuple[str | int, ...], dict, str]]:
    """(path, destination, kind) for route destinations (tcp, tls, http) and HTTP mirrors."""
    spec = vs.spec
    for section in ("tcp", "tls", "http"):
        for i, route in enumerate(map(as_dict, as_list(spec.get(section)))):
            for j, entry in enumerate(map(as_dict, as_list(route.get("route")))):
                dest = as_dict(entry.get("destination"))
                if as_str(dest.get("host")):
                    yield ("spec", section, i, "route", j, "destination"), dest, "host"
    for i, route in enumerate(map(as_dict, as_list(spec.get("http")))):
        mirror = as_dict(route.get("mirror"))
        if as_str(mirror.get("host")):
            yield ("spec", "http", i, "mirror"), mirror, "mirror host"
        for j, m in enumerate(map(as_dict, as_list(route.get("mirrors")))):
            dest = as_dict(m.get("destination"))
            if as_str(dest.get("host")):
                yield ("spec", "http", i, "mirrors", j, "destination"), dest, "mirror host"


def check_destination_hosts(ix: Index) -> Iterator[Hit]:
    """FK110 (IST0101 host), FK111 (IST0112 port required), FK112 (IST0101 host:port)."""
    m = mesh(ix)
    vss = ix.of(NETWORKING, "VirtualService")
    if vss and not m.has_services:
        yield skipped(vss[0], "Destination hosts and ports (IST0101, IST0112)",
                      "no Service or ServiceEntry is in the input")  # fmt: skip
        return
    for vs in vss:
        export_to = _strings(vs.spec.get("exportTo"))
        for path, dest, what in _destinations(vs):
            host = as_str(dest.get("host"))
            entry = m.lookup(vs.namespace, export_to, host)
            if entry is None:
                yield Hit(vs, (*path, "host"), "FK110", f'Referenced {what} not found: "{host}"',
                          "create the Service/ServiceEntry, fix the host, or check its exportTo / the "
                          "networking.istio.io/exportTo annotation")  # fmt: skip
                continue
            port = as_dict(dest.get("port"))
            numbers = [p.number for p in entry.ports]
            if not port:
                if len(entry.ports) > 1:
                    yield Hit(vs, path, "FK111",
                              f"This VirtualService routes to a service {host!r} that exposes multiple ports "
                              f"[{' '.join(map(str, numbers))}]. Specifying a port in the destination is required "
                              "to disambiguate.", "add port: {number: <port>} to the destination")  # fmt: skip
            elif as_int(port.get("number")) not in numbers:
                yield Hit(vs, (*path, "port"), "FK112",
                          f"Referenced host:port not found: \"{host}:{as_int(port.get('number')) or 0}\"",
                          f"use one of the service's ports: {', '.join(map(str, numbers)) or 'none'}")  # fmt: skip


def check_mesh_host_conflicts(ix: Index) -> Iterator[Hit]:
    """FK114 (IST0109): several mesh-bound VirtualServices define the same host in the same export scope."""
    owners: dict[tuple[str, str], list[Obj]] = defaultdict(list)  # (cluster, scope/fqdn)
    for vs in ix.of(NETWORKING, "VirtualService"):
        gws = _strings(vs.spec.get("gateways"))
        if gws and MESH not in gws:
            continue
        export = _strings(vs.spec.get("exportTo"))
        scopes = (
            [ALL]
            if not export or ALL in export
            else sorted({vs.namespace if e == "." else e for e in export})
        )
        for scope in scopes:
            for h in _strings(vs.spec.get("hosts")):
                key = f"{scope}/{ix.fqdn(h, vs.namespace)}"
                if all(o.ref != vs.ref for o in owners[(ix.cluster_of(vs), key)]):
                    owners[(ix.cluster_of(vs), key)].append(vs)
    reported: set[tuple[str, str]] = set()
    for (cluster, key), group in sorted(owners.items()):
        scope, _, host = key.partition("/")
        members = list(group)
        if scope != ALL:  # namespace-scoped hosts also meet the (wildcard-)matching hosts exported everywhere
            for (o_cluster, other), theirs in sorted(owners.items()):
                o_scope, _, o_host = other.partition("/")
                if o_cluster == cluster and o_scope == ALL and host_matches(host, o_host):
                    members.extend(v for v in theirs if all(v.ref != o.ref for o in members))
        if len(members) < 2:
            continue
        names = ",".join(f"{o.namespace}/{o.name}" for o in members)
        for vs in members:
            if (cluster, vs.ref) in reported:
                continue
            reported.add((cluster, vs.ref))
            yield Hit(vs, ("metadata", "name"), "FK114",
                      f"The VirtualServices {names} associated with mesh gateway define the same host {key} which "
                      "can lead to undefined behavior. This can be fixed by merging the conflicting "
                      "VirtualServices into a single resource.",
                      "merge the VirtualServices into one, or narrow exportTo so their scopes do not overlap")  # fmt: skip


def jwt_claim_key(vs: Obj) -> str:
    for route in map(as_dict, as_list(vs.spec.get("http"))):
        for match in map(as_dict, as_list(route.get("match"))):
            for section in ("headers", "withoutHeaders"):
                for key in as_dict(match.get(section)):
                    if isinstance(key, str) and key.startswith(JWT_CLAIM_PREFIX):
                        return key
    return ""


def check_jwt_claim_routes(ix: Index) -> Iterator[Hit]:
    """FK118 (IST0149): claim-based routing on a gateway whose pods no RequestAuthentication covers."""
    by_ns: dict[str, list[dict[str, str]]] = defaultdict(list)
    for ra in ix.of(SECURITY, "RequestAuthentication"):
        by_ns[ra.namespace].append(str_map(as_dict(ra.spec.get("selector")).get("matchLabels")))
    gws = gateways(ix)
    m = mesh(ix)
    root = ix.config.root_namespace
    for vs in ix.of(NETWORKING, "VirtualService"):
        key = jwt_claim_key(vs)
        if not key:
            continue
        for name in _strings(vs.spec.get("gateways")):
            if name == MESH:
                continue
            gw = gws.get(short_or_full(vs.namespace, name))
            if gw is None:
                continue
            selector = str_map(gw.spec.get("selector"))
            for pod in m.pods:
                if not selects(selector, pod.labels):
                    continue
                selectors = by_ns.get(root, []) + (
                    by_ns.get(pod.namespace, []) if pod.namespace != root else []
                )
                if not any(selects(s, pod.labels) for s in selectors):
                    yield Hit(vs, ("spec", "http"), "FK118",
                              f"The virtual service uses the JWT claim based routing (key: {key}) but found no "
                              f"request authentication for the gateway ({gw.namespace}/{gw.name}) pod "
                              f"({pod.obj.name}). The request authentication must first be applied for the gateway "
                              "pods to validate the JWT token and make the claims available for routing.",
                              f"add a RequestAuthentication selecting the gateway pods in {pod.namespace} or {root}")  # fmt: skip


CHECKS = [check_gateways, check_destination_hosts, check_mesh_host_conflicts, check_jwt_claim_routes]
