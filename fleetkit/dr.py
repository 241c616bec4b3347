"""Disaster-recovery capacity (N-1) and single points of failure of the fleet's model services.

Pure: reads the loaded fleet's stack specs (no engine). ``fleetkit plan-capacity`` prints both.

**N-1.** For every region stack that could be lost and every model it runs (a service *version*:
``llama-3-70b v1``, its canary ``llama-3-70b v2``): can the rest of the fleet carry its traffic at
maximum replicas? A cluster's steady share of the traffic is taken as the replicas it always keeps
(``replicas.min``, summed over its Deployments of that version); the fleet's load is the sum of those
shares. (Versions are apart because routes weight them apart: a canary that lives in one region
leaves its weighted share without endpoints when that region is lost.) After losing region R the
other clusters must hold the whole load within their ``replicas.max``:

    sum(max over clusters != R) >= sum(min over all clusters)

Replicas of one service on different GPU classes are counted alike (per-class throughput is not in
the spec); raise ``replicas.min`` where a cluster's real share is larger. The mesh sends R's traffic
to the other clusters by locality failover (``policies.failover``); the autoscalers add the replicas.

**Single points of failure** (warnings, rule names in ``RULE_*``): a service that runs in one region
only, one whose fleet-wide ``replicas.max`` is 1, and one whose every replica is on spot capacity.
Spot reclaims are involuntary, so a PodDisruptionBudget (the kit's ``maxUnavailable: 1``) never
protects them, and on a one-replica Deployment it lets a drain take the only replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleetkit.spec import RegionStackSpec

if TYPE_CHECKING:
    from fleetkit.fleet import Fleet

RULE_ONE_REGION = "dr.single-region"
RULE_ONE_REPLICA = "dr.single-replica"
RULE_ALL_SPOT = "dr.all-spot"
RULE_N_MINUS_ONE = "dr.n-minus-one"


@dataclass(frozen=True)
class Deployed:
    """One Deployment of a service: where, its replica range, and whether its pool is spot."""

    stack: str
    model: str
    min_replicas: int
    max_replicas: int
    spot: bool


@dataclass(frozen=True)
class DrRow:
    """Losing ``lost``: the service's fleet load and what the other clusters can carry at most."""

    lost: str
    service: str
    load: int
    remaining_max: int

    @property
    def carried(self) -> bool:
        return self.remaining_max >= self.load


@dataclass(frozen=True)
class DrWarning:
    rule: str
    service: str
    message: str


def deployments(fleet: Fleet) -> dict[str, list[Deployed]]:
    """``"<service> <version>"`` -> its Deployments across the fleet's region stacks, sorted by stack and model."""
    out: dict[str, list[Deployed]] = {}
    for name, st in sorted(fleet.region_stacks().items()):
        spec = st.spec
        assert isinstance(spec, RegionStackSpec)
        for mname, m in sorted(spec.models.items()):
            pool = spec.node_pools.get(m.pool or "")
            out.setdefault(f"{m.service or mname} {m.version}", []).append(
                Deployed(name, mname, m.replicas.min, m.replicas.max, bool(pool and pool.spot))
            )
    return out


def n_minus_one(fleet: Fleet) -> list[DrRow]:
    """One row per (region stack lost, service it runs)."""
    rows = []
    for service, deps in sorted(deployments(fleet).items()):
        load = sum(d.min_replicas for d in deps)
        for lost in sorted({d.stack for d in deps}):
            remaining = sum(d.max_replicas for d in deps if d.stack != lost)
            rows.append(DrRow(lost, service, load, remaining))
    return rows


def warnings(fleet: Fleet) -> list[DrWarning]:
    out = []
    for service, deps in sorted(deployments(fleet).items()):
        stacks = sorted({d.stack for d in deps})
        if len(stacks) == 1:
            out.append(
                DrWarning(
                    RULE_ONE_REGION,
                    service,
                    f"{service} runs only in {stacks[0]}: losing that region stops it",
                )
            )
        total_max = sum(d.max_replicas for d in deps)
        if total_max == 1:
            out.append(
                DrWarning(
                    RULE_ONE_REPLICA,
                    service,
                    f"{service} has one replica in the whole fleet: any node loss, drain or rollout stops it",
                )
            )
        if all(d.spot for d in deps):
            extra = (
                " and with one replica its PodDisruptionBudget (maxUnavailable: 1) lets a drain take it"
                if any(d.max_replicas == 1 for d in deps)
                else ""
            )
            out.append(
                DrWarning(
                    RULE_ALL_SPOT,
                    service,
                    f"every replica of {service} runs on spot capacity "
                    f"({', '.join(f'{d.stack}/{d.model}' for d in deps)}): reclaims are involuntary, "
                    f"so no PodDisruptionBudget protects them{extra}; put one region on on-demand",
                )
            )
    for row in n_minus_one(fleet):
        if not row.carried:
            out.append(
                DrWarning(
                    RULE_N_MINUS_ONE,
                    row.service,
                    f"losing {row.lost}: the rest of the fleet runs at most {row.remaining_max} "
                    f"replicas of {row.service}, below its steady load of {row.load}",
                )
            )
    return out
