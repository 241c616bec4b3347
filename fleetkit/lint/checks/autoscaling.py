"""Autoscaling vLLM: KEDA ScaledObjects and HPAs (signals, metric names, scale-to-zero, duplicates), plus
vLLM metric names used in PrometheusRules."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from fleetkit.lint.index import KEDA, Hit, Index, Obj, Path, as_dict, as_int, as_list, as_str
from fleetkit.lint.mesh import skipped
from fleetkit.lint.model import Severity

#: Metric names (without the ``vllm:`` prefix and without _total/_bucket/_sum/_count/_created suffixes) that
#: current vLLM (V1 engine) exports. Source: vLLM docs/usage/metrics.md and the V1 Prometheus stat logger.
VLLM_METRICS = frozenset(
    {
        "num_requests_running",
        "num_requests_waiting",
        "kv_cache_usage_perc",
        "prefix_cache_queries",
        "prefix_cache_hits",
        "external_prefix_cache_queries",
        "external_prefix_cache_hits",
        "mm_cache_queries",
        "mm_cache_hits",
        "num_preemptions",
        "prompt_tokens",
        "generation_tokens",
        "request_success",
        "request_prompt_tokens",
        "request_generation_tokens",
        "iteration_tokens",
        "request_max_num_generation_tokens",
        "request_params_n",
        "request_params_max_tokens",
        "time_to_first_token_seconds",
        "inter_token_latency_seconds",
        "request_time_per_output_token_seconds",
        "e2e_request_latency_seconds",
        "request_queue_time_seconds",
        "request_inference_time_seconds",
        "request_prefill_time_seconds",
        "request_decode_time_seconds",
        "cache_config_info",
        "lora_requests_info",
        "spec_decode_num_drafts",
        "spec_decode_num_draft_tokens",
        "spec_decode_num_accepted_tokens",
        "spec_decode_num_accepted_tokens_per_pos",
        "kv_block_lifetime_seconds",
        "kv_block_idle_before_evict_seconds",
        "kv_block_reuse_gap_seconds",
    }
)

#: Names vLLM no longer exports, with what to use instead (REFERENCE §c.5).
VLLM_REMOVED = {
    "gpu_cache_usage_perc": "vllm:kv_cache_usage_perc (same 0-1 fraction)",
    "cpu_cache_usage_perc": "nothing: the V1 engine has no CPU KV-cache swap; use vllm:kv_cache_usage_perc",
    "gpu_prefix_cache_queries": "vllm:prefix_cache_queries_total",
    "gpu_prefix_cache_hits": "vllm:prefix_cache_hits_total",
    "gpu_prefix_cache_hit_rate": "rate(vllm:prefix_cache_hits_total[5m]) / rate(vllm:prefix_cache_queries_total[5m])",
    "cpu_prefix_cache_hit_rate": "rate(vllm:prefix_cache_hits_total[5m]) / rate(vllm:prefix_cache_queries_total[5m])",
    "time_per_output_token_seconds": "vllm:inter_token_latency_seconds",
    "num_requests_swapped": "nothing: V1 does not swap; watch vllm:num_preemptions_total",
    "avg_prompt_throughput_toks_per_s": "rate(vllm:prompt_tokens_total[1m])",
    "avg_generation_throughput_toks_per_s": "rate(vllm:generation_tokens_total[1m])",
}

_VLLM_NAME = re.compile(r"vllm:[A-Za-z_:][A-Za-z0-9_:]*")
_SUFFIXES = ("_bucket", "_count", "_sum", "_created", "_total")
_GPU_MEMORY = re.compile(r"DCGM_FI_DEV_FB_(USED|FREE|TOTAL|RESERVED)", re.IGNORECASE)
GOOD_SIGNAL = "sum(vllm:num_requests_waiting{model_name=...}) with threshold ~5 per replica, or vllm:kv_cache_usage_perc"


def base_name(metric: str) -> str:
    name = metric.split(":", 1)[1] if metric.startswith("vllm:") else metric
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in VLLM_METRICS | set(VLLM_REMOVED):
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class _MetricUse:
    obj: Obj
    path: Path
    name: str  # as written
    adapter: bool  # a prometheus-adapter style name (vllm_...), not a PromQL series


def _recorded(ix: Index) -> set[str]:
    out = set()
    for rule_obj in ix.of("monitoring.coreos.com", "PrometheusRule"):
        for group in as_list(rule_obj.spec.get("groups")):
            for rule in as_list(as_dict(group).get("rules")):
                record = as_str(as_dict(rule).get("record"))
                if record:
                    out.add(record)
    return out


def _hpas(ix: Index) -> list[Obj]:
    out = []
    for kind_group in ("autoscaling",):
        for hpa in ix.of(kind_group, "HorizontalPodAutoscaler"):
            meta = as_dict(hpa.raw.get("metadata"))
            owners = [as_dict(o).get("kind") for o in as_list(meta.get("ownerReferences"))]
            if "ScaledObject" in owners:
                continue  # KEDA's own HPA
            out.append(hpa)
    return out


def _hpa_metric_names(hpa: Obj) -> Iterator[tuple[Path, str]]:
    for i, metric in enumerate(as_list(hpa.spec.get("metrics"))):
        metric = as_dict(metric)
        for section in ("pods", "object", "external"):
            name = as_str(as_dict(as_dict(metric.get(section)).get("metric")).get("name"))
            if name:
                yield ("spec", "metrics", i, section, "metric", "name"), name


def _metric_uses(ix: Index) -> Iterator[_MetricUse]:
    for so in ix.of(KEDA, "ScaledObject"):
        for i, trigger in enumerate(as_list(so.spec.get("triggers"))):
            query = as_str(as_dict(as_dict(trigger).get("metadata")).get("query"))
            for name in sorted(set(_VLLM_NAME.findall(query))):
                yield _MetricUse(so, ("spec", "triggers", i, "metadata", "query"), name, False)
    for hpa in _hpas(ix):
        for path, name in _hpa_metric_names(hpa):
            if name.startswith("vllm:"):
                yield _MetricUse(hpa, path, name, False)
            elif name.startswith("vllm_"):
                yield _MetricUse(hpa, path, name, True)
    for rule_obj in ix.of("monitoring.coreos.com", "PrometheusRule"):
        for g, group in enumerate(as_list(rule_obj.spec.get("groups"))):
            for r, rule in enumerate(as_list(as_dict(group).get("rules"))):
                expr = as_dict(rule).get("expr")
                if isinstance(expr, str):
                    for name in sorted(set(_VLLM_NAME.findall(expr))):
                        yield _MetricUse(rule_obj, ("spec", "groups", g, "rules", r, "expr"), name, False)


def check_vllm_metrics(ix: Index) -> Iterator[Hit]:
    """FK402 (removed vLLM metric) and FK403 (unknown vllm: metric)."""
    recorded = _recorded(ix)
    for use in _metric_uses(ix):
        if use.name in recorded:
            continue
        if use.adapter:
            base = base_name(use.name[len("vllm_") :])
            if base in VLLM_REMOVED:
                yield Hit(use.obj, use.path, "FK402",
                          f"{use.name} is served from vllm:{base}, which vLLM no longer exports; the metric is empty",
                          f"point the adapter rule and this HPA at {VLLM_REMOVED[base]}")  # fmt: skip
            continue
        base = base_name(use.name)
        consequence = ("KEDA treats the empty result as 0 (ignoreNullValues) and scales down"
                       if use.obj.kind == "ScaledObject" else "the query returns nothing")  # fmt: skip
        if base in VLLM_REMOVED:
            yield Hit(use.obj, use.path, "FK402", f"{use.name} is no longer exported by vLLM; {consequence}",
                      f"use {VLLM_REMOVED[base]}")  # fmt: skip
        elif base not in VLLM_METRICS:
            yield Hit(use.obj, use.path, "FK403", f"{use.name} is not a metric vLLM exports (typo?); {consequence}",
                      f"check the name against vLLM's /metrics; for autoscaling use {GOOD_SIGNAL}")  # fmt: skip


@dataclass(frozen=True)
class _Scaler:
    obj: Obj
    target_kind: str
    target_name: str


def _scalers(ix: Index) -> list[_Scaler]:
    out = []
    for so in ix.of(KEDA, "ScaledObject"):
        ref = as_dict(so.spec.get("scaleTargetRef"))
        if as_str(ref.get("name")):
            out.append(_Scaler(so, as_str(ref.get("kind")) or "Deployment", as_str(ref.get("name"))))
    for hpa in _hpas(ix):
        ref = as_dict(hpa.spec.get("scaleTargetRef"))
        if as_str(ref.get("name")):
            out.append(_Scaler(hpa, as_str(ref.get("kind")) or "Deployment", as_str(ref.get("name"))))
    return out


def _uses_gpu(ix: Index, workload: Obj) -> bool:
    pod = as_dict(as_dict(workload.spec.get("template")).get("spec"))
    for section in ("containers", "initContainers"):
        for c in as_list(pod.get(section)):
            res = as_dict(as_dict(c).get("resources"))
            for key in ("limits", "requests"):
                if any(r in as_dict(res.get(key)) for r in ix.config.gpu_resources):
                    return True
    return False


def check_autoscalers(ix: Index) -> Iterator[Hit]:
    """FK401 (CPU/memory signals), FK404 (scale to zero), FK405 (several autoscalers on one workload)."""
    scalers = _scalers(ix)
    by_target: dict[tuple[str, str, str, str], list[_Scaler]] = defaultdict(list)
    for s in scalers:
        by_target[(ix.cluster_of(s.obj), s.obj.namespace, s.target_kind, s.target_name)].append(s)
    for (_, ns, kind, name), group in sorted(by_target.items()):
        if len(group) < 2:
            continue
        for s in group:
            others = ", ".join(o.obj.ref for o in group if o is not s)
            yield Hit(s.obj, ("spec", "scaleTargetRef"), "FK405",
                      f"{kind}/{ns}/{name} is also scaled by {others}; the autoscalers overwrite each other's "
                      "replica count (KEDA already creates an HPA for a ScaledObject)",
                      "keep exactly one autoscaler per workload (for KEDA: delete the hand-written HPA and put "
                      "its behavior under advanced.horizontalPodAutoscalerConfig)")  # fmt: skip

    for hpa in _hpas(ix):
        custom = [name for _, name in _hpa_metric_names(hpa) if not name.startswith(("vllm:", "vllm_"))]
        if custom:
            yield skipped(hpa, f"Custom metric(s) {', '.join(sorted(set(custom)))}",
                          "they are served by a metrics adapter (e.g. prometheus-adapter) whose rules are not in "
                          "the input, so whether the series exist could not be checked")  # fmt: skip
    for s in scalers:
        workload = ix.workloads.get((s.obj.namespace, s.target_kind, s.target_name))
        if workload is None and s.obj.kind == "HorizontalPodAutoscaler":
            yield skipped(s.obj, "Scale target (GPU use for FK401, duplicate autoscalers)",
                          f"{s.target_kind}/{s.obj.namespace}/{s.target_name} is not in the input")  # fmt: skip
        gpu = workload is not None and _uses_gpu(ix, workload)
        for hit in _signals(s, gpu or workload is None):
            if workload is None and hit.message.endswith(_CPU_TAIL):
                # partial input: the pattern is suspicious on its own; how sure we are depends on the names
                llm = _LLM_NAME.search(f"{s.target_name} {s.obj.name}") is not None
                hit.severity = Severity.WARNING if llm else Severity.INFO
                hit.message = (
                    f"{s.target_kind}/{s.target_name} is scaled on CPU/memory; it is not in the input, so "
                    "whether it runs vLLM on GPUs could not be checked"
                    + (" (its name suggests a model server)" if llm else "")
                    + ": "
                    + _CPU_TAIL
                )
            yield hit

    for so in ix.of(KEDA, "ScaledObject"):
        spec = so.spec
        if "minReplicaCount" not in spec:
            yield Hit(so, ("spec",), "FK404",
                      "minReplicaCount is not set and defaults to 0: the model scales to zero when idle and the "
                      "next request waits for a pod to start and load weights (minutes)",
                      "set minReplicaCount: 1 (or more); write minReplicaCount: 0 explicitly if scale-to-zero "
                      "is intended")  # fmt: skip
        elif as_int(spec.get("minReplicaCount")) == 0 or as_int(spec.get("idleReplicaCount")) == 0:
            field = "minReplicaCount" if as_int(spec.get("minReplicaCount")) == 0 else "idleReplicaCount"
            yield Hit(so, ("spec", field), "FK404",
                      f"{field}: 0 scales the model to zero when idle; the first request after idling waits for a "
                      "cold start (weights load)",
                      "keep it only if cold starts are acceptable for this model", Severity.INFO)  # fmt: skip


def _signals(s: _Scaler, gpu: bool) -> Iterator[Hit]:
    obj = s.obj
    target = f"{s.target_kind}/{s.target_name}"
    if obj.kind == "ScaledObject":
        for i, trigger in enumerate(as_list(obj.spec.get("triggers"))):
            trigger = as_dict(trigger)
            ttype = as_str(trigger.get("type"))
            path = ("spec", "triggers", i)
            if ttype in ("cpu", "memory") and gpu:
                yield _cpu_hit(obj, path, ttype, target)
            query = as_str(as_dict(trigger.get("metadata")).get("query"))
            if _GPU_MEMORY.search(query):
                yield _fb_hit(obj, (*path, "metadata", "query"))
        return
    spec = obj.spec
    if gpu and as_int(spec.get("targetCPUUtilizationPercentage")) is not None:
        yield _cpu_hit(obj, ("spec", "targetCPUUtilizationPercentage"), "cpu", target)
    for i, metric in enumerate(as_list(spec.get("metrics"))):
        metric = as_dict(metric)
        for section in ("resource", "containerResource"):
            resource = as_str(as_dict(metric.get(section)).get("name"))
            if resource in ("cpu", "memory") and gpu:
                yield _cpu_hit(obj, ("spec", "metrics", i, section), resource, target)
    for metric_path, name in _hpa_metric_names(obj):
        if _GPU_MEMORY.search(name):
            yield _fb_hit(obj, metric_path)


_CPU_TAIL = "vLLM's CPU and memory use barely move with load (the work and the KV cache live on the GPU)"
_LLM_NAME = re.compile(
    r"llm|vllm|llama|mistral|mixtral|qwen|gemma|deepseek|gpt|phi-?\d|model|inference", re.IGNORECASE
)


def _cpu_hit(obj: Obj, path: Path, resource: str, target: str) -> Hit:
    return Hit(obj, path, "FK401", f"{target} runs on GPUs but is scaled on {resource}: {_CPU_TAIL}",
               f"scale on {GOOD_SIGNAL}")  # fmt: skip


def _fb_hit(obj: Obj, path: Path) -> Hit:
    return Hit(obj, path, "FK401",
               "GPU framebuffer usage (DCGM_FI_DEV_FB_*) is constant under vLLM, which pre-allocates "
               "--gpu-memory-utilization of GPU memory at start: it only ever scales up",
               f"scale on {GOOD_SIGNAL}")  # fmt: skip


CHECKS = [check_vllm_metrics, check_autoscalers]
