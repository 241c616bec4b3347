"""Envoy's load balancing over one cluster's endpoints: priorities, outlier ejection, weighted choice.

What :class:`fleetkit.simulate.engine.Simulator` does once it knows a request's Envoy cluster and
its endpoints: locality/failover priorities (R7), outlier-detection ejection (R6), priority load
with Envoy's overprovisioning factor and weighted choice within a level, and circuit breakers (R9);
the rules are cited in :mod:`fleetkit.simulate`. Pure functions over plain data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetkit.simulate import core
from fleetkit.simulate.core import Distribution, Outcome, merge
from fleetkit.simulate.fleet import DEFAULT_MAX_EJECTION_PERCENT, LABEL_REGION, LABEL_ZONE, Workload

#: Envoy's default overprovisioning factor (1.4): a priority level with at least 1/1.4 ≈ 71.4 %
#: healthy hosts takes all of its share (R7).
OVERPROVISIONING = 1.4
#: Istio's default when a connection pool limit is not set: effectively unlimited (R9).
UNLIMITED = 2**32 - 1


@dataclass(frozen=True)
class Raw:
    """Endpoints before priorities: pods of one workload in one zone on the caller's network, or one
    east-west gateway endpoint standing for a remote cluster's pods (R5)."""

    labels: Mapping[str, str]
    locality: tuple[str, str]  # (region, zone)
    hosts: float  # host count Envoy sees (a gateway endpoint is one host)
    weight: float  # load-balancing weight (the pods a gateway endpoint stands for, R5)
    failing: float  # hosts returning errors
    result: Distribution  # outcome of a request sent to a non-failing host


@dataclass(frozen=True)
class Unit:
    """Scenario-independent endpoints: one workload's pods in one zone on the proxy's network, or
    one east-west gateway endpoint standing for a remote cluster's workloads (R5)."""

    labels: Mapping[str, str]
    locality: tuple[str, str]
    workloads: tuple[Workload, ...]
    zone: str | None
    gateway: bool
    cluster: str


@dataclass
class Group:
    """Hosts of one Envoy cluster that share a priority: pods of one workload in one zone on the
    caller's network, or one east-west gateway endpoint for a remote cluster (R5)."""

    priority: int
    hosts: float  # host count Envoy sees (a gateway endpoint is one host)
    weight: float  # load-balancing weight (pods behind a gateway endpoint, R5)
    healthy: float  # expected non-ejected hosts
    #: outcome distribution of a request sent to this group's healthy hosts
    result: Distribution


def levels_of(raws: list[tuple[int, Raw]], policy: Mapping[str, Any]) -> list[list[Group]]:
    share = ejection(policy, [r for _, r in raws])
    levels: dict[int, list[Group]] = {}
    for p, r in raws:
        left = r.failing * (1 - share)  # failing hosts outlier detection may not eject
        healthy = r.hosts - r.failing * share
        ratio = healthy / r.hosts if r.hosts else 0.0
        res = (
            r.result
            if not r.failing
            else merge(
                [
                    ((healthy - left) / healthy if healthy else 0.0, r.result),
                    (left / healthy if healthy else 0.0, {Outcome.error(503, core.FAILING_ENDPOINT): 1.0}),
                ]
            )
        )
        levels.setdefault(p, []).append(Group(p, r.hosts, r.weight * ratio, healthy, res))
    return [levels[p] for p in sorted(levels)]


def ejection(policy: Mapping[str, Any], raws: list[Raw]) -> float:
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


def priorities(policy: Mapping[str, Any], proxy: Mapping[str, str], raws: Sequence[Raw | Unit]) -> list[int]:
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


def balance(levels: list[list[Group]] | None, policy: Mapping[str, Any], concurrency: float) -> Distribution:
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
    for lv, h in zip(levels, health, strict=True):
        load = min(left, h if total >= 100 else h * 100 / total)
        left -= load
        weight = sum(g.weight for g in lv)
        if load <= 0 or weight <= 0:
            continue
        parts += [(load / 100 * g.weight / weight, g.result) for g in lv if g.weight > 0]
    dist = merge(parts)
    opened = overflow(policy, concurrency)
    if opened > 0:
        dist = merge([(1 - opened, dist), (opened, {Outcome.error(503, core.CIRCUIT_OPEN): 1.0})])
    return dist


def overflow(policy: Mapping[str, Any], concurrency: float) -> float:
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
