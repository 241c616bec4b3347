"""Scenario corpus: small fleets with outcomes derived by hand, each from a cited Istio/Envoy rule.

The rule numbers (R1…R12) are those of the ``fleetkit.simulate`` module docstring, which cites the
Istio/Envoy source or documentation for each.
"""

from __future__ import annotations

import pytest

from fleetkit.simulate.core import Request
from fleetkit.simulate.engine import Simulator
from fleetkit.simulate.scenarios import Scenario, standard_scenarios
from tests.simulate.fleets import (
    OUTLIER,
    TOPOLOGY,
    aggregate_cluster_patch,
    cluster,
    deployment,
    fleet,
    fqdn,
    route,
    rule,
    scaled,
    service,
    vs,
)

A, B = "org/model-a", "org/model-b"
C1 = cluster("c1", "net1", "r1")
C2 = cluster("c2", "net2", "r2")


HEALTHY = Scenario()


def outcomes(fl, request, scenario=HEALTHY):
    return {o.label(): round(p, 4) for o, p in Simulator(fl).run(request, scenario).items() if p > 1e-9}


# --------------------------------------------------------------------------- R3: first match wins
def test_first_matching_route_wins():
    """R3: routes are evaluated in order; a later, more specific route is never reached."""
    objs = [
        service("a"),
        service("b"),
        rule("a"),
        rule("b"),
        deployment("a", "a", served=[A]),
        deployment("b", "b", served=[B]),
        vs(
            route("any-a", [("a", None, 100)], {"x-model": "a"}),
            route("premium-a", [("b", None, 100)], {"x-model": "a", "x-tier": "premium"}),
            route("default", [("b", None, 100)]),
        ),
    ]
    fl = fleet({C1: objs})
    got = outcomes(fl, Request(None, "c1", headers={"x-model": "a", "x-tier": "premium"}))
    assert got == {"a@v1 l4 in c1": 1.0}
    assert outcomes(fl, Request(None, "c1")) == {"b@v1 l4 in c1": 1.0}


def test_no_matching_route_is_404():
    """R3: no route matches → Envoy answers 404 (NR)."""
    objs = [
        service("a"),
        rule("a"),
        deployment("a", "a", served=[A]),
        vs(route("only-a", [("a", None, 100)], {"x-model": "a"})),
    ]
    assert outcomes(fleet({C1: objs}), Request(None, "c1")) == {"404 no route": 1.0}


# --------------------------------------------------------------------------- R4: subsets are clusters
def test_weighted_subset_without_endpoints_returns_503_for_its_share():
    """R4 (istio/istio#27092): weights 300/100/200 over a100 (no pods), a10g (min 0) and l4 → the
    a100 and a10g shares, 4/6, get 503; subsets never fail over to each other (istio/istio#41787)."""
    gpu = {
        "a100": {"fleetkit.dev/gpu-class": "a100-80gb"},
        "a10g": {"fleetkit.dev/gpu-class": "a10g"},
        "l4": {"fleetkit.dev/gpu-class": "l4"},
    }
    objs = [
        service("m"),
        rule("m", gpu, failover=TOPOLOGY),
        deployment("m", "m", served=[A], gpu="l4"),
        deployment("m-a10g", "m", served=[A], gpu="a10g"),
        scaled("m-a10g", 0, 2),
        vs(route("default", [("m", "a100", 300), ("m", "a10g", 100), ("m", "l4", 200)])),
    ]
    fl = fleet({C1: objs})
    assert outcomes(fl, Request(A, "c1")) == {"m@v1 l4 in c1": 0.3333, "503 no endpoints": 0.6667}
    at_max = Scenario("a10g at max", replicas=(("m-a10g", "max"),))
    assert outcomes(fl, Request(A, "c1"), at_max) == {
        "m@v1 l4 in c1": 0.3333,
        "m@v1 a10g in c1": 0.1667,
        "503 no endpoints": 0.5,
    }


