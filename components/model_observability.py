"""Monitoring of one vLLM model service: its PodMonitor and alert rules, and the fleet dashboard.

Pure builders over a :class:`~components.model_plan.ModelPlan`. vLLM is scraped through Istio's
merged-metrics endpoint, so a Prometheus outside the mesh can scrape under STRICT mTLS (Istio
"metrics merging", on by default: https://istio.io/latest/docs/ops/integrations/prometheus/). Alerts
use only current vLLM metric names (``vllm:kv_cache_usage_perc``, a 0–1 fraction) and
kube-state-metrics series.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.model_plan import (
    COMPONENT_SERVER,
    CONTAINER_SYNC,
    CONTAINER_VLLM,
    CONTAINER_WARM,
    ModelPlan,
    object_labels,
)
from policies.common import metadata

#: Istio merges the app's metrics into the sidecar agent's plaintext endpoint on this port.
ISTIO_MERGED_METRICS_PORT = 15020
ISTIO_MERGED_METRICS_PATH = "/stats/prometheus"
#: Alert thresholds (defaults of the kit; per-model SLOs are not typed yet).
TTFT_P95_ALERT_SECONDS = 5.0
KV_CACHE_ALERT_FRACTION = 0.95
QUEUE_ALERT_FACTOR = 2.0

DASHBOARD_FILE = Path(__file__).resolve().parent.parent / "observability" / "vllm-fleet-dashboard.json"
DASHBOARD_NAME = "fleetkit-vllm-dashboard"


def target_labels(plan: ModelPlan) -> dict[str, str]:
    """Target labels every vLLM series gets (Grafana variables and alert grouping use them)."""
    return {
        "fleetkit_model": plan.name,
        "service": plan.service,
        "version": plan.model.version,
        "gpu_class": plan.gpu_class,
        "region": plan.region,
        "cloud": plan.cloud,
        "cluster": plan.cluster_name,
    }


def build_pod_monitor(plan: ModelPlan) -> dict[str, Any]:
    """Scrape vLLM through Istio's merged-metrics endpoint (plaintext :15020, works under STRICT mTLS).

    The target is chosen by the pod's ``http`` port (one target per pod), then its address is moved
    to the Istio agent port. Static target labels carry the model, GPU class and region so one
    Prometheus (or a global query layer) can tell every deployment of the fleet apart.
    """
    relabel: list[dict[str, Any]] = [
        {
            "action": "replace",
            "sourceLabels": ["__meta_kubernetes_pod_ip"],
            "regex": "(.+)",
            "targetLabel": "__address__",
            "replacement": f"$1:{ISTIO_MERGED_METRICS_PORT}",
        },
    ]
    relabel += [
        {"action": "replace", "targetLabel": k, "replacement": v} for k, v in target_labels(plan).items()
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": metadata(plan.name, plan.namespace, object_labels(plan, COMPONENT_SERVER)),
        "spec": {
            "selector": {"matchLabels": dict(plan.selector)},
            "podMetricsEndpoints": [
                {
                    "port": "http",
                    "path": ISTIO_MERGED_METRICS_PATH,
                    "interval": "15s",
                    "scrapeTimeout": "10s",
                    "relabelings": relabel,
                    # keep vLLM's own series and Istio's request metrics, drop Envoy internals
                    "metricRelabelings": [
                        {
                            "action": "keep",
                            "sourceLabels": ["__name__"],
                            "regex": "vllm:.+|istio_requests_total|istio_request_duration_milliseconds_.+",
                        },
                    ],
                }
            ],
        },
    }


#: The alphabet Kubernetes uses for pod-template hashes and generated name suffixes (no vowels).
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"


def _pod_regex(deployment: str) -> str:
    # Deployment pods are <deployment>-<pod-template-hash>-<5 chars>, both from the vowel-free safe
    # alphabet and without '-': model "a" never matches the pods of model "a-v2" nor of "a-prefetch"
    return f"{deployment}-{_SAFE}+-{_SAFE}{{5}}"


def alert_rules(plan: ModelPlan) -> list[dict[str, Any]]:
    """Alerts of one model. Only current vLLM metric names (``kv_cache_usage_perc``, a 0–1 fraction)."""
    ns, m = plan.namespace, plan.name
    vsel = f'namespace="{ns}",fleetkit_model="{m}"'
    pods = f'namespace="{ns}",pod=~"{_pod_regex(m)}"'
    by = "namespace, fleetkit_model"
    queue = plan.queue_per_replica * QUEUE_ALERT_FACTOR
    common = {"fleetkit_model": m, "service": plan.service, "region": plan.region}
    runbook = "runbooks/cold-starts.md"

    def rule(
        alert: str, expr: str, for_: str, severity: str, summary: str, description: str, rb: str | None = None
    ) -> dict[str, Any]:
        ann = {"summary": summary, "description": description}
        if rb:
            ann["runbook"] = rb
        out: dict[str, Any] = {"alert": alert, "expr": expr}
        if for_:
            out["for"] = for_
        return {**out, "labels": {**common, "severity": severity}, "annotations": ann}

    rules = [
        rule(
            "FleetkitModelQueueBacklog",
            f"sum by ({by}) (vllm:num_requests_waiting{{{vsel}}})\n"
            f"  / count by ({by}) (count by ({by}, pod) (vllm:num_requests_waiting{{{vsel}}}))\n"
            f"  > {queue:g}",
            "10m",
            "warning",
            f"{m}: more than {queue:g} requests waiting per replica",
            "Requests queue in vLLM faster than the autoscaler adds replicas (max replicas reached, "
            'or no GPU capacity for new ones). Value: {{ $value | printf "%.1f" }} waiting per replica.',
        ),
        rule(
            "FleetkitModelTTFTHigh",
            f"histogram_quantile(0.95, sum by (le, {by}, model_name) "
            f"(rate(vllm:time_to_first_token_seconds_bucket{{{vsel}}}[5m])))\n  > {TTFT_P95_ALERT_SECONDS:g}",
            "10m",
            "warning",
            f"{m}: p95 time to first token above {TTFT_P95_ALERT_SECONDS:g}s",
            "p95 TTFT over 5m is {{ $value | humanizeDuration }} for {{ $labels.model_name }}.",
        ),
        rule(
            "FleetkitModelKvCacheFull",
            f"max by ({by}, pod) (vllm:kv_cache_usage_perc{{{vsel}}}) > {KV_CACHE_ALERT_FRACTION:g}",
            "10m",
            "warning",
            f"{m}: KV cache above {KV_CACHE_ALERT_FRACTION:.0%} on {{{{ $labels.pod }}}}",
            "The KV cache is nearly full; vLLM will preempt requests. Scale out, lower max_num_seqs "
            "or raise gpu_memory_utilization.",
        ),
        rule(
            "FleetkitModelCrashLooping",
            f"max by (namespace, pod, container) (kube_pod_container_status_waiting_reason{{{pods},"
            f'reason="CrashLoopBackOff"}}) == 1',
            "5m",
            "critical",
            f"{m}: {{{{ $labels.pod }}}} container {{{{ $labels.container }}}} is crash-looping",
            "kubectl logs --previous -c {{ $labels.container }} shows why.",
            runbook,
        ),
        rule(
            "FleetkitModelRestarting",
            f'increase(kube_pod_container_status_restarts_total{{{pods},container="{CONTAINER_VLLM}"}}[30m]) > 2',
            "",
            "warning",
            f"{m}: vLLM restarted more than twice in 30 minutes on {{{{ $labels.pod }}}}",
            "Liveness failures, OOM kills or engine crashes; check the previous container's logs.",
            runbook,
        ),
        rule(
            "FleetkitWeightSyncFailing",
            f"(max by (namespace, pod) (kube_pod_init_container_status_last_terminated_reason{{{pods},"
            f'container="{CONTAINER_SYNC}",reason!="Completed"}}) == 1)\n'
            f"  unless on (namespace, pod)\n"
            f"(max by (namespace, pod) (kube_pod_init_container_status_terminated_reason{{{pods},"
            f'container="{CONTAINER_SYNC}",reason="Completed"}}) == 1)',
            "5m",
            "critical",
            f"{m}: weight sync failing on {{{{ $labels.pod }}}}",
            f"The {CONTAINER_SYNC} init container failed and has not completed since "
            f"(bucket access, disk space, integrity). kubectl logs -c {CONTAINER_SYNC}.",
            runbook,
        ),
        rule(
            "FleetkitModelUnavailable",
            f'kube_deployment_status_replicas_available{{namespace="{ns}",deployment="{m}"}} == 0\n'
            f'  and on (namespace, deployment) kube_deployment_spec_replicas{{namespace="{ns}",deployment="{m}"}} > 0',
            "15m",
            "critical",
            f"{m}: no replica available for 15 minutes",
            "Pods are pending (no GPU capacity), syncing weights or loading. kubectl describe pods.",
            runbook,
        ),
    ]
    if plan.prefetch:
        rules.append(
            rule(
                "FleetkitWeightPrefetchCrashLooping",
                f'max by (namespace, pod) (kube_pod_container_status_waiting_reason{{namespace="{ns}",'
                f'pod=~"{plan.prefetch_name}-{_SAFE}{{5}}",container="{CONTAINER_WARM}",reason="CrashLoopBackOff"}}) == 1',
                "15m",
                "warning",
                f"{m}: weight prefetch crash-looping on {{{{ $labels.pod }}}}",
                "New nodes of the pool will start cold (the init container still syncs).",
                runbook,
            )
        )
    return rules


def build_prometheus_rule(plan: ModelPlan) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(plan.name, plan.namespace, object_labels(plan, COMPONENT_SERVER)),
        "spec": {"groups": [{"name": f"fleetkit-model-{plan.name}", "rules": alert_rules(plan)}]},
    }


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def build_dashboard_configmap(namespace: str) -> dict[str, Any]:
    """The fleet dashboard (all models, all regions) for Grafana's dashboard sidecar."""
    body = json.dumps(load_dashboard(), indent=1, sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            DASHBOARD_NAME, namespace, {"grafana_dashboard": "1"}, {"grafana_folder": "fleetkit"}
        ),
        "data": {"fleetkit-vllm.json": body},
    }
