"""FK406: an autoscaler's query must select its own Deployment, and FK005 notes for autoscalers whose target is
not in the input.

A KEDA Prometheus query (or an HPA Object/External metric selector) that filters only on labels several
Deployments share, typically ``model_name`` when a stable and a canary Deployment serve the same model, or
``app`` shared by every version, sums the load of all of them: each autoscaler then scales on the combined
queue (KEDA docs, Prometheus scaler: the query result is used as-is; vLLM docs, metrics: every series carries
``model_name``, the served model name, plus the scrape target's labels).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from fleetkit.lint.checks.llm_routing import workloads_by_namespace
from fleetkit.lint.index import KEDA, Hit, Index, Obj, as_dict, as_list, as_str
from fleetkit.lint.mesh import skipped, str_map

_SELECTOR = re.compile(r"vllm:[A-Za-z0-9_:]*\s*\{([^}]*)\}|vllm:[A-Za-z0-9_:]+")
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def served_model(ix: Index, workload: Obj) -> str:
    """The ``model_name`` label vLLM puts on its metrics: the first --served-model-name, else the model."""
    cache: dict[int, str] = ix.memo.setdefault("served_model", {})
    if id(workload) not in cache:
        cache[id(workload)] = _served_model(workload)
    return cache[id(workload)]


def _served_model(workload: Obj) -> str:
    pod = as_dict(as_dict(workload.spec.get("template")).get("spec"))
    for c in map(as_dict, as_list(pod.get("containers"))):
        argv = [a for a in [*as_list(c.get("command")), *as_list(c.get("args"))] if isinstance(a, str)]
        if not any("vllm" in a for a in [*argv, as_str(c.get("image"))]):
            continue
        for flag in ("--served-model-name", "--model"):
            for i, a in enumerate(argv):
                if a == flag and i + 1 < len(argv):
                    return argv[i + 1]
                if a.startswith(flag + "="):
                    return a.split("=", 1)[1]
        if "serve" in argv:
            rest = argv[argv.index("serve") + 1 :]
            if rest and not rest[0].startswith("-"):
                return rest[0]
    return ""


def _vllm_workloads(ix: Index, namespace: str) -> list[Obj]:
    key = f"vllm_workloads/{namespace}"
    if key not in ix.memo:
        ix.memo[key] = [w for w in workloads_by_namespace(ix).get(namespace, []) if served_model(ix, w)]
    result: list[Obj] = ix.memo[key]
    return result


def _selected(ix: Index, candidates: list[Obj], matchers: list[tuple[str, str, str]]) -> list[Obj] | None:
    """Workloads whose series the matchers keep; None when a matcher uses a label the input cannot resolve."""
    out = []
    for w in candidates:
        labels = {**ix.pod_labels(w), "model_name": served_model(ix, w), "namespace": w.namespace}
        keep = True
        for name, op, value in matchers:
            if name not in labels:
                return None
            have = labels[name]
            ok = {"=": have == value, "!=": have != value}.get(op)
            if ok is None:
                try:
                    ok = bool(re.fullmatch(value, have)) == (op == "=~")
                except re.error:
                    return None
            keep = keep and ok
        if keep:
            out.append(w)
    return out


def _queries(so: Obj) -> Iterator[tuple[tuple[str | int, ...], list[tuple[str, str, str]]]]:
    for i, trigger in enumerate(map(as_dict, as_list(so.spec.get("triggers")))):
        query = as_str(as_dict(trigger.get("metadata")).get("query"))
        for m in _SELECTOR.finditer(query):
            yield ("spec", "triggers", i, "metadata", "query"), _MATCHER.findall(m.group(1) or "")


def check_scaler_queries(ix: Index) -> Iterator[Hit]:
    """FK406, plus FK005 when the scaled Deployment is absent."""
    noted = False
    for so in ix.of(KEDA, "ScaledObject"):
        ref = as_dict(so.spec.get("scaleTargetRef"))
        kind, name = as_str(ref.get("kind")) or "Deployment", as_str(ref.get("name"))
        target = ix.workloads.get((so.namespace, kind, name))
        uses = list(_queries(so))
        if not uses:
            continue
        if target is None:
            if not noted:
                noted = True
                yield skipped(so, "Autoscaler target checks (GPU signals FK401, query selection FK406)",
                              f"{kind}/{so.namespace}/{name} is not in the input")  # fmt: skip
            continue
        candidates = _vllm_workloads(ix, so.namespace)
        for path, matchers in uses:
            chosen = _selected(ix, candidates, matchers)
            if chosen is None or (len(chosen) <= 1 and (not chosen or chosen[0] is target)):
                continue
            names = ", ".join(w.name for w in chosen) or "none"
            shown = ",".join(f'{k}{op}"{v}"' for k, op, v in matchers) or "no label matchers"
            yield Hit(so, path, "FK406",
                      f"the query ({shown}) selects the vLLM series of {len(chosen)} Deployment(s) ({names}), not "
                      f"only {kind}/{name}: the autoscaler scales on their combined load",
                      f"add a matcher only {name}'s pods carry (e.g. a pod label such as version, or "
                      f'pod=~"{name}-.*"), or give each Deployment its own --served-model-name')  # fmt: skip


def _hpa_selectors(hpa: Obj) -> Iterator[tuple[tuple[str | int, ...], dict[str, str]]]:
    for i, metric in enumerate(map(as_dict, as_list(hpa.spec.get("metrics")))):
        for section in ("object", "external"):
            sel = as_dict(as_dict(as_dict(metric.get(section)).get("metric")).get("selector"))
            if sel:
                yield ("spec", "metrics", i, section, "metric", "selector"), str_map(sel.get("matchLabels"))


def check_hpa_selectors(ix: Index) -> Iterator[Hit]:
    """FK406 for HPA Object/External metrics whose selector several vLLM Deployments match."""
    for hpa in ix.of("autoscaling", "HorizontalPodAutoscaler"):
        ref = as_dict(hpa.spec.get("scaleTargetRef"))
        name = as_str(ref.get("name"))
        target = ix.workloads.get((hpa.namespace, as_str(ref.get("kind")) or "Deployment", name))
        if target is None:
            continue
        candidates = _vllm_workloads(ix, hpa.namespace)
        for path, labels in _hpa_selectors(hpa):
            chosen = _selected(ix, candidates, [(k, "=", v) for k, v in labels.items()])
            if chosen is not None and len(chosen) > 1:
                yield Hit(hpa, path, "FK406",
                          f"the metric selector {labels} matches {len(chosen)} Deployments "
                          f"({', '.join(w.name for w in chosen)}), not only {name}",
                          f"select a label only {name}'s pods carry")  # fmt: skip


CHECKS = [check_scaler_queries, check_hpa_selectors]
