"""The CrossGuard guardrails, offline: run ``policies/crossguard/rules.py`` over a preview's resources.

``pulumi preview --policy-pack policies/crossguard`` runs these rules inside the engine; ``fleetkit
preview`` runs the same functions over the resources it recorded under the mock runtime, so a fresh
clone sees every verdict with no Pulumi CLI and no cloud account. The records differ in two ways,
both handled by the rules: secret values are ``"[secret]"`` (a secret is fine where a credential
lives; a plain credential-looking value is not) and the offline records are the program's inputs
as registered (the engine adds provider defaults before the pack sees them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

from fleetkit.issue import Issue, PolicyRecord
from fleetkit.issue import Severity as IssueSeverity
from fleetkit.output import dump_json
from policies.crossguard import rules
from policies.crossguard.rules import RULES_BY_NAME, Resource


@dataclass(frozen=True)
class GuardrailVerdict(PolicyRecord):
    """A guardrail's verdict: the rule's :class:`~fleetkit.issue.Issue` (policy name as ``rule``, the
    resource label ``type::name`` or ``(stack)`` as ``subject``, a suppression's reason) plus the
    rule's CrossGuard enforcement and severity."""

    issue: Issue
    enforcement: str  # mandatory | advisory
    severity: str  # low | medium | high | critical

    @classmethod
    def of(
        cls,
        policy: str,
        enforcement: str,
        severity: str,
        resource: str,
        message: str,
        suppressed: str | None = None,
    ) -> GuardrailVerdict:
        level: IssueSeverity = "error" if enforcement == "mandatory" else "warning"
        issue = Issue((), policy, message, severity=level, subject=resource, suppressed=suppressed)
        return cls(issue, enforcement, severity)

    @property
    def resource(self) -> str:
        return self.issue.subject

    @property
    def blocking(self) -> bool:
        """Would stop ``pulumi up`` (mandatory and not suppressed)."""
        return self.enforcement == "mandatory" and self.suppressed is None

    def key(self) -> tuple[str, str, str]:
        return self.policy, self.resource, self.message

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "enforcement": self.enforcement,
            "severity": self.severity,
            "resource": self.resource,
            "message": self.message,
            "suppressed": self.suppressed,
        }


def to_records(resources: Iterable[Any]) -> list[Resource]:
    """Records from ``RecordedResource`` objects or ``resources.json`` rows (custom resources only)."""
    out = []
    for r in resources:
        if isinstance(r, dict):
            if r.get("custom", True):
                out.append(Resource(r["type"], r["name"], r.get("inputs") or {}, r.get("urn", "")))
        elif getattr(r, "custom", True):
            out.append(Resource(r.type, r.name, r.inputs or {}, getattr(r, "urn", "")))
    return out


def check_records(resources: Iterable[Any]) -> list[GuardrailVerdict]:
    """Every guardrail over one stack's resources, sorted (blocking first, then by policy and resource)."""
    records = to_records(resources)
    out = []
    for v in rules.evaluate(records):
        rule = RULES_BY_NAME[v.policy]
        out.append(GuardrailVerdict(v.issue, rule.enforcement, rule.severity))
    return sorted(set(out), key=lambda v: (not v.blocking, v.policy, v.resource, v.message))


def check_stack(preview: Any) -> list[GuardrailVerdict]:
    """The guardrail verdicts of one ``StackPreview``."""
    return check_records(preview.resources)


def blocking(verdicts: Sequence[GuardrailVerdict]) -> list[GuardrailVerdict]:
    return [v for v in verdicts if v.blocking]


# --------------------------------------------------------------------------- preview output
@dataclass
class PreviewSection:
    renderable: Any
    files: dict[str, str]
    failed: bool


def preview_section(preview: Any) -> PreviewSection:
    """The guardrails part of a stack's preview panel, its ``guardrails.json``, and whether it blocks."""
    verdicts = check_stack(preview)
    files = {"guardrails.json": dump_json([v.to_dict() for v in verdicts])}
    if not verdicts:
        return PreviewSection(
            Text(f"guardrails: {len(rules.RULES)} policies pass", style="green"), files, False
        )
    table = Table(
        title="guardrails (policies/crossguard)", title_justify="left", show_edge=False, pad_edge=False
    )
    for col in ("enforcement", "policy", "resource", "message"):
        table.add_column(col, overflow="fold")
    for v in verdicts:
        level = v.enforcement + (f" (suppressed: {v.suppressed})" if v.suppressed else "")
        style = "red" if v.blocking else ("dim" if v.suppressed else "yellow")
        table.add_row(Text(level, style=style), v.policy, v.resource, v.message)
    return PreviewSection(table, files, bool(blocking(verdicts)))
