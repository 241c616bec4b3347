"""Apply plain manifest dicts as real ``pulumi_kubernetes`` resources.

Core kinds map to their typed classes (so ``resources.json`` shows ``kubernetes:apps/v1:Deployment``);
CRD kinds (Istio, KEDA, prometheus-operator) become ``apiextensions.CustomResource`` with their own
type token (``kubernetes:networking.istio.io/v1:VirtualService``).
"""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# (apiVersion, kind) -> typed resource class
_TYPED: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("apps/v1", "DaemonSet"): k8s.apps.v1.DaemonSet,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
    ("scheduling.k8s.io/v1", "PriorityClass"): k8s.scheduling.v1.PriorityClass,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): k8s.rbac.v1.ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): k8s.rbac.v1.ClusterRoleBinding,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
}

_NAME_SAFE = re.compile(r"[^a-z0-9-]+")


def resource_name(prefix: str, obj: dict[str, Any]) -> str:
    """A stable Pulumi resource name for a manifest: prefix, kind, namespace and name."""
    md = obj.get("metadata", {})
    parts = [prefix, obj["kind"].lower(), md.get("namespace", ""), md["name"]]
    return _NAME_SAFE.sub("-", "-".join(p for p in parts if p).lower())


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(key: str) -> str:
    return _CAMEL.sub("_", key).lower()


def apply_manifest(name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Create the provider resource for one manifest dict.

    Top-level fields become the typed class's keyword arguments (``globalDefault`` ->
    ``global_default``); nested dicts keep their Kubernetes (camelCase) keys, which the SDK accepts.
    """
    api_version, kind = obj["apiVersion"], obj["kind"]
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    cls = _TYPED.get((api_version, kind))
    if cls is not None:
        return cls(name, opts=opts, **{_snake(k): v for k, v in body.items()})
    extra = set(body) - {"metadata", "spec"}
    if extra:
        raise ValueError(
            f"{kind} {name}: custom resources are applied with metadata and spec only, got {sorted(extra)}"
        )
    return k8s.apiextensions.CustomResource(name, api_version=api_version, kind=kind, opts=opts, **body)
