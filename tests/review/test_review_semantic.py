"""The semantic diff on typed specs (no git), and how the outputs show suppressions and failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from fleetkit.guardrails import GuardrailVerdict
from fleetkit.issue import Issue, Severity
from fleetkit.lint import Finding
from fleetkit.loader import load_fleet
from fleetkit.review.core import Review, StackReview
from fleetkit.review.formats import MARKDOWN_DIFF_BUDGET, to_json, to_markdown, to_renderables
from fleetkit.review.gitrev import Revision
from fleetkit.review.render import finding_key, introduced
from fleetkit.review.semantic import Change, diff_stack
from fleetkit.spec import RegionStackSpec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spec() -> RegionStackSpec:
    s = load_fleet(ROOT).stacks["aws-us-east-1"].spec
    assert isinstance(s, RegionStackSpec)
    return s


def changed(spec: RegionStackSpec, updates: dict[str, Any] | None = None) -> RegionStackSpec:
    """A copy of ``spec`` with ``{"dotted.path": value}`` updates, validated again like a loaded spec."""
    doc = spec.model_dump(
        mode="json", exclude_unset=True
    )  # keeps which fields were set (overrides merge on it)
    for path, value in (updates or {}).items():
        parts = path.split(".")
        cur = doc
        for part in parts[:-1]:
            cur = cur[int(part)] if isinstance(cur, list) else cur[part]
        if isinstance(cur, list):
            cur[int(parts[-1])] = value
        else:
            cur[parts[-1]] = value
    return RegionStackSpec.model_validate(doc)


def texts(before: RegionStackSpec, after: RegionStackSpec) -> list[str]:
    return [c.sentence for c in diff_stack(before, after)]


def test_identical_specs_have_no_change(spec: RegionStackSpec) -> None:
    assert diff_stack(spec, spec) == []
    assert diff_stack(spec, changed(spec)) == []


def test_route_added_removed_and_reordered(spec: RegionStackSpec) -> None:
    routes = spec.model_dump(mode="json", exclude_unset=True)["policies"]["routing"]["routes"]
    swapped = [routes[0], routes[1], routes[3], routes[2]]
    out = texts(spec, changed(spec, {"policies.routing.routes": swapped}))
    assert out == [
        (
            "route order (first match wins): llama-70b-canary, llama-70b, summarize, llama-8b "
            "→ llama-70b-canary, llama-70b, llama-8b, summarize"
        )
    ]
    out = texts(spec, changed(spec, {"policies.routing.routes": routes[1:]}))
    assert out[0].startswith(
        "route llama-70b-canary removed (was model=llama-3-70b & cohort=beta → "
        "llama-3-70b/v1 90%, llama-3-70b/v2 10%)"
    )


def test_mirror_and_new_destination(spec: RegionStackSpec) -> None:
    route = spec.model_dump(mode="json", exclude_unset=True)["policies"]["routing"]["routes"][1]
    route["mirror"]["percent"] = 20
    route["to"] = [{"model": "llama-3-70b", "weight": 3}, {"model": "llama-3-8b", "weight": 1}]
    out = texts(spec, changed(spec, {"policies.routing.routes.1": route}))
    assert "route llama-70b: llama-3-70b 100% → 75%" in out
    assert "route llama-70b: llama-3-8b added (25%)" in out
    assert "route llama-70b: mirror llama-3-70b/v2 5% → llama-3-70b/v2 20%" in out


def test_qos_tiers_and_shed_order(spec: RegionStackSpec) -> None:
    tiers = spec.model_dump(mode="json", exclude_unset=True)["policies"]["qos"]["tiers"]
    tiers["free"] = {"priority": 10, "max_requests": 8, "max_pending_requests": 4}
    out = texts(spec, changed(spec, {"policies.qos.tiers": tiers}))
    assert "tier free added (priority 10, max_requests 8, max_pending_requests 4)" in out
    assert (
        "QoS shed order (shed first → last): batch, standard, premium → free, batch, standard, premium"
    ) in out
    out = texts(spec, changed(spec, {"policies.qos": None}))
    assert out == ["QoS tiers removed (was tiers premium, standard, batch, default standard)"]


def test_failover_modes(spec: RegionStackSpec) -> None:
    regions = {"mode": "regions", "regions": ["us-east-1", "us-west-2"], "priority_labels": []}
    assert texts(spec, changed(spec, {"policies.failover": regions})) == [
        "failover order: priority network > cluster > region > zone → regions us-east-1 > us-west-2"
    ]
    assert texts(spec, changed(spec, {"policies.failover": None})) == [
        "failover order: priority network > cluster > region > zone → off"
    ]


def test_models_pools_and_fallback(spec: RegionStackSpec) -> None:
    after = changed(
        spec,
        {
            "models.llama-3-70b-v2.pool": "l4",
            "models.llama-3-70b-v2.tensor_parallel": 2,
            "node_pools.l40s.spot": True,
            "node_pools.l40s.max_size": 8,
            "policies.resilience.fallback": {},
        },
    )
    out = texts(spec, after)
    assert "model llama-3-70b-v2: pool (moved) l40s → l4" in out
    assert "model llama-3-70b-v2: tensor parallel (TP) 4 → 2" in out
    assert "GPU pool l40s: spot false → true" in out
    assert "GPU pool l40s: max_size 6 → 8" in out
    assert "fallback chain llama-3-70b removed (was llama-3-70b > llama-3-8b)" in out
    models = {
        k: v
        for k, v in spec.model_dump(mode="json", exclude_unset=True)["models"].items()
        if k != "llama-3-70b-v2"
    }
    gone = changed(spec, {"models": models})
    assert any(
        t.startswith("model llama-3-70b-v2 removed (was llama-3-70b v2 on pool l40s, TP 4")
        for t in texts(spec, gone)
    )


def test_areas_are_grouped_in_a_fixed_order(spec: RegionStackSpec) -> None:
    after = changed(
        spec,
        {
            "node_pools.l4.max_size": 9,
            "policies.security.deny_by_default": False,
            "policies.autoscaling.default.queue_per_replica": 3,
        },
    )
    assert [c.area for c in diff_stack(spec, after)] == ["autoscaling"] * 3 + ["gpu-pools", "security"]


def test_sentences() -> None:
    assert (
        Change("qos", "tier batch", "max_requests", "128", "64").sentence
        == "tier batch: max_requests 128 → 64"
    )
    assert Change("failover", "failover order", "", "a", "b").sentence == "failover order: a → b"
    assert Change("models", "model x", "", None, "v1").sentence == "model x added (v1)"
    assert Change("models", "model x", "", "v1", None).sentence == "model x removed (was v1)"


# --------------------------------------------------------------------------- outputs
def _review(stack: StackReview) -> Review:
    return Review(Revision("HEAD", "a" * 40), "policies", None, [stack])


def _finding(severity: Severity, suppressed: str | None) -> Finding:
    issue = Issue(
        ("spec", "http", 0, "timeout"),
        "FK107",
        "30s is shorter than 60s",
        severity=severity,
        subject="VirtualService/llm/fleetkit-routes",
        file="aws-us-east-1/manifests",
        suppressed=suppressed,
    )
    return Finding(issue, "raise the timeout")


def test_suppressed_findings_are_listed_with_their_reason_and_never_fail() -> None:
    stack = StackReview(
        "aws-us-east-1",
        "changed",
        [Change("qos", "tier batch", "max_requests", "128", "64")],
        lint_introduced=[_finding("error", "batch route, clients retry")],
        guardrails_introduced=[
            GuardrailVerdict.of(
                "model-pdb",
                "mandatory",
                "high",
                "kubernetes:apps/v1:Deployment::x",
                "no PDB",
                "drained nightly by design",
            )
        ],
    )
    review = _review(stack)
    assert review.exit_code == 0
    md = to_markdown(review)
    assert (
        "— suppressed: batch route, clients retry" in md and "— suppressed: drained nightly by design" in md
    )
    assert '"suppressed": "batch route, clients retry"' in to_json(review)


def test_both_introduced_kinds_read_alike_in_markdown_and_terminal() -> None:
    """Lint findings and guardrail verdicts introduced are one shape: level, rule, object, message and
    the suppression reason, in a list (markdown) and a table (terminal)."""
    stack = StackReview(
        "aws-us-east-1",
        "changed",
        [Change("edge", "edge", "tier value trial", None, "premium")],
        lint_introduced=[_finding("warning", None)],
        lint_resolved=2,
        guardrails_introduced=[
            GuardrailVerdict.of(
                "model-pdb", "advisory", "high", "kubernetes:apps/v1:Deployment::x", "no PDB", "nightly"
            )
        ],
    )
    md = to_markdown(_review(stack))
    lint_at, resolved_at, guard_at = (
        md.index(
            "**Lint findings introduced (1)**\n- `FK107` warning `VirtualService/llm/fleetkit-routes`: spec.http[0].timeout: 30s"
        ),
        md.index("Lint findings resolved: 2."),
        md.index(
            "**Guardrail verdicts introduced (1)**\n- `model-pdb` advisory `kubernetes:apps/v1:Deployment::x`: "
            "no PDB — suppressed: nightly"
        ),
    )
    assert lint_at < resolved_at < guard_at
    assert "**Edge (identity, rate limits)**\n- edge: tier value trial added (premium)" in md
    console = Console(record=True, width=300, color_system=None)
    for renderable in to_renderables(_review(stack)):
        console.print(renderable)
    text = console.export_text()
    assert "lint findings introduced" in text and "guardrail verdicts introduced" in text
    assert "severity" in text and "enforcement" in text
    assert "advisory (suppressed: nightly)" in text and "FK107" in text


@pytest.mark.parametrize(
    ("lint", "verdict", "code"),
    [("warning", None, 0), ("error", None, 1), (None, "mandatory", 1), (None, "advisory", 0)],
)
def test_exit_code(lint: str | None, verdict: str | None, code: int) -> None:
    stack = StackReview("s", "changed")
    if lint:
        stack.lint_introduced = [_finding(lint, None)]
    if verdict:
        stack.guardrails_introduced = [GuardrailVerdict.of("model-pdb", verdict, "high", "r", "m")]
    review = _review(stack)
    assert review.exit_code == code
    assert ("introduces lint errors or blocking guardrail verdicts" in to_markdown(review)) == bool(code)


def test_markdown_truncates_a_huge_diff() -> None:
    diff = "".join(
        f"--- a/s/f{i}.yaml\n+++ b/s/f{i}.yaml\n@@ -1 +1 @@\n-a: {i}\n+a: {i + 1}\n" for i in range(5000)
    )
    md = to_markdown(_review(StackReview("s", "changed", manifest_diff=diff)))
    assert len(md) < MARKDOWN_DIFF_BUDGET + 5_000
    assert "diff truncated" in md and "(5000 files, +5000 −5000)" in md


def test_introduced_and_resolved_are_counted_alike_for_findings_and_verdicts() -> None:
    """One helper compares both sides: lint findings by object, rule and message; verdicts by their key."""
    kept, new = _finding("warning", None), _finding("error", None)
    gone = Finding(
        Issue(("spec",), "FK101", "other", subject="VirtualService/llm/x", file="s/manifests"), "fix"
    )
    assert introduced([kept, gone], [kept, new], finding_key) == ([], 1)  # same object, rule and message
    v1 = GuardrailVerdict.of("model-pdb", "mandatory", "high", "r1", "no PDB")
    v2 = GuardrailVerdict.of("model-pdb", "mandatory", "high", "r2", "no PDB")
    assert introduced([v1], [v1, v2], lambda v: v.key()) == ([v2], 0)
    assert introduced([v1, v2], [], lambda v: v.key()) == ([], 2)
