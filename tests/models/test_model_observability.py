"""PodMonitor, PrometheusRule and the Grafana dashboard: current vLLM metric names, valid schemas."""

from __future__ import annotations

import json
import re

import pytest
from model_fixtures import ROOT, all_plans, plan_for, stub_identity

from components import model_observability as mo
from components import model_render as mr
from fleetkit.schema import validate_objects

#: vLLM metrics that exist today (REFERENCE c.5) — anything else with the prefix is a typo or a removal.
CURRENT_VLLM = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:request_success_total",
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
    "vllm:num_preemptions_total",
    "vllm:time_to_first_token_seconds",
    "vllm:inter_token_latency_seconds",
    "vllm:request_time_per_output_token_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:request_queue_time_seconds",
    "vllm:request_prefill_time_seconds",
    "vllm:request_decode_time_seconds",
    "vllm:request_inference_time_seconds",
    "vllm:cache_config_info",
}
REMOVED = (
    "gpu_cache_usage_perc",
    "vllm:time_per_output_token_seconds",
    "gpu_prefix_cache",
    "num_requests_swapped",
    "cpu_cache_usage_perc",
)
_METRIC = re.compile(r"vllm:[a-z0-9_]+")


def vllm_metrics(text: str) -> set[str]:
    return {re.sub(r"_(bucket|sum|count)$", "", m) for m in _METRIC.findall(text)}


def rules(model: str = "llama-3-8b", stack: str = "aws-us-east-1") -> dict[str, dict]:
    plan = plan_for(stack, model)
    pr = mo.build_prometheus_rule(plan)
    return {r["alert"]: r for g in pr["spec"]["groups"] for r in g["rules"]}


def test_pod_monitor_scrapes_vllm_through_istio_metrics_merging():
    plan = plan_for("aws-us-east-1", "llama-3-8b")
    pm = mo.build_pod_monitor(plan)
    assert pm["spec"]["selector"]["matchLabels"] == plan.selector
    ep = pm["spec"]["podMetricsEndpoints"][0]
    assert ep["port"] == "http" and ep["path"] == "/stats/prometheus"
    address = ep["relabelings"][0]
    assert address["targetLabel"] == "__address__" and address["replacement"] == "$1:15020"
    static = {r["targetLabel"]: r["replacement"] for r in ep["relabelings"][1:]}
    assert static == {
        "fleetkit_model": "llama-3-8b",
        "service": "llama-3-8b",
        "version": "v1",
        "gpu_class": "l4",
        "region": "us-east-1",
        "cloud": "aws",
        "cluster": "aws-use1",
    }
    assert re.fullmatch(ep["metricRelabelings"][0]["regex"], "vllm:num_requests_waiting")
    # Istio merges only when the pod says where the app's metrics are
    ann = mr.build_deployment(plan, stub_identity(plan))["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/port"] == "8000" and ann["prometheus.io/path"] == "/metrics"


def test_alerts_cover_queue_ttft_kv_cache_restarts_and_weight_sync():
    r = rules()
    assert set(r) >= {
        "FleetkitModelQueueBacklog",
        "FleetkitModelTTFTHigh",
        "FleetkitModelKvCacheFull",
        "FleetkitModelCrashLooping",
        "FleetkitModelRestarting",
        "FleetkitWeightSyncFailing",
        "FleetkitWeightPrefetchCrashLooping",
    }
    q = r["FleetkitModelQueueBacklog"]["expr"]
    assert "sum by (namespace, fleetkit_model) (vllm:num_requests_waiting" in q and "/ count by" in q
    assert q.rstrip().endswith("> 10")  # 2 x queue_per_replica (5)
    ttft = r["FleetkitModelTTFTHigh"]["expr"]
    assert ttft.startswith("histogram_quantile(0.95, sum by (le, ")
    assert "rate(vllm:time_to_first_token_seconds_bucket{" in ttft and "model_name" in ttft
    kv = r["FleetkitModelKvCacheFull"]
    assert "vllm:kv_cache_usage_perc" in kv["expr"] and kv["expr"].endswith("> 0.95") and kv["for"] == "10m"
    assert "kube_pod_container_status_restarts_total" in r["FleetkitModelRestarting"]["expr"]
    assert 'reason="CrashLoopBackOff"' in r["FleetkitModelCrashLooping"]["expr"]
    sync = r["FleetkitWeightSyncFailing"]["expr"]
    assert (
        "kube_pod_init_container_status_last_terminated_reason" in sync and 'container="weights-sync"' in sync
    )
    assert "unless on (namespace, pod)" in sync  # a sync that failed once, then completed, is fine
    for rule in r.values():
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


