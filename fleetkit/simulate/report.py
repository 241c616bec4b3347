"""Running request classes × scenarios, and showing the result as a table or JSON."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetkit.issue import Issue
from fleetkit.simulate.capacity import DEFAULT_ASSUMPTIONS, ModelRow, capacity_view
from fleetkit.simulate.core import Distribution, Request, rounded
from fleetkit.simulate.engine import Simulator
from fleetkit.simulate.fleet import SimulatedFleet
from fleetkit.simulate.scenarios import Scenario


@dataclass(frozen=True)
class RequestClass:
    request: Request
    #: the model service the client means (what a correct answer comes from)
    intended: str
    #: set for a client that sends the headers one route matches (see :func:`route_classes`)
    route: str = ""

    @property
    def label(self) -> str:
        if self.route:
            return f"client sending route {self.route}'s headers from {self.request.origin}"
        tier = self.request.claims.get("tier")
        return f"{tier + ' ' if tier else ''}{self.intended} from {self.request.origin}"


def intended_service(fleet: SimulatedFleet, model: str | None) -> str:
    """The service a body model names: the edge's model map when there is one, else the service whose
    pods list the name first (its own served name)."""
    for cfg in fleet.config.values():
        if cfg.edge.router is not None and model is not None and model in cfg.edge.router.models:
            return cfg.edge.router.models[model][0]
    for w in fleet.workloads:
        if w.served_names and w.served_names[0] == model:
            return w.model
    return model or "-"


def tiers(fleet: SimulatedFleet) -> list[str]:
    """Tier claim values: the edge's tier map when there is one, else the values the routes match
    on a header whose name mentions ``tier``; [""] when neither exists."""
    found: set[str] = set()
    for cfg in fleet.config.values():
        if cfg.edge.router is not None:
            found.update(cfg.edge.router.tier_map)
            continue
        for r in cfg.routes:
            for m in r.matches:
                for name, cond in (m.get("headers") or {}).items():
                    if "tier" in name.lower() and isinstance(cond, Mapping) and "exact" in cond:
                        found.add(str(cond["exact"]))
    return sorted(found) or [""]


def request_classes(
    fleet: SimulatedFleet,
    models: Iterable[str] | None = None,
    tier_values: Iterable[str] | None = None,
    origins: Iterable[str] | None = None,
    claims: Mapping[str, str] | None = None,
    **extra: Any,
) -> list[RequestClass]:
    """The standard classes: what a standard OpenAI client sends — each model by its served name,
    each tier as a verified JWT claim, no custom headers — from every cluster's ingress."""
    if models is None:
        models = sorted({w.served_names[0] for w in fleet.workloads if w.served_names})
    out = []
    for origin in sorted(
        origins if origins is not None else (c for c, cfg in fleet.config.items() if cfg.routes)
    ):
        for model in models:
            for tier in tier_values if tier_values is not None else tiers(fleet):
                base = dict(claims or {})
                req = Request(model, origin, claims={**base, "tier": tier} if tier else base, **extra)
                out.append(RequestClass(req, intended_service(fleet, model)))
    return out


def route_classes(fleet: SimulatedFleet, **extra: Any) -> list[RequestClass]:
    """One class per route and origin: a client that sends the exact headers the route's first match
    names (the body's model is the served name of the route's first destination). Shows what header
    routing does — and, once the edge strips client headers, that a forged header changes nothing."""
    by_host: dict[str, str] = {}
    for cfg in fleet.config.values():
        for host, selector in cfg.services.items():
            for w in fleet.workloads:
                if host not in by_host and all(w.labels.get(k) == v for k, v in selector.items()):
                    by_host[host] = w.served_names[0]
    out = []
    for origin, cfg in sorted(fleet.config.items()):
        for r in cfg.routes:
            m = r.matches[0] if r.matches else {}
            headers = {
                k: str(v["exact"])
                for k, v in (m.get("headers") or {}).items()
                if isinstance(v, Mapping) and "exact" in v
            }
            if not headers or not r.destinations:
                continue
            model = by_host.get(r.destinations[0].host)
            req = Request(model, origin, headers=headers, **extra)
            out.append(RequestClass(req, intended_service(fleet, model), r.name))
    return out


