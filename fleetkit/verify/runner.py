"""Run every real-tool verifier on one stack and show the verdicts (preview and review call this)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rich.text import Text

from fleetkit.verify import Verdict, cel, envoy, finding_line, helm_values, promtool, vllm_args

Manifests = list[dict[str, Any]]
Resources = list[dict[str, Any]]

#: (name, verifier(manifests, resources)) in the order the verdicts are shown
VERIFIERS: list[tuple[str, Callable[[Manifests, Resources], Verdict]]] = [
    ("chart values", lambda manifests, resources: helm_values.verify(resources)),
    ("promtool", lambda manifests, resources: promtool.verify(manifests)),
    ("vLLM parser", lambda manifests, resources: vllm_args.verify(manifests)),
    ("CEL", lambda manifests, resources: cel.verify(manifests)),
    ("envoy", lambda manifests, resources: envoy.verify(manifests)),
]


def verify_stack(
    manifests: Iterable[Mapping[str, Any]], resources: Iterable[Mapping[str, Any]]
) -> list[Verdict]:
    """Every verifier's verdict on one stack's rendered objects and resources.json rows."""
    objs = [dict(m) for m in manifests]
    rows = [dict(r) for r in resources]
    return [fn(objs, rows) for _, fn in VERIFIERS]


def failed(verdicts: Iterable[Verdict]) -> bool:
    return any(v.failed for v in verdicts)


def verdict_text(verdicts: Iterable[Verdict], max_findings: int = 20) -> Text:
    """``real checks: chart values ✓ 7 release(s) valid · promtool ✓ …`` and the findings of failures."""
    verdicts = list(verdicts)
    text = Text("real checks: ", style="bold")
    if all(v.status == "skipped" and "not installed" not in v.summary for v in verdicts):
        return text + Text("nothing rendered that a real tool checks", style="dim")
    for i, v in enumerate(verdicts):
        if i:
            text.append(" · ")
        text.append(v.line(), style={"pass": "green", "fail": "bold red", "skipped": "yellow"}[v.status])
    for v in verdicts:
        shown = [f for f in v.findings if v.status == "fail" and not f.rule.endswith("not-checked")]
        for f in shown[:max_findings]:
            text.append(f"\n  {v.check}: {finding_line(f)}", style="red")
        if len(shown) > max_findings:
            text.append(f"\n  {v.check}: … {len(shown) - max_findings} more", style="red")
    return text
