"""Semantic diff of two stack specs: what changes in behaviour, in words.

Computed from the typed specs (pydantic models after inheritance and defaults), never from rendered
YAML, so it reads the same whatever the renderer does: routes and their traffic shares, QoS tiers and
the shedding order, failover order, timeouts and retries, autoscaling, GPU pools, models, load
balancing, security, the edge (identity claims, rate limits), telemetry, and any other stack setting.

Every change is a :class:`Change` — an area, a subject (``route llama-70b-canary``), a setting
(``llama-3-70b/v2``), the value before and after (``None`` when it did not exist) — rendered as a
sentence: ``route llama-70b-canary: llama-3-70b/v2 10% → 25%``.

The words of a serving policy are the policy's own (``policies/``): ``describe()`` for a whole route,
tier or chain (the preview report's policy table prints the same text), ``describe_rows()`` — every
setting as a label and a value in words — for a policy compared setting by setting (load balancing,
autoscaling, security, the edge, telemetry, timeouts and retries, a QoS tier, the front door). Pools and models
are compared as the resolve step (:mod:`fleetkit.resolve`) sees them: a pool's GPUs come from its
resolved catalog entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from fleetkit.resolve import ResolvedModel, ResolvedPool, ResolvedStack, resolve
from fleetkit.spec import ModelSpec, NodePoolSpec, PeeringStackSpec, RegionStackSpec, TrustRootStackSpec
from policies import failover
from policies.autoscaling import AutoscalingPolicy
from policies.common import Rows
from policies.edge import EdgePolicy
from policies.failover import FailoverPolicy
from policies.load_balancing import LoadBalancingPolicy
from policies.qos import QosPolicy
from policies.resilience import ResiliencePolicy
from policies.routing import DefaultRoute, Mirror, Route, RoutingPolicy, shares
from policies.security import SecurityPolicy
from policies.telemetry import TelemetryPolicy

AREAS = (
    "stack",
    "routing",
    "qos",
    "failover",
    "resilience",
    "autoscaling",
    "gpu-pools",
    "models",
    "load-balancing",
    "security",
    "edge",
    "telemetry",
)
ARROW = "→"


@dataclass(frozen=True)
class Change:
    area: str
    subject: str
    setting: str
    before: str | None
    after: str | None

    @property
    def kind(self) -> str:
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        return "changed"

    @property
    def sentence(self) -> str:
        what = f"{self.subject}: {self.setting}" if self.setting else self.subject
        if self.before is None:
            return f"{what} added" + (f" ({self.after})" if self.after else "")
        if self.after is None:
            return f"{what} removed" + (f" (was {self.before})" if self.before else "")
        return f"{what}{' ' if self.setting else ': '}{self.before} {ARROW} {self.after}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "area": self.area,
            "subject": self.subject,
            "setting": self.setting,
            "kind": self.kind,
            "before": self.before,
            "after": self.after,
            "text": self.sentence,
        }


Spec = RegionStackSpec | TrustRootStackSpec | PeeringStackSpec
#: one side of a stack's diff: a spec, or a region stack already resolved (``LoadedStack.resolved``)
Side = Spec | ResolvedStack


# --------------------------------------------------------------------------- value helpers
def fmt(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value) if value else "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={fmt(v)}" for k, v in sorted(value.items())) if value else "none"
    return str(value)


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of a dumped model keyed by dotted path; lists are leaves."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, Mapping) and v:
                out.update(flat(v, key))
            else:
                out[key] = v
        return out
    return {prefix: value}


def _field_changes(
    area: str, subject: str, before: Any, after: Any, rename: Mapping[str, str] | None = None
) -> list[Change]:
    b, a = flat(before), flat(after)
    out = []
    for key in sorted(set(b) | set(a)):
        if b.get(key) != a.get(key):
            label = (rename or {}).get(key, key)
            out.append(
                Change(
                    area,
                    subject,
                    label,
                    fmt(b.get(key)) if key in b else None,
                    fmt(a.get(key)) if key in a else None,
                )
            )
    return out


def row_changes(area: str, subject: str, before: Rows | None, after: Rows | None) -> list[Change]:
    """One change per row whose words differ (a row only one side has is added or removed), in the
    after side's row order, then the rows only the before side has."""
    b, a = before or {}, after or {}
    keys = [*a, *(k for k in b if k not in a)]
    return [Change(area, subject, key, b.get(key), a.get(key)) for key in keys if b.get(key) != a.get(key)]


