"""Where one request goes: the edge, the VirtualService, the Envoy cluster, the endpoint, the pod.

Each step follows the rule cited in :mod:`fleetkit.simulate` (R1–R12); the numbers below refer to it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetkit.simulate import core
from fleetkit.simulate.core import Distribution, Outcome, Request, merge
from fleetkit.simulate.edge import Edge, sticky_bucket
from fleetkit.simulate.fleet import (
    DEFAULT_MAX_EJECTION_PERCENT,
    LABEL_CLUSTER,
    LABEL_NETWORK,
    LABEL_REGION,
    LABEL_ZONE,
    ClusterConfig,
    Fleet,
    Route,
    Workload,
    selects,
)
from fleetkit.simulate.scenarios import Scenario

#: Envoy's default overprovisioning factor (1.4): a priority level with at least 1/1.4 ≈ 71.4 %
#: healthy hosts takes all of its share (R7).
OVERPROVISIONING = 1.4
#: Istio's default when a connection pool limit is not set: effectively unlimited (R9).
UNLIMITED = 2**32 - 1


@dataclass(frozen=True)
class _Raw:
    """Endpoints before priorities: pods of one workload in one zone on the caller's network, or one
    east-west gateway endpoint standing for a remote cluster's pods (R5)."""

    labels: Mapping[str, str]
    locality: tuple[str, str]  # (region, zone)
    hosts: float  # host count Envoy sees (a gateway endpoint is one host)
    weight: float  # load-balancing weight (the pods a gateway endpoint stands for, R5)
    failing: float  # hosts returning errors
    result: Distribution  # outcome of a request sent to a non-failing host


@dataclass
class _Group:
    """Hosts of one Envoy cluster that share a priority: pods of one workload in one zone on the
    caller's network, or one east-west gateway endpoint for a remote cluster (R5)."""

    priority: int
    hosts: float  # host count Envoy sees (a gateway endpoint is one host)
    weight: float  # load-balancing weight (pods behind a gateway endpoint, R5)
    healthy: float  # expected non-ejected hosts
    #: outcome distribution of a request sent to this group's healthy hosts
    result: Distribution


def _match_value(cond: Mapping[str, Any], value: str | None) -> bool:
    if value is None:
        return False
    if "exact" in cond:
        return value == str(cond["exact"])
    if "prefix" in cond:
        return value.startswith(str(cond["prefix"]))
    if "regex" in cond:
        return re.fullmatch(str(cond["regex"]), value) is not None
    return True  # {} : present