def test_subset_missing_from_the_rule_is_503():
    """R4: a route to a subset the DestinationRule does not define has no Envoy cluster."""
    objs = [
        service("m"),
        rule("m", {"v1": {"version": "v1"}}),
        deployment("m", "m", served=[A]),
        vs(route("default", [("m", "v2", 100)])),
    ]
    assert outcomes(fleet({C1: objs}), Request(A, "c1")) == {"503 no endpoints": 1.0}


# --------------------------------------------------------------------------- R5 + R7: networks and priorities
def _two_networks(failover=TOPOLOGY, outlier=OUTLIER):
    def stack():
        return [
            service("m"),
            rule("m", failover=failover, outlier=outlier),
            deployment("m", "m", served=[A]),
            vs(route("default", [("m", None, 100)])),
        ]

    return fleet({C1: stack(), C2: stack()})


def test_local_network_first_then_the_remote_gateway():
    """R7: failoverPriority [network, cluster, region, zone] puts the caller's network first; R5:
    with the local pods gone, the remote cluster's east-west gateway endpoint takes everything."""
    fl = _two_networks()
    assert outcomes(fl, Request(A, "c1")) == {"m@v1 l4 in c1": 1.0}
    local_zero = Scenario("c1 at zero", replicas=(("c1/m", "zero"),))
    assert outcomes(fl, Request(A, "c1"), local_zero) == {"m@v1 l4 in c2": 1.0}
    assert outcomes(fl, Request(A, "c1"), Scenario("c1 down", clusters=frozenset({"c1"}))) == {
        "503 ingress cluster down": 1.0
    }


def test_without_outlier_detection_there_is_no_locality_preference():
    """R7: Istio applies failover priorities only with outlier detection; without it every endpoint
    is priority 0 and the gateway endpoint (weight 1) shares with the local pod (weight 1)."""
    fl = _two_networks(outlier=None)
    assert outcomes(fl, Request(A, "c1")) == {"m@v1 l4 in c1": 0.5, "m@v1 l4 in c2": 0.5}


def _fallback_by_label(same_network: bool):
    """The demo fleet's first fallback design: one Service over both models, a custom label first."""
    c2 = cluster("c2", "net1" if same_network else "net2", "r2")
    member = {"fallback.fleetkit.dev/big": "member"}
    fb = [*TOPOLOGY]
    fb.insert(0, "fallback.fleetkit.dev/big-p1=1")

    def stack(model):
        big = model == "big"
        dep = deployment(
            model,
            model,
            served=["org/big"] if big else ["org/small", "org/big"],
            extra_labels={**member, "fallback.fleetkit.dev/big-p1": "1" if big else "0"},
        )
        return [
            service("big-fallback", member),
            rule("big-fallback", failover=fb),
            dep,
            vs(route("big", [("big-fallback", None, 100)])),
        ]

    return fleet({C1: stack("small"), c2: stack("big")})


def test_custom_failover_label_is_lost_behind_the_east_west_gateway():
    """R5 + R7 (issue #14, defect 4): the remote 70B-like pod is reached through a gateway endpoint
    that carries only cluster/network labels, so it mismatches the first (custom) label like the
    local fallback pod: both get priority len(labels) and share by weight — half of the requests
    are answered by the small model although the big one is healthy."""
    got = outcomes(_fallback_by_label(same_network=False), Request("org/big", "c1"))
    assert got == {"small@v1 l4 in c1 (as another model)": 0.5, "big@v1 l4 in c2": 0.5}


def test_custom_failover_label_works_on_one_network():
    """R5: on one network endpoints keep their labels: the big pod matches the custom label (then
    mismatches at cluster → priority 3) and beats the small pod (priority 5)."""
    assert outcomes(_fallback_by_label(same_network=True), Request("org/big", "c1")) == {
        "big@v1 l4 in c2": 1.0
    }


