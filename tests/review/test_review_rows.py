"""The review compares a policy row by row in the policy's own words (``describe_rows()``), and misses nothing.

Before the rows, the review compared load balancing, autoscaling, security, the edge, timeouts and
retries, a QoS tier and the front door field by field (every leaf of the dumped model). Each case
below changes one of those fields and pins the change the review shows now, with the words before
and after; ``test_every_field_is_covered`` fails when a policy gains a field no case changes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from fleetkit.loader import load_fleet
from fleetkit.resolve import resolve
from fleetkit.review.core import side_of
from fleetkit.review.semantic import diff_stack
from fleetkit.spec import RegionStackSpec
from policies.autoscaling import AutoscalerSpec, AutoscalingPolicy, CapacityWindow
from policies.edge import EdgePolicy, Identity, Limit, RateLimits
from policies.load_balancing import HashCookie, HashOn, LoadBalancerSpec, LoadBalancingPolicy
from policies.qos import QosPolicy, Tier
from policies.resilience import CircuitBreaker, ResiliencePolicy, ResilienceSpec, Retries
from policies.routing import RoutingHeaders, RoutingPolicy
from policies.security import ExtraCaller, JwtRule, SecurityPolicy
from policies.telemetry import TelemetryPolicy, TracingPolicy

Row = tuple[str, str, str | None, str | None]  # subject, setting, before, after


@pytest.fixture(scope="module")
def spec(project_root: Path) -> RegionStackSpec:
    s = load_fleet(project_root).stacks["aws-us-east-1"].spec
    assert isinstance(s, RegionStackSpec)
    return s


def shown(spec: RegionStackSpec, policy: str, before: BaseModel, after: BaseModel, area: str) -> list[Row]:
    """The review's changes in ``area`` when ``spec.policies.<policy>`` goes from ``before`` to ``after``."""

    def side(value: BaseModel) -> RegionStackSpec:
        return spec.model_copy(update={"policies": spec.policies.model_copy(update={policy: value})})

    return [
        (c.subject, c.setting, c.before, c.after)
        for c in diff_stack(side(before), side(after))
        if c.area == area
    ]


# --------------------------------------------------------------------------- load balancing
LB = "load balancing default"
HASH = {"algorithm": "consistent_hash", "hash_on": {"header": "x-session"}}
LB_CASES: list[tuple[set[str], dict[str, Any], dict[str, Any], list[Row]]] = [
    (
        {"LoadBalancerSpec.algorithm"},
        {},
        {"algorithm": "round_robin"},
        [(LB, "algorithm", "least_request", "round_robin")],
    ),
    (
        {"LoadBalancerSpec.hash_on", "HashOn.header"},
        HASH,
        {**HASH, "hash_on": {"header": "x-user"}},
        [(LB, "hash on", "header x-session", "header x-user")],
    ),
    (
        {"HashOn.cookie", "HashCookie.name", "HashCookie.ttl", "HashCookie.path"},
        HASH,
        {**HASH, "hash_on": {"cookie": {"name": "sid", "ttl": "1h", "path": "/v1"}}},
        [(LB, "hash on", "header x-session", "cookie sid (ttl 3600s, path /v1)")],
    ),
    (
        {"LoadBalancerSpec.hash_algorithm", "LoadBalancerSpec.maglev_table_size"},
        HASH,
        {**HASH, "hash_algorithm": "maglev", "maglev_table_size": 65537},
        [(LB, "hash algorithm", "ring_hash", "maglev"), (LB, "maglev table size", "none", "65537")],
    ),
    (
        {"LoadBalancerSpec.ring_minimum_size"},
        HASH,
        {**HASH, "ring_minimum_size": 1024},
        [(LB, "ring minimum size", "none", "1024")],
    ),
    ({"LoadBalancerSpec.warmup"}, {}, {"warmup": "45s"}, [(LB, "warmup", "none", "45s")]),
    (
        {"LoadBalancerSpec.gpu_weights"},
        {"gpu_weights": {"l4": 2, "a10g": 1}},
        {"gpu_weights": {"l4": 3, "h100": 1}},
        [
            (LB, "GPU weight h100", None, "1"),
            (LB, "GPU weight l4", "2", "3"),
            (LB, "GPU weight a10g", "1", None),
        ],
    ),
]