class Simulator:
    """Outcome distributions for requests and scenarios over one :class:`Fleet` (caches per scenario)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self._cache: dict[tuple[Any, ...], Distribution] = {}
        self.notes: list[str] = list(fleet.notes)
        for cfg in fleet.config.values():
            self.notes += [n for n in cfg.edge.notes if n not in self.notes]

    # ----------------------------------------------------------------- R1/R2: the edge
    def run(self, request: Request, scenario: Scenario) -> Distribution:
        fleet = self.fleet
        if (
            request.origin not in fleet.clusters
            or scenario.cluster_down(fleet, request.origin)
            or (request.zone and request.zone in scenario.zones)
        ):
            return {Outcome.error(503, core.INGRESS_DOWN): 1.0}
        cfg = fleet.config[request.origin]
        parts: list[tuple[float, Distribution]] = []
        for p, headers, body_model, error in self._edge(cfg.edge, request):
            if error is not None:
                parts.append((p, {error: 1.0}))
                continue
            limited = self._rate_limited(cfg.edge, headers, request.rate)
            dist = self._route(cfg, request, headers, body_model, scenario)
            parts.append(
                (p, merge([(limited, {Outcome.error(429, core.RATE_LIMITED): 1.0}), (1 - limited, dist)]))
            )
        return merge(parts)

    def _edge(
        self, edge: Edge, request: Request
    ) -> list[tuple[float, dict[str, str], str | None, Outcome | None]]:
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in edge.stripped}
        for header, claim in edge.claim_headers:
            if claim in request.claims:
                value = request.claims[claim]
                headers[header] = f"{headers[header]},{value}" if header in headers else value
        router = edge.router
        if router is None:
            return [(1.0, headers, request.model, None)]
        h = router.headers

        def claim(role: str) -> str | None:
            header = router.claim_headers.get(role)
            return headers.get(header) if header else None

        tier_claim = claim("tier")
        tier = router.tier_map.get(tier_claim, router.default_tier) if tier_claim else router.default_tier
        if "tier" in h and tier:
            headers[h["tier"]] = tier
        if claim("tenant") and "tenant" in h:
            headers[h["tenant"]] = str(claim("tenant"))
        cohorts: list[tuple[float, str | None]]
        cohort = claim("cohort")
        if cohort is not None and cohort in router.cohorts_known:
            cohorts = [(1.0, cohort)]
        elif claim("subject") is not None:
            cohorts = [(1.0, _sticky(router.sticky, sticky_bucket(str(claim("subject")))))]
        else:  # a class of subjects: each cohort takes its percent (R2)
            total = sum(p for _, p in router.sticky)
            cohorts = [(p / 100, c) for c, p in router.sticky] + [(max(0.0, 1 - total / 100), None)]
        body_model = request.model
        if request.method == "POST" and request.path.split("?")[0] in router.body_paths:
            if not request.model:
                return [(1.0, headers, None, Outcome.error(400, core.BAD_REQUEST))]
            target = router.models.get(request.model)
            if target is None:
                return [(1.0, headers, None, Outcome.error(404, core.UNKNOWN_MODEL))]
            if "model" in h:
                headers[h["model"]] = target[0]
            body_model = target[1]
        out = []
        for p, c in cohorts:
            if p <= 0:
                continue
            hh = dict(headers)
            if c is not None and "cohort" in h:
                hh[h["cohort"]] = c
            out.append((p, hh, body_model, None))
        return out

    @staticmethod
    def _rate_limited(edge: Edge, headers: Mapping[str, str], rate: float) -> float:
        """Share of a class's requests over its local rate limit at one gateway replica (R10)."""
        if rate <= 0:
            return 0.0
        share = 0.0
        for (key, value), limit in edge.limits.items():
            header = edge.limit_headers.get(key)
            if header and headers.get(header) == value and rate > limit:
                share = max(share, 1 - limit / rate)
        return share

    # ----------------------------------------------------------------- R3/R4: the VirtualService
    def _matches(self, m: Mapping[str, Any], request: Request, headers: Mapping[str, str]) -> bool:
        for name, cond in (m.get("headers") or {}).items():
            if not _match_value(cond or {}, headers.get(name.lower())):
                return False
        for name, cond in (m.get("withoutHeaders") or {}).items():
            if _match_value(cond or {}, headers.get(name.lower())):
                return False
        if "uri" in m and not _match_value(m["uri"], request.path.split("?")[0]):
            return False
        if "method" in m and not _match_value(m["method"], request.method):
            return False
        unsupported = set(m) - {"headers", "withoutHeaders", "uri", "method", "name", "gateways"}
        if unsupported:
            note = f"match fields not simulated (treated as not matching): {', '.join(sorted(unsupported))}"
            if note not in self.notes:
                self.notes.append(note)
            return False
        return True

    def _route(
        self,
        cfg: ClusterConfig,
        request: Request,
        headers: Mapping[str, str],
        body_model: str | None,
        scenario: Scenario,
    ) -> Distribution:
        route: Route | None = None
        for r in cfg.routes:
            if any(self._matches(m, request, headers) for m in r.matches):
                route = r
                break
        if route is None:
            return {Outcome.error(404, core.NO_ROUTE): 1.0}
        if route.direct_response is not None:
            status = route.direct_response[0]
            return {Outcome.error(status, core.UNKNOWN_MODEL if status == 404 else "direct response"): 1.0}
        override = cfg.edge.route_clusters.get(route.name)
        if override is not None:
            return self._cluster(request, override, body_model, scenario, request.concurrency)
        total = sum(d.weight for d in route.destinations)
        if total <= 0:
            return {Outcome.error(500, core.NO_ROUTE): 1.0}
        return merge(
            (
                d.weight / total,
                self._cluster(
                    request,
                    f"outbound|0|{d.subset or ''}|{d.host}",
                    body_model,
                    scenario,
                    request.concurrency * d.weight / total,
                ),
            )
            for d in route.destinations
            if d.weight > 0
        )

    # ----------------------------------------------------------------- R5–R9: Envoy clusters
    def _cluster(
        self, request: Request, name: str, body_model: str | None, scenario: Scenario, concurrency: float
    ) -> Distribution:
        key = (request.origin, request.zone, name, body_model, scenario, round(concurrency, 6))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        edge = self.fleet.config[request.origin].edge
        members = edge.aggregates.get(name)
        if members is not None:  # R8: an aggregate cluster linearizes its members' priority levels
            levels: list[list[_Group]] = []
            policy: dict[str, Any] = {}
            for m in members:
                lv, pol = self._levels(request, m, body_model, scenario)
                if lv is None:
                    continue
                levels += lv
                policy = policy or pol
            dist = _balance(levels, policy, concurrency)
        else:
            lv, pol = self._levels(request, name, body_model, scenario)
            dist = (
                _balance(lv, pol, concurrency)
                if lv is not None
                else {Outcome.error(503, core.NO_ENDPOINTS): 1.0}
            )
        self._cache[key] = dist
        return dist

    def _levels(
        self, request: Request, name: str, body_model: str | None, scenario: Scenario
    ) -> tuple[list[list[_Group]] | None, dict[str, Any]]:
        """The priority levels of one Istio cluster ``outbound|port|subset|host`` seen from the
        origin's ingress gateway; None when the cluster does not exist (R4)."""
        parts = name.split("|")
        if len(parts) != 4:
            return None, {}
        _, _, subset_name, host = parts
        fleet = self.fleet
        rule = fleet.config[request.origin].rules.get(host)
        subset = None
        if subset_name:
            if rule is None or subset_name not in rule.subsets:
                return None, {}
            subset = rule.subsets[subset_name]
        policy = rule.effective(subset_name or None) if rule else {}
        origin = fleet.clusters[request.origin]
        proxy = {
            LABEL_CLUSTER: origin.name,
            LABEL_NETWORK: origin.network,
            LABEL_REGION: origin.region,
            LABEL_ZONE: request.zone,
        }
        raws: list[_Raw] = []
        remote: dict[str, list[Workload]] = {}
        for cname, ccfg in fleet.config.items():
            selector = ccfg.services.get(host)
            if selector is None:
                continue
            info = fleet.clusters[cname]
            for w in fleet.workloads_in(cname):
                if not selects(selector, w.labels) or (
                    subset is not None and not selects(subset.labels, w.labels)
                ):
                    continue
                pods = scenario.pods(fleet, w)
                if not pods:
                    continue
                if info.network == origin.network:
                    raws += self._pod_groups(w, pods, info.network, info.region, scenario, body_model)
                else:
                    remote.setdefault(cname, []).append(w)
        for cname, backing in sorted(remote.items()):
            info = fleet.clusters[cname]
            n = float(sum(sum(scenario.pods(fleet, w).values()) for w in backing))
            all_failing = all(scenario.failing(w) for w in backing)
            # R5: one gateway endpoint, weight = the pods it stands for, labels = cluster + network only
            raws.append(
                _Raw(
                    {LABEL_CLUSTER: cname, LABEL_NETWORK: info.network},
                    (info.region, ""),
                    1.0,
                    n,
                    1.0 if all_failing else 0.0,
                    self._remote(cname, backing, policy, body_model, scenario),
                )
            )
        if not raws:
            return [], policy
        return _levels_of(raws, policy, proxy), policy

    def _pod_groups(
        self,
        w: Workload,
        pods: Mapping[str, int],
        network: str,
        region: str,
        scenario: Scenario,
        body_model: str | None,
    ) -> list[_Raw]:
        out = []
        failing = scenario.failing(w)
        for zone, n in sorted(pods.items()):
            labels = {
                **w.labels,
                LABEL_CLUSTER: w.cluster,
                LABEL_NETWORK: network,
                LABEL_REGION: region,
                LABEL_ZONE: zone,
            }
            out.append(
                _Raw(
                    labels,
                    (region, zone),
                    float(n),
                    float(n),
                    float(n) if failing else 0.0,
                    self._pod(w, body_model),
                )
            )
        return out

    # ----------------------------------------------------------------- R5: behind an east-west gateway
    def _remote(
        self,
        cname: str,
        backing: list[Workload],
        policy: Mapping[str, Any],
        body_model: str | None,
        scenario: Scenario,
    ) -> Distribution:
        """The remote east-west gateway balances over its cluster's pods of the subset, with the same
        traffic policy, seen from the gateway (its cluster, network and region)."""
        info = self.fleet.clusters[cname]
        proxy = {LABEL_CLUSTER: cname, LABEL_NETWORK: info.network, LABEL_REGION: info.region, LABEL_ZONE: ""}
        raws: list[_Raw] = []
        for w in backing:
            raws += self._pod_groups(
                w, scenario.pods(self.fleet, w), info.network, info.region, scenario, body_model
            )
        return _balance(_levels_of(raws, policy, proxy), policy, 0.0)

    # ----------------------------------------------------------------- R11: the pod
    @staticmethod
    def _pod(w: Workload, body_model: str | None) -> Distribution:
        """vLLM serves a request whose ``model`` is one of its served names, else 404."""
        if body_model is None or body_model in w.served_names:
            sub = body_model is not None and body_model != w.served_names[0]
            return {Outcome.served(w.cluster, w.model, w.version, w.gpu_class, sub): 1.0}
        return {Outcome.error(404, core.MODEL_NOT_SERVED): 1.0}