def _aggregate_fallback():
    agg = "fallback|all|" + fqdn("big")
    members = [f"outbound|8000||{fqdn('big')}", f"outbound|8000||{fqdn('small')}"]
    ef = {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": "fallback", "namespace": "llm"},
        "spec": {
            "configPatches": [
                aggregate_cluster_patch(agg, members, "GATEWAY"),
                {
                    "applyTo": "HTTP_ROUTE",
                    "match": {
                        "context": "GATEWAY",
                        "routeConfiguration": {"vhost": {"route": {"name": "big"}}},
                    },
                    "patch": {"operation": "MERGE", "value": {"route": {"cluster": agg}}},
                },
            ]
        },
    }

    def stack(model):
        dep = deployment(model, model, served=["org/big"] if model == "big" else ["org/small", "org/big"])
        return [
            service("big"),
            service("small"),
            rule("big", failover=TOPOLOGY),
            rule("small", failover=TOPOLOGY),
            dep,
            ef,
            vs(route("big", [("big", None, 100)])),
        ]

    return fleet({C1: stack("small"), C2: stack("big")})


def test_aggregate_cluster_prefers_the_primary_anywhere():
    """R8 (the fixed design, issue #14): the aggregate linearises [big levels…, small levels…]: the
    remote big model takes everything while it is healthy; at zero, the local small model."""
    fl = _aggregate_fallback()
    assert outcomes(fl, Request("org/big", "c1")) == {"big@v1 l4 in c2": 1.0}
    zero = Scenario("big at zero", replicas=(("big", "zero"),))
    assert outcomes(fl, Request("org/big", "c1"), zero) == {"small@v1 l4 in c1 (as another model)": 1.0}


# --------------------------------------------------------------------------- R6: outlier detection
def _ejection_fleet(outlier):
    c1 = [
        service("m"),
        rule("m", failover=TOPOLOGY, outlier=outlier),
        deployment("m-v1", "m", served=[A], version="v1", replicas=2),
        deployment("m-v2", "m", served=[A], version="v2", replicas=2),
        vs(route("default", [("m", None, 100)])),
    ]
    c2 = [
        service("m"),
        rule("m", failover=TOPOLOGY, outlier=outlier),
        deployment("m", "m", served=[A], version="v1"),
    ]
    return fleet({C1: c1, C2: c2})


def test_overprovisioning_spills_the_unhealthy_share_to_the_next_priority():
    """R6 + R7: v2 (2 of 4 local hosts) ejected → local health 1.4 × 2/4 = 70 %: 70 % stays local,
    30 % goes to the next priority (the remote gateway)."""
    fl = _ejection_fleet(OUTLIER)
    sc = Scenario("v2 failing", ejected=(("m", "v2"),))
    assert outcomes(fl, Request(A, "c1"), sc) == {"m@v1 l4 in c1": 0.7, "m@v1 l4 in c2": 0.3}


def test_max_ejection_percent_leaves_failing_hosts_in_rotation():
    """R6: maxEjectionPercent 10 of 5 hosts → at least one host is ejected, not two: of the local
    level (4 hosts, 3 in rotation, health min(100, 1.4×3/4) = 100 %) one in three picks fails."""
    fl = _ejection_fleet({**OUTLIER, "maxEjectionPercent": 10})
    sc = Scenario("v2 failing", ejected=(("m", "v2"),))
    assert outcomes(fl, Request(A, "c1"), sc) == {
        "m@v1 l4 in c1": 0.6667,
        "503 failing endpoint not ejected": 0.3333,
    }


def test_without_outlier_detection_failing_hosts_keep_their_share():
    """R6 + R7: no outlier detection → nothing is ejected and there are no priorities: 2 failing of
    4 local hosts plus the gateway endpoint (weight 1)."""
    fl = _ejection_fleet(None)
    sc = Scenario("v2 failing", ejected=(("m", "v2"),))
    assert outcomes(fl, Request(A, "c1"), sc) == {
        "m@v1 l4 in c1": 0.4,
        "503 failing endpoint not ejected": 0.4,
        "m@v1 l4 in c2": 0.2,
    }