@dataclass
class SimulationReport:
    fleet: SimulatedFleet
    scenarios: list[Scenario]
    classes: list[RequestClass]
    #: (class index, scenario name) -> outcome distribution (rounded)
    results: dict[tuple[int, str], Distribution] = field(default_factory=dict)
    capacity: dict[str, list[ModelRow]] = field(default_factory=dict)
    assumptions: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def dist(self, i: int, scenario: str) -> Distribution:
        return self.results[(i, scenario)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "findings": [finding_dict(f) for f in findings(self)],
            "assumptions": dict(sorted(self.assumptions.items())),
            "notes": self.notes,
            "clusters": {
                c: {"network": i.network, "region": i.region, "stack": i.stack}
                for c, i in sorted(self.fleet.clusters.items())
            },
            "scenarios": [
                {
                    **s.to_dict(),
                    "capacity": [r.to_dict() for r in self.capacity.get(s.name, [])],
                    "results": [
                        {
                            "class": c.label,
                            "request": _request_dict(c.request),
                            "intended": c.intended,
                            "outcomes": [{**o.to_dict(), "p": p} for o, p in self.dist(i, s.name).items()],
                        }
                        for i, c in enumerate(self.classes)
                    ],
                }
                for s in self.scenarios
            ],
        }


def _request_dict(r: Request) -> dict[str, Any]:
    out: dict[str, Any] = {"model": r.model, "origin": r.origin, "path": r.path, "stream": r.stream}
    if r.claims:
        out["claims"] = dict(sorted(r.claims.items()))
    if r.headers:
        out["headers"] = dict(sorted(r.headers.items()))
    for key in ("zone", "concurrency", "rate"):
        if getattr(r, key):
            out[key] = getattr(r, key)
    return out


def _run_part(
    fleet: SimulatedFleet,
    scenarios: list[Scenario],
    classes: list[RequestClass],
    assumptions: Mapping[str, float],
    demand: Mapping[str, float] | None,
    capacity: bool,
) -> tuple[dict[tuple[int, str], Distribution], dict[str, list[ModelRow]], list[str]]:
    sim = Simulator(fleet)
    results: dict[tuple[int, str], Distribution] = {}
    rows: dict[str, list[ModelRow]] = {}
    for s in scenarios:
        per_class: list[tuple[str, Distribution]] = []
        for i, c in enumerate(classes):
            d = rounded(sim.run(c.request, s))
            results[(i, s.name)] = d
            per_class.append((c.intended, d))
        if capacity:
            rows[s.name] = capacity_view(fleet, s, per_class, assumptions, demand)
    return results, rows, sim.notes


#: the fleet, classes and options a forked worker reads (set just before the pool forks)
_SHARED: dict[str, Any] = {}


def _worker(
    part: list[Scenario],
) -> tuple[dict[tuple[int, str], Distribution], dict[str, list[ModelRow]], list[str]]:
    return _run_part(
        _SHARED["fleet"],
        part,
        _SHARED["classes"],
        _SHARED["assumptions"],
        _SHARED["demand"],
        _SHARED["capacity"],
    )


def simulate(
    fleet: SimulatedFleet,
    scenarios: list[Scenario],
    classes: list[RequestClass],
    assume: Mapping[str, float] | None = None,
    demand: Mapping[str, float] | None = None,
    capacity: bool = True,
    jobs: int = 1,
) -> SimulationReport:
    """Every class under every scenario. ``jobs`` > 1 splits the scenarios over forked worker
    processes (same result; where ``fork`` is unavailable it runs in this process)."""
    assumptions = {**DEFAULT_ASSUMPTIONS, **(assume or {})}
    report = SimulationReport(fleet, scenarios, classes, assumptions=assumptions)
    parts = [scenarios[k::jobs] for k in range(jobs)] if jobs > 1 and len(scenarios) > 1 else [scenarios]
    parts = [p for p in parts if p]
    if len(parts) > 1 and "fork" in multiprocessing.get_all_start_methods():
        _SHARED.update(
            fleet=fleet, classes=classes, assumptions=assumptions, demand=demand, capacity=capacity
        )
        try:
            with multiprocessing.get_context("fork").Pool(len(parts)) as pool:
                outputs = pool.map(_worker, parts)
        finally:
            _SHARED.clear()
    else:
        outputs = [_run_part(fleet, p, classes, assumptions, demand, capacity) for p in parts]
    notes: list[str] = []
    for results, rows, part_notes in outputs:
        report.results.update(results)
        report.capacity.update(rows)
        notes += [n for n in part_notes if n not in notes]
    report.notes = notes
    return report