def _levels_of(raws: list[_Raw], policy: Mapping[str, Any], proxy: Mapping[str, str]) -> list[list[_Group]]:
    prio = _priorities(policy, proxy, raws)
    share = _ejection(policy, raws)
    levels: dict[int, list[_Group]] = {}
    for r, p in zip(raws, prio):
        left = r.failing * (1 - share)  # failing hosts outlier detection may not eject
        healthy = r.hosts - r.failing * share
        ratio = healthy / r.hosts if r.hosts else 0.0
        res = merge(
            [
                ((healthy - left) / healthy if healthy else 0.0, r.result),
                (left / healthy if healthy else 0.0, {Outcome.error(503, core.FAILING_ENDPOINT): 1.0}),
            ]
        )
        levels.setdefault(p, []).append(_Group(p, r.hosts, r.weight * ratio, healthy, res))
    return [levels[p] for p in sorted(levels)]


def _ejection(policy: Mapping[str, Any], raws: list[_Raw]) -> float:
    """Share of failing hosts outlier detection ejects: all of them up to ``maxEjectionPercent`` of
    the cluster's hosts, at least one (R6); none without outlier detection."""
    outlier = policy.get("outlierDetection")
    failing = sum(r.failing for r in raws)
    if outlier is None or failing <= 0:
        return 0.0
    total = sum(r.hosts for r in raws)
    pct = float(outlier.get("maxEjectionPercent", DEFAULT_MAX_EJECTION_PERCENT))
    cap = max(1.0, math.floor(pct * total / 100)) if pct > 0 else 0.0
    return min(1.0, cap / failing)


