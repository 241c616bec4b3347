"""Per-tenant usage: the edge's usage metadata, the gateway's usage access log, the collector's token
counters, their scraping and recording rules (rendering; the counting itself runs in real Envoy in
``tests/e2e/test_envoy_edge.py`` and the recording rules in real promtool in
``tests/verify/test_usage_rules.py``)."""

from __future__ import annotations

import yaml

from fleetkit.schema import validate_objects
from policies.edge import USAGE_NAMESPACE, route_script
from policies.telemetry import (
    COLLECTOR_NAME,
    GATEWAY_MONITOR_NAME,
    TOKEN_METRICS,
    USAGE_PROVIDER_NAME,
    USAGE_TELEMETRY_NAME,
    usage_recording_rules,
)
from tests.unit.test_policies import CTX, TIERS, by_kind, policy


def _named(objs: list[dict[str, object]], kind: str, name: str) -> dict[str, object]:
    return next(o for o in by_kind(objs, kind) if o["metadata"]["name"] == name)  # type: ignore[index]


def test_the_gateway_logs_tenant_model_tier_and_tokens_of_each_answer_to_the_collector() -> None:
    ps = policy(qos=TIERS)
    objs = ps.render(CTX)
    telemetry = _named(objs, "Telemetry", USAGE_TELEMETRY_NAME)
    spec = telemetry["spec"]
    assert spec["selector"] == {"matchLabels": {"istio": "fleetkit-ingress"}}  # the gateway only
    (entry,) = spec["accessLogging"]
    assert entry["providers"] == [{"name": USAGE_PROVIDER_NAME}]
    assert "x-fleetkit-model" in entry["filter"]["expression"]
    providers = {p["name"]: p for p in ps.telemetry.extension_providers(ps, CTX)}
    als = providers[USAGE_PROVIDER_NAME]["envoyOtelAls"]
    assert als["service"] == f"{COLLECTOR_NAME}.monitoring.svc.cluster.local"
    assert als["port"] == 4317
    labels = als["logFormat"]["labels"]
    assert labels["fleetkit_tenant"] == "%REQ(x-fleetkit-tenant)%"  # set by the edge from the verified claim
    assert labels["fleetkit_model"] == "%REQ(x-fleetkit-model)%"
    assert labels["prompt_tokens"] == f"%DYNAMIC_METADATA({USAGE_NAMESPACE}:prompt_tokens)%"
    assert labels["completion_tokens"] == f"%DYNAMIC_METADATA({USAGE_NAMESPACE}:completion_tokens)%"
    # the edge filter writes that metadata
    assert f'["usage_namespace"] = "{USAGE_NAMESPACE}"' in route_script(ps, CTX)
    assert validate_objects(objs) == []


def test_the_collector_sums_tokens_per_tenant_model_and_tier_and_is_scraped() -> None:
    objs = policy(qos=TIERS).render(CTX)
    cm = _named(objs, "ConfigMap", COLLECTOR_NAME)
    config = yaml.safe_load(cm["data"]["config.yaml"])  # type: ignore[index]
    metrics = config["connectors"]["signaltometrics"]["logs"]
    assert [m["name"] for m in metrics] == [otel for otel, _ in TOKEN_METRICS.values()]
    for m, key in zip(metrics, TOKEN_METRICS, strict=True):
        assert m["sum"] == {"value": f'Int(attributes["{key}"])'}
        assert [a["key"] for a in m["attributes"]] == ["fleetkit_tenant", "fleetkit_model", "fleetkit_tier"]
        assert m["conditions"] == [f'IsMatch(attributes["{key}"], "^[0-9]+$")']  # "-": no usage in the answer
    pipes = config["service"]["pipelines"]
    assert pipes["logs/usage"] == {"receivers": ["otlp"], "exporters": ["signaltometrics"]}
    assert pipes["metrics/usage"]["exporters"] == ["prometheus"]
    assert "deltatocumulative" in pipes["metrics/usage"]["processors"]  # the connector emits deltas
    assert "traces" in pipes
    deploy = _named(objs, "Deployment", COLLECTOR_NAME)
    container = deploy["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["image"].startswith("otel/opentelemetry-collector-contrib:")
    assert {"name": "http-metrics", "containerPort": 9464} in container["ports"]
    collector_monitor = _named(objs, "PodMonitor", COLLECTOR_NAME)
    assert collector_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "http-metrics"  # type: ignore[index]
    gateway_monitor = _named(objs, "PodMonitor", GATEWAY_MONITOR_NAME)
    assert gateway_monitor["metadata"]["namespace"] == "istio-system"  # type: ignore[index]
    assert gateway_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "http-envoy-prom"  # type: ignore[index]


def test_recording_rules_cover_requests_and_both_token_kinds() -> None:
    rules = {r["record"]: r["expr"] for r in usage_recording_rules()}
    assert set(rules) == {
        "fleetkit:gateway_requests:rate5m",
        "fleetkit:gateway_prompt_tokens:rate5m",
        "fleetkit:gateway_completion_tokens:rate5m",
    }
    for expr in rules.values():
        assert expr.startswith("sum by (fleetkit_tenant, fleetkit_model, fleetkit_tier) (rate(")
    assert 'reporter="source"' in rules["fleetkit:gateway_requests:rate5m"]


def test_without_usage_metrics_nothing_is_counted() -> None:
    ps = policy(qos=TIERS, telemetry={"usage_metrics": False})
    objs = ps.render(CTX)
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert ("Telemetry", USAGE_TELEMETRY_NAME) not in names
    assert ("PodMonitor", GATEWAY_MONITOR_NAME) not in names
    assert USAGE_PROVIDER_NAME not in {p["name"] for p in ps.telemetry.extension_providers(ps, CTX)}
    assert '["usage_namespace"]' not in route_script(ps, CTX).split("\n\n")[0]  # the config table
    config = yaml.safe_load(_named(objs, "ConfigMap", COLLECTOR_NAME)["data"]["config.yaml"])  # type: ignore[index]
    assert "connectors" not in config and list(config["service"]["pipelines"]) == ["traces"]
