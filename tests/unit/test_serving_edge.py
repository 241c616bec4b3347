"""Body routing, identity, tiers, quotas and timeouts: the typed side (checks and rendering)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fleetkit.errors import SpecError
from fleetkit.loader import load_fleet
from fleetkit.schema import validate_objects
from policies import PolicySet
from policies.edge import managed_headers, model_names, route_script, sticky_bucket, tier_priorities
from policies.fallback_rewrite import fallback_rewrites
from tests.unit.test_policies import CTX, TIERS, by_kind, policy

ROOT = Path(__file__).resolve().parents[2]


def rules(ps: PolicySet) -> list[tuple[tuple[object, ...], str]]:
    return [(i.path, i.rule) for i in ps.check(CTX)]


def routed(match: dict[str, object]) -> PolicySet:
    return policy(
        qos=TIERS,
        routing={
            "routes": [{"name": "r", "match": [match], "to": [{"model": "big"}]}],
            "default": {"to": [{"model": "small"}]},
        },
    )


@pytest.mark.parametrize("header", ["x-canary-cohort", "x-user-tier", "x-plan", "x-tenant-id"])
def test_routing_on_a_client_controlled_identity_header_is_a_finding(header: str) -> None:
    assert rules(routed({"model": "big", "headers": {header: "beta"}})) == [
        (("routing", "routes", 0, "match", 0, "headers", header), "routing.client-identity-header")
    ]


@pytest.mark.parametrize("header", ["x-fleetkit-tier", "x-fleetkit-cohort", "x-fleetkit-claim-tier"])
def test_routing_on_a_header_the_edge_derives_must_use_the_typed_field(header: str) -> None:
    assert rules(routed({"headers": {header: "premium"}}))[0][1] == "routing.managed-header"


def test_typed_tier_and_cohort_matches_are_not_findings() -> None:
    ps = routed({"model": "big", "tier": "premium", "cohort": "beta", "headers": {"x-team": "search"}})
    assert rules(ps) == []
    http = by_kind(ps.render(CTX), "VirtualService")[0]["spec"]["http"][0]
    assert http["match"][0]["headers"]["x-fleetkit-cohort"] == {"exact": "beta"}


def test_identity_mappings_must_name_real_tiers() -> None:
    ps = policy(
        qos=TIERS,
        edge={
            "identity": {"tier_values": {"gold": "platinum"}},
            "rate_limits": {"tiers": {"vip": {"requests_per_minute": 5}}},
        },
    )
    assert rules(ps) == [
        (("edge", "identity", "tier_values", "gold"), "edge.unknown-tier"),
        (("edge", "rate_limits", "tiers", "vip"), "edge.unknown-tier"),
    ]
    with pytest.raises(ValidationError, match="add up to at most 100"):
        policy(edge={"identity": {"cohorts": {"a": 60, "b": 50}}})


def test_every_routing_and_claim_header_is_stripped_before_jwt_authn() -> None:
    ps = policy(qos=TIERS)
    headers = managed_headers(ps)
    assert {
        "x-fleetkit-model",
        "x-fleetkit-tier",
        "x-fleetkit-cohort",
        "x-fleetkit-tenant",
        "x-fleetkit-claim-tier",
        "x-fleetkit-claim-subject",
    } <= set(headers)
    ef = by_kind(ps.render(CTX), "EnvoyFilter")[0]
    first = ef["spec"]["configPatches"][0]
    assert first["patch"]["operation"] == "INSERT_FIRST"
    source = first["patch"]["value"]["typed_config"]["default_source_code"]["inline_string"]
    assert all(f'headers:remove("{h}")' in source for h in headers)


def test_claims_are_copied_to_headers_on_every_jwt_rule() -> None:
    ps = policy(
        security={"jwt": [{"issuer": "https://a/"}, {"issuer": "https://b/"}]},
        edge={"identity": {"tier_claim": "plan", "tenant_claim": "org"}},
    )
    ra = by_kind(ps.render(CTX), "RequestAuthentication")[0]
    for rule in ra["spec"]["jwtRules"]:
        assert {"header": "x-fleetkit-claim-tier", "claim": "plan"} in rule["outputClaimToHeaders"]
        assert {"header": "x-fleetkit-claim-tenant", "claim": "org"} in rule["outputClaimToHeaders"]


def test_model_names_and_tier_priorities_reach_the_lua_filter() -> None:
    names = model_names(CTX)
    assert names["org/big"] == names["big"] == {"service": "big", "served": "org/big"}
    ps = policy(qos=TIERS)
    assert tier_priorities(ps) == {"premium": 0, "standard": 1, "batch": 2}
    script = route_script(ps, CTX)
    assert script.startswith("FLEETKIT = {") and "clearRouteCache" in script


def test_sticky_bucket_is_stable_and_spread() -> None:
    assert sticky_bucket("user-1") == sticky_bucket("user-1")
    buckets = {sticky_bucket(f"user-{i}") for i in range(500)}
    assert len(buckets) > 90


def test_tier_subsets_keep_the_circuit_breaker_settings() -> None:
    ps = policy(qos=TIERS, resilience={"default": {"circuit_breaker": {"max_connections": 77}}})
    objs = ps.render(CTX)
    for dr in by_kind(objs, "DestinationRule"):
        for subset in dr["spec"].get("subsets", []):
            pool = subset["trafficPolicy"]["connectionPool"]
            assert pool["tcp"]["maxConnections"] == 77 and pool["tcp"]["connectTimeout"] == "10s"
            assert pool["http"]["idleTimeout"] == "3600s"
    assert validate_objects(objs) == []


def test_rendered_edge_and_telemetry_objects_validate_against_the_istio_schemas() -> None:
    ps = policy(
        qos=TIERS,
        edge={
            "rate_limits": {
                "tiers": {"batch": {"requests_per_minute": 10}},
                "tenants": {"acme": {"requests_per_minute": 5}},
            }
        },
    )
    objs = ps.render(CTX)
    kinds = {o["kind"] for o in objs}
    assert {"EnvoyFilter", "Telemetry"} <= kinds
    assert validate_objects(objs) == []
    ef = by_kind(objs, "EnvoyFilter")[0]
    names = [
        p["patch"]["value"].get("name") for p in ef["spec"]["configPatches"] if p["applyTo"] == "HTTP_FILTER"
    ]
    assert names == [
        "fleetkit.edge.strip",
        "fleetkit.edge.model",
        "fleetkit.edge.route",
        "fleetkit.edge.ratelimit",
    ]
    vhost = [p for p in ef["spec"]["configPatches"] if p["applyTo"] == "VIRTUAL_HOST"]
    assert vhost and vhost[0]["patch"]["value"]["rate_limits"][0]["actions"][0]["request_headers"] == {
        "header_name": "x-fleetkit-tier",
        "descriptor_key": "tier",
    }


def _problems(overrides: list[str]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as err:
        load_fleet(ROOT, only=["aws-us-east-1"], overrides=overrides)
    return [(p.where, p.rule) for p in err.value.problems]


def test_an_alias_shared_by_two_models_is_a_finding() -> None:
    assert ("models.llama-3-8b.aliases[0]", "model.name-conflict") in _problems(
        ["models.llama-3-8b.aliases=[llama-3.1-70b]"]
    )


def test_a_load_balancer_idle_timeout_below_the_route_timeout_is_a_finding() -> None:
    assert _problems(["mesh.lb_idle_timeout=300s"]) == [
        ("mesh.lb_idle_timeout", "mesh.lb-idle-below-route-timeout")
    ]


def test_a_route_timeout_beyond_the_cloud_load_balancer_limit_is_a_finding() -> None:
    rows = _problems(["policies.resilience.models.llama-3-70b.timeout=7000s"])
    assert ("fleetkit.policies.resilience", "mesh.lb-idle-below-route-timeout") in rows


def test_a_fallback_model_serves_only_its_own_name_and_failed_over_requests_are_rewritten() -> None:
    ps = policy(resilience={"fallback": {"big": ["small"]}})
    assert fallback_rewrites(ps, CTX) == {"small": {"big": "org/small", "org/big": "org/small"}}
    objs = ps.render(CTX)
    (rewrite,) = [
        o for o in by_kind(objs, "EnvoyFilter") if o["metadata"]["name"] == "small-fallback-rewrite"
    ]
    assert rewrite["spec"]["workloadSelector"] == {"labels": {"app": "small"}}
    assert {p["match"]["context"] for p in rewrite["spec"]["configPatches"]} == {"SIDECAR_INBOUND"}
    assert validate_objects(objs) == []
