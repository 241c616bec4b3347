"""What is wrong, in words, at which path: ``metadata`` rules for every kind and jsonschema errors explained.

Each function returns ``(path, message)`` pairs with the path as a tuple of keys and indexes inside the
object (``("metadata", "labels", "app.kubernetes.io/name")`` keeps a dotted key whole), for
:func:`fleetkit.schema.validate_object` to turn into issues.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

import jsonschema

from fleetkit.issue import short_value

Found = tuple[tuple[Any, ...], str]

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


def validate_metadata(kind: str, meta: Any) -> list[Found]:
    """``metadata`` of any kind: known fields, a valid name and namespace, maps of strings with valid keys."""
    if meta is None:
        return [(("metadata",), "metadata is required (with at least metadata.name)")]
    if not isinstance(meta, dict):
        return [(("metadata",), f"expected object, got {_json_type(meta)} {short_value(meta)}")]
    out: list[Found] = [
        (("metadata", key), f"unknown field {key!r}{_did_you_mean(str(key), _METADATA_FIELDS)}")
        for key in sorted(set(meta) - _METADATA_FIELDS, key=str)
    ]
    out += _name_and_namespace(kind, meta)
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is None:
            continue
        if not isinstance(value, dict):
            out.append((("metadata", field), f"expected a map of strings, got {_json_type(value)}"))
            continue
        for key, item in value.items():
            out += [(("metadata", field, key), m) for m in _map_entry_problems(field, key, item)]
    return out


def _name_and_namespace(kind: str, meta: dict[str, Any]) -> list[Found]:
    out: list[Found] = []
    name = meta.get("name")
    if name is None:
        if meta.get("generateName") is None:
            out.append((("metadata", "name"), "metadata.name is required"))
    elif not isinstance(name, str):
        out.append((("metadata", "name"), f"expected string, got {_json_type(name)} {short_value(name)}"))
    else:
        problem = _name_problem(kind, name)
        if problem:
            out.append((("metadata", "name"), problem))
    namespace = meta.get("namespace")
    if namespace is not None:
        if not isinstance(namespace, str):
            out.append((("metadata", "namespace"), f"expected string, got {_json_type(namespace)}"))
        elif len(namespace) > 63 or not _DNS1123_LABEL.match(namespace):
            out.append(
                (("metadata", "namespace"), f"{namespace!r} is not a valid namespace name (RFC 1123 label)")
            )
    return out


def _map_entry_problems(field: str, key: Any, item: Any) -> list[str]:
    """What is wrong with one entry of ``labels`` or ``annotations``."""
    if not isinstance(key, str):
        return [f"{field} keys must be strings, got {_json_type(key)} {short_value(key)}"]
    out = [p for p in [_key_problem(key)] if p]
    if not isinstance(item, str):
        out.append(f"{field} values must be strings, got {_json_type(item)} {short_value(item)} (quote it)")
    elif field == "labels" and (len(item) > 63 or not _LABEL_VALUE.match(item)):
        out.append(f"invalid label value {item!r} (alphanumerics, '-', '_', '.'; at most 63)")
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


def describe_error(error: jsonschema.ValidationError) -> list[Found]:
    """A jsonschema error as ``(path, message)`` pairs: one per unknown or missing field, else one."""
    parts = list(error.absolute_path)
    path = tuple(parts)
    validator, value, schema = error.validator, error.instance, error.schema
    if validator == "additionalProperties" and isinstance(value, dict) and isinstance(schema, dict):
        known = set(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        out = []
        for key in value:
            if key in known or any(p.search(str(key)) for p in patterns):
                continue
            out.append(((*parts, key), f"unknown field {key!r}{_did_you_mean(str(key), known)}"))
        return out or [(path, error.message)]
    if validator == "type":
        expected = " or ".join(_types(schema)) or str(error.validator_value)
        return [(path, f"expected {expected}, got {_json_type(value)} {short_value(value)}")]
    if validator == "required":
        missing = [k for k in error.validator_value if not (isinstance(value, dict) and k in value)]
        return [((*parts, k), f"required field {k!r} is missing") for k in missing] or [(path, error.message)]
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
