"""The review's behaviour section: request classes whose outcome distribution changes, per scenario.

Both sides are simulated (:mod:`fleetkit.simulate`) with the same standard scenarios (the union of
both sides' sets, by name) and the same request classes (the union, by label); every (class,
scenario) whose distribution differs by at least half a percentage point is listed, before → after.
Needs the full preview renderer: the serving-policy render has no Deployments or Services, so there
is nothing to route to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetkit.loader import Fleet as SpecFleet
from fleetkit.simulate.diagram import to_mermaid
from fleetkit.simulate.fleet import SimulatedFleet
from fleetkit.simulate.report import (
    RequestClass,
    SimulationReport,
    describe,
    request_classes,
    route_classes,
    simulate,
)
from fleetkit.simulate.scenarios import Scenario, standard_scenarios
from fleetkit.simulate.source import fleet_from_stacks

#: smallest change in any outcome's probability that counts (half a percentage point)
THRESHOLD = 0.005
MAX_LISTED = 60


@dataclass(frozen=True)
class BehaviourChange:
    scenario: str
    request_class: str
    before: str
    after: str

    @property
    def sentence(self) -> str:
        return f"{self.request_class}, {self.scenario}: {self.before} → {self.after}"

    def to_dict(self) -> dict[str, str]:
        return {
            "scenario": self.scenario,
            "class": self.request_class,
            "before": self.before,
            "after": self.after,
        }


@dataclass
class Behaviour:
    changes: list[BehaviourChange] = field(default_factory=list)
    note: str | None = None
    #: Mermaid diagram of the head side for the scenario with the most changes
    diagram: str = ""
    diagram_scenario: str = ""
    scenarios: int = 0
    classes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "note": self.note,
            "scenarios": self.scenarios,
            "classes": self.classes,
            "changes": [c.to_dict() for c in self.changes],
            "diagram_scenario": self.diagram_scenario,
        }


def _fleet(specs: SpecFleet, manifests: dict[str, list[dict[str, Any]]]) -> SimulatedFleet:
    return fleet_from_stacks(specs, manifests)


def _differs(a: dict[Any, float], b: dict[Any, float]) -> bool:
    la = {o.label(): p for o, p in a.items()}
    lb = {o.label(): p for o, p in b.items()}
    return any(abs(la.get(k, 0.0) - lb.get(k, 0.0)) >= THRESHOLD for k in set(la) | set(lb))


def _union_classes(fb: SimulatedFleet, fh: SimulatedFleet) -> tuple[list[RequestClass], list[RequestClass]]:
    """The same request classes on both sides (by label); each side resolves the model itself."""
    base = request_classes(fb) + route_classes(fb)
    head = request_classes(fh) + route_classes(fh)
    labels = {c.label for c in base} | {c.label for c in head}
    by_b = {c.label: c for c in base}
    by_h = {c.label: c for c in head}
    ordered = sorted(labels)
    return ([by_b.get(x) or by_h[x] for x in ordered], [by_h.get(x) or by_b[x] for x in ordered])


def behaviour(
    base_specs: SpecFleet,
    head_specs: SpecFleet,
    base_manifests: dict[str, list[dict[str, Any]]],
    head_manifests: dict[str, list[dict[str, Any]]],
    full_render: bool,
) -> Behaviour:
    if not full_render:
        return Behaviour(
            note="not simulated: the serving-policy render has no Deployments or Services "
            "(run with --render preview)"
        )
    fb, fh = _fleet(base_specs, base_manifests), _fleet(head_specs, head_manifests)
    scenarios: dict[str, Scenario] = {}
    for s in [*standard_scenarios(fh), *standard_scenarios(fb)]:
        scenarios.setdefault(s.name, s)
    ordered = list(scenarios.values())
    cb, ch = _union_classes(fb, fh)
    rb: SimulationReport = simulate(fb, ordered, cb, capacity=False)
    rh: SimulationReport = simulate(fh, ordered, ch, capacity=False)
    out = Behaviour(scenarios=len(ordered), classes=len(ch))
    per_scenario: dict[str, int] = {}
    for s in ordered:
        for i, c in enumerate(ch):
            before, after = rb.dist(i, s.name), rh.dist(i, s.name)
            if _differs(before, after):
                out.changes.append(BehaviourChange(s.name, c.label, describe(before), describe(after)))
                per_scenario[s.name] = per_scenario.get(s.name, 0) + 1
    if per_scenario:
        top = max(per_scenario.items(), key=lambda kv: (kv[1], kv[0] == "healthy"))[0]
        out.diagram_scenario, out.diagram = top, to_mermaid(rh, top)
    return out


def markdown(b: Behaviour) -> list[str]:
    out = ["### Behaviour (simulated)", ""]
    if b.note:
        return out + [f"_{b.note}_", ""]
    if not b.changes:
        return out + [
            (
                f"No request class changes its outcome in any of the {b.scenarios} standard scenarios "
                f"({b.classes} classes)."
            ),
            "",
        ]
    out.append(
        f"{len(b.changes)} (class, scenario) outcome distributions change "
        f"({b.classes} classes × {b.scenarios} standard scenarios):"
    )
    out.append("")
    for c in b.changes[:MAX_LISTED]:
        out.append(f"- **{c.request_class}**, {c.scenario}: {c.before} → {c.after}")
    if len(b.changes) > MAX_LISTED:
        out.append(f"- … and {len(b.changes) - MAX_LISTED} more (`fleetkit review --format json` has all)")
    out += [
        "",
        f"<details><summary>Where requests go after the change — {b.diagram_scenario}</summary>",
        "",
        "```mermaid",
        b.diagram.rstrip("\n"),
        "```",
        "",
        "</details>",
        "",
    ]
    return out
