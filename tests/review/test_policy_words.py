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
        "telemetry",
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
    """Who may claim a tier is reviewed: a new claim mapping is one edge row, in the edge's own words."""
    edge = spec.policies.edge
    wider = edge.identity.model_copy(
        update={"tier_values": {**edge.identity.tier_values, "trial": "premium"}}
    )
    after = with_policies(spec, edge=edge.model_copy(update={"identity": wider}))
    found = changes(spec, after, "edge")
    assert [(c.setting, c.before, c.after) for c in found] == [("tier value trial", None, "premium")]
    assert after.policies.edge.describe_rows()["tier value trial"] == "premium"
    assert "trial→premium" in " ".join(report_text(after).split())
    assert edge.describe() in " ".join(report_text(spec).split())
    assert changes(spec, spec, "edge") == []


def test_the_report_summary_is_made_of_the_rows_the_review_shows(spec: RegionStackSpec) -> None:
    """Each policy's one line in the report (``describe()``) is built from the words of its rows
    (``describe_rows()``), the words the review shows before and after."""
    p = spec.policies
    report = " ".join(report_text(spec).split())
    lb = p.load_balancing.default.describe_rows()
    assert f"default {lb['algorithm']}" in report
    scaler = p.autoscaling.default.describe_rows()
    assert (
        f"{scaler['engine']}: {scaler['queue per replica']}, KV cache {scaler['KV-cache target']}" in report
    )
    sec = p.security.describe_rows()
    assert f"mTLS {sec['mTLS']}, {sec['authorization']}, JWT {sec['JWT']}" in report
    res = p.resilience.default.describe_rows()
    assert f"timeout {res['timeout']}, retries {res['retry attempts']}× ({res['retry on']})" in report
    assert p.qos is not None
    for name, tier in p.qos.ordered():
        rows = tier.describe_rows()
        assert f"{name}: priority {rows['priority']}, max_requests {rows['max_requests']}" in report
    edge = p.edge.describe_rows()
    for value, tier in p.edge.identity.tier_values.items():
        assert edge[f"tier value {value}"] == tier and f"{value}→{tier}" in report
    for name in p.edge.rate_limits.tiers:
        assert f"{name} {edge[f'rate limit tier {name}']}" in report
    tel = p.telemetry.describe_rows()
    assert f"tracing {tel['trace sampling']} of requests to {tel['trace export']}" in report
    assert f"usage metrics {tel['usage metrics']}" in report


def test_a_security_change_reads_the_same_in_report_and_review(spec: RegionStackSpec) -> None:
    sec = spec.policies.security
    after = with_policies(spec, security=sec.model_copy(update={"deny_by_default": False}))
    [change] = changes(spec, after, "security")
    assert (change.setting, change.before, change.after) == (
        "authorization",
        "deny by default",
        "allow by default",
    )
    assert change.before in report_text(spec) and change.after in report_text(after)
