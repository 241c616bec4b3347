"""Failure scenarios: what is down, scaled, ejected or out of capacity — and the standard set.

A scenario removes pods (cluster, region, network or zone down; a Deployment at zero or at its
min/max; a pool without capacity) or marks them failing (a version's endpoints returning errors,
which outlier detection ejects within ``maxEjectionPercent``). Pods are spread round-robin over
their pool's zones (sorted), as a zone topology spread would place them; a zone outage removes its
share and nothing is rescheduled (the moment of failure, before autoscalers react).

The baseline replica count of every Deployment is its autoscaler's minimum (KEDA
``minReplicaCount`` / HPA ``minReplicas``, else ``spec.replicas``): what runs when nothing has
scaled up. ``baseline="max"`` asks what the fleet does at full scale.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from fleetkit.errors import Issue
from fleetkit.simulate.fleet import SimulatedFleet, Workload

REPLICA_WORDS = ("min", "max", "zero")


@dataclass(frozen=True)
class Scenario:
    name: str = "healthy"
    clusters: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    networks: frozenset[str] = frozenset()
    zones: frozenset[str] = frozenset()
    #: (deployment selector, "min" | "max" | "zero" | count); selector: NAME, CLUSTER/NAME or SERVICE:VERSION
    replicas: tuple[tuple[str, str], ...] = ()
    #: (service selector, version): the version's pods fail; selector SERVICE or CLUSTER/SERVICE
    ejected: tuple[tuple[str, str], ...] = ()
    #: pools (nodeSelector values) that cannot run pods: POOL or CLUSTER/POOL
    no_capacity: tuple[str, ...] = ()
    baseline: str = "min"
    #: also covers (names of identical standard scenarios folded into this one)
    aliases: tuple[str, ...] = field(default=(), compare=False)

    def is_healthy(self) -> bool:
        return not (
            self.clusters
            or self.regions
            or self.networks
            or self.zones
            or self.replicas
            or self.ejected
            or self.no_capacity
        )

    def cluster_down(self, fleet: SimulatedFleet, cluster: str) -> bool:
        info = fleet.clusters.get(cluster)
        return (
            info is None
            or cluster in self.clusters
            or info.region in self.regions
            or info.network in self.networks
        )

    def _wanted(self, w: Workload) -> int:
        count = w.min_replicas if self.baseline == "min" else w.max_replicas
        for sel, value in self.replicas:
            if _selects_workload(sel, w):
                words = {"min": w.min_replicas, "max": w.max_replicas, "zero": 0}
                count = words[value] if value in words else int(value)
        return max(0, int(count or 0))

    def pods(self, fleet: SimulatedFleet, w: Workload) -> dict[str, int]:
        """Zone -> running pods of ``w`` (zone "" when its pool's zones are unknown)."""
        if self.cluster_down(fleet, w.cluster):
            return {}
        if any(_selects_pool(sel, w) for sel in self.no_capacity):
            return {}
        n = self._wanted(w)
        zones = sorted(w.zones) or [""]
        out: dict[str, int] = {}
        for i in range(n):
            z = zones[i % len(zones)]
            if z not in self.zones:
                out[z] = out.get(z, 0) + 1
        return out

    def failing(self, w: Workload) -> bool:
        for sel, version in self.ejected:
            cluster, _, service = sel.rpartition("/")
            if service == w.model and version == w.version and (not cluster or cluster == w.cluster):
                return True
        return False

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name}
        for key in ("clusters", "regions", "networks", "zones"):
            if getattr(self, key):
                out[f"{key}_down"] = sorted(getattr(self, key))
        if self.replicas:
            out["replicas"] = {s: v for s, v in self.replicas}
        if self.ejected:
            out["ejected"] = [f"{s}:{v}" for s, v in self.ejected]
        if self.no_capacity:
            out["no_capacity"] = list(self.no_capacity)
        if self.baseline != "min":
            out["baseline"] = self.baseline
        if self.aliases:
            out["same_as"] = list(self.aliases)
        return out


def _selects_workload(sel: str, w: Workload) -> bool:
    if ":" in sel:
        service, _, version = sel.partition(":")
        cluster, _, service = service.rpartition("/")
        return service == w.model and version == w.version and (not cluster or cluster == w.cluster)
    cluster, _, name = sel.rpartition("/")
    return name == w.name and (not cluster or cluster == w.cluster)


def _selects_pool(sel: str, w: Workload) -> bool:
    cluster, _, pool = sel.rpartition("/")
    return pool in w.pools and (not cluster or cluster == w.cluster)


# --------------------------------------------------------------------------- the standard set
def primary_versions(fleet: SimulatedFleet) -> dict[str, str]:
    """Service -> its primary version: the one with the most baseline replicas fleet-wide (ties:
    the version that sorts first)."""
    count: dict[tuple[str, str], int] = {}
    for w in fleet.workloads:
        count[(w.model, w.version)] = count.get((w.model, w.version), 0) + max(w.min_replicas, 1)
    best: dict[str, tuple[int, str]] = {}
    for (model, version), n in sorted(count.items()):
        if model not in best or n > best[model][0]:
            best[model] = (n, version)
    return {m: v for m, (_, v) in sorted(best.items())}