@pytest.mark.parametrize(("covers", "before", "after", "expected"), LB_CASES)
def test_load_balancing_rows(
    spec: RegionStackSpec,
    covers: set[str],
    before: dict[str, Any],
    after: dict[str, Any],
    expected: list[Row],
) -> None:
    b = LoadBalancingPolicy.model_validate({"default": before})
    a = LoadBalancingPolicy.model_validate({"default": after})
    assert shown(spec, "load_balancing", b, a, "load-balancing") == expected


def test_a_model_override_is_compared_as_merged(spec: RegionStackSpec) -> None:
    b = LoadBalancingPolicy.model_validate({"default": {"warmup": "30s"}})
    a = LoadBalancingPolicy.model_validate(
        {"default": {"warmup": "30s"}, "models": {"llama-3-8b": {"algorithm": "random"}}}
    )
    assert shown(spec, "load_balancing", b, a, "load-balancing") == [
        ("load balancing llama-3-8b", "algorithm", "least_request", "random")
    ]


# --------------------------------------------------------------------------- autoscaling
AS = "autoscaling llama-3-8b"
WINDOW = {
    "name": "office",
    "timezone": "Europe/Amsterdam",
    "days": ["mon", "tue"],
    "start": "08:00",
    "end": "18:00",
    "min_replicas": 2,
}
WINDOW_TEXT = "at least 2 replicas mon, tue 08:00–18:00 Europe/Amsterdam (warm from 07:30, prewarm 1800s)"
AS_CASES: list[tuple[set[str], dict[str, Any], dict[str, Any], list[Row]]] = [
    (
        {"AutoscalerSpec.engine"},
        {"kv_cache_target": None},
        {"engine": "hpa", "kv_cache_target": None},
        [(AS, "engine", "keda", "hpa")],
    ),
    (
        {"AutoscalerSpec.queue_per_replica"},
        {},
        {"queue_per_replica": 2.5},
        [(AS, "queue per replica", "5 waiting/replica", "2.5 waiting/replica")],
    ),
    (
        {"AutoscalerSpec.kv_cache_target"},
        {},
        {"kv_cache_target": None},
        [(AS, "KV-cache target", "0.8", "none")],
    ),
    (
        {"AutoscalerSpec.polling_interval"},
        {},
        {"polling_interval": "30s"},
        [(AS, "polling interval", "15s", "30s")],
    ),
    ({"AutoscalerSpec.cooldown"}, {}, {"cooldown": "10m"}, [(AS, "cooldown", "300s", "600s")]),
    (
        {"AutoscalerSpec.scale_down_window"},
        {},
        {"scale_down_window": "1m"},
        [(AS, "scale-down window", "300s", "60s")],
    ),
    (
        {"AutoscalerSpec.prometheus_url"},
        {},
        {"prometheus_url": "http://prom.monitoring:9090"},
        [(AS, "Prometheus", "http://prometheus-operated.monitoring.svc:9090", "http://prom.monitoring:9090")],
    ),
    (
        {"AutoscalerSpec.fallback_replicas"},
        {},
        {"fallback_replicas": 2},
        [(AS, "fallback replicas", "none", "2")],
    ),
    (
        {"AutoscalerSpec.schedule", "CapacityWindow.name"},
        {},
        {"schedule": [WINDOW]},
        [(AS, "window office", None, WINDOW_TEXT)],
    ),
    (
        {"CapacityWindow.timezone", "CapacityWindow.days", "CapacityWindow.start", "CapacityWindow.end"},
        {"schedule": [WINDOW]},
        {
            "schedule": [
                {**WINDOW, "timezone": "Asia/Tokyo", "days": ["sat"], "start": "09:00", "end": "12:00"}
            ]
        },
        [
            (
                AS,
                "window office",
                WINDOW_TEXT,
                "at least 2 replicas sat 09:00–12:00 Asia/Tokyo (warm from 08:30, prewarm 1800s)",
            )
        ],
    ),
    (
        {"CapacityWindow.min_replicas", "CapacityWindow.prewarm"},
        {"schedule": [WINDOW]},
        {"schedule": [{**WINDOW, "min_replicas": 3, "prewarm": "1h"}]},
        [
            (
                AS,
                "window office",
                WINDOW_TEXT,
                "at least 3 replicas mon, tue 08:00–18:00 Europe/Amsterdam (warm from 07:00, prewarm 3600s)",
            )
        ],
    ),
]