def _both_or_presence(area: str, subject: str, before: Any, after: Any, describe: Any) -> list[Change] | None:
    """Added/removed changes when one side is missing; None when both exist (caller compares fields)."""
    if before is None and after is None:
        return []
    if before is None:
        return [Change(area, subject, "", None, describe(after))]
    if after is None:
        return [Change(area, subject, "", describe(before), None)]
    return None


# --------------------------------------------------------------------------- routing
# Every policy describes itself (``describe()`` in ``policies/``): the review shows the same words as the
# preview report's policy table.
def _mirror_text(m: Mirror | None) -> str | None:
    return m.describe() if m is not None else None


def diff_routing(b: RoutingPolicy, a: RoutingPolicy) -> list[Change]:
    out: list[Change] = []
    broutes: dict[str, Route | DefaultRoute] = {r.name: r for r in b.routes}
    aroutes: dict[str, Route | DefaultRoute] = {r.name: r for r in a.routes}
    broutes["default"], aroutes["default"] = b.default, a.default
    for name in [*aroutes, *(n for n in broutes if n not in aroutes)]:
        subject = f"route {name}"
        rb, ra = broutes.get(name), aroutes.get(name)
        if rb is None or ra is None:
            out.append(
                Change(
                    "routing",
                    subject,
                    "",
                    rb.describe() if rb else None,
                    ra.describe() if ra else None,
                )
            )
            continue
        mb, ma = rb.matches(), ra.matches()
        if mb != ma:
            out.append(Change("routing", subject, "match", mb, ma))
        sb, sa = shares(rb.to), shares(ra.to)
        for dest in [*sa, *(d for d in sb if d not in sa)]:
            if sb.get(dest) != sa.get(dest):
                out.append(Change("routing", subject, dest, sb.get(dest), sa.get(dest)))
        if _mirror_text(rb.mirror) != _mirror_text(ra.mirror):
            out.append(Change("routing", subject, "mirror", _mirror_text(rb.mirror), _mirror_text(ra.mirror)))
    common_b = [r.name for r in b.routes if r.name in aroutes]
    common_a = [r.name for r in a.routes if r.name in broutes]
    if common_b != common_a:
        out.append(
            Change("routing", "route order (first match wins)", "", ", ".join(common_b), ", ".join(common_a))
        )
    out += row_changes("routing", "front door", b.front_door_rows(), a.front_door_rows())
    return out


# --------------------------------------------------------------------------- QoS
def diff_qos(b: QosPolicy | None, a: QosPolicy | None) -> list[Change]:
    early = _both_or_presence("qos", "QoS tiers", b, a, QosPolicy.describe)
    if early is not None:
        return early
    assert b is not None and a is not None
    out: list[Change] = []
    for name in [*(n for n, _ in a.ordered()), *(n for n, _ in b.ordered() if n not in a.tiers)]:
        tb, ta = b.tiers.get(name), a.tiers.get(name)
        if tb is None or ta is None:
            out.append(
                Change(
                    "qos", f"tier {name}", "", tb.describe() if tb else None, ta.describe() if ta else None
                )
            )
        else:
            out += row_changes("qos", f"tier {name}", tb.describe_rows(), ta.describe_rows())
    if b.default_tier != a.default_tier:
        out.append(Change("qos", "QoS", "default tier", b.default_tier, a.default_tier))
    if b.shed_order() != a.shed_order():
        out.append(
            Change(
                "qos",
                "QoS shed order (shed first → last)",
                "",
                ", ".join(b.shed_order()),
                ", ".join(a.shed_order()),
            )
        )
    return out


# --------------------------------------------------------------------------- failover
def diff_failover(b: FailoverPolicy | None, a: FailoverPolicy | None) -> list[Change]:
    if failover.describe(b) == failover.describe(a):
        return []
    return [Change("failover", "failover order", "", failover.describe(b), failover.describe(a))]


