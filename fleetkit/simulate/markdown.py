"""Markdown for a pull-request comment: the outcome tables and the Mermaid flow diagram."""

from __future__ import annotations

from fleetkit.simulate.diagram import to_mermaid
from fleetkit.simulate.report import SimulationReport, describe, findings


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report_markdown(report: SimulationReport, picture: str) -> str:
    out = ["## fleetkit simulate", ""]
    out += [
        f"Where each request class goes, per scenario. Diagram: **{picture}**.",
        "",
        "```mermaid",
        to_mermaid(report, picture).rstrip("\n"),
        "```",
        "",
    ]
    for s in report.scenarios:
        same = f" (same as {', '.join(s.aliases)})" if s.aliases else ""
        out += [f"### {s.name}{same}", "", "| request class | outcomes |", "|---|---|"]
        out += [
            f"| {_cell(c.label)} | {_cell(describe(report.dist(i, s.name), 6))} |"
            for i, c in enumerate(report.classes)
        ]
        rows = report.capacity.get(s.name) or []
        if rows:
            out += [
                "",
                "| model | demand r/s | capacity r/s at max replicas | requests lost | verdict |",
                "|---|---|---|---|---|",
            ]
            out += [
                f"| {r.model} | {r.demand_rps:.1f} | {r.capacity_rps:.1f} | {r.lost_share * 100:.0f}% | "
                f"{'carried' if r.carried else '**loses service**'} |"
                for r in rows
            ]
        out.append("")
    found = findings(report)
    if found:
        out += [f"**Findings with everything healthy ({len(found)})**", ""]
        out += [f"- `{f.rule}` {_cell(f.subject)}: {_cell(f.message)}" for f in found]
        out.append("")
    if report.notes:
        out += ["Notes: " + "; ".join(report.notes), ""]
    out.append("Assumptions: " + ", ".join(f"{k}={v:g}" for k, v in sorted(report.assumptions.items())) + ".")
    return "\n".join(out) + "\n"
