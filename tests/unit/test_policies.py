"""Pure unit tests of every serving policy: validation rules and rendered fields."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from fleetkit.schema import validate_objects
from policies import (
    AutoscalingPolicy,
    FailoverPolicy,
    LoadBalancerSpec,
    LocalModel,
    PolicySet,
    QosPolicy,
    RenderContext,
    ResilienceSpec,
    Retries,
    RoutingPolicy,
    SecurityPolicy,
    ServiceInfo,
    Variant,
)
from policies.common import format_duration, parse_duration

CTX = RenderContext(
    namespace="llm",
    services={
        "big": ServiceInfo(
            "big", "org/big", (Variant("big", "v1", "h100", "s1"), Variant("big-v2", "v2", "h100", "s1"))
        ),
        "small": ServiceInfo(
            "small",
            "org/small",
            (Variant("small", "v1", "l4", "s1"), Variant("small-a10", "v1", "a10g", "s2")),
        ),
        "tiny": ServiceInfo("tiny", "org/tiny", (Variant("tiny", "v1", "l4", "s2"),)),
    },
    local_models=(LocalModel("big", "big", "org/big", 1, 3), LocalModel("small", "small", "org/small", 0, 4)),
    fleet_regions=frozenset({"us-east-1", "europe-west4"}),
)

TIERS = {
    "default_tier": "standard",
    "tiers": {
        "premium": {"priority": 1000, "max_requests": 100, "max_pending_requests": 20},
        "standard": {"priority": 500, "max_requests": 50, "max_pending_requests": 10},
        "batch": {"priority": 10, "max_requests": 5, "max_pending_requests": 1, "preemptible": True},
    },
}


def policy(**sections):
    base = {"routing": {"routes": [], "default": {"to": [{"model": "small"}]}}}
    base.update(sections)
    return PolicySet.model_validate(base)


def by_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


# ------------------------------------------------------------------ durations
@pytest.mark.parametrize("text,secs", [("30s", 30), ("250ms", 0.25), ("5m", 300), ("1h30m", 5400), (90, 90)])
def test_parse_duration(text, secs):
    assert parse_duration(text) == timedelta(seconds=secs)


@pytest.mark.parametrize("bad", ["10 minutes", "5", "s", "", "1d", True, -1])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration():
    assert format_duration(timedelta(seconds=600)) == "600s"
    assert format_duration(timedelta(milliseconds=250)) == "250ms"


# ------------------------------------------------------------------ routing
def test_routing_canary_weights_and_mirror():
    ps = policy(
        routing={
            "routes": [
                {
                    "name": "canary",
                    "match": [{"model": "big", "headers": {"x-cohort": "beta"}}],
                    "to": [
                        {"model": "big", "version": "v1", "weight": 90},
                        {"model": "big", "version": "v2", "weight": 10},
                    ],
                    "mirror": {"model": "big", "version": "v2", "percent": 5},
                }
            ],
            "default": {"to": [{"model": "small"}]},
        }
    )
    vs = by_kind(ps.render(CTX), "VirtualService")[0]
    route = vs["spec"]["http"][0]
    assert route["name"] == "canary"
    assert route["match"] == [
        {"headers": {"x-cohort": {"exact": "beta"}, "x-fleetkit-model": {"exact": "big"}}}
    ]
    assert [(d["destination"]["subset"], d["weight"]) for d in route["route"]] == [("v1", 90), ("v2", 10)]
    assert route["mirror"]["subset"] == "v2" and route["mirrorPercentage"] == {"value": 5.0}
    assert "mirrorPercent" not in route  # deprecated field never rendered
    assert vs["spec"]["http"][-1]["name"] == "default" and "match" not in vs["spec"]["http"][-1]
    assert vs["spec"]["gateways"] == ["istio-system/fleetkit-ingress"]


def test_routing_matches_tier_task_and_any_header():
    r = RoutingPolicy.model_validate(
        {
            "default": {"to": [{"model": "small"}]},
            "routes": [
                {
                    "name": "r",
                    "match": [
                        {
                            "tier": "batch",
                            "task": "summarize",
                            "headers": {"x-team": {"prefix": "search"}},
                            "uri_prefix": "/v1/chat",
                        }
                    ],
                    "to": [{"model": "small"}],
                }
            ],
        }
    )
    m = r.match_blocks(r.routes[0].match[0])
    assert m == {
        "headers": {
            "x-fleetkit-task": {"exact": "summarize"},
            "x-fleetkit-tier": {"exact": "batch"},
            "x-team": {"prefix": "search"},
        },
        "uri": {"prefix": "/v1/chat"},
    }


@pytest.mark.parametrize(
    "bad,needle",
    [
        ({"to": [{"model": "small", "weight": 0}]}, "greater than or equal to 1"),
        ({"to": []}, "at least 1 item"),
        ({"to": [{"model": "small"}, {"model": "small"}]}, "listed twice"),
        ({"to": [{"model": "small"}], "match": [{}]}, "at least one condition"),
        (
            {"to": [{"model": "small"}], "match": [{"headers": {"x": {"exact": "a", "prefix": "b"}}}]},
            "exactly one",
        ),
        (
            {"to": [{"model": "small"}], "mirror": {"model": "big", "percent": 150}},
            "less than or equal to 100",
        ),
    ],
)
def test_routing_rejects(bad, needle):
    route = {"name": "r", "match": [{"model": "x"}], **bad}
    with pytest.raises(ValidationError, match=needle):
        RoutingPolicy.model_validate({"routes": [route], "default": {"to": [{"model": "small"}]}})


def test_routing_unique_names():
    r = {"name": "dup", "match": [{"model": "x"}], "to": [{"model": "small"}]}
    with pytest.raises(ValidationError, match="unique"):
        RoutingPolicy.model_validate({"routes": [r, r], "default": {"to": [{"model": "small"}]}})


def test_reference_checks():
    ps = policy(
        routing={
            "routes": [
                {
                    "name": "a",
                    "match": [{"model": "x", "tier": "gold"}],
                    "to": [
                        {"model": "nope"},
                        {"model": "big", "version": "v9"},
                        {"model": "big", "gpu_class": "l4"},
                    ],
                }
            ],
            "default": {"to": [{"model": "small"}]},
        },
        qos=TIERS,
    )
    rules = {(i.rule, i.path) for i in ps.check(CTX)}
    assert ("ref.unknown-model", ("routing", "routes", 0, "to", 0, "model")) in rules
    assert ("ref.unknown-version", ("routing", "routes", 0, "to", 1, "version")) in rules
    assert ("ref.unknown-gpu-class", ("routing", "routes", 0, "to", 2, "gpu_class")) in rules
    assert ("ref.unknown-tier", ("routing", "routes", 0, "match", 0, "tier")) in rules


# ------------------------------------------------------------------ load balancing
def test_least_request_is_default():
    assert LoadBalancerSpec().render() == {"simple": "LEAST_REQUEST"}


def test_consistent_hash_header_and_cookie():
    h = LoadBalancerSpec(
        algorithm="consistent_hash", hash_on={"header": "x-session-id"}, ring_minimum_size=1024
    )
    assert h.render() == {
        "consistentHash": {"httpHeaderName": "x-session-id", "ringHash": {"minimumRingSize": 1024}}
    }
    c = LoadBalancerSpec(algorithm="consistent_hash", hash_on={"cookie": {"name": "sid", "ttl": "1h"}})
    assert c.render() == {"consistentHash": {"httpCookie": {"name": "sid", "ttl": "3600s"}}}
    assert "minimumRingSize" not in str(c.render())  # deprecated top-level field never rendered


@pytest.mark.parametrize(
    "bad,needle",
    [
        ({"algorithm": "consistent_hash"}, "needs hash_on"),
        ({"hash_on": {"header": "x"}}, "only applies"),
        (
            {
                "algorithm": "consistent_hash",
                "hash_on": {"header": "x"},
                "hash_algorithm": "maglev",
                "maglev_table_size": 65536,
            },
            "prime",
        ),
        ({"algorithm": "least_conn"}, "Input should be"),
        ({"gpu_weights": {"l4": 0}}, "at least 1"),
    ],
)
def test_load_balancer_rejects(bad, needle):
    with pytest.raises(ValidationError, match=needle):
        LoadBalancerSpec.model_validate(bad)


def test_gpu_weights_split_routes_into_gpu_subsets():
    ps = policy(
        load_balancing={"models": {"small": {"gpu_weights": {"l4": 3, "a10g": 1}}}},
        routing={"routes": [], "default": {"to": [{"model": "small", "weight": 10}]}},
    )
    objs = ps.render(CTX)
    route = by_kind(objs, "VirtualService")[0]["spec"]["http"][-1]["route"]
    assert [(d["destination"]["subset"], d["weight"]) for d in route] == [("a10g", 10), ("l4", 30)]
    dr = next(o for o in by_kind(objs, "DestinationRule") if o["metadata"]["name"] == "small")
    subsets = {s["name"]: s for s in dr["spec"]["subsets"]}
    assert subsets["l4"]["labels"] == {"fleetkit.dev/gpu-class": "l4"}
    assert all("weight" not in s for s in subsets.values())  # subsets carry no weight


def test_per_model_override_merges_over_default():
    ps = policy(
        load_balancing={
            "default": {"algorithm": "round_robin", "warmup": "30s"},
            "models": {"big": {"algorithm": "least_request"}},
        }
    )
    assert ps.load_balancing.for_model("big").warmup == timedelta(seconds=30)
    assert ps.load_balancing.for_model("big").algorithm == "least_request"
    assert ps.load_balancing.for_model("small").algorithm == "round_robin"


# ------------------------------------------------------------------ resilience
def test_a_per_try_timeout_shorter_than_the_route_timeout_is_a_finding():
    cut = ResilienceSpec.model_validate(
        {"timeout": "900s", "retries": {"attempts": 1, "per_try_timeout": "450s"}}
    )
    assert cut.per_try_cuts_generation()
    assert "cut at 450s" in cut.per_try_message()
    ps = policy(
        resilience={
            "models": {"big": {"timeout": "900s", "retries": {"attempts": 1, "per_try_timeout": "450s"}}}
        }
    )
    issues = [i for i in ps.check(CTX) if i.rule == "resilience.per-try-cuts-generation"]
    assert [i.path for i in issues] == [("resilience", "models", "big")]
    # the default renders no per-try timeout: the route timeout bounds a generation
    ok = ResilienceSpec.model_validate({"timeout": "900s", "retries": {"attempts": 1}})
    assert not ok.per_try_cuts_generation()
    assert ok.retries.render() == {
        "attempts": 1,
        "retryOn": "connect-failure,refused-stream,reset-before-request,unavailable",
    }
    assert not ResilienceSpec.model_validate(
        {"timeout": "60s", "retries": {"attempts": 1, "per_try_timeout": "60s"}}
    ).per_try_cuts_generation()


def test_retries_only_safe_conditions():
    with pytest.raises(ValidationError):
        Retries.model_validate({"retry_on": ["5xx"]})
    assert Retries(attempts=0).render() == {"attempts": 0}  # Istio's only valid form of "no retries"


def test_circuit_breaker_current_field_names():
    cb = ResilienceSpec().circuit_breaker
    od = cb.outlier_detection()
    assert "consecutive5xxErrors" in od and "consecutiveErrors" not in od
    assert cb.connection_pool()["http"]["http2MaxRequests"] == 1024


def test_fallback_chain_is_an_aggregate_cluster_primary_first():
    ps = policy(
        resilience={"fallback": {"big": ["small", "tiny"]}},
        routing={
            "routes": [{"name": "b", "match": [{"model": "big"}], "to": [{"model": "big"}]}],
            "default": {"to": [{"model": "small"}]},
        },
    )
    objs = ps.render(CTX)
    route = by_kind(objs, "VirtualService")[0]["spec"]["http"][0]
    # the route names the primary's chain version; the EnvoyFilter swaps in the aggregate cluster
    assert route["route"] == [
        {
            "destination": {"host": "big.llm.svc.cluster.local", "port": {"number": 8000}, "subset": "v1"},
            "weight": 100,
        }
    ]
    assert not [o for o in by_kind(objs, "Service") if o["metadata"]["name"].endswith("-fallback")]
    for dr in by_kind(objs, "DestinationRule"):  # topology labels only: the east-west gateway keeps no others
        prio = dr["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"]["failoverPriority"]
        assert all(p.startswith("topology.") for p in prio), prio
    (ef,) = [o for o in by_kind(objs, "EnvoyFilter") if o["metadata"]["name"] == "fleetkit-fallback"]
    add, merge = ef["spec"]["configPatches"]
    members = add["patch"]["value"]["cluster_type"]["typed_config"]["clusters"]
    assert members == [
        "outbound|8000|v1|big.llm.svc.cluster.local",
        "outbound|8000||small.llm.svc.cluster.local",
        "outbound|8000||tiny.llm.svc.cluster.local",
    ]
    assert merge["match"]["routeConfiguration"]["vhost"]["route"]["name"] == "b"
    assert merge["patch"]["value"] == {"route": {"cluster": add["patch"]["value"]["name"]}}


@pytest.mark.parametrize(
    "chain,needle", [([], "empty"), (["big"], "primary itself"), (["small", "small"], "twice")]
)
def test_fallback_chain_rejects(chain, needle):
    with pytest.raises(ValidationError, match=needle):
        policy(resilience={"fallback": {"big": chain}})


# ------------------------------------------------------------------ QoS
def test_qos_tiers_route_by_header_to_own_subsets():
    ps = policy(
        qos=TIERS,
        routing={
            "routes": [{"name": "s", "match": [{"model": "small"}], "to": [{"model": "small"}]}],
            "default": {"to": [{"model": "small"}]},
        },
    )
    objs = ps.render(CTX)
    http = by_kind(objs, "VirtualService")[0]["spec"]["http"]
    names = [h["name"] for h in http]
    assert names[:4] == ["s-premium", "s-standard", "s-batch", "s-untiered"]
    assert http[0]["match"][0]["headers"]["x-fleetkit-tier"] == {"exact": "premium"}
    assert http[0]["route"][0]["destination"]["subset"] == "premium"
    assert http[3]["route"][0]["destination"]["subset"] == "standard"  # no header -> default tier
    dr = next(o for o in by_kind(objs, "DestinationRule") if o["metadata"]["name"] == "small")
    limits = {
        s["name"]: s["trafficPolicy"]["connectionPool"]["http"]["http2MaxRequests"]
        for s in dr["spec"]["subsets"]
    }
    assert limits == {"batch": 5, "premium": 100, "standard": 50}
    pcs = {o["metadata"]["name"]: o for o in by_kind(objs, "PriorityClass")}
    assert pcs["fleetkit-batch"]["preemptionPolicy"] == "Never"
    assert (
        pcs["fleetkit-premium"]["value"] > pcs["fleetkit-standard"]["value"] > pcs["fleetkit-batch"]["value"]
    )
    assert ps.qos.shed_order()[0] == "batch"


def test_qos_lower_tier_must_be_shed_first():
    bad = {
        "default_tier": "a",
        "tiers": {
            "a": {"priority": 10, "max_requests": 5, "max_pending_requests": 1},
            "b": {"priority": 1, "max_requests": 50, "max_pending_requests": 1},
        },
    }
    with pytest.raises(ValidationError, match="shed first"):
        QosPolicy.model_validate(bad)
    with pytest.raises(ValidationError, match="default_tier"):
        QosPolicy.model_validate({**TIERS, "default_tier": "gold"})


# ------------------------------------------------------------------ failover
def test_failover_always_with_outlier_detection():
    objs = policy().render(CTX)
    for dr in by_kind(objs, "DestinationRule"):
        tp = dr["spec"]["trafficPolicy"]
        assert "localityLbSetting" in tp["loadBalancer"]
        assert tp["outlierDetection"]["consecutive5xxErrors"] > 0


def test_failover_rejected_when_ejection_disabled():
    ps = policy(
        resilience={
            "default": {"circuit_breaker": {"consecutive_5xx_errors": 0, "consecutive_gateway_errors": 0}}
        }
    )
    assert {i.rule for i in ps.check(CTX)} == {"failover.needs-outlier-detection"}


def test_failover_region_chain():
    fo = FailoverPolicy(
        mode="regions", regions=["us-east-1", "europe-west4"], priority_labels=["topology.istio.io/network"]
    )
    assert fo.locality_lb_setting() == {
        "enabled": True,
        "failover": [{"from": "us-east-1", "to": "europe-west4"}],
        "failoverPriority": ["topology.istio.io/network"],
    }
    ps = policy(failover={"mode": "regions", "regions": ["us-east-1", "mars-1"]})
    assert [(i.rule, i.value) for i in ps.check(CTX)] == [("ref.unknown-region", "mars-1")]


@pytest.mark.parametrize(
    "bad,needle",
    [
        ({"mode": "regions", "regions": ["us-east-1"]}, "at least two"),
        ({"mode": "regions", "regions": ["us-east-1", "us-east-1/a"]}, "plain provider region"),
        (
            {
                "mode": "regions",
                "regions": ["a-1", "b-1"],
                "priority_labels": ["topology.kubernetes.io/region"],
            },
            "locality labels",
        ),
        ({"regions": ["a-1", "b-1"]}, "only applies"),
        ({"priority_labels": []}, "at least one"),
    ],
)
def test_failover_rejects(bad, needle):
    with pytest.raises(ValidationError, match=needle):
        FailoverPolicy.model_validate(bad)


# ------------------------------------------------------------------ autoscaling
def test_keda_scaled_object_on_vllm_metrics():
    objs = AutoscalingPolicy().render_for(
        model="small",
        deployment="small",
        namespace="llm",
        served_name="org/small",
        min_replicas=0,
        max_replicas=4,
    )
    so = objs[0]
    assert so["apiVersion"] == "keda.sh/v1alpha1" and so["kind"] == "ScaledObject"
    assert so["spec"]["minReplicaCount"] == 0 and so["spec"]["maxReplicaCount"] == 4  # always explicit
    queries = [t["metadata"]["query"] for t in so["spec"]["triggers"]]
    # one Deployment's series (the PodMonitor's fleetkit_model label), never the shared served name
    assert queries == [
        'sum(vllm:num_requests_waiting{fleetkit_model="small",namespace="llm"})',
        'sum(vllm:kv_cache_usage_perc{fleetkit_model="small",namespace="llm"})',
    ]
    assert all("metricName" not in t["metadata"] for t in so["spec"]["triggers"])
    assert so["spec"]["cooldownPeriod"] == 300


def test_hpa_alternative():
    pol = AutoscalingPolicy.model_validate({"default": {"engine": "hpa", "kv_cache_target": None}})
    hpa = pol.render_for(
        model="m", deployment="m", namespace="llm", served_name="m", min_replicas=1, max_replicas=3
    )[0]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "vllm_num_requests_waiting"
    with pytest.raises(ValidationError, match="KEDA trigger"):
        AutoscalingPolicy.model_validate({"default": {"engine": "hpa", "kv_cache_target": 0.8}})


# ------------------------------------------------------------------ security
def test_security_strict_deny_by_default_and_jwt():
    sec = SecurityPolicy.model_validate(
        {"jwt": [{"issuer": "https://id.example/", "jwks_uri": "https://id.example/jwks"}]}
    )
    objs = sec.render(CTX)
    pas = [o for o in objs if o["kind"] == "PeerAuthentication"]
    assert {(o["metadata"]["namespace"], o["spec"]["mtls"]["mode"]) for o in pas} == {
        ("istio-system", "STRICT"),
        ("llm", "STRICT"),
    }
    deny = next(o for o in objs if o["metadata"]["name"] == "allow-nothing")
    assert deny["spec"] == {}
    allow = next(o for o in objs if o["metadata"]["name"] == "allow-model-callers")
    assert allow["spec"]["rules"][0]["from"][0]["source"]["principals"] == [
        "cluster.local/ns/istio-system/sa/fleetkit-ingress"
    ]
    req = next(o for o in objs if o["metadata"]["name"] == "fleetkit-ingress-require-jwt")
    assert req["spec"]["rules"][0]["from"][0]["source"]["requestPrincipals"] == ["*"]
    assert all(o["apiVersion"] == "security.istio.io/v1" for o in objs)
    with pytest.raises(ValidationError, match="require_jwt"):
        SecurityPolicy.model_validate({"require_jwt": True})


# ------------------------------------------------------------------ whole set
def test_full_policy_set_is_schema_valid_and_deterministic():
    ps = policy(
        qos=TIERS,
        resilience={"fallback": {"big": ["small"]}},
        load_balancing={
            "models": {
                "small": {"gpu_weights": {"l4": 2, "a10g": 1}},
                "big": {"algorithm": "consistent_hash", "hash_on": {"header": "x-session"}},
            }
        },
        security={"jwt": [{"issuer": "https://id.example/"}]},
        routing={
            "routes": [
                {
                    "name": "b",
                    "match": [{"model": "big"}],
                    "to": [
                        {"model": "big", "version": "v1", "weight": 95},
                        {"model": "big", "version": "v2", "weight": 5},
                    ],
                    "mirror": {"model": "big", "version": "v2", "percent": 10},
                }
            ],
            "default": {"to": [{"model": "small"}]},
            "tls_credential": "cert",
        },
    )
    a, b = ps.render(CTX), ps.render(CTX)
    assert a == b
    assert validate_objects(a) == []
    # every subset a route references is defined, and no other subset is
    vs = by_kind(a, "VirtualService")[0]
    used = {
        (d["destination"]["host"], d["destination"].get("subset"))
        for h in vs["spec"]["http"]
        for d in h["route"]
    }
    used |= {(h["mirror"]["host"], h["mirror"].get("subset")) for h in vs["spec"]["http"] if "mirror" in h}
    defined = {
        (dr["spec"]["host"], s["name"])
        for dr in by_kind(a, "DestinationRule")
        for s in dr["spec"].get("subsets", [])
    }
    assert {u for u in used if u[1]} == defined
