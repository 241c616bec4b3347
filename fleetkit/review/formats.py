"""The three faces of a review: a terminal table, a pull-request comment (markdown), JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from fleetkit.report import titled_table
from fleetkit.review import behaviour as behaviour_section
from fleetkit.review.core import Review, StackReview
from fleetkit.review.semantic import Change
from fleetkit.verify import finding_line
from fleetkit.verify.runner import verdict_text

AREA_TITLES = {
    "stack": "Stack",
    "routing": "Routing",
    "qos": "QoS tiers",
    "failover": "Failover",
    "resilience": "Timeouts & retries",
    "autoscaling": "Autoscaling",
    "gpu-pools": "GPU pools",
    "models": "Models",
    "load-balancing": "Load balancing",
    "security": "Security",
    "edge": "Edge (identity, rate limits)",
    "telemetry": "Telemetry",
}
#: GitHub rejects comments over 65536 characters; the raw diff is cut to keep the comment postable
MARKDOWN_DIFF_BUDGET = 40_000


@dataclass(frozen=True)
class Introduced:
    """What a stack's change introduces, one kind (lint findings, guardrail verdicts) in one shape:
    rows of (level, rule, object, message, suppression reason), as the markdown and terminal show them."""

    title: str
    #: the column names of level, rule and object (the message column is ``message``)
    columns: tuple[str, str, str]
    rows: list[tuple[str, str, str, str, str | None]]

    def cells(self) -> list[tuple[str, str, str, str]]:
        """The terminal table's rows: the suppression reason goes with the level."""
        return [
            (level + (f" (suppressed: {sup})" if sup else ""), rule, obj, message)
            for level, rule, obj, message, sup in self.rows
        ]


def introduced_tables(s: StackReview) -> tuple[Introduced, Introduced]:
    """The lint findings and the guardrail verdicts the change introduces (either may have no rows)."""
    return (
        Introduced(
            "lint findings introduced",
            ("severity", "rule", "object"),
            [(f.severity, f.rule, f.object, f.message, f.suppressed) for f in s.lint_introduced],
        ),
        Introduced(
            "guardrail verdicts introduced",
            ("enforcement", "policy", "resource"),
            [
                (v.enforcement, v.policy, v.resource, v.message, v.suppressed)
                for v in s.guardrails_introduced or []
            ],
        ),
    )


def _md_introduced(kind: Introduced) -> list[str]:
    if not kind.rows:
        return []
    out = [f"**{kind.title.capitalize()} ({len(kind.rows)})**"]
    for level, rule, obj, message, sup in kind.rows:
        out.append(f"- `{rule}` {level} `{obj}`: {message}" + (f" — suppressed: {sup}" if sup else ""))
    return [*out, ""]


def renderer_text(review: Review) -> str:
    if review.renderer == "preview":
        return "full offline preview (every Kubernetes object and cloud resource)"
    text = "serving-policy render (Istio, KEDA and PriorityClass objects only)"
    return text + (f" — {review.note}" if review.note else "")


def _by_area(changes: list[Change]) -> list[tuple[str, list[Change]]]:
    return [(area, list(items)) for area, items in groupby(changes, key=lambda c: c.area)]


def _summary_counts(s: StackReview) -> tuple[str, str]:
    lint = str(len(s.lint_introduced)) + (f" (−{s.lint_resolved})" if s.lint_resolved else "")
    if s.guardrails_introduced is None:
        guard = "n/a"
    else:
        guard = str(len(s.guardrails_introduced)) + (
            f" (−{s.guardrails_resolved})" if s.guardrails_resolved else ""
        )
    return lint, guard


# --------------------------------------------------------------------------- markdown
def _cell(text: Any) -> str:
    return "—" if text is None else str(text).replace("|", "\\|").replace("\n", " ")


def _md_stack(s: StackReview, budget: list[int]) -> list[str]:
    out = [f"### `{s.name}` — {s.status}", ""]
    if s.changes:
        for area, items in _by_area(s.changes):
            out.append(f"**{AREA_TITLES.get(area, area)}**")
            out += [f"- {c.sentence}" for c in items]
            out.append("")
        out += ["| area | subject | setting | before | after |", "|---|---|---|---|---|"]
        out += [
            f"| {c.area} | {_cell(c.subject)} | {_cell(c.setting or '')} | {_cell(c.before)} | {_cell(c.after)} |"
            for c in s.changes
        ]
        out.append("")
    elif s.status != "unchanged":
        out += ["No change in the stack specs; the rendered output differs (kit code change).", ""]
    lint, guardrails = introduced_tables(s)
    out += _md_introduced(lint)
    if s.lint_resolved:
        out += [f"Lint findings resolved: {s.lint_resolved}.", ""]
    out += _md_introduced(guardrails)
    if s.manifest_diff:
        files, added, removed = s.diff_stats()
        diff = s.manifest_diff
        cut = ""
        if len(diff) > budget[0]:
            diff = diff[: max(budget[0], 0)].rsplit("\n", 1)[0] + "\n"
            cut = "\n_(diff truncated to keep the comment postable; run `fleetkit review` for all of it)_\n"
        budget[0] -= len(diff)
        summary = f"Raw manifest diff ({files} file{'s' if files != 1 else ''}, +{added} −{removed})"
        out += [
            f"<details><summary>{summary}</summary>",
            "",
            "```diff",
            diff.rstrip("\n"),
            "```",
            cut,
            "</details>",
            "",
        ]
    return out


