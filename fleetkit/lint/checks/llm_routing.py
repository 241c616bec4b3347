"""LLM-specific routing rules istioctl has no counterpart for (see runbooks/lint.md):

* FK119: a tier or canary chosen by a header the client controls, with nothing binding it to a JWT
  (RequestAuthentication ``outputClaimToHeaders``, ``@request.auth.claims`` routing, a route that strips/sets
  the header, or a gateway ``EnvoyFilter`` whose Lua filter, inserted first in the HTTP filter chain
  (``INSERT_FIRST``, context ``GATEWAY``), removes the client's copy before any other filter or the route
  table reads it — whatever the header holds afterwards was set by the gateway's own configuration).
  Istio docs, "JWT claim based routing": only claims validated by a RequestAuthentication are trustworthy
  routing inputs.
* FK120: a weighted route to a subset that can have zero endpoints (its Deployments have ``replicas: 0`` or
  are scaled by a ScaledObject that allows 0, or no workload matches): that share of requests gets 503 UH.
* FK121: mirroring to a subset pinned to another network/cluster, or with no local endpoints: every mirrored
  generation crosses the east-west gateway.
* FK122: ``perTryTimeout`` shorter than the route timeout while ``retryOn`` does not retry the 504 a per-try
  timeout produces (Envoy router docs, ``x-envoy-upstream-rq-per-try-timeout-ms``: a per-try timeout is
  retried only under ``5xx``/``gateway-error``): generations longer than perTryTimeout are cut with 504.
* FK210: ``failoverPriority`` on custom labels in a multi-network mesh. Endpoints of another network are
  replaced by the east-west gateway's endpoint, which carries only the network and cluster labels (istio/istio
  ``pilot/pkg/xds/endpoints/ep_filters.go``, ``EndpointsByNetworkFilter``), so custom labels never match a
  remote endpoint and the intended fallback order across networks is lost.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

from fleetkit.lint.durations import human, parse_duration
from fleetkit.lint.index import (
    KEDA,
    NETWORKING,
    SECURITY,
    Hit,
    Index,
    Obj,
    as_dict,
    as_int,
    as_list,
    as_str,
    traffic_policies,
)
from fleetkit.lint.mesh import selects, str_map

CLAIM_PREFIX = "@request.auth.claims"
LUA_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
#: ``headers:remove("x-name")`` / ``handle:headers():remove('x-name')`` in a Lua filter's source
LUA_REMOVE = re.compile(r""":remove\(\s*["']([A-Za-z0-9_.-]+)["']\s*\)""")
TIER_OR_CANARY = re.compile(
    r"tier|plan|priority|premium|qos|class|canary|cohort|beta|experiment|variant", re.IGNORECASE
)
REMOTE_LABELS = ("topology.istio.io/network", "topology.istio.io/cluster")
TOPOLOGY = frozenset({*REMOTE_LABELS, "topology.kubernetes.io/region", "topology.kubernetes.io/zone",
                      "topology.istio.io/subzone"})  # fmt: skip
RETRIES_504 = frozenset({"5xx", "gateway-error", "504"})
ISTIO_DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"


def _dests(ix: Index, vs: Obj, route: dict) -> set[tuple[str, str]]:
    out = set()
    for e in map(as_dict, as_list(route.get("route"))):
        d = as_dict(e.get("destination"))
        if as_str(d.get("host")):
            out.add((ix.fqdn(d["host"], vs.namespace), as_str(d.get("subset"))))
    return out


def _header_keys(route: dict) -> set[str]:
    keys: set[str] = set()
    for m in map(as_dict, as_list(route.get("match"))):
        keys.update(k for k in as_dict(m.get("headers")) if isinstance(k, str))
    return {k for k in keys if not k.startswith((CLAIM_PREFIX, ":"))}


def _bound_headers(ix: Index) -> set[str]:
    """Headers written from validated JWT claims or stripped/overwritten by some route in the input."""
    out: set[str] = set()
    for ra in ix.of(SECURITY, "RequestAuthentication"):
        for rule in map(as_dict, as_list(ra.spec.get("jwtRules"))):
            for o in map(as_dict, as_list(rule.get("outputClaimToHeaders"))):
                out.add(as_str(o.get("header")).lower())
    for vs in ix.of(NETWORKING, "VirtualService"):
        for route in map(as_dict, as_list(vs.spec.get("http"))):
            req = as_dict(as_dict(route.get("headers")).get("request"))
            out.update(h.lower() for h in as_list(req.get("remove")) if isinstance(h, str))
            out.update(h.lower() for h in as_dict(req.get("set")) if isinstance(h, str))
    out.update(_stripped_first_at_gateway(ix))
    return out


def _stripped_first_at_gateway(ix: Index) -> set[str]:
    """Headers a gateway Lua filter inserted first in the HTTP chain removes from every request."""
    out: set[str] = set()
    for ef in ix.of(NETWORKING, "EnvoyFilter"):
        for patch in map(as_dict, as_list(ef.spec.get("configPatches"))):
            body, match = as_dict(patch.get("patch")), as_dict(patch.get("match"))
            if (
                as_str(patch.get("applyTo")) != "HTTP_FILTER"
                or as_str(match.get("context")) != "GATEWAY"
                or as_str(body.get("operation")) != "INSERT_FIRST"
            ):
                continue
            typed = as_dict(as_dict(body.get("value")).get("typed_config"))
            if as_str(typed.get("@type")) != LUA_TYPE:
                continue
            source = as_str(as_dict(typed.get("default_source_code")).get("inline_string")) or as_str(
                typed.get("inline_code")
            )
            out.update(h.lower() for h in LUA_REMOVE.findall(source))
    return out


def _header_blocks(route: dict) -> list[dict[str, object]]:
    """Each match block's header matches (header -> its match spec), claim/pseudo headers left out."""
    out = []
    for m in map(as_dict, as_list(route.get("match"))):
        out.append(
            {
                k: v
                for k, v in as_dict(m.get("headers")).items()
                if isinstance(k, str) and not k.startswith((CLAIM_PREFIX, ":"))
            }
        )
    return out or [{}]


def _overlap(route: dict, other: dict) -> bool:
    """Can one request satisfy ``other``'s header matches and ``route``'s shared ones alike? Two routes that
    match one header with different values (``tier: premium`` / ``tier: standard``) never compete: the
    extra headers of one do not choose between them."""
    for mine in _header_blocks(route):
        for theirs in _header_blocks(other):
            if all(mine[k] == v for k, v in theirs.items() if k in mine):
                return True
    return False


def _same_without(ix: Index, vs: Obj, routes: list[dict], route: dict, key: str) -> bool:
    """Does a request matching ``route`` but without header ``key`` still reach ``route``'s destinations
    (another rule with exactly the other header matches goes there)? Then ``key`` picks nothing: e.g.
    ``task: summarize, tier: premium`` and ``tier: premium`` both lead to the 8B's premium subset."""
    mine = _dests(ix, vs, route)
    wanted = [{k: v for k, v in block.items() if k != key} for block in _header_blocks(route)]
    return any(
        other is not route
        and _dests(ix, vs, other) == mine
        and any(b in wanted for b in _header_blocks(other))
        for other in routes
    )


def check_header_routing(ix: Index) -> Iterator[Hit]:
    """FK119: tier/canary routing on an unauthenticated client header."""
    bound = _bound_headers(ix)
    for vs in ix.of(NETWORKING, "VirtualService"):
        routes = [as_dict(r) for r in as_list(vs.spec.get("http"))]
        for i, route in enumerate(routes):
            keys = _header_keys(route)
            if not keys or "route" not in route:
                continue
            mine = _dests(ix, vs, route)
            decisive = {k for k in keys if TIER_OR_CANARY.search(k)}
            for other in routes:
                theirs = _dests(ix, vs, other)
                if other is route or not theirs or mine == theirs:
                    continue
                same_hosts = {h for h, _ in mine} == {h for h, _ in theirs}
                if same_hosts and _header_keys(other) <= keys and _overlap(route, other):
                    decisive |= keys - _header_keys(other)  # the headers that pick another subset (canary)
            for key in sorted(decisive - bound, key=str.lower):
                if key.lower() in bound or _same_without(ix, vs, routes, route, key):
                    continue
                where = ", ".join(f"{h}{'/' + s if s else ''}" for h, s in sorted(mine))
                yield Hit(vs, ("spec", "http", i, "match"), "FK119",
                          f"rule {as_str(route.get('name')) or '#' + str(i)} sends requests with client-controlled "
                          f"header {key!r} to {where}, and nothing binds the header to an authenticated identity "
                          "(no RequestAuthentication outputClaimToHeaders writes it, no route strips or sets it): "
                          "any client can pick this tier or canary",
                          f"route on '{CLAIM_PREFIX}.<claim>' with a RequestAuthentication on the gateway, or write "
                          f"{key} from a claim (outputClaimToHeaders) and strip the client's copy at the gateway")  # fmt: skip


def _subset_labels(ix: Index, fqdn: str, subset: str) -> dict[str, str] | None:
    for dr in ix.drs_for(fqdn):
        for s in map(as_dict, as_list(dr.spec.get("subsets"))):
            if s.get("name") == subset:
                return str_map(s.get("labels"))
    return None


def _pins_network(dr: Obj) -> bool:
    text = repr(dr.spec)
    return any(label in text for label in REMOTE_LABELS)


def _workloads_for(ix: Index, fqdn: str, labels: dict[str, str]) -> tuple[list[Obj], bool]:
    """Workloads behind ``fqdn`` whose pod template also carries ``labels``; second value False when the
    input cannot tell (Service or its namespace's workloads absent)."""
    parts = ix.split_fqdn(fqdn)
    svc = ix.services.get((parts[1], parts[0])) if parts else None
    if svc is None:
        return [], False
    selector = str_map(svc.spec.get("selector"))
    candidates = workloads_by_namespace(ix).get(svc.namespace, [])
    if not candidates:
        return [], False
    return [w for w in candidates if selects({**selector, **labels}, ix.pod_labels(w))], True


def workloads_by_namespace(ix: Index) -> dict[str, list[Obj]]:
    if "workloads_by_ns" not in ix.memo:
        out: dict[str, list[Obj]] = {}
        for (ns, _, _), w in sorted(ix.workloads.items()):
            out.setdefault(ns, []).append(w)
        ix.memo["workloads_by_ns"] = out
    result: dict[str, list[Obj]] = ix.memo["workloads_by_ns"]
    return result


def _scalers_by_target(ix: Index) -> dict[tuple[str, str], Obj]:
    if "scalers_by_target" not in ix.memo:
        out: dict[tuple[str, str], Obj] = {}
        for so in [*ix.of("autoscaling", "HorizontalPodAutoscaler"), *ix.of(KEDA, "ScaledObject")]:
            out[(so.namespace, as_str(as_dict(so.spec.get("scaleTargetRef")).get("name")))] = so
        ix.memo["scalers_by_target"] = out
    result: dict[tuple[str, str], Obj] = ix.memo["scalers_by_target"]
    return result


def _min_replicas(ix: Index, w: Obj) -> tuple[int, str]:
    """Smallest replica count the workload can reach, and why (a ScaledObject wins over an HPA)."""
    scaler = _scalers_by_target(ix).get((w.namespace, w.name))
    if scaler is not None and scaler.kind == "ScaledObject":
        low = as_int(scaler.spec.get("minReplicaCount"))
        idle = as_int(scaler.spec.get("idleReplicaCount"))
        if idle == 0 or not low:
            return 0, f"{scaler.ref} allows {'idleReplicaCount' if idle == 0 else 'minReplicaCount'} 0"
        return low, scaler.ref
    if scaler is not None:
        low = as_int(scaler.spec.get("minReplicas"))
        return (1 if low is None else low), scaler.ref
    replicas = as_int(w.spec.get("replicas"))
    return (1 if replicas is None else replicas), f"{w.ref} replicas"


def check_weighted_empty_subsets(ix: Index) -> Iterator[Hit]:
    """FK120: weighted split to a subset that can have zero endpoints."""
    for vs in ix.of(NETWORKING, "VirtualService"):
        for i, route in enumerate(map(as_dict, as_list(vs.spec.get("http")))):
            entries = [as_dict(e) for e in as_list(route.get("route"))]
            weighted = [(j, e) for j, e in enumerate(entries) if (as_int(e.get("weight")) or 0) > 0]
            if len(weighted) < 2:
                continue
            for j, e in weighted:
                d = as_dict(e.get("destination"))
                subset = as_str(d.get("subset"))
                if not subset or not as_str(d.get("host")):
                    continue
                fq = ix.fqdn(d["host"], vs.namespace)
                labels = _subset_labels(ix, fq, subset)
                if labels is None:
                    continue
                found, known = _workloads_for(ix, fq, labels)
                if not known:
                    continue
                if not found:
                    if any(_pins_network(dr) for dr in ix.drs_for(fq)):
                        continue  # multi-network rule: the subset's pods may run in another cluster
                    why = f"no workload behind {fq} carries the subset's labels {labels}"
                else:
                    lows = [_min_replicas(ix, w) for w in found]
                    if any(n > 0 for n, _ in lows):
                        continue
                    why = "every workload in it can scale to 0 (" + "; ".join(r for _, r in lows) + ")"
                yield Hit(vs, ("spec", "http", i, "route", j), "FK120",
                          f"weight {e['weight']} goes to subset {subset!r} of {fq}, but {why}: while it has no "
                          "endpoints that share of requests fails with 503 UH",
                          "keep at least one replica in every weighted subset (minReplicaCount >= 1), or move the "
                          "weight away before scaling the subset down")  # fmt: skip


def check_mirrors(ix: Index) -> Iterator[Hit]:
    """FK121: mirroring to another network, or to a subset with no local endpoints."""
    for d in ix.route_dests:
        if not d.mirror or not d.subset:
            continue
        labels = _subset_labels(ix, d.fqdn, d.subset)
        if labels is None:
            continue
        pinned = {k: v for k, v in labels.items() if k in REMOTE_LABELS}
        found, known = _workloads_for(ix, d.fqdn, labels)
        if pinned:
            why = f"the subset is pinned to {', '.join(f'{k}={v}' for k, v in sorted(pinned.items()))}"
        elif known and not found:
            why = "no workload in this cluster's input carries the subset's labels (no local endpoints)"
        else:
            continue
        yield Hit(d.vs, d.path, "FK121",
                  f"mirror to {d.fqdn} subset {d.subset!r}: {why}, so every mirrored generation crosses the "
                  "east-west gateway and runs a second, unread generation in another network",
                  "mirror to a subset with local endpoints, or sample with mirrorPercentage and keep shadow "
                  "traffic inside the network")  # fmt: skip


def check_per_try_timeouts(ix: Index) -> Iterator[Hit]:
    """FK122: perTryTimeout below the route timeout while per-try timeouts are never retried."""
    for vs in ix.of(NETWORKING, "VirtualService"):
        for i, route in enumerate(map(as_dict, as_list(vs.spec.get("http")))):
            retries = as_dict(route.get("retries"))
            per_try = parse_duration(as_str(retries.get("perTryTimeout")))
            if "route" not in route or per_try is None or per_try <= timedelta(0):
                continue
            if (as_int(retries.get("attempts")) or 0) <= 0:
                continue
            timeout = parse_duration(as_str(route.get("timeout")))
            if timeout is not None and timedelta(0) < timeout <= per_try:
                continue
            retry_on = as_str(retries.get("retryOn")) or ISTIO_DEFAULT_RETRY_ON
            if {t.strip() for t in retry_on.split(",")} & RETRIES_504:
                continue  # FK105 reports replaying generations
            limit = human(timeout) if timeout and timeout > timedelta(0) else "unlimited"
            yield Hit(vs, ("spec", "http", i, "retries", "perTryTimeout"), "FK122",
                      f"perTryTimeout {human(per_try)} is shorter than the route timeout ({limit}) but retryOn "
                      f"({retry_on}) never retries the 504 a per-try timeout produces: any generation longer than "
                      f"{human(per_try)} is cut off, so the route timeout is never reached",
                      "drop perTryTimeout (or set it to the route timeout): the safe retry conditions fire before "
                      "vLLM saw the request, so a per-try limit only cuts long generations")  # fmt: skip


def check_failover_priority(ix: Index) -> Iterator[Hit]:
    """FK210: failoverPriority on custom labels across networks."""
    for dr in ix.of(NETWORKING, "DestinationRule"):
        for p in traffic_policies(dr):
            lls = as_dict(as_dict(p.body.get("loadBalancer")).get("localityLbSetting"))
            labels = [as_str(x).split("=", 1)[0] for x in as_list(lls.get("failoverPriority")) if as_str(x)]
            custom = [x for x in labels if x not in TOPOLOGY]
            if custom and any(x in REMOTE_LABELS for x in labels):
                yield Hit(dr, (*p.path, "loadBalancer", "localityLbSetting", "failoverPriority"), "FK210",
                          f"failoverPriority ranks endpoints by custom label(s) {', '.join(custom)} in a multi-network "
                          "mesh: endpoints of another network are reached through the east-west gateway, whose "
                          "endpoint carries only the network and cluster labels, so they never match and the "
                          "intended cross-network fallback order is lost",
                          "express cross-network fallback with topology labels only (topology.istio.io/network, "
                          "topology.istio.io/cluster, region, zone) and choose fallback models in the "
                          "VirtualService (ordered routes or weights) instead of endpoint labels")  # fmt: skip


CHECKS = [check_header_routing, check_weighted_empty_subsets, check_mirrors, check_per_try_timeouts,
          check_failover_priority]  # fmt: skip
