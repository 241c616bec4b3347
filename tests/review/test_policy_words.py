"""A policy says what it does once (its ``describe()``): the preview report and the review show that text."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from fleetkit.loader import load_fleet
from fleetkit.report import _policy_table
from fleetkit.review.semantic import Change, diff_stack
from fleetkit.spec import RegionStackSpec


@pytest.fixture(scope="module")
def spec(project_root: Path) -> RegionStackSpec:
    st = load_fleet(project_root).stacks["aws-us-east-1"]
    assert isinstance(st.spec, RegionStackSpec)
    return st.spec


def report_text(spec: RegionStackSpec) -> str:
    console = Console(record=True, width=400, color_system=None)
    console.print(_policy_table(spec))
    return console.export_text()


def with_policies(spec: RegionStackSpec, **update: object) -> RegionStackSpec:
    return spec.model_copy(update={"policies": spec.policies.model_copy(update=update)})


def changes(before: RegionStackSpec, after: RegionStackSpec, area: str) -> list[Change]:
    return [c for c in diff_stack(before, after) if c.area == area]


def test_the_report_prints_every_policy_description(spec: RegionStackSpec) -> None:
    text = report_text(spec)
    rows = spec.policies.describe()
    assert [name for name, _ in rows] == [
        "routing",
        "load balancing",
        "resilience",
        "QoS",
        "failover",
        "autoscaling",
        "security",
        "edge",
    ]
    for _, words in rows:
        for line in words.splitlines():
            assert line in text


def test_failover_reads_the_same_in_report_and_review(spec: RegionStackSpec) -> None:
    assert spec.policies.failover is not None
    words = spec.policies.failover.describe()
    [change] = changes(spec, with_policies(spec, failover=None), "failover")
    assert (change.before, change.after) == (words, "off")
    assert f"failover │ {words}" in " ".join(report_text(spec).split())


def test_qos_and_its_tiers_read_the_same_in_report_and_review(spec: RegionStackSpec) -> None:
    qos = spec.policies.qos
    assert qos is not None
    [removed] = changes(spec, with_policies(spec, qos=None), "qos")
    assert removed.before == qos.describe() and qos.describe() in report_text(spec)
    name, tier = qos.ordered()[-1]
    fewer = qos.model_copy(update={"tiers": {k: v for k, v in qos.tiers.items() if k != name}})
    tier_changes = [
        c for c in changes(spec, with_policies(spec, qos=fewer), "qos") if c.subject == f"tier {name}"
    ]
    assert [c.before for c in tier_changes] == [tier.describe()]
    assert f"{name}: {tier.describe()}" in report_text(spec)


def test_a_route_reads_the_same_in_report_and_review(spec: RegionStackSpec) -> None:
    routing = spec.policies.routing
    route = routing.routes[0]
    fewer = routing.model_copy(update={"routes": routing.routes[1:]})
    removed = [
        c
        for c in changes(spec, with_policies(spec, routing=fewer), "routing")
        if c.subject == f"route {route.name}"
    ]
    assert [c.before for c in removed] == [route.describe()]
    assert f"{route.name}: {route.describe()}" in report_text(spec)


def test_a_fallback_chain_reads_the_same_in_report_and_review(spec: RegionStackSpec) -> None:
    res = spec.policies.resilience
    assert res.fallback, "the demo fleet has a fallback chain"
    primary = sorted(res.fallback)[0]
    without = res.model_copy(update={"fallback": {k: v for k, v in res.fallback.items() if k != primary}})
    [change] = [
        c
        for c in changes(spec, with_policies(spec, resilience=without), "resilience")
        if c.subject == f"fallback chain {primary}"
    ]
    assert change.before == res.chain_text(primary)
    assert res.chain_text(primary) in report_text(spec)


def test_an_edge_change_reads_the_same_in_report_and_review(spec: RegionStackSpec) -> None:
    """Who may claim a tier is reviewed: a new claim mapping shows the edge's own words, then the field."""
    edge = spec.policies.edge
    wider = edge.identity.model_copy(
        update={"tier_values": {**edge.identity.tier_values, "trial": "premium"}}
    )
    after = with_policies(spec, edge=edge.model_copy(update={"identity": wider}))
    found = changes(spec, after, "edge")
    assert found[0].before == edge.describe() and found[0].after == after.policies.edge.describe()
    assert "trial→premium" in found[0].after
    assert [(c.setting, c.after) for c in found[1:]] == [("identity.tier_values.trial", "premium")]
    assert edge.describe() in " ".join(report_text(spec).split())
    assert changes(spec, spec, "edge") == []
