"""Strict, offline schema validation for Kubernetes, Istio, KEDA, prometheus-operator and Gateway API objects.

Two sources of truth, both shipped with the kit:

* **CRD kinds** (Istio, KEDA, prometheus-operator, Gateway API, Gateway API Inference Extension, llm-d) are
  validated with ``jsonschema`` against ``spec.versions[].schema.openAPIV3Schema`` of the vendored CRD files in
  ``fleetkit/schemas/`` (see its README for versions). The schemas are made *strict* before use: every object
  schema that lists ``properties`` and says nothing about extra keys gets ``additionalProperties: false``
  (``kubectl apply`` uses strict field validation by default; a typo'd field that the API server would
  silently drop is an error here), ``nullable`` and ``x-kubernetes-int-or-string`` are honoured, and duration
  fields guarded by a CEL ``duration(self)`` rule must parse as Go durations. Other CEL rules
  (``x-kubernetes-validations``) are not evaluated.
* **Core kinds** (Deployment, Service, HPA ``autoscaling/v2``, RBAC, …) are validated with the strict schemas
  that the ``kubernetes-validate`` package ships, for Kubernetes :data:`KUBERNETES_VERSION`.

Before validation the object is prepared the way the API server decodes it: mapping entries whose value is
an explicit ``null`` (typical Helm output such as ``retries:`` left empty) are pruned (Kubernetes docs,
"Extend the Kubernetes API with CustomResourceDefinitions", section *Defaulting and nullable*: nulls of
non-nullable fields are pruned; core kinds decode null as the zero value), and ``status`` is not validated
for kinds with a status subresource (the API server ignores ``status`` on create/update of the main
resource; see the same page, section *Status subresource*).

``metadata`` is validated the same way for every kind: ``name`` is required and must be a valid object name,
``labels``/``annotations`` must be maps of strings with valid keys, and unknown metadata fields are errors.

Compiled validators are cached per (apiVersion, kind), so validating hundreds of objects costs one schema
compilation per kind. Results are sorted, so output is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jsonschema import Draft4Validator, Draft202012Validator

from fleetkit.issue import Issue
from fleetkit.schema_messages import Found, describe_error, validate_metadata
from fleetkit.schema_sources import (
    FAST_PATH_AFTER,
    KUBERNETES_VERSION,
    SCHEMA_DIR,
    core_validator,
    core_versions_of,
    crd_validator,
    crds,
    fast_core,
    fast_crd,
    is_core_group,
    warm,
)

__all__ = [
    "FAST_PATH_AFTER",
    "KUBERNETES_VERSION",
    "RULE_INVALID",
    "RULE_NOT_SERVED",
    "RULE_UNKNOWN_KIND",
    "SCHEMA_DIR",
    "known_kind",
    "namespaced",
    "served_versions",
    "validate_object",
    "validate_objects",
]

#: the rules of a schema issue: the apiVersion is not served for the kind, no schema knows the kind, and
#: the object does not match its schema
RULE_NOT_SERVED = "schema.not-served"
RULE_UNKNOWN_KIND = "schema.unknown-kind"
RULE_INVALID = "schema.invalid"


# --------------------------------------------------------------------------------------------------------------
# public API


def _split(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        group, _, version = api_version.rpartition("/")
        return group, version
    return "", api_version


def crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    """The vendored CRD's raw ``openAPIV3Schema`` for this apiVersion/kind (None: not a vendored CRD)."""
    group, version = _split(api_version)
    crd = crds().get((group, kind))
    return crd.versions.get(version) if crd is not None else None


def served_versions(api_version: str, kind: str) -> tuple[str, ...]:
    """apiVersions that serve ``kind`` in the same API group family (CRD) or in Kubernetes (core)."""
    group, _ = _split(api_version)
    crd = crds().get((group, kind))
    if crd is not None:
        return tuple(f"{group}/{v}" for v in sorted(crd.versions))
    if is_core_group(group):
        return core_versions_of(kind)
    return ()


#: Core kinds that are cluster-scoped (everything else in the core groups is namespaced).
_CLUSTER_SCOPED_CORE = frozenset(
    {
        "APIService",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "ComponentStatus",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "DeviceClass",
        "FlowSchema",
        "IngressClass",
        "IPAddress",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "RuntimeClass",
        "ServiceCIDR",
        "StorageClass",
        "StorageVersionMigration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
        "VolumeAttributesClass",
    }
)