@pytest.mark.parametrize(("covers", "before", "after", "expected"), AS_CASES)
def test_autoscaling_rows(
    spec: RegionStackSpec,
    covers: set[str],
    before: dict[str, Any],
    after: dict[str, Any],
    expected: list[Row],
) -> None:
    b = AutoscalingPolicy.model_validate({"models": {"llama-3-8b": before}})
    a = AutoscalingPolicy.model_validate({"models": {"llama-3-8b": after}})
    assert shown(spec, "autoscaling", b, a, "autoscaling") == expected


def test_replica_bounds_are_read_from_the_resolved_models(spec: RegionStackSpec) -> None:
    model = spec.models["llama-3-8b"]
    more = model.model_copy(
        update={
            "replicas": model.replicas.model_copy(
                update={"min": model.replicas.min + 1, "max": model.replicas.max + 2}
            )
        }
    )
    after = spec.model_copy(update={"models": {**spec.models, "llama-3-8b": more}})
    found = [
        (c.subject, c.setting, c.before, c.after)
        for c in diff_stack(resolve(spec), resolve(after))
        if c.area == "autoscaling"
    ]
    assert found == [
        (AS, "min replicas", str(model.replicas.min), str(model.replicas.min + 1)),
        (AS, "max replicas", str(model.replicas.max), str(model.replicas.max + 2)),
    ]
    # a resolved side and a spec side read the same
    assert diff_stack(spec, after) == diff_stack(resolve(spec), resolve(after))


# --------------------------------------------------------------------------- security
SEC = "security"
ISSUER = {"issuer": "https://auth.example.com/"}
ISSUER_ROW = "JWT issuer https://auth.example.com/"
CALLER = {"namespace": "search"}
SEC_CASES: list[tuple[set[str], dict[str, Any], dict[str, Any], list[Row]]] = [
    (
        {"SecurityPolicy.deny_by_default"},
        {"require_jwt": False},
        {"require_jwt": False, "deny_by_default": False},
        [(SEC, "authorization", "deny by default", "allow by default")],
    ),
    (
        {"SecurityPolicy.require_jwt"},
        {"jwt": [ISSUER]},
        {"jwt": [ISSUER], "require_jwt": False},
        [(SEC, "JWT", "required", "optional")],
    ),
    (
        {"SecurityPolicy.jwt", "JwtRule.issuer"},
        {"jwt": [ISSUER]},
        {"jwt": [{"issuer": "https://login.example.org/"}]},
        [
            (SEC, "JWT issuer https://login.example.org/", None, "JWKS from the issuer, audiences none"),
            (SEC, ISSUER_ROW, "JWKS from the issuer, audiences none", None),
        ],
    ),
    (
        {"JwtRule.jwks_uri", "JwtRule.audiences", "JwtRule.forward_original_token"},
        {"jwt": [ISSUER]},
        {
            "jwt": [
                {
                    **ISSUER,
                    "jwks_uri": "https://auth.example.com/jwks",
                    "audiences": ["llm-api", "ops"],
                    "forward_original_token": True,
                }
            ]
        },
        [
            (
                SEC,
                ISSUER_ROW,
                "JWKS from the issuer, audiences none",
                "JWKS https://auth.example.com/jwks, audiences llm-api, ops, forwards the token",
            )
        ],
    ),
    (
        {"SecurityPolicy.extra_callers", "ExtraCaller.namespace"},
        {"require_jwt": False},
        {"require_jwt": False, "extra_callers": [CALLER]},
        [(SEC, "caller search", None, "paths /v1/*")],
    ),
    (
        {"ExtraCaller.service_account", "ExtraCaller.paths"},
        {"require_jwt": False, "extra_callers": [CALLER]},
        {
            "require_jwt": False,
            "extra_callers": [{**CALLER, "service_account": "indexer", "paths": ["/v1/embeddings"]}],
        },
        [
            (SEC, "caller search/sa/indexer", None, "paths /v1/embeddings"),
            (SEC, "caller search", "paths /v1/*", None),
        ],
    ),
]


