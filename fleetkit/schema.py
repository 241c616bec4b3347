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

import base64
import binascii
import difflib
import functools
import ipaddress
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import Draft4Validator, Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from fleetkit.errors import format_path, short_value
from fleetkit.schema_fast import compile_fast

__all__ = [
    "KUBERNETES_VERSION",
    "SchemaIssue",
    "known_kind",
    "namespaced",
    "served_versions",
    "validate_object",
    "validate_objects",
]

#: Kubernetes version whose core API schemas are used (the newest that kubernetes-validate ships; Istio
#: 1.30 needs >= 1.32). Bump together with the ``kubernetes-validate`` requirement.
KUBERNETES_VERSION = "1.37"

SCHEMA_DIR = Path(__file__).parent / "schemas"

#: Core API groups validated with kubernetes-validate (besides the legacy core group ``""``). Groups ending
#: in ``.k8s.io`` that a vendored CRD defines (Gateway API, GIE) are CRD groups, never core.
_CORE_GROUPS_NO_DOT = frozenset({"", "apps", "batch", "autoscaling", "policy", "extensions"})


@dataclass(frozen=True, order=True)
class SchemaIssue:
    """One schema violation: which object, where in it (``spec.http[0].route[0].weight``), and what is wrong."""

    kind: str
    name: str
    path: str
    message: str


# --------------------------------------------------------------------------------------------------------------
# formats

_GO_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$|^[-+]?0$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("int32")
def _is_int32(value: object) -> bool:
    return not isinstance(value, int) or isinstance(value, bool) or -(2**31) <= value < 2**31


@_FORMATS.checks("int64")
def _is_int64(value: object) -> bool:
    return not isinstance(value, int) or isinstance(value, bool) or -(2**63) <= value < 2**63