def test_everything_ejected_is_503():
    """R6: panic threshold 0 with outlier detection → no healthy host, 503."""
    objs = [
        service("m"),
        rule("m", failover=TOPOLOGY),
        deployment("m", "m", served=[A], replicas=2),
        vs(route("default", [("m", None, 100)])),
    ]
    got = outcomes(fleet({C1: objs}), Request(A, "c1"), Scenario("failing", ejected=(("m", "v1"),)))
    assert got == {"503 all endpoints ejected": 1.0}


# --------------------------------------------------------------------------- R9: circuit breakers
def test_subset_connection_pool_replaces_the_rule_s_and_trips_first():
    """R9: the premium subset's connectionPool replaces the rule's whole pool (tcp.maxConnections
    is gone): limit min(2^32-1, 40) + 10 = 50 → at 100 in flight half are rejected; the plain
    host keeps min(100, 100) + 50 = 150 ≥ 100."""
    pool = {"tcp": {"maxConnections": 100}, "http": {"http2MaxRequests": 100, "http1MaxPendingRequests": 50}}
    sub = {"premium": {"connectionPool": {"http": {"http2MaxRequests": 40, "http1MaxPendingRequests": 10}}}}
    objs = [
        service("m"),
        rule("m", {"premium": {"app": "m"}}, failover=TOPOLOGY, pool=pool, subset_policy=sub),
        deployment("m", "m", served=[A]),
        vs(
            route("premium", [("m", "premium", 100)], {"x-tier": "premium"}),
            route("default", [("m", None, 100)]),
        ),
    ]
    fl = fleet({C1: objs})
    assert outcomes(fl, Request(A, "c1", headers={"x-tier": "premium"}, concurrency=100)) == {
        "m@v1 l4 in c1": 0.5,
        "503 circuit open": 0.5,
    }
    assert outcomes(fl, Request(A, "c1", concurrency=100)) == {"m@v1 l4 in c1": 1.0}


# --------------------------------------------------------------------------- R11: vLLM names
def test_vllm_rejects_a_name_it_does_not_serve_and_flags_an_alias():
    """R11: a body model outside --served-model-name → 404 from vLLM; a second served name answers
    (flagged as another model)."""
    objs = [
        service("m"),
        rule("m"),
        deployment("m", "m", served=[A, B]),
        vs(route("default", [("m", None, 100)])),
    ]
    fl = fleet({C1: objs})
    assert outcomes(fl, Request("org/other", "c1")) == {"404 model not served by pod": 1.0}
    assert outcomes(fl, Request(B, "c1")) == {"m@v1 l4 in c1 (as another model)": 1.0}
    assert outcomes(fl, Request(A, "c1")) == {"m@v1 l4 in c1": 1.0}


# --------------------------------------------------------------------------- R2 + R10: the edge
LUA_TABLE = (
    'FLEETKIT = {["body_paths"] = {["/v1/chat/completions"] = true}, '
    '["claim_headers"] = {["tier"] = "x-claim-tier"}, '
    '["cohorts"] = {["known"] = {}, ["sticky"] = {}}, '
    '["headers"] = {["model"] = "x-model", ["tier"] = "x-tier"}, '
    '["models"] = {["alias-a"] = {["served"] = "org/model-a", ["service"] = "a"}, '
    '["org/model-a"] = {["served"] = "org/model-a", ["service"] = "a"}}, '
    '["tiers"] = {["default"] = "standard", ["map"] = {["gold"] = "premium", ["premium"] = "premium", '
    '["standard"] = "standard"}}}\n\nfunction envoy_on_request(handle) end\n'
)