# --------------------------------------------------------------------------- resilience, LB, security, edge
def diff_resilience(b: ResiliencePolicy, a: ResiliencePolicy) -> list[Change]:
    out = row_changes(
        "resilience", "resilience default", b.default.describe_rows(), a.default.describe_rows()
    )
    for model in sorted(set(b.models) | set(a.models)):
        out += row_changes(
            "resilience",
            f"resilience {model}",
            b.for_model(model).describe_rows(),
            a.for_model(model).describe_rows(),
        )
    for primary in sorted(set(b.fallback) | set(a.fallback)):
        subject = f"fallback chain {primary}"
        cb = b.chain_text(primary) if primary in b.fallback else None
        ca = a.chain_text(primary) if primary in a.fallback else None
        if cb != ca:
            out.append(Change("resilience", subject, "", cb, ca))
        if cb and ca and b.chain_version(primary) != a.chain_version(primary):
            out.append(
                Change("resilience", subject, "version", b.chain_version(primary), a.chain_version(primary))
            )
    return out


def diff_load_balancing(b: LoadBalancingPolicy, a: LoadBalancingPolicy) -> list[Change]:
    out = row_changes(
        "load-balancing", "load balancing default", b.default.describe_rows(), a.default.describe_rows()
    )
    for model in sorted(set(b.models) | set(a.models)):
        out += row_changes(
            "load-balancing",
            f"load balancing {model}",
            b.for_model(model).describe_rows(),
            a.for_model(model).describe_rows(),
        )
    return out


def diff_security(b: SecurityPolicy, a: SecurityPolicy) -> list[Change]:
    return row_changes("security", "security", b.describe_rows(), a.describe_rows())


def diff_edge(b: EdgePolicy, a: EdgePolicy) -> list[Change]:
    """Who gets which tier, cohort and limit, row by row in the edge policy's words."""
    return row_changes("edge", "edge", b.describe_rows(), a.describe_rows())


def diff_telemetry(b: TelemetryPolicy, a: TelemetryPolicy) -> list[Change]:
    """Tracing (sampling, export) and usage metrics, row by row in the telemetry policy's words."""
    return row_changes("telemetry", "telemetry", b.describe_rows(), a.describe_rows())


# --------------------------------------------------------------------------- autoscaling
def _autoscaling_rows(model: ResolvedModel, policy: AutoscalingPolicy) -> Rows:
    """The model's replica bounds (the autoscaler's bounds), then its autoscaler's rows."""
    replicas = model.spec.replicas
    return {
        "min replicas": str(replicas.min),
        "max replicas": str(replicas.max),
        **policy.for_model(model.name).describe_rows(),
    }


def diff_autoscaling(b: ResolvedStack, a: ResolvedStack) -> list[Change]:
    out: list[Change] = []
    for model in sorted(set(b.models) & set(a.models)):
        out += row_changes(
            "autoscaling",
            f"autoscaling {model}",
            _autoscaling_rows(b.models[model], b.spec.policies.autoscaling),
            _autoscaling_rows(a.models[model], a.spec.policies.autoscaling),
        )
    return out


# --------------------------------------------------------------------------- GPU pools
def _instance_text(pool: ResolvedPool) -> str:
    entry = pool.instance
    if entry is None:
        return pool.instance_type
    return f"{pool.instance_type} ({entry.gpu_count}× {entry.gpu_model} {entry.gpu_memory_gib:.0f} GiB)"


def pool_text(pool: ResolvedPool) -> str:
    p = pool.spec
    return f"{_instance_text(pool)}, {p.min_size}–{p.max_size} nodes, {'spot' if p.spot else 'on-demand'}"


def _pool_dump(p: NodePoolSpec) -> dict[str, Any]:
    d = p.model_dump(mode="json", exclude={"instance_type"})
    d["taints"] = [f"{t.key}={t.value}:{t.effect}" for t in p.taints]
    return d


def diff_pools(b: ResolvedStack, a: ResolvedStack) -> list[Change]:
    """Pools as resolved: the instance type in words from each side's resolved catalog entry."""
    out: list[Change] = []
    for name in sorted(set(b.pools) | set(a.pools)):
        pb, pa = b.pools.get(name), a.pools.get(name)
        subject = f"GPU pool {name}"
        if pb is None or pa is None:
            out.append(
                Change(
                    "gpu-pools",
                    subject,
                    "",
                    pool_text(pb) if pb else None,
                    pool_text(pa) if pa else None,
                )
            )
            continue
        if pb.instance_type != pa.instance_type or pb.cloud != pa.cloud:
            out.append(Change("gpu-pools", subject, "instance type", _instance_text(pb), _instance_text(pa)))
        out += _field_changes("gpu-pools", subject, _pool_dump(pb.spec), _pool_dump(pa.spec))
    return out