def test_pod_regex_does_not_catch_a_longer_model_name():
    expr = rules("llama-3-70b")["FleetkitModelCrashLooping"]["expr"]
    pattern = re.search(r'pod=~"([^"]+)"', expr).group(1)  # type: ignore[union-attr]
    assert re.fullmatch(pattern, "llama-3-70b-6d4f9c7b8-x2k9p")
    assert re.fullmatch(pattern, "llama-3-70b-5b7c9f8d46-zq2wr")
    assert not re.fullmatch(pattern, "llama-3-70b-v2-6d4f9c7b8-x2k9p")
    assert not re.fullmatch(pattern, "llama-3-70b-prefetch-x2k9p")


def test_no_prefetch_alert_for_cold_models():
    assert "FleetkitWeightPrefetchCrashLooping" not in rules("llama-3-70b-v2")


@pytest.mark.parametrize(("stack", "model"), all_plans())
def test_only_current_vllm_metric_names(stack, model):
    plan = plan_for(stack, model)
    text = json.dumps([mo.build_prometheus_rule(plan), mo.build_pod_monitor(plan)])
    assert not any(old in text for old in REMOVED)
    assert vllm_metrics(text) <= CURRENT_VLLM


def test_dashboard_uses_current_metrics_and_fleet_variables():
    raw = (ROOT / "observability" / "vllm-fleet-dashboard.json").read_text()
    dash = json.loads(raw)
    assert not any(old in raw for old in REMOVED)
    used = vllm_metrics(raw)
    assert used <= CURRENT_VLLM
    assert {
        "vllm:num_requests_waiting",
        "vllm:time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds",
        "vllm:kv_cache_usage_perc",
        "vllm:request_success_total",
    } <= used
    assert [v["name"] for v in dash["templating"]["list"]] == ["datasource", "region", "model"]
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert all('fleetkit_model=~"$model"' in e for e in exprs)
    # vLLM series carry the region as a target label; the gateway's usage series (Istio's request
    # counters, the collector's token counters and their recording rules) do not
    usage = ("istio_requests_total", "fleetkit:gateway_")
    assert all('region=~"$region"' in e for e in exprs if not any(u in e for u in usage))
    assert sum("fleetkit:gateway_" in e for e in exprs) == 2  # prompt and completion tokens per tenant
    titles = {p["title"] for p in dash["panels"]}
    assert {
        "GPUs per model and region",
        "KV cache usage",
        "Inter-token latency",
        "Time to first token",
    } <= titles
    gpu = next(p for p in dash["panels"] if p["title"] == "GPUs per model and region")
    assert 'resource="nvidia_com_gpu"' in gpu["targets"][0]["expr"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_configmap_for_the_grafana_sidecar():
    cm = mo.build_dashboard_configmap("llm")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["fleetkit-vllm.json"])["uid"] == "fleetkit-vllm"
    assert validate_objects([cm]) == []


@pytest.mark.parametrize(("stack", "model"), all_plans())
def test_monitoring_objects_are_schema_valid(stack, model):
    plan = plan_for(stack, model)
    assert validate_objects([mo.build_pod_monitor(plan), mo.build_prometheus_rule(plan)]) == []