def _edge_fleet(strip: bool, body_router: bool, limit: float | None = None):
    patches = []
    if strip:
        src = (
            "function envoy_on_request(handle)\n  local headers = handle:headers()\n"
            '  headers:remove("x-claim-tier")\n  headers:remove("x-model")\n  headers:remove("x-tier")\nend\n'
        )
        patches.append(
            {
                "applyTo": "HTTP_FILTER",
                "patch": {
                    "operation": "INSERT_FIRST",
                    "value": {
                        "name": "strip",
                        "typed_config": {"default_source_code": {"inline_string": src}},
                    },
                },
            }
        )
    if body_router:
        patches.append(
            {
                "applyTo": "HTTP_FILTER",
                "patch": {
                    "operation": "INSERT_BEFORE",
                    "value": {
                        "name": "route",
                        "typed_config": {"default_source_code": {"inline_string": LUA_TABLE}},
                    },
                },
            }
        )
    if limit is not None:
        patches.append(
            {
                "applyTo": "HTTP_FILTER",
                "patch": {
                    "operation": "INSERT_BEFORE",
                    "value": {
                        "name": "rl",
                        "typed_config": {
                            "descriptors": [
                                {
                                    "entries": [{"key": "tier", "value": "batch"}],
                                    "token_bucket": {"tokens_per_fill": limit, "fill_interval": "60s"},
                                }
                            ]
                        },
                    },
                },
            }
        )
        patches.append(
            {
                "applyTo": "VIRTUAL_HOST",
                "patch": {
                    "operation": "MERGE",
                    "value": {
                        "rate_limits": [
                            {
                                "actions": [
                                    {"request_headers": {"header_name": "x-tier", "descriptor_key": "tier"}}
                                ]
                            }
                        ]
                    },
                },
            }
        )
    ef = {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": "edge", "namespace": "istio-system"},
        "spec": {"configPatches": patches},
    }
    ra = {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": "jwt", "namespace": "istio-system"},
        "spec": {
            "jwtRules": [
                {
                    "issuer": "x",
                    "outputClaimToHeaders": [
                        {"header": "x-claim-tier" if body_router else "x-tier", "claim": "tier"}
                    ],
                }
            ]
        },
    }
    objs = [
        service("a"),
        rule("a", {"fast": {"fleetkit.dev/gpu-class": "h100"}, "slow": {"fleetkit.dev/gpu-class": "l4"}}),
        deployment("a-fast", "a", served=[A], gpu="h100"),
        deployment("a-slow", "a", served=[A], gpu="l4"),
        ef,
        ra,
        vs(
            route("premium", [("a", "fast", 100)], {"x-model": "a", "x-tier": "premium"}),
            route("a", [("a", "slow", 100)], {"x-model": "a"}),
            route("default", [("a", "slow", 100)]),
        ),
    ]
    return fleet({C1: objs})


def test_body_router_resolves_the_model_and_the_tier_comes_from_the_claim():
    """R2: the body's model (or an alias) picks the route; the tier is the verified claim mapped
    through the edge's tier map; an unknown model is a 404 at the edge."""
    fl = _edge_fleet(strip=True, body_router=True)
    assert outcomes(fl, Request(A, "c1", claims={"tier": "premium"})) == {"a@v1 h100 in c1": 1.0}
    assert outcomes(fl, Request("alias-a", "c1", claims={"tier": "gold"})) == {"a@v1 h100 in c1": 1.0}
    assert outcomes(fl, Request(A, "c1")) == {"a@v1 l4 in c1": 1.0}
    assert outcomes(fl, Request("nope", "c1")) == {"404 unknown model": 1.0}


def test_a_forged_tier_header_changes_nothing_when_stripped():
    """R2: the first Lua filter removes client copies; the tier falls back to the default tier."""
    fl = _edge_fleet(strip=True, body_router=True)
    forged = Request(A, "c1", headers={"x-tier": "premium", "x-claim-tier": "premium"})
    assert outcomes(fl, forged) == {"a@v1 l4 in c1": 1.0}


def test_claim_to_header_appends_to_a_forged_header():
    """R2: without stripping, jwt_authn adds the claim header beside the client's copy; the exact
    match sees "premium,standard" and fails — and a forged header alone wins premium (the defect of
    issue #13)."""
    fl = _edge_fleet(strip=False, body_router=False)
    both = Request(None, "c1", headers={"x-model": "a", "x-tier": "premium"}, claims={"tier": "standard"})
    assert outcomes(fl, both) == {"a@v1 l4 in c1": 1.0}
    forged = Request(None, "c1", headers={"x-model": "a", "x-tier": "premium"})
    assert outcomes(fl, forged) == {"a@v1 h100 in c1": 1.0}