@_FORMATS.checks("ipv4")
def _is_ipv4(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


@_FORMATS.checks("ipv6")
def _is_ipv6(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


@_FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(_DATE_TIME.match(value))


@_FORMATS.checks("byte")
def _is_byte(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


@_FORMATS.checks("go-duration")
def _is_go_duration(value: object) -> bool:
    return not isinstance(value, str) or bool(_GO_DURATION.match(value))


# --------------------------------------------------------------------------------------------------------------
# CRDs


@dataclass(frozen=True)
class _Crd:
    group: str
    kind: str
    scope: str
    versions: dict[str, dict[str, Any]]  # served version -> openAPIV3Schema (raw)
    unserved: tuple[str, ...]
    source: str
    status_subresource: frozenset[str] = frozenset()  # served versions with subresources.status


def _schema_files() -> Iterator[tuple[str, str]]:
    for path in sorted(SCHEMA_DIR.rglob("*.y*ml")):
        yield path.relative_to(SCHEMA_DIR).as_posix(), path.read_text(encoding="utf-8")


def _cache_path(files: list[tuple[str, str]]) -> Path | None:
    """Where the parsed CRDs are cached as JSON (parsing 3.5 MB of YAML costs about half a second)."""
    import hashlib
    import os

    base = os.environ.get("FLEETKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "fleetkit"
    )
    digest = hashlib.sha256()
    for name, text in files:
        digest.update(name.encode())
        digest.update(text.encode())
    return Path(base) / f"crd-schemas-{digest.hexdigest()[:16]}.json"


def _crd_documents(files: list[tuple[str, str]]) -> list[tuple[str, dict[str, Any]]]:
    """(source file, CRD document) pairs, from the JSON cache when it is current."""
    import json
    import os
    import tempfile

    cache = _cache_path(files)
    try:
        if cache is not None and cache.exists():
            return [(name, doc) for name, doc in json.loads(cache.read_text(encoding="utf-8"))]
    except (OSError, ValueError):
        pass
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs = [
        (name, doc)
        for name, text in files
        for doc in yaml.load_all(text, Loader=loader)
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
    ]
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(docs, fh)
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only home only costs the YAML parse next time
    return docs


@functools.cache
def _crds() -> dict[tuple[str, str], _Crd]:
    out: dict[tuple[str, str], _Crd] = {}
    for name, doc in _crd_documents(list(_schema_files())):
        if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        key = (spec["group"], spec["names"]["kind"])
        if key in out:
            raise RuntimeError(f"two vendored CRDs define {key[1]}.{key[0]}: {out[key].source} and {name}")
        served = {
            v["name"]: v["schema"]["openAPIV3Schema"]
            for v in spec["versions"]
            if v.get("served", False) and "schema" in v
        }
        unserved = tuple(sorted(v["name"] for v in spec["versions"] if not v.get("served", False)))
        with_status = frozenset(
            v["name"] for v in spec["versions"] if "status" in ((v.get("subresources") or {}) or {})
        )
        out[key] = _Crd(spec["group"], key[1], spec.get("scope", "Namespaced"), served, unserved, name,
                        with_status)  # fmt: skip
    return out


@functools.cache
def _crd_groups() -> frozenset[str]:
    return frozenset(group for group, _ in _crds())


_LEADING_FLAGS = re.compile(r"^\^\(\?([aiLmsux]+)\)")


def _python_pattern(pattern: str) -> str | None:
    """Go (RE2) patterns allow inline flags after ``^``; Python wants them first. None if unusable."""
    fixed = _LEADING_FLAGS.sub(lambda m: f"(?{m.group(1)})^", pattern)
    try:
        re.compile(fixed)
    except re.error:
        return None
    return fixed


def _strict(schema: Any, *, structural: bool = True) -> Any:
    """Return a strict copy of a CRD structural schema (see module docstring).

    ``structural`` is False inside ``allOf/anyOf/oneOf/not``: branches there only repeat constraints on
    properties declared outside, so closing them would reject the sibling branches' fields.
    """
    if isinstance(schema, list):
        return [_strict(s, structural=structural) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _strict(sub, structural=structural) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _strict(value, structural=structural)
        elif key in ("allOf", "anyOf", "oneOf", "not"):
            out[key] = _strict(value, structural=False)
        elif key == "pattern" and isinstance(value, str):
            fixed = _python_pattern(value)
            if fixed is not None:
                out[key] = fixed
        elif key in ("description", "x-kubernetes-validations", "default", "example"):
            continue  # documentation / unevaluated CEL; keeps compiled schemas small
        else:
            out[key] = value
    if schema.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    out.pop("nullable", None)
    if schema.get("x-kubernetes-int-or-string") is True:
        out.pop("type", None)
        if "anyOf" not in out:
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    rules = schema.get("x-kubernetes-validations") or []
    duration_rule = any("duration(self)" in str(r.get("rule", "")) for r in rules if isinstance(r, dict))
    if duration_rule and out.get("type") == "string" and "format" not in out:
        out["format"] = "go-duration"
    if (
        structural
        and "properties" in out
        and "additionalProperties" not in out
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


#: Objects of one kind validated with ``jsonschema`` alone before the compiled fast path is built for the kind
#: (compiling a large schema costs about as much as validating a few dozen objects; small runs never pay it).
FAST_PATH_AFTER = 200
_seen: dict[tuple[str, str], int] = {}


def _warm(key: tuple[str, str]) -> bool:
    count = _seen.get(key, 0) + 1
    _seen[key] = count
    return count > FAST_PATH_AFTER


_STRING_FORMATS = {
    "ipv4": lambda v: _is_ipv4(v),
    "ipv6": lambda v: _is_ipv6(v),
    "date-time": lambda v: _is_date_time(v),
    "byte": lambda v: _is_byte(v),
    "go-duration": lambda v: _is_go_duration(v),
}


@functools.cache
def _fast_crd(group: str, kind: str, version: str) -> Any:
    return compile_fast(_crd_validator(group, kind, version).schema, _STRING_FORMATS, draft4=True)


@functools.cache
def _fast_core(api_version: str, kind: str) -> Any:
    validator = _core_validator(api_version, kind)
    if validator is None:
        return None
    defs = json.loads(_core_schema_dir().joinpath("_definitions.json").read_text(encoding="utf-8"))
    return compile_fast(validator.schema, _STRING_FORMATS, draft4=False, documents={_DEFS_URI: defs})


@functools.cache
def _crd_validator(group: str, kind: str, version: str) -> Draft4Validator:
    raw = _crds()[(group, kind)].versions[version]
    strict = _strict(raw)
    props = strict.setdefault("properties", {})
    props["metadata"] = {}  # validated by _validate_metadata for every kind
    props["apiVersion"] = {"type": "string"}
    props["kind"] = {"type": "string"}
    strict["additionalProperties"] = False
    return Draft4Validator(strict, format_checker=_FORMATS)


# --------------------------------------------------------------------------------------------------------------
# core Kubernetes kinds (kubernetes-validate's strict schemas)


@functools.cache
def _core_schema_dir() -> Any:
    base = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    folder = base.joinpath(f"v{KUBERNETES_VERSION}.0-local-strict")
    if not folder.is_dir():
        raise RuntimeError(
            f"the installed kubernetes-validate has no schemas for Kubernetes {KUBERNETES_VERSION}; "
            f"install kubernetes-validate>={KUBERNETES_VERSION}"
        )
    return folder


def _core_file(api_version: str, kind: str) -> str:
    prefix = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{prefix}.json"


@functools.cache
def _core_files() -> frozenset[str]:
    return frozenset(entry.name for entry in _core_schema_dir().iterdir())


def _is_core_group(group: str) -> bool:
    if group in _crd_groups():
        return False
    return group in _CORE_GROUPS_NO_DOT or group.endswith(".k8s.io")


@functools.cache
def _core_registry() -> Registry:
    definitions = json.loads(_core_schema_dir().joinpath("_definitions.json").read_text(encoding="utf-8"))
    return Resource.from_contents(definitions) @ Registry()


_DEFS_URI = "https://kubernetes.io/api/_definitions.json"


@functools.cache
def _core_definitions() -> dict[str, Any]:
    definitions = json.loads(_core_schema_dir().joinpath("_definitions.json").read_text(encoding="utf-8"))
    defs: dict[str, Any] = definitions["$defs"]
    return defs


def _inline_refs(node: Any, stack: frozenset[str] = frozenset()) -> Any:
    """Copy of a kubernetes-validate schema with ``$ref``s to definitions inlined (resolving references on
    every validation is most of its cost). Recursive definitions keep an absolute ``$ref``."""
    if isinstance(node, list):
        return [_inline_refs(item, stack) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and "#/$defs/" in ref:
        name = ref.split("#/$defs/", 1)[1]
        if name in stack:
            return {"$ref": f"{_DEFS_URI}#/$defs/{name}"}
        target = _inline_refs(_core_definitions()[name], stack | {name})
        extra = _inline_refs({k: v for k, v in node.items() if k != "$ref"}, stack)
        return {**target, **extra} if extra else target
    out = {}
    for key, value in node.items():
        if key == "description":
            continue
        if key in ("properties", "patternProperties") and isinstance(value, dict):
            out[key] = {name: _inline_refs(sub, stack) for name, sub in value.items()}  # names, not keywords
        else:
            out[key] = _inline_refs(value, stack)
    return out


@functools.cache
def _core_validator(api_version: str, kind: str) -> Draft202012Validator | None:
    name = _core_file(api_version, kind)
    if name not in _core_files():
        return None
    schema = _inline_refs(json.loads(_core_schema_dir().joinpath(name).read_text(encoding="utf-8")))
    enum_kind = (schema.get("properties", {}).get("kind") or {}).get("enum") or []
    if enum_kind and kind not in enum_kind:
        return None  # file names are lower-case; the kind's spelling must match exactly
    schema.setdefault("properties", {})["metadata"] = {}
    return Draft202012Validator(schema, registry=_core_registry(), format_checker=_FORMATS)


@functools.cache
def _core_versions_of(kind: str) -> tuple[str, ...]:
    """apiVersions under which Kubernetes :data:`KUBERNETES_VERSION` serves ``kind`` (for messages)."""
    out = []
    lower = kind.lower() + "-"
    for name in _core_files():
        if name.startswith(lower) and name.endswith(".json"):
            rest = name[len(lower) : -len(".json")]
            parts = rest.split("-")
            if len(parts) == 1:
                out.append(parts[0])
            elif len(parts) == 2 and re.fullmatch(r"v\d+((alpha|beta)\d+)?", parts[1]):
                out.append(f"{parts[0]}/{parts[1]}")
    return tuple(sorted(out))


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
    crd = _crds().get((group, kind))
    return crd.versions.get(version) if crd is not None else None


def served_versions(api_version: str, kind: str) -> tuple[str, ...]:
    """apiVersions that serve ``kind`` in the same API group family (CRD) or in Kubernetes (core)."""
    group, _ = _split(api_version)
    crd = _crds().get((group, kind))
    if crd is not None:
        return tuple(f"{group}/{v}" for v in sorted(crd.versions))
    if _is_core_group(group):
        return _core_versions_of(kind)
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
    crd = _crds().get((group, kind))
    if crd is not None:
        return crd.scope == "Namespaced"
    return kind not in _CLUSTER_SCOPED_CORE


def known_kind(api_version: str, kind: str) -> bool:
    """True when ``apiVersion``/``kind`` has a schema here (a served CRD version or a core kind)."""
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return False
    group, version = _split(api_version)
    crd = _crds().get((group, kind))
    if crd is not None:
        return version in crd.versions
    return _is_core_group(group) and _core_validator(api_version, kind) is not None


def validate_objects(objs: Iterable[dict[str, Any]]) -> list[SchemaIssue]:
    """Validate many objects; issues are sorted and deduplicated."""
    issues: set[SchemaIssue] = set()
    for obj in objs:
        issues.update(validate_object(obj))
    return sorted(issues)


def validate_object(obj: dict[str, Any]) -> list[SchemaIssue]:
    """Validate one manifest; returns the issues sorted by path (empty when valid)."""
    if not isinstance(obj, dict):
        return [SchemaIssue("", "", "(document)", f"expected a mapping, got {type(obj).__name__}")]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    meta = obj.get("metadata")
    name = ""
    if isinstance(meta, dict) and isinstance(meta.get("name"), str):
        name = meta["name"]
    kind_s = kind if isinstance(kind, str) else ""
    issues: list[tuple[str, str]] = []
    if not isinstance(api_version, str) or not api_version:
        issues.append(("apiVersion", "apiVersion is required and must be a string"))
    if not isinstance(kind, str) or not kind:
        issues.append(("kind", "kind is required and must be a string"))
    if issues:
        return _finish(kind_s, name, issues)
    assert isinstance(api_version, str) and isinstance(kind, str)

    group, version = _split(api_version)
    validator: Draft4Validator | Draft202012Validator | None = None
    fast: Any = None
    body = prune_nulls(obj)
    crd = _crds().get((group, kind))
    if crd is not None:
        if version in crd.versions:
            validator = _crd_validator(group, kind, version)
            fast = _fast_crd(group, kind, version) if _warm((api_version, kind)) else None
            if version in crd.status_subresource:
                body.pop("status", None)
        else:
            served = ", ".join(f"{group}/{v}" for v in sorted(crd.versions))
            issues.append(("apiVersion", f"{api_version} is not served for {kind} (served: {served})"))
    elif _is_core_group(group):
        validator = _core_validator(api_version, kind)
        fast = _fast_core(api_version, kind) if validator is not None and _warm((api_version, kind)) else None
        if validator is not None and "status" in validator.schema.get("properties", {}):
            body.pop("status", None)  # every core kind with a status field serves it as a subresource
        if validator is None:
            others = _core_versions_of(kind)
            if others:
                served = ", ".join(others)
                message = f"{api_version} {kind} is not served by Kubernetes {KUBERNETES_VERSION} (served: {served})"
                issues.append(("apiVersion", message))
            else:
                issues.append(("kind", f"no schema for {api_version}/{kind}"))
    else:
        known = sorted(k for g, k in _crds() if g == group)
        hint = f" (known kinds in {group}: {', '.join(known)})" if known else ""
        issues.append(("kind", f"no schema for {api_version}/{kind}{hint}"))

    issues.extend(_validate_metadata(kind, meta))
    if validator is not None and not (fast is not None and fast(body)):
        for error in validator.iter_errors(body):
            issues.extend(_describe(error))
    return _finish(kind_s, name, issues)


def prune_nulls(value: Any) -> Any:
    """Copy of ``value`` without mapping entries whose value is None (recursively), as the API server decodes."""
    if isinstance(value, dict):
        return {k: prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune_nulls(v) for v in value]
    return value


def _finish(kind: str, name: str, issues: list[tuple[str, str]]) -> list[SchemaIssue]:
    return sorted({SchemaIssue(kind, name, path, message) for path, message in issues})


# --------------------------------------------------------------------------------------------------------------
# metadata

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

_METADATA_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "labels",
        "annotations",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "finalizers",
        "ownerReferences",
        "managedFields",
        "selfLink",
    }
)


def _name_problem(kind: str, value: str) -> str | None:
    if kind == "Namespace":
        ok, what = len(value) <= 63 and bool(_DNS1123_LABEL.match(value)), "an RFC 1123 label"
    elif kind == "Service":
        ok, what = len(value) <= 63 and bool(_DNS1035_LABEL.match(value)), "an RFC 1035 label"
    else:
        ok, what = len(value) <= 253 and bool(_DNS1123_SUBDOMAIN.match(value)), "an RFC 1123 subdomain"
    if ok:
        return None
    return f"{value!r} is not a valid {kind} name: must be {what} (lower case alphanumerics and '-')"


def _key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return f"key {key!r} has an invalid prefix (must be a DNS subdomain)"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return f"key {key!r} is not a qualified name (alphanumerics, '-', '_', '.'; at most 63 characters)"
    return None


def _validate_metadata(kind: str, meta: Any) -> list[tuple[str, str]]:
    if meta is None:
        return [("metadata", "metadata is required (with at least metadata.name)")]
    if not isinstance(meta, dict):
        return [("metadata", f"expected object, got {_json_type(meta)} {short_value(meta)}")]
    out: list[tuple[str, str]] = []
    for key in sorted(set(meta) - _METADATA_FIELDS, key=str):
        out.append((f"metadata.{key}", f"unknown field {key!r}{_did_you_mean(str(key), _METADATA_FIELDS)}"))
    name = meta.get("name")
    if name is None:
        if meta.get("generateName") is None:
            out.append(("metadata.name", "metadata.name is required"))
    elif not isinstance(name, str):
        out.append(("metadata.name", f"expected string, got {_json_type(name)} {short_value(name)}"))
    else:
        problem = _name_problem(kind, name)
        if problem:
            out.append(("metadata.name", problem))
    namespace = meta.get("namespace")
    if namespace is not None:
        if not isinstance(namespace, str):
            out.append(("metadata.namespace", f"expected string, got {_json_type(namespace)}"))
        elif len(namespace) > 63 or not _DNS1123_LABEL.match(namespace):
            out.append(
                ("metadata.namespace", f"{namespace!r} is not a valid namespace name (RFC 1123 label)")
            )
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is None:
            continue
        if not isinstance(value, dict):
            out.append((f"metadata.{field}", f"expected a map of strings, got {_json_type(value)}"))
            continue
        for key, item in value.items():
            path = f"metadata.{field}.{key}"
            if not isinstance(key, str):
                out.append((path, f"{field} keys must be strings, got {_json_type(key)} {short_value(key)}"))
                continue
            problem = _key_problem(key)
            if problem:
                out.append((path, problem))
            if not isinstance(item, str):
                out.append(
                    (
                        path,
                        f"{field} values must be strings, got {_json_type(item)} {short_value(item)} (quote it)",
                    )
                )
            elif field == "labels" and (len(item) > 63 or not _LABEL_VALUE.match(item)):
                out.append((path, f"invalid label value {item!r} (alphanumerics, '-', '_', '.'; at most 63)"))
    return out


# --------------------------------------------------------------------------------------------------------------
# error messages


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _types(schema: Any) -> list[str]:
    t = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(t, str):
        return [t]
    if isinstance(t, list):
        return [x for x in t if x != "null"]
    return []


def _describe(error: jsonschema.ValidationError) -> list[tuple[str, str]]:
    parts = list(error.absolute_path)
    path = format_path(parts)
    validator, value, schema = error.validator, error.instance, error.schema
    if validator == "additionalProperties" and isinstance(value, dict) and isinstance(schema, dict):
        known = set(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        out = []
        for key in value:
            if key in known or any(p.search(str(key)) for p in patterns):
                continue
            out.append((format_path([*parts, key]), f"unknown field {key!r}{_did_you_mean(str(key), known)}"))
        return out or [(path, error.message)]
    if validator == "type":
        expected = " or ".join(_types(schema)) or str(error.validator_value)
        return [(path, f"expected {expected}, got {_json_type(value)} {short_value(value)}")]
    if validator == "required":
        missing = [k for k in error.validator_value if not (isinstance(value, dict) and k in value)]
        return [(format_path([*parts, k]), f"required field {k!r} is missing") for k in missing] or [
            (path, error.message)
        ]
    if validator == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value if v is not None)
        return [(path, f"{short_value(value)} is not one of: {allowed}")]
    if validator == "format":
        fmt = error.validator_value
        what = "a Go duration such as '30s', '1m30s' or '250ms'" if fmt == "go-duration" else f"a valid {fmt}"
        return [(path, f"{short_value(value)} is not {what}")]
    if validator in ("oneOf", "anyOf"):
        return [(path, _describe_choice(error))]
    if validator == "not":
        return [(path, f"{short_value(value)} is not allowed here ({_fields(error.validator_value)})")]
    return [(path, _plain(error))]


def _fields(schema: Any) -> str:
    """Readable summary of the fields a (sub)schema names through ``required``."""
    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            names.extend(n for n in node.get("required", []) if isinstance(n, str) and n not in names)
            for key in ("anyOf", "oneOf", "allOf"):
                for sub in node.get(key, []) or []:
                    walk(sub)
        elif isinstance(node, list):
            for sub in node:
                walk(sub)

    walk(schema)
    return f"conflicts with: {', '.join(names)}" if names else "the schema forbids this combination"


def _describe_choice(error: jsonschema.ValidationError) -> str:
    branches = error.validator_value if isinstance(error.validator_value, list) else []
    value = error.instance
    # Istio's "at most one of" encoding: [{not: {anyOf: [{required: [a]}, …]}}, {required: [a]}, …]
    exclusive = [
        b["required"][0] for b in branches if isinstance(b, dict) and len(b.get("required", [])) == 1
    ]
    if exclusive and isinstance(value, dict):
        present = [k for k in exclusive if k in value]
        if len(present) > 1:
            return f"only one of {', '.join(exclusive)} may be set (got {', '.join(present)})"
    types = [t for b in branches for t in _types(b)]
    if types and len(types) == len(branches):
        return f"expected {' or '.join(types)}, got {_json_type(value)} {short_value(value)}"
    if error.validator == "oneOf" and not error.context:  # valid under several branches
        if exclusive:
            return f"set exactly one of {', '.join(exclusive)}"
        return f"{short_value(value)} matches more than one of the allowed forms; keep the fields of only one"
    if error.context:
        best = jsonschema.exceptions.best_match(error.context)
        if best is not None:
            return _plain(best)
    return _plain(error)


def _plain(error: jsonschema.ValidationError) -> str:
    message = error.message
    text = repr(error.instance)
    if len(text) > 80 and message.startswith(text):
        message = short_value(error.instance) + message[len(text) :]
    return message
