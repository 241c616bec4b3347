"""Where one request goes: the edge, the VirtualService, the Envoy cluster, the endpoint, the pod.

Each step follows the rule cited in :mod:`fleetkit.simulate` (R1–R12); the numbers below refer to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetkit.simulate import core
from fleetkit.simulate.balancing import OVERPROVISIONING, Group, Raw, Unit, balance, levels_of, priorities
from fleetkit.simulate.core import Distribution, Outcome, Request, merge
from fleetkit.simulate.edge import BodyRouter, Edge, sticky_bucket
from fleetkit.simulate.fleet import (
    LABEL_CLUSTER,
    LABEL_NETWORK,
    LABEL_REGION,
    LABEL_ZONE,
    ClusterConfig,
    MeshRoute,
    SimulatedFleet,
    Workload,
    selects,
)
from fleetkit.simulate.scenarios import Scenario


@dataclass
class _Members:
    policy: Mapping[str, Any]
    host: str
    subset: str
    #: (priority, unit), sorted by priority
    units: list[tuple[int, Unit]]


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
    """Outcome distributions for requests and scenarios over one :class:`SimulatedFleet` (caches per scenario)."""

    def __init__(self, fleet: SimulatedFleet) -> None:
        self.fleet = fleet
        self._cache: dict[tuple[Any, ...], Distribution] = {}
        self._members_cache: dict[tuple[str, str, str], _Members | None] = {}
        #: per request object (identity): the scenario-independent part of its way (edge, route)
        self._plans: dict[
            Request, list[tuple[float, Distribution | None, list[tuple[float, str, float]], str | None]]
        ] = {}
        self._scenario_ids: dict[Scenario, int] = {}
        self._sid_by_id: dict[int, tuple[Scenario, int]] = {}
        self._bases: dict[str, Scenario] = {}
        self._pods: dict[int, dict[str, Mapping[str, int]]] = {}
        self._by_cluster: dict[str, list[Workload]] = {}
        self._workloads = {w.key: w for w in fleet.workloads}
        self._selection: dict[tuple[Any, ...], list[Workload]] = {}
        self._down: dict[tuple[int, str], bool] = {}
        self._deps_cache: dict[tuple[Any, ...], tuple[Distribution, frozenset[str]]] = {}
        self._remote_cache: dict[tuple[Any, ...], tuple[Distribution, frozenset[str]]] = {}
        for w in fleet.workloads:
            self._by_cluster.setdefault(w.cluster, []).append(w)
        self.notes: list[str] = list(fleet.notes)
        for cfg in fleet.config.values():
            self.notes += [n for n in cfg.edge.notes if n not in self.notes]

    # ----------------------------------------------------------------- R1/R2: the edge
    def run(self, request: Request, scenario: Scenario) -> Distribution:
        fleet = self.fleet
        down_key = (self._sid(scenario), request.origin)
        down = self._down.get(down_key)
        if down is None:
            down = self._down[down_key] = request.origin not in fleet.clusters or scenario.cluster_down(
                fleet, request.origin
            )
        if down or (request.zone and request.zone in scenario.zones):
            return {Outcome.error(503, core.INGRESS_DOWN): 1.0}
        plan = self._plans.get(request)
        if plan is None:
            plan = self._plans[request] = self._plan(request)
        parts: list[tuple[float, Distribution]] = []
        for p, terminal, clusters, body_model in plan:
            if terminal is not None:
                parts.append((p, terminal))
                continue
            for share, name, concurrency in clusters:
                parts.append((p * share, self._cluster(request, name, body_model, scenario, concurrency)))
        return merge(parts)

    def _plan(
        self, request: Request
    ) -> list[tuple[float, Distribution | None, list[tuple[float, str, float]], str | None]]:
        """What does not depend on the scenario: the edge (R2, R10) and the route (R3, R4) — per
        branch, the Envoy clusters the request is split over."""
        cfg = self.fleet.config[request.origin]
        out: list[tuple[float, Distribution | None, list[tuple[float, str, float]], str | None]] = []
        for p, headers, body_model, error in self._edge(cfg.edge, request):
            if error is not None:
                out.append((p, {error: 1.0}, [], None))
                continue
            limited = self._rate_limited(cfg.edge, headers, request.rate)
            if limited > 0:
                out.append((p * limited, {Outcome.error(429, core.RATE_LIMITED): 1.0}, [], None))
            terminal, clusters = self._route(cfg, request, headers)
            out.append((p * (1 - limited), terminal, clusters, body_model))
        return out

    def _edge(
        self, edge: Edge, request: Request
    ) -> list[tuple[float, dict[str, str], str | None, Outcome | None]]:
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in edge.stripped}
        for header, claim_name in edge.claim_headers:
            if claim_name in request.claims:
                value = request.claims[claim_name]
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
        cohorts = _cohorts(router, claim("cohort"), claim("subject"))
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
        out: list[tuple[float, dict[str, str], str | None, Outcome | None]] = []
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
        self, cfg: ClusterConfig, request: Request, headers: Mapping[str, str]
    ) -> tuple[Distribution | None, list[tuple[float, str, float]]]:
        route: MeshRoute | None = None
        for r in cfg.routes:
            if any(self._matches(m, request, headers) for m in r.matches):
                route = r
                break
        if route is None:
            return {Outcome.error(404, core.NO_ROUTE): 1.0}, []
        if route.direct_response is not None:
            status = route.direct_response[0]
            return {
                Outcome.error(status, core.UNKNOWN_MODEL if status == 404 else "direct response"): 1.0
            }, []
        override = cfg.edge.route_clusters.get(route.name)
        if override is not None:
            return None, [(1.0, override, request.concurrency)]
        total = sum(d.weight for d in route.destinations)
        if total <= 0:
            return {Outcome.error(500, core.NO_ROUTE): 1.0}, []
        return None, [
            (
                d.weight / total,
                f"outbound|0|{d.subset or ''}|{d.host}",
                request.concurrency * d.weight / total,
            )
            for d in route.destinations
            if d.weight > 0
        ]

    # ----------------------------------------------------------------- R5–R9: Envoy clusters
    def _sid(self, scenario: Scenario) -> int:
        """A small id per scenario (by identity first: hashing a scenario's fields is the slow part)."""
        hit = self._sid_by_id.get(id(scenario))
        if hit is not None and hit[0] is scenario:
            return hit[1]
        sid = self._scenario_ids.get(scenario)
        if sid is None:
            sid = self._scenario_ids[scenario] = len(self._scenario_ids)
            self._pods[sid] = {}
        self._sid_by_id[id(scenario)] = (scenario, sid)
        return sid

    def _pods_of(self, sid: int, scenario: Scenario, w: Workload) -> Mapping[str, int]:
        cache = self._pods[sid]
        pods = cache.get(w.key)
        if pods is None:
            pods = cache[w.key] = scenario.pods(self.fleet, w)
        return pods

    def _cluster(
        self, request: Request, name: str, body_model: str | None, scenario: Scenario, concurrency: float
    ) -> Distribution:
        return self._cluster_deps(
            request.origin, request.zone, name, body_model, scenario, round(concurrency, 6)
        )[0]

    def _cluster_deps(
        self,
        origin: str,
        zone: str,
        name: str,
        body_model: str | None,
        scenario: Scenario,
        concurrency: float,
    ) -> tuple[Distribution, frozenset[str]]:
        """One Envoy cluster's outcome and the workloads it depended on. A scenario that leaves every
        one of those workloads as the failure-free baseline has them reuses the baseline's result (the
        same levels are built and the same early exit is taken)."""
        sid = self._sid(scenario)
        key = (origin, zone, name, body_model, sid, concurrency)
        hit = self._deps_cache.get(key)
        if hit is not None:
            return hit
        if not scenario.ejected and not scenario.is_healthy():
            base = self._bases.get(scenario.baseline)
            if base is None:
                base = self._bases[scenario.baseline] = Scenario(baseline=scenario.baseline)
            bsid = self._sid(base)
            dist, deps = self._cluster_deps(origin, zone, name, body_model, base, concurrency)
            if all(self._pods_by_key(sid, scenario, k) == self._pods_by_key(bsid, base, k) for k in deps):
                self._deps_cache[key] = (dist, deps)
                return dist, deps
        used: set[str] = set()
        edge = self.fleet.config[origin].edge
        members = edge.aggregates.get(name)
        if members is not None:  # R8: an aggregate cluster linearizes its members' priority levels
            levels: list[list[Group]] = []
            policy: Mapping[str, Any] = {}
            for m in members:
                lv, pol = self._levels(origin, zone, m, body_model, scenario, sid, used)
                if lv is None:
                    continue
                levels += lv
                policy = policy or pol
            dist = balance(levels, policy, concurrency)
        else:
            lv, pol = self._levels(origin, zone, name, body_model, scenario, sid, used)
            dist = (
                balance(lv, pol, concurrency)
                if lv is not None
                else {Outcome.error(503, core.NO_ENDPOINTS): 1.0}
            )
        result = (dist, frozenset(used))
        self._deps_cache[key] = result
        return result

    def _pods_by_key(self, sid: int, scenario: Scenario, key: str) -> Mapping[str, int]:
        return self._pods_of(sid, scenario, self._workloads[key])

    def _members(self, origin: str, zone: str, name: str) -> _Members | None:
        """Scenario-independent facts of one Istio cluster seen from a proxy: its traffic policy and
        its endpoint units (a workload's pods in one zone on the proxy's network, or a remote
        cluster's gateway endpoint, R5) sorted by priority (R7). None: no such cluster (R4)."""
        key = (origin, zone, name)
        if key in self._members_cache:
            return self._members_cache[key]
        parts = name.split("|")
        result: _Members | None = None
        if len(parts) == 4:
            _, _, subset_name, host = parts
            fleet = self.fleet
            rule = fleet.config[origin].rules.get(host)
            subset = None
            if not subset_name or (rule is not None and subset_name in rule.subsets):
                if subset_name and rule is not None:
                    subset = rule.subsets[subset_name]
                policy = rule.effective(subset_name or None) if rule else {}
                info = fleet.clusters[origin]
                proxy = {
                    LABEL_CLUSTER: origin,
                    LABEL_NETWORK: info.network,
                    LABEL_REGION: info.region,
                    LABEL_ZONE: zone,
                }
                units: list[Unit] = []
                for cname, ccfg in sorted(fleet.config.items()):
                    selector = ccfg.services.get(host)
                    if selector is None:
                        continue
                    cinfo = fleet.clusters[cname]
                    chosen = self._selected(cname, selector, subset.labels if subset is not None else {})
                    if not chosen:
                        continue
                    if cinfo.network == info.network:
                        for w in chosen:
                            for z in sorted(w.zones) or [""]:
                                labels = {
                                    **w.labels,
                                    LABEL_CLUSTER: cname,
                                    LABEL_NETWORK: cinfo.network,
                                    LABEL_REGION: cinfo.region,
                                    LABEL_ZONE: z,
                                }
                                units.append(Unit(labels, (cinfo.region, z), (w,), z, False, cname))
                    else:  # R5: one gateway endpoint, only cluster + network labels
                        labels = {LABEL_CLUSTER: cname, LABEL_NETWORK: cinfo.network}
                        units.append(Unit(labels, (cinfo.region, ""), tuple(chosen), None, True, cname))
                prio = priorities(policy, proxy, units)
                ordered = sorted(zip(prio, range(len(units)), strict=True))
                result = _Members(policy, host, subset_name, [(p, units[i]) for p, i in ordered])
        self._members_cache[key] = result
        return result

    def _selected(self, cname: str, selector: Mapping[str, str], labels: Mapping[str, str]) -> list[Workload]:
        """Workloads of one cluster a Service selector and a subset's labels select (cached: many
        proxies ask the same)."""
        key = (cname, tuple(sorted(selector.items())), tuple(sorted(labels.items())))
        hit = self._selection.get(key)
        if hit is None:
            hit = self._selection[key] = [
                w
                for w in self._by_cluster.get(cname, [])
                if selects(selector, w.labels) and selects(labels, w.labels)
            ]
        return hit

    def _levels(
        self,
        origin: str,
        zone: str,
        name: str,
        body_model: str | None,
        scenario: Scenario,
        sid: int,
        used: set[str],
    ) -> tuple[list[list[Group]] | None, Mapping[str, Any]]:
        """The priority levels of one Istio cluster under a scenario. Without failing hosts, levels
        after the first ones whose health reaches 100 % take no load (R7) and are not built."""
        m = self._members(origin, zone, name)
        if m is None:
            return None, {}
        early_exit = not scenario.ejected
        raws: list[tuple[int, Raw]] = []
        health = 0.0
        level: int | None = None
        level_hosts = level_ok = 0.0
        for p, u in m.units:
            if p != level:
                if early_exit and level is not None and level_hosts:
                    health += min(100.0, OVERPROVISIONING * 100 * level_ok / level_hosts)
                    if health >= 100:
                        break
                level, level_hosts, level_ok = p, 0.0, 0.0
            raw = self._raw(u, m, body_model, scenario, sid, used)
            if raw is None:
                continue
            raws.append((p, raw))
            level_hosts += raw.hosts
            level_ok += raw.hosts - raw.failing
        if not raws:
            return [], m.policy
        return levels_of(raws, m.policy), m.policy

    def _raw(
        self, u: Unit, m: _Members, body_model: str | None, scenario: Scenario, sid: int, used: set[str]
    ) -> Raw | None:
        used.update(w.key for w in u.workloads)
        if not u.gateway:
            w = u.workloads[0]
            n = self._pods_of(sid, scenario, w).get(u.zone or "", 0)
            if not n:
                return None
            return Raw(
                u.labels,
                u.locality,
                float(n),
                float(n),
                float(n) if scenario.failing(w) else 0.0,
                self._pod(w, body_model),
            )
        n = sum(sum(self._pods_of(sid, scenario, w).values()) for w in u.workloads)
        if not n:
            return None
        alive = [w for w in u.workloads if self._pods_of(sid, scenario, w)]
        failing = 1.0 if all(scenario.failing(w) for w in alive) else 0.0
        dist, deps = self._remote(u.cluster, m.host, m.subset, body_model, scenario, sid)
        used.update(deps)
        return Raw(u.labels, u.locality, 1.0, float(n), failing, dist)

    # ----------------------------------------------------------------- R5: behind an east-west gateway
    def _remote(
        self, cname: str, host: str, subset: str, body_model: str | None, scenario: Scenario, sid: int
    ) -> tuple[Distribution, frozenset[str]]:
        """The remote east-west gateway (programmed by its own cluster's istiod) balances over its
        cluster's pods of the subset with its own DestinationRule, seen from itself."""
        key = ("remote", cname, host, subset, body_model, sid)
        hit = self._remote_cache.get(key)
        if hit is not None:
            return hit
        m = self._members(cname, "", f"outbound|0|{subset}|{host}")
        used: set[str] = set()
        dist: Distribution = {Outcome.error(503, core.NO_ENDPOINTS): 1.0}
        if m is not None:
            local = _Members(
                m.policy, host, subset, [(p, u) for p, u in m.units if not u.gateway and u.cluster == cname]
            )
            raws = [
                (p, r)
                for p, u in local.units
                if (r := self._raw(u, local, body_model, scenario, sid, used)) is not None
            ]
            if raws:
                dist = balance(levels_of(raws, m.policy), m.policy, 0.0)
        result = (dist, frozenset(used))
        self._remote_cache[key] = result
        return result

    # ----------------------------------------------------------------- R11: the pod
    @staticmethod
    def _pod(w: Workload, body_model: str | None) -> Distribution:
        """vLLM serves a request whose ``model`` is one of its served names, else 404."""
        if body_model is None or body_model in w.served_names:
            sub = body_model is not None and body_model != w.served_names[0]
            return {Outcome.served(w.cluster, w.model, w.version, w.gpu_class, sub): 1.0}
        return {Outcome.error(404, core.MODEL_NOT_SERVED): 1.0}


def _cohorts(router: BodyRouter, cohort: str | None, subject: str | None) -> list[tuple[float, str | None]]:
    """(share, cohort) of a request class (R2): a known cohort claim; else the subject's sticky
    bucket; else, for a class of many subjects, each cohort with its percent."""
    if cohort is not None and cohort in router.cohorts_known:
        return [(1.0, cohort)]
    if subject is not None:
        return [(1.0, _sticky(router.sticky, sticky_bucket(subject)))]
    total = sum(p for _, p in router.sticky)
    return [(p / 100, c) for c, p in router.sticky] + [(max(0.0, 1 - total / 100), None)]


def _sticky(sticky: tuple[tuple[str, float], ...], bucket: int) -> str | None:
    upto = 0.0
    for name, percent in sticky:
        upto += percent
        if bucket < upto:
            return name
    return None
