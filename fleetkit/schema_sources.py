"""Where the schemas come from: the vendored CRDs (made strict) and kubernetes-validate's core kinds.

The sources, the formats the schemas use and the compiled-validator caches of :mod:`fleetkit.schema`
(which documents the rules: strict ``additionalProperties``, ``nullable``, int-or-string, Go durations).
Compiled validators are cached per (apiVersion, kind); after :data:`FAST_PATH_AFTER` objects of a kind
the compiled fast path (:mod:`fleetkit.schema_fast`) answers "valid" first.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator, Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from fleetkit.schema_fast import compile_fast

#: Kubernetes version whose core API schemas are used (the newest that kubernetes-validate ships; Istio
#: 1.30 needs >= 1.32). Bump together with the ``kubernetes-validate`` requirement.
KUBERNETES_VERSION = "1.37"

SCHEMA_DIR = Path(__file__).parent / "schemas"

#: Core API groups validated with kubernetes-validate (besides the legacy core group ``""``). Groups ending
#: in ``.k8s.io`` that a vendored CRD defines (Gateway API, GIE) are CRD groups, never core.
CORE_GROUPS_NO_DOT = frozenset({"", "apps", "batch", "autoscaling", "policy", "extensions"})


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
def crds() -> dict[tuple[str, str], _Crd]:
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
def crd_groups() -> frozenset[str]:
    return frozenset(group for group, _ in crds())


_LEADING_FLAGS = re.compile(r"^\^\(\?([aiLmsux]+)\)")


def _python_pattern(pattern: str) -> str | None:
    """Go (RE2) patterns allow inline flags after ``^``; Python wants them first. None if unusable."""
    fixed = _LEADING_FLAGS.sub(lambda m: f"(?{m.group(1)})^", pattern)
    try:
        re.compile(fixed)
    except re.error:
        return None
    return fixed


_DROPPED_KEYS = frozenset({"description", "x-kubernetes-validations", "default", "example"})


def _strict_entry(out: dict[str, Any], key: str, value: Any, structural: bool) -> None:
    """Copy one keyword of a schema into ``out``, made strict (subschemas recursively)."""
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
    elif key not in _DROPPED_KEYS:  # documentation / unevaluated CEL; keeps compiled schemas small
        out[key] = value


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
        _strict_entry(out, key, value, structural)
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


def warm(key: tuple[str, str]) -> bool:
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
def fast_crd(group: str, kind: str, version: str) -> Any:
    return compile_fast(crd_validator(group, kind, version).schema, _STRING_FORMATS, draft4=True)


@functools.cache
def fast_core(api_version: str, kind: str) -> Any:
    validator = core_validator(api_version, kind)
    if validator is None:
        return None
    defs = json.loads(_core_schema_dir().joinpath("_definitions.json").read_text(encoding="utf-8"))
    return compile_fast(validator.schema, _STRING_FORMATS, draft4=False, documents={_DEFS_URI: defs})


@functools.cache
def crd_validator(group: str, kind: str, version: str) -> Draft4Validator:
    raw = crds()[(group, kind)].versions[version]
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


def is_core_group(group: str) -> bool:
    if group in crd_groups():
        return False
    return group in CORE_GROUPS_NO_DOT or group.endswith(".k8s.io")


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
def core_validator(api_version: str, kind: str) -> Draft202012Validator | None:
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
def core_versions_of(kind: str) -> tuple[str, ...]:
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