def standard_scenarios(fleet: SimulatedFleet) -> list[Scenario]:
    """healthy; each cluster, region and network down; each model's primary version at zero
    everywhere. Scenarios that remove exactly the same clusters are folded into the first one."""
    out = [Scenario()]
    by_effect: dict[frozenset[str], Scenario] = {}
    candidates: list[tuple[str, Scenario]] = []
    for c in sorted(fleet.clusters):
        candidates.append((f"cluster {c} down", Scenario(f"cluster {c} down", clusters=frozenset({c}))))
    for r in sorted({i.region for i in fleet.clusters.values()}):
        candidates.append((f"region {r} down", Scenario(f"region {r} down", regions=frozenset({r}))))
    for n in sorted({i.network for i in fleet.clusters.values()}):
        candidates.append((f"network {n} down", Scenario(f"network {n} down", networks=frozenset({n}))))
    for name, sc in candidates:
        effect = frozenset(c for c in fleet.clusters if sc.cluster_down(fleet, c))
        if effect in by_effect:
            first = by_effect[effect]
            by_effect[effect] = replace(first, aliases=(*first.aliases, name))
        else:
            by_effect[effect] = sc
    out += list(by_effect.values())
    for model, version in primary_versions(fleet).items():
        out.append(
            Scenario(f"{model} {version or 'primary'} at zero", replicas=((f"{model}:{version}", "zero"),))
        )
    return out


# --------------------------------------------------------------------------- parsing CLI values
def parse_scenario(
    fleet: SimulatedFleet,
    down: Iterable[str],
    replicas: Iterable[str],
    eject: Iterable[str],
    no_capacity: Iterable[str],
    baseline: str = "min",
) -> tuple[Scenario, list[Issue]]:
    """A scenario from ``--down KIND:NAME``, ``--replicas SEL=N|min|max|zero``, ``--eject SERVICE:VERSION``
    and ``--no-capacity POOL`` values; every bad value is a problem (file = the option)."""
    problems: list[Issue] = []
    sets: dict[str, set[str]] = {"cluster": set(), "region": set(), "network": set(), "zone": set()}
    known = {
        "cluster": set(fleet.clusters),
        "region": {i.region for i in fleet.clusters.values()},
        "network": {i.network for i in fleet.clusters.values()},
        "zone": {z for w in fleet.workloads for z in w.zones},
    }
    for item in down:
        kind, _, name = item.partition(":")
        if kind not in sets or not name:
            problems.append(
                Issue.at(
                    "--down",
                    item,
                    "simulate.bad-down",
                    "expected KIND:NAME with KIND one of cluster, region, network, zone",
                    item,
                )
            )
        elif name not in known[kind]:
            problems.append(
                Issue.at(
                    "--down",
                    item,
                    "simulate.unknown-name",
                    f"no {kind} {name!r} in the fleet (known: {', '.join(sorted(known[kind])) or 'none'})",
                    name,
                )
            )
        else:
            sets[kind].add(name)
    reps: list[tuple[str, str]] = []
    for item in replicas:
        sel, eq, value = item.partition("=")
        ok_value = value in REPLICA_WORDS or value.isdigit()
        if not eq or not sel or not ok_value:
            problems.append(
                Issue.at(
                    "--replicas",
                    item,
                    "simulate.bad-replicas",
                    "expected DEPLOYMENT=N|min|max|zero (DEPLOYMENT: NAME, CLUSTER/NAME or SERVICE:VERSION)",
                    item,
                )
            )
        elif not any(_selects_workload(sel, w) for w in fleet.workloads):
            problems.append(
                Issue.at(
                    "--replicas",
                    item,
                    "simulate.unknown-deployment",
                    "no model Deployment matches (names: "
                    + ", ".join(sorted({w.name for w in fleet.workloads}))
                    + ")",
                    sel,
                )
            )
        else:
            reps.append((sel, value))
    ejected: list[tuple[str, str]] = []
    for item in eject:
        sel, colon, version = item.rpartition(":")
        service = sel.rpartition("/")[2]
        if not colon or not sel or not version:
            problems.append(
                Issue.at(
                    "--eject",
                    item,
                    "simulate.bad-eject",
                    "expected SERVICE:VERSION or CLUSTER/SERVICE:VERSION",
                    item,
                )
            )
        elif not any(w.model == service and w.version == version for w in fleet.workloads):
            problems.append(
                Issue.at(
                    "--eject",
                    item,
                    "simulate.unknown-version",
                    f"no pods of {service!r} with version {version!r}",
                    item,
                )
            )
        else:
            ejected.append((sel, version))
    pools: list[str] = []
    for item in no_capacity:
        cluster, _, pool = item.rpartition("/")
        if not any(pool in w.pools and (not cluster or cluster == w.cluster) for w in fleet.workloads):
            problems.append(
                Issue.at(
                    "--no-capacity",
                    item,
                    "simulate.unknown-pool",
                    "no model Deployment is scheduled on that pool (pools: "
                    + ", ".join(sorted({p for w in fleet.workloads for p in w.pools}))
                    + ")",
                    item,
                )
            )
        else:
            pools.append(item)
    parts = [f"{k} {', '.join(sorted(v))} down" for k, v in sets.items() if v]
    parts += [f"{s}={v}" for s, v in reps] + [f"{s}:{v} failing" for s, v in ejected]
    parts += [f"pool {p} without capacity" for p in pools]
    name = "; ".join(parts) or "healthy"
    sc = Scenario(
        name,
        frozenset(sets["cluster"]),
        frozenset(sets["region"]),
        frozenset(sets["network"]),
        frozenset(sets["zone"]),
        tuple(reps),
        tuple(ejected),
        tuple(pools),
        baseline,
    )
    return sc, problems