def _priorities(policy: Mapping[str, Any], proxy: Mapping[str, str], raws: list[_Raw]) -> list[int]:
    """Priority of each endpoint group (R7): ``failoverPriority`` label matching, else region/zone
    locality (+ ``failover`` from/to); only with outlier detection — without it Istio applies no
    failover priorities and every endpoint is priority 0."""
    lb = policy.get("loadBalancer") or {}
    loc = lb.get("localityLbSetting") or {}
    if policy.get("outlierDetection") is None or loc.get("enabled", True) is False or loc.get("distribute"):
        return [0] * len(raws)
    spec = [str(x) for x in loc.get("failoverPriority") or []]
    if spec:
        names = [x.split("=", 1)[0] for x in spec]
        override = {x.split("=", 1)[0]: x.split("=", 1)[1] for x in spec if "=" in x}
        out = []
        for r in raws:
            prio = 0
            for j, name in enumerate(names):
                if override.get(name, proxy.get(name, "")) != r.labels.get(name, ""):
                    prio = len(names) - j
                    break
            out.append(prio)
        return out
    failover = {str(f.get("from")): str(f.get("to")) for f in loc.get("failover") or []}
    region, zone = proxy.get(LABEL_REGION, ""), proxy.get(LABEL_ZONE, "")
    out = []
    for r in raws:
        if r.locality[0] == region:
            out.append(0 if r.locality[1] == zone else 2)
        elif region in failover and failover[region] != r.locality[0]:
            out.append(4)
        else:
            out.append(3)
    return out


def _balance(
    levels: list[list[_Group]] | None, policy: Mapping[str, Any], concurrency: float
) -> Distribution:
    """Envoy priority load (R7), weighted choice within a level, circuit breakers (R9)."""
    if not levels:
        return {Outcome.error(503, core.NO_ENDPOINTS): 1.0}
    health = [
        min(100.0, OVERPROVISIONING * 100 * sum(g.healthy for g in lv) / sum(g.hosts for g in lv))
        for lv in levels
    ]
    total = sum(health)
    if total <= 0:
        return {Outcome.error(503, core.ALL_EJECTED): 1.0}
    parts: list[tuple[float, Distribution]] = []
    left = 100.0
    for lv, h in zip(levels, health):
        load = min(left, h if total >= 100 else h * 100 / total)
        left -= load
        weight = sum(g.weight for g in lv)
        if load <= 0 or weight <= 0:
            continue
        parts += [(load / 100 * g.weight / weight, g.result) for g in lv if g.weight > 0]
    dist = merge(parts)
    opened = _overflow(policy, concurrency)
    if opened > 0:
        dist = merge([(1 - opened, dist), (opened, {Outcome.error(503, core.CIRCUIT_OPEN): 1.0})])
    return dist


def _overflow(policy: Mapping[str, Any], concurrency: float) -> float:
    """Share of requests the cluster's circuit breakers reject at one proxy (R9): in flight at most
    min(maxConnections, http2MaxRequests) plus http1MaxPendingRequests waiting."""
    if concurrency <= 0:
        return 0.0
    pool = policy.get("connectionPool") or {}
    tcp, http = pool.get("tcp") or {}, pool.get("http") or {}
    limit = min(
        int(tcp.get("maxConnections", UNLIMITED)), int(http.get("http2MaxRequests", UNLIMITED))
    ) + int(http.get("http1MaxPendingRequests", UNLIMITED))
    return max(0.0, 1 - limit / concurrency)


def _sticky(sticky: tuple[tuple[str, float], ...], bucket: int) -> str | None:
    upto = 0.0
    for name, percent in sticky:
        upto += percent
        if bucket < upto:
            return name
    return None
