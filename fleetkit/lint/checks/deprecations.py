"""Deprecated fields, values and apiVersions, each with its replacement."""

from __future__ import annotations

import re
from collections.abc import Iterator

from fleetkit.lint.index import KEDA, NETWORKING, Hit, Index, Obj, as_dict, as_list, as_str, traffic_policies
from fleetkit.lint.model import Severity
from fleetkit.schema import known_kind, served_versions

_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_rank(version: str) -> tuple[int, int, int]:
    """Kubernetes version priority: v2 > v1 > v1beta2 > v1beta1 > v1alpha1; unknown strings rank lowest."""
    m = _VERSION.match(version)
    if not m:
        return (-1, -1, -1)
    stage = {"alpha": 0, "beta": 1, None: 2}[m.group(2)]
    return (stage, int(m.group(1)), int(m.group(3) or 0))


def best_served(api_version: str, kind: str) -> str | None:
    """The most mature apiVersion serving ``kind`` in the same group (None when unknown)."""
    served = served_versions(api_version, kind)
    if not served:
        return None
    return max(served, key=lambda av: version_rank(av.rpartition("/")[2]))


#: Kinds that moved to another API group, with why it matters.
MOVED: dict[tuple[str, str], tuple[str, Severity, str]] = {
    ("inference.networking.x-k8s.io/v1alpha2", "InferencePool"): (
        "inference.networking.k8s.io/v1",
        Severity.ERROR,
        "Istio 1.30 only watches inference.networking.k8s.io/v1 InferencePools, so this one is ignored",
    ),
    ("inference.networking.x-k8s.io/v1alpha2", "InferenceObjective"): (
        "llm-d.ai/v1alpha2",
        Severity.WARNING,
        "InferenceObjective was removed from the Gateway API Inference Extension in v1.6.0 and lives on in llm-d",
    ),
    ("inference.networking.x-k8s.io/v1alpha2", "InferenceModelRewrite"): (
        "llm-d.ai/v1alpha2",
        Severity.WARNING,
        "InferenceModelRewrite was removed from the Gateway API Inference Extension in v1.6.0 and lives on in llm-d",
    ),
}

#: Extra context for apiVersions Kubernetes removed (FK003 fix text).
REMOVED_CORE = {
    "autoscaling/v2beta1": "removed in Kubernetes 1.25",
    "autoscaling/v2beta2": "removed in Kubernetes 1.26",
    "policy/v1beta1": "removed in Kubernetes 1.25",
    "batch/v1beta1": "removed in Kubernetes 1.25",
    "networking.k8s.io/v1beta1": "removed in Kubernetes 1.22",
    "extensions/v1beta1": "removed in Kubernetes 1.16-1.22",
    "apps/v1beta1": "removed in Kubernetes 1.16",
    "apps/v1beta2": "removed in Kubernetes 1.16",
    "rbac.authorization.k8s.io/v1beta1": "removed in Kubernetes 1.22",
}


def unserved_fix(api_version: str, kind: str) -> str:
    """Fix text for an apiVersion that is not served (FK003)."""
    moved = MOVED.get((api_version, kind))
    if moved:
        return f"use apiVersion {moved[0]}"
    best = best_served(api_version, kind)
    if best is None:
        return "use an apiVersion the cluster serves"
    when = REMOVED_CORE.get(api_version)
    return f"use apiVersion {best}" + (f" ({api_version} was {when})" if when else "")


def check_api_versions(ix: Index) -> Iterator[Hit]:
    """FK302: a served but older apiVersion, or a kind that moved groups."""
    for obj in ix.objs:
        moved = MOVED.get((obj.api_version, obj.kind))
        if moved:
            target, severity, why = moved
            yield Hit(obj, ("apiVersion",), "FK302", f"{obj.api_version} {obj.kind}: {why}",
                      f"use apiVersion {target}", severity)  # fmt: skip
            continue
        if not known_kind(obj.api_version, obj.kind) or "/" not in obj.api_version:
            continue
        version = obj.api_version.rpartition("/")[2]
        best = best_served(obj.api_version, obj.kind)
        if best and version_rank(best.rpartition("/")[2]) > version_rank(version):
            yield Hit(obj, ("apiVersion",), "FK302",
                      f"{obj.api_version} is an older version of {obj.kind}; {best} is served",
                      f"use apiVersion {best} (same schema for Istio kinds)")  # fmt: skip