def to_markdown(review: Review) -> str:
    out = [
        "## fleetkit review",
        "",
        f"Base `{review.base.label}` (`{review.base.short}`) → {review.head}. Manifests: {renderer_text(review)}.",
        "",
    ]
    changed = review.changed()
    unchanged = [s.name for s in review.stacks if s.status == "unchanged"]
    if review.behaviour is not None:
        out += behaviour_section.markdown(review.behaviour)
    if not changed:
        out += ["No behavioural change in any stack." if review.stacks else "No stack selected.", ""]
    else:
        out += [
            "| stack | status | changes | lint introduced | guardrails introduced |",
            "|---|---|---|---|---|",
        ]
        for s in changed:
            lint, guard = _summary_counts(s)
            out.append(f"| `{s.name}` | {s.status} | {len(s.changes)} | {lint} | {guard} |")
        out.append("")
        budget = [MARKDOWN_DIFF_BUDGET]
        for s in changed:
            out += _md_stack(s, budget)
    if unchanged:
        out += [f"Unchanged: {', '.join(f'`{n}`' for n in unchanged)}.", ""]
    checked = [s for s in review.stacks if s.verdicts]
    if checked:
        out += ["Real checks on the working tree:", ""]
        out += [
            f"- `{s.name}`: "
            + " · ".join(v.line() for v in s.verdicts)
            + "".join(f"\n  - {finding_line(f)}" for v in s.verdicts if v.failed for f in v.findings[:10])
            for s in checked
        ]
        out.append("")
    if review.exit_code:
        out += [
            "**This change introduces lint errors or blocking guardrail verdicts, or fails a real check.**",
            "",
        ]
    return "\n".join(out).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- JSON
def to_json(review: Review) -> str:
    return json.dumps(review.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- terminal
def _diff_text(diff: str) -> Any:
    from rich.text import Text

    text = Text()
    for line in diff.splitlines():
        style = (
            "bold"
            if line.startswith(("+++", "---"))
            else "green"
            if line.startswith("+")
            else "red"
            if line.startswith("-")
            else "cyan"
            if line.startswith("@@")
            else ""
        )
        text.append(line + "\n", style=style)
    return text


def to_renderables(review: Review) -> list[Any]:
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    out: list[Any] = [
        Text(f"base {review.base} → {review.head} · manifests: {renderer_text(review)}", style="bold")
    ]
    b = review.behaviour
    if b is not None:
        lines = (
            [Text(b.note, style="dim")]
            if b.note
            else [Text(f"  • {c.sentence}") for c in b.changes]
            or [
                Text(
                    f"no request class changes its outcome ({b.classes} classes × {b.scenarios} scenarios)",
                    style="green",
                )
            ]
        )
        out.append(Panel(Group(*lines), title="behaviour (simulated)", title_align="left"))
    for s in review.changed():
        parts: list[Any] = []
        if s.changes:
            for area, items in _by_area(s.changes):
                parts.append(Text(AREA_TITLES.get(area, area), style="bold"))
                parts += [Text(f"  • {c.sentence}") for c in items]
            table = Table(show_edge=False, pad_edge=False)
            for col in ("area", "subject", "setting", "before", "after"):
                table.add_column(col, overflow="fold")
            for c in s.changes:
                table.add_row(
                    c.area,
                    c.subject,
                    c.setting,
                    "—" if c.before is None else c.before,
                    "—" if c.after is None else c.after,
                )
            parts.append(table)
        else:
            parts.append(Text("no change in the stack specs; the rendered output differs", style="dim"))
        parts += [
            titled_table(kind.title, (*kind.columns, "message"), kind.cells(), overflow="fold")
            for kind in introduced_tables(s)
            if kind.rows
        ]
        if s.lint_resolved or s.guardrails_resolved:
            parts.append(
                Text(
                    f"resolved: {s.lint_resolved} lint finding(s), {s.guardrails_resolved} guardrail verdict(s)",
                    style="green",
                )
            )
        if s.manifest_diff:
            files, added, removed = s.diff_stats()
            parts.append(Text(f"raw manifest diff ({files} files, +{added} −{removed})", style="bold"))
            parts.append(_diff_text(s.manifest_diff))
        lint_n, guard_n = _summary_counts(s)
        out.append(
            Panel(
                Group(*parts),
                title=f"{s.name} · {s.status}",
                title_align="left",
                subtitle=f"{len(s.changes)} changes · lint +{lint_n} · guardrails +{guard_n}",
                subtitle_align="right",
            )
        )
    for s in review.stacks:
        if s.verdicts:
            out.append(Text(f"{s.name} ({review.head}) ", style="bold") + verdict_text(s.verdicts))
    unchanged = [s.name for s in review.stacks if s.status == "unchanged"]
    if unchanged:
        out.append(Text(f"unchanged: {', '.join(unchanged)}", style="dim"))
    if not review.changed():
        out.append(Text("no behavioural change", style="green"))
    return out
