"""QoS tiers (e.g. premium / standard / batch; names are yours).

Each tier is selected by the tier header and routed to its own DestinationRule subset with its own
connection-pool limits, so Envoy sheds a tier's excess independently (503 "overflow") instead of
letting batch work queue in front of premium requests. Tiers are ordered by ``priority``; the
lowest-priority tier must have the tightest limits (it is shed first) — checked, not assumed.

Pods get a ``PriorityClass`` per tier (``fleetkit-<tier>``): a model deployment that serves a tier
(``models.<name>.tier``) runs at that priority, so under GPU pressure the scheduler preempts batch
replicas first. Requests without a tier header get ``default_tier``.
"""

from __future__ import annotations

from itertools import pairwise

from pydantic import Field, model_validator

from policies.common import FieldError, Name, Rows, StrictModel, metadata, words


class Tier(StrictModel):
    priority: int = Field(ge=0, le=1_000_000_000, description="higher is more important; PriorityClass value")
    max_requests: int = Field(ge=1, description="concurrent requests per upstream host for this tier")
    max_pending_requests: int = Field(ge=1, description="requests Envoy may queue for this tier")
    max_connections: int | None = Field(default=None, ge=1)
    preemptible: bool = Field(default=False, description="pods of this tier never preempt others")
    description: str = ""

    def describe(self) -> str:
        """``priority 100, max_requests 64, max_pending_requests 32[, max_connections 8][, preemptible]``."""
        rows = self.describe_rows()
        shown = ["priority", "max_requests", "max_pending_requests"]
        shown += ["max_connections"] if self.max_connections is not None else []
        return ", ".join(f"{k} {rows[k]}" for k in shown) + (", preemptible" if self.preemptible else "")

    def describe_rows(self) -> Rows:
        """Every setting in words, labelled as :meth:`describe` names them."""
        return {
            "priority": str(self.priority),
            "max_requests": str(self.max_requests),
            "max_pending_requests": str(self.max_pending_requests),
            "max_connections": words(self.max_connections),
            "preemptible": "yes" if self.preemptible else "no",
            "description": self.description or "none",
        }


class QosPolicy(StrictModel):
    tiers: dict[Name, Tier] = Field(min_length=1)
    default_tier: Name

    @model_validator(mode="after")
    def _consistent(self) -> QosPolicy:
        if self.default_tier not in self.tiers:
            raise FieldError(
                f"default_tier {self.default_tier!r} is not one of the tiers ({', '.join(sorted(self.tiers))})",
                ("default_tier", self.default_tier),
            )
        ordered = self.ordered()
        prios = [t.priority for _, t in ordered]
        if len(set(prios)) != len(prios):
            raise FieldError(
                "tier priorities must be distinct so the shedding order is defined",
                *((("tiers", n, "priority"), t.priority) for n, t in ordered if prios.count(t.priority) > 1),
            )
        # walking from the highest priority down, limits must not grow: the lowest tier is shed first
        for (hi_name, hi), (lo_name, lo) in pairwise(ordered):
            if lo.max_requests > hi.max_requests or lo.max_pending_requests > hi.max_pending_requests:
                field = "max_requests" if lo.max_requests > hi.max_requests else "max_pending_requests"
                raise FieldError(
                    f"tier {lo_name!r} (priority {lo.priority}) has larger limits than {hi_name!r} "
                    f"(priority {hi.priority}); lower tiers must be shed first",
                    (("tiers", lo_name, field), getattr(lo, field)),
                    (("tiers", hi_name, field), getattr(hi, field)),
                )
        return self

    def ordered(self) -> list[tuple[str, Tier]]:
        """Tiers from the highest priority to the lowest."""
        return sorted(self.tiers.items(), key=lambda kv: (-kv[1].priority, kv[0]))

    def shed_order(self) -> list[str]:
        return [name for name, _ in reversed(self.ordered())]

    def describe(self) -> str:
        """``tiers premium, standard, batch, default standard`` (highest priority first)."""
        return "tiers " + ", ".join(n for n, _ in self.ordered()) + f", default {self.default_tier}"

    def connection_pool(self, tier: str) -> dict[str, object]:
        t = self.tiers[tier]
        pool: dict[str, object] = {
            "http": {"http1MaxPendingRequests": t.max_pending_requests, "http2MaxRequests": t.max_requests}
        }
        if t.max_connections is not None:
            pool["tcp"] = {"maxConnections": t.max_connections}
        return pool

    @staticmethod
    def priority_class_name(tier: str) -> str:
        return f"fleetkit-{tier}"

    def render(self) -> list[dict[str, object]]:
        """One ``scheduling.k8s.io/v1`` PriorityClass per tier."""
        out: list[dict[str, object]] = []
        for name, tier in self.ordered():
            pc: dict[str, object] = {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": metadata(self.priority_class_name(name), None, {"fleetkit.dev/tier": name}),
                "value": tier.priority,
                "globalDefault": False,
                "description": tier.description or f"fleetkit QoS tier {name}",
            }
            if tier.preemptible:
                pc["preemptionPolicy"] = "Never"
            out.append(pc)
        return out