# --------------------------------------------------------------------------- models
def model_text(m: ModelSpec) -> str:
    return (
        f"{m.service + ' ' if m.service else ''}{m.version} on pool {m.pool or '?'}, TP {m.tensor_parallel}, "
        f"replicas {m.replicas.min}–{m.replicas.max}"
    )


_MODEL_RENAME = {"pool": "pool (moved)", "tensor_parallel": "tensor parallel (TP)"}


def diff_models(b: ResolvedStack, a: ResolvedStack) -> list[Change]:
    out: list[Change] = []
    for name in sorted(set(b.models) | set(a.models)):
        rb, ra = b.models.get(name), a.models.get(name)
        subject = f"model {name}"
        if rb is None or ra is None:
            out.append(
                Change(
                    "models",
                    subject,
                    "",
                    model_text(rb.spec) if rb else None,
                    model_text(ra.spec) if ra else None,
                )
            )
            continue
        # replica bounds are reported under autoscaling (they are the autoscaler's bounds)
        out += _field_changes(
            "models",
            subject,
            rb.spec.model_dump(mode="json", exclude={"replicas"}),
            ra.spec.model_dump(mode="json", exclude={"replicas"}),
            rename=_MODEL_RENAME,
        )
    return out


# --------------------------------------------------------------------------- a whole stack
_STACK_SECTIONS = {"policies", "node_pools", "models"}


def _spec(side: Side) -> Spec:
    return side.spec if isinstance(side, ResolvedStack) else side


def diff_stack(before: Side | None, after: Side | None) -> list[Change]:
    """Every behavioural change between two sides of one stack, grouped by area in :data:`AREAS` order.

    A side is a spec or a resolved region stack (a region spec is resolved here when it is not yet)."""
    if before is None and after is None:
        return []
    if before is None or after is None:
        side = after if after is not None else before
        assert side is not None
        spec = _spec(side)
        if isinstance(spec, RegionStackSpec):
            text = (
                f"{spec.cloud} {spec.region}, pools {', '.join(sorted(spec.node_pools))}, "
                f"models {', '.join(sorted(spec.models)) or 'none'}"
            )
        else:
            text = f"mesh {spec.role} ({spec.mesh.mesh_id})"
        return [
            Change("stack", "stack", "", None if before is None else text, None if after is None else text)
        ]
    bs, as_ = _spec(before), _spec(after)
    if type(bs) is not type(as_):
        return [Change("stack", "stack", "role", bs.role, as_.role)]
    if not isinstance(bs, RegionStackSpec):  # trust root, peering: settings only
        return _field_changes("stack", "stack", bs, as_)
    assert isinstance(as_, RegionStackSpec)
    rb = before if isinstance(before, ResolvedStack) else resolve(bs)
    ra = after if isinstance(after, ResolvedStack) else resolve(as_)
    bp, ap = bs.policies, as_.policies
    changes = [
        *_field_changes(
            "stack",
            "stack",
            bs.model_dump(mode="json", exclude=_STACK_SECTIONS),
            as_.model_dump(mode="json", exclude=_STACK_SECTIONS),
        ),
        *diff_routing(bp.routing, ap.routing),
        *diff_qos(bp.qos, ap.qos),
        *diff_failover(bp.failover, ap.failover),
        *diff_resilience(bp.resilience, ap.resilience),
        *diff_autoscaling(rb, ra),
        *diff_pools(rb, ra),
        *diff_models(rb, ra),
        *diff_load_balancing(bp.load_balancing, ap.load_balancing),
        *diff_security(bp.security, ap.security),
        *diff_edge(bp.edge, ap.edge),
        *diff_telemetry(bp.telemetry, ap.telemetry),
    ]
    order = {area: i for i, area in enumerate(AREAS)}
    return sorted(changes, key=lambda c: order.get(c.area, len(order)))  # stable: keeps order inside an area