def test_local_rate_limit_answers_429_for_the_excess():
    """R10: a batch bucket of 600 tokens a minute (10/s) at one replica, offered 40/s → 75 % get 429."""
    fl = _edge_fleet(strip=False, body_router=False, limit=600)
    got = outcomes(fl, Request(None, "c1", headers={"x-tier": "batch"}, rate=40))
    assert got == {"429 429 rate limited": 0.75, "a@v1 l4 in c1": 0.25}


# --------------------------------------------------------------------------- R7 locality, 4 clusters
def test_region_zone_locality_without_failover_priority():
    """R7: localityLbSetting without failoverPriority: same zone (0) before same region (2)."""
    c = cluster("c1", "net1", "r1")
    c = type(c)(c.name, c.network, c.region, c.stack, {"gpu-a": ("z1",), "gpu-b": ("z2",)})
    dr = rule("m", failover=None)
    dr["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"] = {"enabled": True}
    objs = [
        service("m"),
        dr,
        deployment("m-a", "m", served=[A], gpu="a100-80gb", pool="gpu-a"),
        deployment("m-b", "m", served=[A], gpu="l4", pool="gpu-b"),
        vs(route("default", [("m", None, 100)])),
    ]
    fl = fleet({c: objs})
    assert outcomes(fl, Request(A, "c1", zone="z1")) == {"m@v1 a100-80gb in c1": 1.0}
    assert outcomes(fl, Request(A, "c1", zone="z2")) == {"m@v1 l4 in c1": 1.0}
    assert outcomes(fl, Request(A, "c1", zone="z2"), Scenario("z2 down", zones=frozenset({"z2"}))) == {
        "503 ingress cluster down": 1.0
    }
    assert outcomes(fl, Request(A, "c1", zone="z1"), Scenario("pool a", no_capacity=("gpu-a",))) == {
        "m@v1 l4 in c1": 1.0
    }


def _four_clusters(c3_replicas=1):
    cs = [
        cluster("c1", "net1", "r1"),
        cluster("c2", "net1", "r2"),
        cluster("c3", "net2", "r3"),
        cluster("c4", "net2", "r4"),
    ]
    stacks = {}
    for c in cs:
        objs = [service("m"), rule("m", failover=TOPOLOGY), vs(route("default", [("m", None, 100)]))]
        if c.name != "c1":
            objs.append(deployment("m", "m", served=[A], replicas=c3_replicas if c.name == "c3" else 1))
        stacks[c] = objs
    return fleet(stacks)


def test_same_network_before_remote_networks_and_gateway_weights():
    """R5 + R7: from c1 (no pods), c2 on the same network (priority 3: cluster mismatch) wins over
    the net2 gateways (priority 4); with c2 down the two gateway endpoints share by the number of
    endpoints each stands for (3:1)."""
    fl = _four_clusters(c3_replicas=3)
    assert outcomes(fl, Request(A, "c1")) == {"m@v1 l4 in c2": 1.0}
    down = Scenario("r2 down", regions=frozenset({"r2"}))
    assert outcomes(fl, Request(A, "c1"), down) == {"m@v1 l4 in c3": 0.75, "m@v1 l4 in c4": 0.25}
    net2 = Scenario("net2 down", networks=frozenset({"net2"}))
    assert outcomes(fl, Request(A, "c1"), net2) == {"m@v1 l4 in c2": 1.0}


def test_standard_scenarios_fold_identical_outages():
    fl = _four_clusters()
    names = {s.name: s.aliases for s in standard_scenarios(fl)}
    assert "healthy" in names
    assert names["cluster c1 down"] == ("region r1 down",)
    assert names["network net1 down"] == ()
    assert "m v1 at zero" in names


@pytest.mark.parametrize("bad", ["cluster", "planet:x", "cluster:nope"])
def test_bad_down_values_are_problems(bad):
    from fleetkit.simulate.scenarios import parse_scenario

    _, problems = parse_scenario(_four_clusters(), [bad], [], [], [])
    assert problems and problems[0].file == "--down"