def namespaced(api_version: str, kind: str) -> bool:
    """Whether objects of this kind live in a namespace (unknown kinds are assumed namespaced)."""
    group, _ = _split(api_version) if isinstance(api_version, str) else ("", "")
    crd = crds().get((group, kind))
    if crd is not None:
        return crd.scope == "Namespaced"
    return kind not in _CLUSTER_SCOPED_CORE


def known_kind(api_version: str, kind: str) -> bool:
    """True when ``apiVersion``/``kind`` has a schema here (a served CRD version or a core kind)."""
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return False
    group, version = _split(api_version)
    crd = crds().get((group, kind))
    if crd is not None:
        return version in crd.versions
    return is_core_group(group) and core_validator(api_version, kind) is not None


def validate_objects(objs: Iterable[dict[str, Any]]) -> list[Issue]:
    """Validate many objects; issues are sorted and deduplicated."""
    issues: set[Issue] = set()
    for obj in objs:
        issues.update(validate_object(obj))
    return sorted(issues)


def validate_object(obj: dict[str, Any]) -> list[Issue]:
    """Validate one manifest; returns the issues sorted by path (empty when valid).

    Each issue's ``subject`` is ``Kind/name`` and its ``path`` a tuple inside the object; the rule is
    :data:`RULE_NOT_SERVED` (at ``apiVersion``), :data:`RULE_UNKNOWN_KIND` (at ``kind``) or
    :data:`RULE_INVALID`.
    """
    if not isinstance(obj, dict):
        return [Issue((), RULE_INVALID, f"expected a mapping, got {type(obj).__name__}", subject="/")]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    meta = obj.get("metadata")
    name = ""
    if isinstance(meta, dict) and isinstance(meta.get("name"), str):
        name = meta["name"]
    kind_s = kind if isinstance(kind, str) else ""
    issues: list[tuple[str, Found]] = []
    if not isinstance(api_version, str) or not api_version:
        issues.append((RULE_INVALID, (("apiVersion",), "apiVersion is required and must be a string")))
    if not isinstance(kind, str) or not kind:
        issues.append((RULE_INVALID, (("kind",), "kind is required and must be a string")))
    if issues:
        return _finish(kind_s, name, issues)
    assert isinstance(api_version, str) and isinstance(kind, str)

    group, version = _split(api_version)
    validator: Draft4Validator | Draft202012Validator | None = None
    fast: Any = None
    body = prune_nulls(obj)
    crd = crds().get((group, kind))
    if crd is not None:
        if version in crd.versions:
            validator = crd_validator(group, kind, version)
            fast = fast_crd(group, kind, version) if warm((api_version, kind)) else None
            if version in crd.status_subresource:
                body.pop("status", None)
        else:
            served = ", ".join(f"{group}/{v}" for v in sorted(crd.versions))
            issues.append(
                (
                    RULE_NOT_SERVED,
                    (("apiVersion",), f"{api_version} is not served for {kind} (served: {served})"),
                )
            )
    elif is_core_group(group):
        validator = core_validator(api_version, kind)
        fast = fast_core(api_version, kind) if validator is not None and warm((api_version, kind)) else None
        if validator is not None and "status" in validator.schema.get("properties", {}):
            body.pop("status", None)  # every core kind with a status field serves it as a subresource
        if validator is None:
            others = core_versions_of(kind)
            if others:
                served = ", ".join(others)
                message = f"{api_version} {kind} is not served by Kubernetes {KUBERNETES_VERSION} (served: {served})"
                issues.append((RULE_NOT_SERVED, (("apiVersion",), message)))
            else:
                issues.append((RULE_UNKNOWN_KIND, (("kind",), f"no schema for {api_version}/{kind}")))
    else:
        known = sorted(k for g, k in crds() if g == group)
        hint = f" (known kinds in {group}: {', '.join(known)})" if known else ""
        issues.append((RULE_UNKNOWN_KIND, (("kind",), f"no schema for {api_version}/{kind}{hint}")))

    issues.extend((RULE_INVALID, found) for found in validate_metadata(kind, meta))
    if validator is not None and not (fast is not None and fast(body)):
        for error in validator.iter_errors(body):
            issues.extend((RULE_INVALID, found) for found in describe_error(error))
    return _finish(kind_s, name, issues)


def prune_nulls(value: Any) -> Any:
    """Copy of ``value`` without mapping entries whose value is None (recursively), as the API server decodes."""
    if isinstance(value, dict):
        return {k: prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune_nulls(v) for v in value]
    return value


def _finish(kind: str, name: str, found: list[tuple[str, Found]]) -> list[Issue]:
    return sorted({Issue(path, rule, message, subject=f"{kind}/{name}") for rule, (path, message) in found})
