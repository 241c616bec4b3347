"""Pydantic's validation errors of one composed stack, as located problems: file, path, rule, bad value.

Loader layer (below :mod:`fleetkit.loader`). What it adds to pydantic's own error list:

* a cross-field rule (a model validator raising :class:`policies.common.FieldError`) is reported at
  the field that broke it, with that field's value; of two conflicting fields, at the one the
  highest-precedence source wrote (the ``--set`` or stack value that introduced the conflict) —
  pydantic keeps the raised exception in the error's ``ctx`` (pydantic docs, "Validation errors":
  ``value_error`` carries ``ctx.error``);
* an unknown key gets a did-you-mean among the fields of the model at that path (walking the
  annotations: a mapping's part of the path is a key, never a field), and hides the "Field required"
  of the key it misspells;
* a mapping key of the wrong kind is reported at the key; a boolean where a string or a choice is
  expected says that YAML 1.1 reads unquoted ``yes``/``no``/``on``/``off`` as booleans;
* a misspelled ``role`` key, or a region stack's keys under another role, is the one problem of the
  stack (the rest would be follow-ons of the spec class it picked).
"""

from __future__ import annotations

import difflib
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from fleetkit.errors import MISSING, Issue, ProblemCollector
from fleetkit.fleet import Provenance
from fleetkit.spec import (
    INHERITED_SECTIONS,
    SPEC_CLASSES,
    PeeringStackSpec,
    RegionStackSpec,
    StackSpec,
    TrustRootStackSpec,
)
from policies.common import FieldError

__all__ = ["validate_stack"]

_ADAPTER: TypeAdapter[Any] = TypeAdapter(StackSpec)


#: how strongly each source's value stands: a conflict between two fields is blamed on the later writer
_PRECEDENCE = {"cli": 3, "stack": 2, "fleet": 1}

#: YAML 1.1 (what the loader reads) turns these unquoted words into booleans
_YAML_BOOL_HINT = "; YAML reads an unquoted yes/no/on/off/true/false as a boolean: put the value in quotes"


def _field_error_at(
    loc: tuple[Any, ...], exc: FieldError, prov: Provenance
) -> tuple[tuple[Any, ...], Any] | None:
    """Where a cross-field rule broke: the candidate written by the highest-precedence source."""
    if not exc.at:
        return None
    ranked = [
        (_PRECEDENCE.get(src.style, 0) if (src := prov.origin.get((*loc, *sub))) else 0, -n, sub, value)
        for n, (sub, value) in enumerate(exc.at)
    ]
    _, _, sub, value = max(ranked, key=lambda r: (r[0], r[1]))
    return (*loc, *sub), value


