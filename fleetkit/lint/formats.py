"""Render findings: a rich table for people, JSON for scripts, SARIF 2.1.0 for code scanning."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import PurePosixPath

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fleetkit.lint.model import RULES, Finding, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
RULES_DOC = "runbooks/lint.md"
_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def summary(findings: Sequence[Finding], objects: int | None = None) -> str:
    active = [f for f in findings if f.suppressed is None]
    counts = Counter(f.severity for f in active)
    parts = [
        f"{counts.get(s, 0)} {s}{'s' if counts.get(s, 0) != 1 and s != 'info' else ''}" for s in Severity
    ]
    suppressed = len(findings) - len(active)
    text = ", ".join(parts) + f", {suppressed} suppressed"
    if objects is not None:
        text += f" in {objects} object{'s' if objects != 1 else ''}"
    return text


def render_table(
    findings: Sequence[Finding],
    objects: int | None = None,
    width: int | None = None,
    color: bool = False,
    notes: Sequence[str] = (),
) -> str:
    """Human-readable table of unsuppressed findings, followed by a one-line summary and the checks that could
    not run (``notes``). ``color`` adds ANSI styles (for a terminal); ``width`` defaults to 160 columns."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width or 160,
        force_terminal=color,
        color_system="standard" if color else None,
        highlight=False,
    )
    shown = [f for f in findings if f.suppressed is None]
    if shown:
        table = Table(show_lines=False, expand=False, pad_edge=False)
        table.add_column("Severity", no_wrap=True)
        table.add_column("Rule", no_wrap=True)
        table.add_column("Location", overflow="fold", max_width=40)
        table.add_column("Object", overflow="fold", max_width=40)
        table.add_column("Issue and fix", overflow="fold", ratio=1)
        for f in shown:
            slug = RULES[f.rule].slug if f.rule in RULES else ""
            location = f"{f.file}:{f.line}" if f.line else f.file
            body = Text(f.message)
            body.append(f"\nfix: {f.fix}", style="dim")
            table.add_row(Text(f.severity, style=_STYLE.get(Severity(f.severity), "")), f"{f.label}\n{slug}",
                          location, f.object, body)  # fmt: skip
        console.print(table)
    console.print(summary(findings, objects) if findings else _clean(objects, bool(notes)))
    if notes:
        console.print("Not checked (an object the check needs is not in the input):")
        for note in notes:
            console.print(f"  - {note}", highlight=False, markup=False)
    return buffer.getvalue()


def _clean(objects: int | None, partial: bool = False) -> str:
    where = f" in {objects} object{'s' if objects != 1 else ''}" if objects is not None else ""
    return f"No problems found{where}" + (", but some checks could not run (below)." if partial else ".")


def render_json(findings: Sequence[Finding]) -> str:
    """A JSON list; each finding has exactly file, object, rule, severity, message, fix, suppressed."""
    return json.dumps([f.to_dict() for f in findings], indent=2, sort_keys=False) + "\n"


def _uri(file: str) -> str:
    path = PurePosixPath(file)
    if path.is_absolute():
        return path.as_uri()
    return file.removeprefix("./")


def render_sarif(findings: Sequence[Finding], version: str = "0.1.0", notes: Sequence[str] = ()) -> str:
    """SARIF 2.1.0 log with one run, full rule metadata, a location per result, in-source suppressions, and the
    checks that could not run as tool execution notifications."""
    rule_ids = sorted(RULES)
    index = {rid: i for i, rid in enumerate(rule_ids)}
    rules = []
    for rid in rule_ids:
        rule = RULES[rid]
        rules.append(
            {
                "id": rule.id,
                "name": rule.slug,
                "shortDescription": {"text": rule.title},
                "fullDescription": {"text": rule.help},
                "help": {
                    "text": f"{rule.help} See {RULES_DOC}, section {rule.id} {rule.slug}.",
                    "markdown": f"{rule.help}\n\nSee `{RULES_DOC}`, section **{rule.id} {rule.slug}**.",
                },
                "defaultConfiguration": {"level": SARIF_LEVEL[rule.severity]},
                "properties": {
                    "tags": ["kubernetes", "autoscaling"]
                    if "FK400" < rid < "FK500"
                    else ["kubernetes", "istio"],
                    "istioctlCode": rule.ist or "LLM-specific",
                },
            }
        )
    results = []
    for f in findings:
        region = {"startLine": f.line} if f.line else None
        physical: dict[str, object] = {"artifactLocation": {"uri": _uri(f.file)}}
        if region:
            physical["region"] = region
        result: dict[str, object] = {
            "ruleId": f.rule,
            "ruleIndex": index.get(f.rule, -1),
            "level": SARIF_LEVEL[Severity(f.severity)],
            "message": {"text": f"{f.label}: {f.message} (object {f.object}). Fix: {f.fix}"},
            "locations": [
                {
                    "physicalLocation": physical,
                    "logicalLocations": [{"fullyQualifiedName": f.object, "kind": "resource"}],
                }
            ],
            "partialFingerprints": {"fleetkitFinding/v1": _fingerprint(f)},
            "properties": {"istioctlCode": f.ist},
        }
        if f.suppressed is not None:
            result["suppressions"] = [{"kind": "inSource", "justification": f.suppressed}]
        results.append(result)
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "fleetkit-lint",
                        "semanticVersion": version,
                        "rules": rules,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "toolExecutionNotifications": [
                            {"level": "note", "message": {"text": f"not checked: {n}"}} for n in notes
                        ],
                    }
                ],
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


def _fingerprint(f: Finding) -> str:
    return hashlib.sha256(f"{f.file}|{f.object}|{f.rule}|{f.message}".encode()).hexdigest()[:32]