def _dr_fields(obj: Obj) -> Iterator[Hit]:
    for p in traffic_policies(obj):
        od = as_dict(p.body.get("outlierDetection"))
        if "consecutiveErrors" in od:
            yield Hit(obj, (*p.path, "outlierDetection", "consecutiveErrors"), "FK301",
                      "outlierDetection.consecutiveErrors is deprecated",
                      "use consecutive5xxErrors (any 5xx) or consecutiveGatewayErrors (502/503/504)")  # fmt: skip
        lb = as_dict(p.body.get("loadBalancer"))
        if lb.get("simple") == "LEAST_CONN":
            yield Hit(obj, (*p.path, "loadBalancer", "simple"), "FK301", "loadBalancer.simple LEAST_CONN is deprecated",
                      "use LEAST_REQUEST")  # fmt: skip
        if "minimumRingSize" in as_dict(lb.get("consistentHash")):
            yield Hit(obj, (*p.path, "loadBalancer", "consistentHash", "minimumRingSize"), "FK301",
                      "consistentHash.minimumRingSize is deprecated",
                      "use consistentHash.ringHash.minimumRingSize")  # fmt: skip
        if "warmupDurationSecs" in lb:
            yield Hit(obj, (*p.path, "loadBalancer", "warmupDurationSecs"), "FK301",
                      "loadBalancer.warmupDurationSecs is deprecated",
                      "use loadBalancer.warmup: {duration: <same value>}")  # fmt: skip


def _vs_fields(obj: Obj) -> Iterator[Hit]:
    for i, route in enumerate(as_list(obj.spec.get("http"))):
        route = as_dict(route)
        path = ("spec", "http", i)
        for name in ("mirrorPercent", "mirror_percent"):
            if name in route:
                yield Hit(obj, (*path, name), "FK301", f"{name} is deprecated",
                          f"use mirrorPercentage: {{value: {route[name]}}}")  # fmt: skip
        delay = as_dict(as_dict(route.get("fault")).get("delay"))
        if "percent" in delay:
            yield Hit(obj, (*path, "fault", "delay", "percent"), "FK301",
                      "Deprecated: HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage",
                      f"use fault.delay.percentage: {{value: {delay['percent']}}}", ist="IST0002")  # fmt: skip
        cors = as_dict(route.get("corsPolicy"))
        if "allowOrigin" in cors:
            yield Hit(obj, (*path, "corsPolicy", "allowOrigin"), "FK301", "corsPolicy.allowOrigin is deprecated",
                      "use corsPolicy.allowOrigins: [{exact: <origin>}] (StringMatch entries)")  # fmt: skip


def _sidecar_fields(obj: Obj) -> Iterator[Hit]:
    """istioctl's deprecation analyzer: Sidecar outboundTrafficPolicy.egressProxy is ignored by Istio."""
    otp = as_dict(obj.spec.get("outboundTrafficPolicy"))
    if "egressProxy" in otp:
        yield Hit(obj, ("spec", "outboundTrafficPolicy", "egressProxy"), "FK301",
                  "Deprecated: OutboundTrafficPolicy.EgressProxy ignored",
                  "remove egressProxy; route egress through an egress gateway with a VirtualService instead",
                  ist="IST0002")  # fmt: skip


def _keda_fields(obj: Obj) -> Iterator[Hit]:
    for i, trigger in enumerate(as_list(obj.spec.get("triggers"))):
        trigger = as_dict(trigger)
        meta = as_dict(trigger.get("metadata"))
        path = ("spec", "triggers", i, "metadata")
        if "metricName" in meta:
            yield Hit(obj, (*path, "metricName"), "FK301",
                      "trigger metadata.metricName was deprecated in KEDA 2.10 and removed in 2.12; it is ignored",
                      "delete metricName (KEDA names the metric itself; use trigger 'name' to refer to it)")  # fmt: skip
        if as_str(trigger.get("type")) in ("cpu", "memory") and "type" in meta:
            yield Hit(obj, (*path, "type"), "FK301",
                      f"{trigger['type']} trigger metadata.type is deprecated",
                      f"move it to triggers[{i}].metricType: {meta['type']}")  # fmt: skip


def check_fields(ix: Index) -> Iterator[Hit]:
    """FK301: deprecated fields and values."""
    for obj in ix.of(NETWORKING, "DestinationRule"):
        yield from _dr_fields(obj)
    for obj in ix.of(NETWORKING, "VirtualService"):
        yield from _vs_fields(obj)
    for obj in ix.of(NETWORKING, "Sidecar"):
        yield from _sidecar_fields(obj)
    for obj in ix.of(KEDA, "ScaledObject"):
        yield from _keda_fields(obj)


CHECKS = [check_api_versions, check_fields]