def validate_stack(
    merged: dict[str, Any], prov: Provenance, col: ProblemCollector
) -> RegionStackSpec | TrustRootStackSpec | PeeringStackSpec | None:
    """The typed spec of one composed stack, or None with its problems collected (located by ``prov``)."""
    try:
        return _ADAPTER.validate_python(merged)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    role = merged.get("role", "region")
    found: list[tuple[tuple[Any, ...], str, str, Any]] = []
    suggested: set[tuple[Any, ...]] = set()
    for err in errors:
        loc, msg, value = _where_and_what(err, merged, prov)
        if err["type"] == "extra_forbidden":
            fields = _fields_at(role, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
            if close:
                suggested.add((*loc[:-1], close[0]))
            msg = f"unknown key {loc[-1]!r}" + (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; known keys: {', '.join(fields)}"
                if fields
                else ""
            )
        found.append((loc, f"spec.{err['type']}", msg, value))
    if ("role",) in suggested:
        # a misspelled role key: the stack was read as the default kind, so the rest is its follow-on
        found = [f for f in found if f[1] == "spec.extra_forbidden" and "'role'" in f[2]]
    elif role in INHERITED_SECTIONS and (wrong := _region_keys_in(role, found, prov)):
        # a region stack's keys under another role: the role is the one mistake
        col.problems.append(
            prov.locate(
                Issue(
                    ("role",),
                    "stack.role-mismatch",
                    f"a {role} stack takes only {', '.join(SPEC_CLASSES[role].model_fields)}, but this stack "
                    f"also sets {', '.join(wrong)}, which only a region stack has: remove the role (or "
                    "those keys)",
                    role,
                )
            )
        )
        return None
    for loc, rule, msg, value in found:
        if rule == "spec.missing" and any(loc[: len(s)] == s for s in suggested):
            continue  # the misspelled key reported above is the mistake
        col.problems.append(prov.locate(Issue(loc, rule, msg, value)))
    return None


def _where_and_what(err: Any, merged: dict[str, Any], prov: Provenance) -> tuple[tuple[Any, ...], str, Any]:
    """Path, message and bad value of one pydantic error, as the user wrote the document."""
    loc = tuple(err["loc"])
    if loc and loc[0] in SPEC_CLASSES:  # the discriminator tag pydantic inserts
        loc = loc[1:]
    msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input", MISSING) if err["type"] != "missing" else MISSING
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        # the role picks the spec class: pydantic reports a bad one on the whole document
        loc, value = ("role",), merged.get("role", MISSING)
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError) and (where := _field_error_at(loc, cause, prov)) is not None:
        loc, value = where
    if loc and loc[-1] == "[key]":  # a mapping key of the wrong kind: the key is the bad value
        loc = loc[:-1]
        if isinstance(value, bool) and loc and loc[-1] == int(value):
            loc = (*loc[:-1], value)  # pydantic writes a boolean key (YAML `on:`) as 1
        msg = f"key {loc[-1]!r}: {msg}" if loc else msg
    if isinstance(value, bool) and err["type"] in ("string_type", "literal_error", "string_pattern_mismatch"):
        msg += _YAML_BOOL_HINT
    if isinstance(value, dict) and err["type"] != "extra_forbidden" and len(str(value)) > 120:
        value = MISSING
    return loc, msg, value


#: what makes a document a region stack: with two of these, a non-region role is the odd one out
_REGION_CORE = frozenset({"cloud", "region", "cluster", "node_pools"})


def _region_keys_in(
    role: str, found: list[tuple[tuple[Any, ...], str, str, Any]], prov: Provenance
) -> list[str]:
    """The region-stack settings of a ``role`` stack, when the role is the mistake: it came from
    ``--set``, or the document is a region stack's (two or more of its core keys); else [] (a stray
    key is reported as the unknown key it is)."""
    own = SPEC_CLASSES[role].model_fields
    region = RegionStackSpec.model_fields
    wrong = sorted(
        {
            str(loc[0])
            for loc, rule, _, _ in found
            if rule == "spec.extra_forbidden" and len(loc) == 1 and loc[0] in region and loc[0] not in own
        }
    )
    source = prov.origin.get(("role",))
    from_flag = source is not None and source.style == "cli"
    return wrong if from_flag or len(_REGION_CORE.intersection(wrong)) >= 2 else []


def _fields_at(role: str, loc: tuple[Any, ...]) -> list[str]:
    """Known field names of the model at ``loc``, walking the spec's annotations (a mapping's or a list's
    part of the path is a key or an index, never a field name)."""
    ann: Any = SPEC_CLASSES.get(role, RegionStackSpec)
    for part in loc:
        ann = _step(ann, part)
        if ann is None:
            return []
    cls = _as_model(ann)
    return list(cls.model_fields) if cls is not None else []


def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of an annotation: ``Annotated`` stripped, unions split, ``None`` dropped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return [alt for arg in get_args(annotation) for alt in _unwrap(arg)]
    return [] if annotation is type(None) else [annotation]


def _step(annotation: Any, part: Any) -> Any:
    for alt in _unwrap(annotation):
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            if part in alt.model_fields:
                return alt.model_fields[part].annotation
            continue
        origin, args = get_origin(alt), get_args(alt)
        if origin is dict and len(args) == 2:
            return args[1]
        if origin in (list, tuple, set, frozenset) and args and isinstance(part, int):
            return args[0]
    return None


def _as_model(annotation: Any) -> type[BaseModel] | None:
    for alt in _unwrap(annotation):
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            return alt
    return None
