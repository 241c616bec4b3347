"""Run schema validation and every analyzer over a set of objects; apply suppressions; sort."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

from fleetkit.issue import Issue
from fleetkit.issue import Severity as IssueSeverity
from fleetkit.lint.checks import ALL_CHECKS
from fleetkit.lint.checks.deprecations import unserved_fix
from fleetkit.lint.documents import Document, load_paths
from fleetkit.lint.index import Hit, Index, Obj, as_str
from fleetkit.lint.mesh import NOT_CHECKED
from fleetkit.lint.model import RULES, SEVERITY_RANK, Finding, LintConfig, Severity, rule_for
from fleetkit.schema import RULE_NOT_SERVED, RULE_UNKNOWN_KIND, known_kind, served_versions, validate_object

#: Annotation that suppresses findings on its object: ``"FK105: reason; FK102: reason"``.
IGNORE_ANNOTATION = "fleetkit.dev/lint-ignore"


def lint_objects(
    objs: Sequence[tuple[str, dict[str, Any]]],
    config: LintConfig | None = None,
    notes: list[str] | None = None,
) -> list[Finding]:
    """Lint ``(file, object)`` pairs together (cross-object checks see all of them). Pure: no I/O."""
    docs = [Document(file, i, obj) for i, (file, obj) in enumerate(objs)]
    return lint_documents(docs, config, notes)


def lint_paths(
    paths: Sequence[Path | str], config: LintConfig | None = None, notes: list[str] | None = None
) -> list[Finding]:
    """Load files/directories and lint every object in them. Raises SpecError for unusable input."""
    return lint_documents(load_paths(paths), config, notes)


def lint_documents(
    docs: Iterable[Document], config: LintConfig | None = None, notes: list[str] | None = None
) -> list[Finding]:
    """Findings, sorted. ``notes``, when given, receives one line per check that could not run because an
    object it needs is not in the input (e.g. "Destination hosts ...: no Service ... is in the input")."""
    config = config or LintConfig()
    objs = [Obj.from_document(d, config) for d in docs if isinstance(d.obj, dict)]
    hits: list[Hit] = []
    for obj in objs:
        hits.extend(_schema_hits(obj, config))
    index = Index(objs, config)
    for check in ALL_CHECKS:
        hits.extend(check(index))
    skipped = sorted({f"{h.obj.ref}: {h.message}" for h in hits if h.rule == NOT_CHECKED})
    if notes is not None:
        notes.extend(skipped)
    return _finish(objs, [h for h in hits if h.rule != NOT_CHECKED], config)


# -- schema ----------------------------------------------------------------------------------------------------


def _schema_hits(obj: Obj, config: LintConfig) -> list[Hit]:
    if not config.schema_validation:
        if known_kind(obj.api_version, obj.kind):
            return []
        if served_versions(obj.api_version, obj.kind):
            served = ", ".join(served_versions(obj.api_version, obj.kind))
            return [_unserved(obj, f"{obj.api_version} is not served for {obj.kind} (served: {served})")]
        return [_unknown(obj, f"no schema for {obj.api_version}/{obj.kind}")]
    out = []
    for issue in validate_object(obj.raw):
        if issue.rule == RULE_NOT_SERVED:
            out.append(_unserved(obj, issue.message))
        elif issue.rule == RULE_UNKNOWN_KIND:
            out.append(_unknown(obj, issue.message))
        else:
            ist = "IST0106" if obj.group.endswith(".istio.io") else ""
            out.append(Hit(obj, issue.path, "FK001", issue.message, _schema_fix(issue.message), ist=ist))
    return out


def _unserved(obj: Obj, message: str) -> Hit:
    return Hit(obj, ("apiVersion",), "FK003", message, unserved_fix(obj.api_version, obj.kind))


def _unknown(obj: Obj, message: str) -> Hit:
    return Hit(obj, ("kind",), "FK002", message + "; the object was not validated",
               "check the kind's spelling and apiVersion; a CRD the kit does not vendor can be suppressed "
               f"with {IGNORE_ANNOTATION}")  # fmt: skip


def _schema_fix(message: str) -> str:
    m = re.search(r"did you mean '([^']+)'", message)
    if m:
        return f"rename the field to {m.group(1)!r}"
    if message.startswith("unknown field"):
        return "remove the field, or move it to where the schema defines it"
    if message.startswith("expected") and "got string" in message:
        return "write the value unquoted (a number/boolean), or as the expected type"
    if message.startswith("expected"):
        return "use a value of the expected type (quote strings, e.g. label values)"
    if "must be strings" in message:
        return "quote the value"
    if message.startswith("required field"):
        return "add the required field"
    if "is not one of" in message:
        return "use one of the listed values (case matters)"
    if message.startswith("only one of"):
        return "keep exactly one of the mutually exclusive fields"
    return "correct the value to match the schema"


def _suppressions(obj: Obj) -> tuple[dict[str, str], list[Hit]]:
    raw = obj.annotations.get(IGNORE_ANNOTATION)
    if raw is None:
        return {}, []
    path = ("metadata", "annotations", IGNORE_ANNOTATION)
    text = as_str(raw)
    allowed: dict[str, str] = {}
    problems: list[Hit] = []
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        name, sep, reason = entry.partition(":")
        rule = rule_for(name)
        reason = reason.strip()
        if rule is None:
            problems.append(Hit(obj, path, "FK004", f"{name.strip()!r} is not a lint rule id or slug",
                                "use an id such as FK105 or a slug such as unsafe-retry (see runbooks/lint.md)"))  # fmt: skip
        elif not sep or not reason:
            problems.append(Hit(obj, path, "FK004",
                                f"suppression of {rule.id} has no reason, so it is not applied",
                                f"write '{rule.id}: <why this is acceptable here>'"))  # fmt: skip
        elif rule.id == "FK004":
            problems.append(
                Hit(obj, path, "FK004", "FK004 itself cannot be suppressed", "fix the annotation")
            )
        else:
            allowed[rule.id] = reason
    return allowed, problems


def _finish(objs: list[Obj], hits: list[Hit], config: LintConfig) -> list[Finding]:
    allowed: dict[int, dict[str, str]] = {}
    for obj in objs:
        allowed[id(obj)], problems = _suppressions(obj)
        hits.extend(problems)
    findings: set[Finding] = set()
    for hit in hits:
        if not config.enabled(hit.rule):
            continue
        rule = RULES[hit.rule]
        severity = config.severity_of(hit.rule, hit.severity or rule.severity)
        ist = (rule.ist if hit.ist is None else hit.ist) or None
        issue = Issue(tuple(hit.path), hit.rule, hit.message, severity=cast(IssueSeverity, str(severity)),
                      subject=hit.obj.ref, file=hit.obj.file, suppressed=allowed[id(hit.obj)].get(hit.rule))  # fmt: skip
        findings.add(Finding(issue, hit.fix, hit.obj.doc.line(hit.path), ist))
    return sort_findings(findings)


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Stable order: file, line, object, severity, rule, message."""
    return sorted(
        findings,
        key=lambda f: (f.file, f.line or 0, f.object, SEVERITY_RANK[Severity(f.severity)], f.rule, f.message),
    )


def exit_code(findings: Iterable[Finding]) -> int:
    """1 when any unsuppressed error-severity finding exists, else 0."""
    return 1 if any(f.severity == Severity.ERROR and f.suppressed is None for f in findings) else 0