@pytest.mark.parametrize(("covers", "before", "after", "expected"), SEC_CASES)
def test_security_rows(
    spec: RegionStackSpec,
    covers: set[str],
    before: dict[str, Any],
    after: dict[str, Any],
    expected: list[Row],
) -> None:
    b, a = SecurityPolicy.model_validate(before), SecurityPolicy.model_validate(after)
    assert shown(spec, "security", b, a, "security") == expected


def test_two_rules_for_one_issuer_are_two_rows() -> None:
    rows = SecurityPolicy.model_validate({"jwt": [ISSUER, {**ISSUER, "audiences": ["b"]}]}).describe_rows()
    assert rows[ISSUER_ROW] == "JWKS from the issuer, audiences none"
    assert rows[f"{ISSUER_ROW} #2"] == "JWKS from the issuer, audiences b"


# --------------------------------------------------------------------------- edge
EDGE_CASES: list[tuple[set[str], dict[str, Any], dict[str, Any], list[Row]]] = [
    (
        {"EdgePolicy.identity", "Identity.tier_claim"},
        {},
        {"identity": {"tier_claim": "plan"}},
        [("edge", "tier claim", "'tier'", "'plan'")],
    ),
    (
        {"Identity.tier_values"},
        {"identity": {"tier_values": {"gold": "premium"}}},
        {"identity": {"tier_values": {"gold": "standard", "free": "batch"}}},
        [("edge", "tier value free", None, "batch"), ("edge", "tier value gold", "premium", "standard")],
    ),
    (
        {"Identity.cohort_claim"},
        {},
        {"identity": {"cohort_claim": None}},
        [("edge", "cohort claim", "'cohort'", "none")],
    ),
    (
        {"Identity.cohorts"},
        {"identity": {"cohorts": {"beta": 5}}},
        {"identity": {"cohorts": {"beta": 10}}},
        [("edge", "cohort beta", "5% by a sticky hash of 'sub'", "10% by a sticky hash of 'sub'")],
    ),
    (
        {"Identity.tenant_claim"},
        {},
        {"identity": {"tenant_claim": "org"}},
        [("edge", "tenant claim", "'tenant'", "'org'")],
    ),
    (
        {"Identity.subject_claim"},
        {},
        {"identity": {"subject_claim": "uid"}},
        [("edge", "subject claim", "'sub'", "'uid'")],
    ),
    (
        {"EdgePolicy.rate_limits", "RateLimits.tiers", "Limit.requests_per_minute", "Limit.burst"},
        {"rate_limits": {"tiers": {"batch": {"requests_per_minute": 60}}}},
        {"rate_limits": {"tiers": {"batch": {"requests_per_minute": 30, "burst": 90}}}},
        [("edge", "rate limit tier batch", "60/min", "30/min (burst 90)")],
    ),
    (
        {"RateLimits.tenants"},
        {},
        {"rate_limits": {"tenants": {"acme": {"requests_per_minute": 600}}}},
        [("edge", "rate limit tenant acme", None, "600/min")],
    ),
    (
        {"RateLimits.fill_interval"},
        {},
        {"rate_limits": {"fill_interval": "10s"}},
        [("edge", "rate-limit refill", "60s", "10s")],
    ),
]


@pytest.mark.parametrize(("covers", "before", "after", "expected"), EDGE_CASES)
def test_edge_rows(
    spec: RegionStackSpec,
    covers: set[str],
    before: dict[str, Any],
    after: dict[str, Any],
    expected: list[Row],
) -> None:
    b, a = EdgePolicy.model_validate(before), EdgePolicy.model_validate(after)
    assert shown(spec, "edge", b, a, "edge") == expected