def finding_dict(issue: Issue) -> dict[str, str]:
    """The ``--json`` form of a simulator finding (``subject`` is the request class)."""
    return {"rule": issue.rule, "class": issue.subject, "detail": issue.message}


def findings(report: SimulationReport) -> list[Issue]:
    """With everything healthy: no request class may end in an error (``healthy.error``), and none
    may be answered by another model while the model it names has running pods
    (``healthy.fallback-while-primary-up``). Each is an :class:`Issue` about a request class (its
    ``subject``), with the outcomes as the message."""
    healthy = next((s for s in report.scenarios if s.is_healthy()), None)
    if healthy is None:
        return []
    up = {w.model for w in report.fleet.workloads if sum(healthy.pods(report.fleet, w).values())}
    out = []
    for i, c in enumerate(report.classes):
        d = report.dist(i, healthy.name)
        errors = {o: p for o, p in d.items() if not o.ok}
        if errors:
            out.append(Issue((), "healthy.error", describe(errors), subject=c.label))
        other = {o: p for o, p in d.items() if o.ok and (o.substitute or o.model != c.intended)}
        if other and c.intended in up:
            out.append(Issue((), "healthy.fallback-while-primary-up", describe(other), subject=c.label))
    return out


def to_json(report: SimulationReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def describe(dist: Distribution, limit: int = 4) -> str:
    """``60% llama-3-70b@v1 l40s in aws-use1, 40% 503 no endpoints``."""
    items = list(dist.items())
    text = ", ".join(
        f"{p * 100:.0f}% {o.label()}" if p * 100 >= 0.5 else f"{p * 100:.1g}% {o.label()}"
        for o, p in items[:limit]
    )
    if len(items) > limit:
        text += f", +{len(items) - limit} more"
    return text or "—"


def to_renderables(report: SimulationReport) -> list[Any]:
    from rich.table import Table
    from rich.text import Text

    out: list[Any] = []
    for s in report.scenarios:
        title = s.name + (f" (same as {', '.join(s.aliases)})" if s.aliases else "")
        table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("request class", no_wrap=True)
        table.add_column("outcomes", overflow="fold")
        for i, c in enumerate(report.classes):
            d = report.dist(i, s.name)
            bad = any(not o.ok or o.substitute or o.model != c.intended for o in d)
            table.add_row(c.label, Text(describe(d, 6), style="red" if bad else "green"))
        out.append(table)
        rows = report.capacity.get(s.name)
        if rows:
            cap = Table(show_edge=False, pad_edge=False, title=f"capacity · {s.name}", title_justify="left")
            for col in ("model", "demand r/s", "capacity r/s (max replicas)", "requests lost", "verdict"):
                cap.add_column(col)
            for r in rows:
                cap.add_row(
                    r.model,
                    f"{r.demand_rps:.1f}",
                    f"{r.capacity_rps:.1f}",
                    f"{r.lost_share * 100:.0f}%",
                    Text("carried", style="green") if r.carried else Text("loses service", style="red"),
                )
            out.append(cap)
    for f in findings(report):
        out.append(Text(f"finding [{f.rule}] {f.subject}: {f.message}", style="bold red"))
    if report.notes:
        out.append(Text("notes: " + "; ".join(report.notes), style="yellow"))
    out.append(
        Text(
            "assumptions: " + ", ".join(f"{k}={v:g}" for k, v in sorted(report.assumptions.items())),
            style="dim",
        )
    )
    return out