# --------------------------------------------------------------------------- timeouts, retries, circuit breaker
RES = "resilience default"
CB = "circuit breaker "
RES_CASES: list[tuple[set[str], dict[str, Any], dict[str, Any], list[Row]]] = [
    ({"ResilienceSpec.timeout"}, {}, {"timeout": "900s"}, [(RES, "timeout", "600s", "900s")]),
    (
        {"ResilienceSpec.retries", "Retries.attempts"},
        {},
        {"retries": {"attempts": 3}},
        [(RES, "retry attempts", "1", "3")],
    ),
    (
        {"Retries.retry_on"},
        {},
        {"retries": {"retry_on": ["connect-failure"]}},
        [
            (
                RES,
                "retry on",
                "connect-failure, refused-stream, reset-before-request, unavailable",
                "connect-failure",
            )
        ],
    ),
    (
        {"Retries.per_try_timeout"},
        {"timeout": "30s"},
        {"timeout": "30s", "retries": {"per_try_timeout": "30s"}},
        [(RES, "per-try timeout", "none", "30s")],
    ),
    (
        {"ResilienceSpec.circuit_breaker", "CircuitBreaker.max_connections"},
        {},
        {"circuit_breaker": {"max_connections": 8}},
        [(RES, CB + "max connections", "1024", "8")],
    ),
    (
        {"CircuitBreaker.max_pending_requests"},
        {},
        {"circuit_breaker": {"max_pending_requests": 8}},
        [(RES, CB + "max pending requests", "1024", "8")],
    ),
    (
        {"CircuitBreaker.max_requests"},
        {},
        {"circuit_breaker": {"max_requests": 8}},
        [(RES, CB + "max requests", "1024", "8")],
    ),
    (
        {"CircuitBreaker.connect_timeout"},
        {},
        {"circuit_breaker": {"connect_timeout": "2s"}},
        [(RES, CB + "connect timeout", "10s", "2s")],
    ),
    (
        {"CircuitBreaker.idle_timeout"},
        {},
        {"circuit_breaker": {"idle_timeout": "5m"}},
        [(RES, CB + "idle timeout", "3600s", "300s")],
    ),
    (
        {"CircuitBreaker.consecutive_5xx_errors"},
        {},
        {"circuit_breaker": {"consecutive_5xx_errors": 0}},
        [(RES, CB + "eject after consecutive 5xx", "5", "0")],
    ),
    (
        {"CircuitBreaker.consecutive_gateway_errors"},
        {},
        {"circuit_breaker": {"consecutive_gateway_errors": 1}},
        [(RES, CB + "eject after consecutive gateway errors", "3", "1")],
    ),
    (
        {"CircuitBreaker.interval"},
        {},
        {"circuit_breaker": {"interval": "1s"}},
        [(RES, CB + "ejection interval", "10s", "1s")],
    ),
    (
        {"CircuitBreaker.base_ejection_time"},
        {},
        {"circuit_breaker": {"base_ejection_time": "1m"}},
        [(RES, CB + "base ejection time", "30s", "60s")],
    ),
    (
        {"CircuitBreaker.max_ejection_percent"},
        {},
        {"circuit_breaker": {"max_ejection_percent": 50}},
        [(RES, CB + "max ejection percent", "100%", "50%")],
    ),
    (
        {"CircuitBreaker.min_health_percent"},
        {},
        {"circuit_breaker": {"min_health_percent": 20}},
        [(RES, CB + "min health percent", "0%", "20%")],
    ),
]


@pytest.mark.parametrize(("covers", "before", "after", "expected"), RES_CASES)
def test_resilience_rows(
    spec: RegionStackSpec,
    covers: set[str],
    before: dict[str, Any],
    after: dict[str, Any],
    expected: list[Row],
) -> None:
    b = ResiliencePolicy.model_validate({"default": before})
    a = ResiliencePolicy.model_validate({"default": after})
    assert shown(spec, "resilience", b, a, "resilience") == expected


def test_a_chain_serving_another_version_is_shown(spec: RegionStackSpec) -> None:
    """``fallback_versions`` was not compared before the rows: the chain kept its words, the version changed."""
    chain = {"fallback": {"llama-3-70b": ["llama-3-8b"]}}
    b = ResiliencePolicy.model_validate(chain)
    a = ResiliencePolicy.model_validate({**chain, "fallback_versions": {"llama-3-70b": "v2"}})
    assert shown(spec, "resilience", b, a, "resilience") == [
        ("fallback chain llama-3-70b", "version", "v1", "v2")
    ]


# --------------------------------------------------------------------------- a QoS tier
TIER = {"priority": 10, "max_requests": 8, "max_pending_requests": 4}
TIER_CASES: list[tuple[set[str], dict[str, Any], list[Row]]] = [
    ({"Tier.priority"}, {"priority": 20}, [("tier batch", "priority", "10", "20")]),
    ({"Tier.max_requests"}, {"max_requests": 16}, [("tier batch", "max_requests", "8", "16")]),
    (
        {"Tier.max_pending_requests"},
        {"max_pending_requests": 2},
        [("tier batch", "max_pending_requests", "4", "2")],
    ),
    ({"Tier.max_connections"}, {"max_connections": 3}, [("tier batch", "max_connections", "none", "3")]),
    ({"Tier.preemptible"}, {"preemptible": True}, [("tier batch", "preemptible", "no", "yes")]),
    (
        {"Tier.description"},
        {"description": "offline jobs"},
        [("tier batch", "description", "none", "offline jobs")],
    ),
]


@pytest.mark.parametrize(("covers", "change", "expected"), TIER_CASES)
def test_qos_tier_rows(
    spec: RegionStackSpec, covers: set[str], change: dict[str, Any], expected: list[Row]
) -> None:
    b = QosPolicy.model_validate({"tiers": {"batch": TIER}, "default_tier": "batch"})
    a = QosPolicy.model_validate({"tiers": {"batch": {**TIER, **change}}, "default_tier": "batch"})
    assert shown(spec, "qos", b, a, "qos") == expected


# --------------------------------------------------------------------------- the front door
DOOR_CASES: list[tuple[set[str], dict[str, Any], list[Row]]] = [
    (
        {"RoutingPolicy.hosts"},
        {"hosts": ["api.llm.internal", "llm.example.com"]},
        [("front door", "hosts", "api.llm.internal", "api.llm.internal, llm.example.com")],
    ),
    (
        {"RoutingPolicy.tls_credential"},
        {"tls_credential": "llm-tls"},
        [("front door", "TLS", "plain HTTP on 80", "HTTPS on 443 (secret llm-tls)")],
    ),
    *(
        (
            {"RoutingPolicy.headers", f"RoutingHeaders.{role}"},
            {"headers": {role: f"x-my-{role}"}},
            [("front door", f"{role} header", f"x-fleetkit-{role}", f"x-my-{role}")],
        )
        for role in RoutingHeaders.model_fields
    ),
]


@pytest.mark.parametrize(("covers", "change", "expected"), DOOR_CASES)
def test_front_door_rows(
    spec: RegionStackSpec, covers: set[str], change: dict[str, Any], expected: list[Row]
) -> None:
    doc = {"default": {"to": [{"model": "llama-3-8b"}]}}
    b, a = RoutingPolicy.model_validate(doc), RoutingPolicy.model_validate({**doc, **change})
    assert shown(spec, "routing", b, a, "routing") == expected


# --------------------------------------------------------------------------- telemetry
TEL = "telemetry"
TEL_CASES: list[tuple[set[str], dict[str, Any], dict[str, Any], list[Row]]] = [
    (
        {"TelemetryPolicy.tracing", "TracingPolicy.enabled"},
        {},
        {"tracing": {"enabled": False}},
        [(TEL, "tracing", "on", "off")],
    ),
    (
        {"TracingPolicy.sampling_percent"},
        {},
        {"tracing": {"sampling_percent": 10}},
        [(TEL, "trace sampling", "1%", "10%")],
    ),
    (
        {"TracingPolicy.export_endpoint"},
        {},
        {"tracing": {"export_endpoint": "tempo.monitoring:4317"}},
        [(TEL, "trace export", "the collector's debug exporter", "tempo.monitoring:4317")],
    ),
    (
        {"TelemetryPolicy.usage_metrics"},
        {},
        {"usage_metrics": False},
        [(TEL, "usage metrics", "per tenant, model and tier", "off")],
    ),
]


@pytest.mark.parametrize(("covers", "before", "after", "expected"), TEL_CASES)
def test_telemetry_rows(
    spec: RegionStackSpec,
    covers: set[str],
    before: dict[str, Any],
    after: dict[str, Any],
    expected: list[Row],
) -> None:
    """Telemetry had no words before the rows: a change of it showed in the raw manifest diff only."""
    b, a = TelemetryPolicy.model_validate(before), TelemetryPolicy.model_validate(after)
    assert shown(spec, "telemetry", b, a, "telemetry") == expected


# --------------------------------------------------------------------------- nothing left out
#: fields that admit one value only, so no change of them exists to show
ONE_VALUE: dict[str, tuple[type[BaseModel], dict[str, Any]]] = {
    "SecurityPolicy.mtls": (SecurityPolicy, {"mtls": "PERMISSIVE"}),
    "SecurityPolicy.allow_metrics_from_monitoring": (
        SecurityPolicy,
        {"allow_metrics_from_monitoring": True, "require_jwt": False},
    ),
    "ResiliencePolicy.fallback_mode": (ResiliencePolicy, {"fallback_mode": "any-served-name"}),
}
#: containers of the specs above (a default and per-model overrides, tiers by name) and what the review
#: compares in other words: routes route by route, fallback chains chain by chain (and their version)
ELSEWHERE = {
    "RoutingPolicy.routes",
    "RoutingPolicy.default",
    "ResiliencePolicy.fallback",
    "ResiliencePolicy.fallback_versions",
    "QosPolicy.tiers",
    "QosPolicy.default_tier",
    "LoadBalancingPolicy.default",
    "LoadBalancingPolicy.models",
    "AutoscalingPolicy.default",
    "AutoscalingPolicy.models",
    "ResiliencePolicy.default",
    "ResiliencePolicy.models",
}
COMPARED: list[type[BaseModel]] = [
    LoadBalancingPolicy,
    LoadBalancerSpec,
    HashOn,
    HashCookie,
    AutoscalingPolicy,
    AutoscalerSpec,
    CapacityWindow,
    SecurityPolicy,
    JwtRule,
    ExtraCaller,
    EdgePolicy,
    Identity,
    RateLimits,
    Limit,
    ResiliencePolicy,
    ResilienceSpec,
    Retries,
    CircuitBreaker,
    QosPolicy,
    Tier,
    RoutingPolicy,
    RoutingHeaders,
    TelemetryPolicy,
    TracingPolicy,
]


def test_every_field_is_covered() -> None:
    covered = {
        *(
            f
            for case in [*LB_CASES, *AS_CASES, *SEC_CASES, *EDGE_CASES, *RES_CASES, *TEL_CASES]
            for f in case[0]
        ),
        *(f for case in [*TIER_CASES, *DOOR_CASES] for f in case[0]),
    }
    every = {f"{cls.__name__}.{name}" for cls in COMPARED for name in cls.model_fields}
    assert every - covered - set(ONE_VALUE) - ELSEWHERE == set()


@pytest.mark.parametrize("field", sorted(ONE_VALUE))
def test_a_one_value_field_cannot_change(field: str) -> None:
    cls, doc = ONE_VALUE[field]
    with pytest.raises(ValidationError):
        cls.model_validate(doc)


# --------------------------------------------------------------------------- pools and models, as resolved
def test_pools_are_compared_as_resolved(spec: RegionStackSpec) -> None:
    """A pool's GPUs in words come from its resolved catalog entry (``ResolvedPool.instance``), not from
    another catalog lookup: a resolved side whose entry says otherwise is shown as it says."""
    before = resolve(spec)
    pool = before.pools["l4"]
    assert pool.instance is not None
    bigger = pool.instance.model_copy(update={"gpu_count": 8})
    after = replace(
        before,
        pools={
            **before.pools,
            "l4": replace(
                pool, spec=pool.spec.model_copy(update={"instance_type": "g6.48xlarge"}), instance=bigger
            ),
        },
    )
    [change] = [c for c in diff_stack(before, after) if c.area == "gpu-pools"]
    assert (change.subject, change.setting) == ("GPU pool l4", "instance type")
    assert change.before == f"{pool.instance_type} (4× NVIDIA L4 22 GiB)"
    assert change.after == "g6.48xlarge (8× NVIDIA L4 22 GiB)"
    unknown = replace(after, pools={**before.pools, "l4": replace(pool, instance=None)})
    assert [c.after for c in diff_stack(after, unknown) if c.area == "gpu-pools"] == [pool.instance_type]


def test_the_review_reads_each_loaded_stack_resolved_once(project_root: Path) -> None:
    fleet = load_fleet(project_root)
    region, root = fleet.stacks["aws-us-east-1"], fleet.stacks["mesh-root"]
    assert side_of(region) is region.resolved  # the cached resolve step, not a second one
    assert side_of(root) is root.spec and side_of(None) is None
