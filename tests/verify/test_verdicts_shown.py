"""The real checks' verdicts in preview and review output, and their exit codes."""

from __future__ import annotations

import copy
import json

from fleetkit.loader import load_fleet
from fleetkit.report import preview_report
from fleetkit.review.core import Review, StackReview
from fleetkit.review.formats import to_json, to_markdown, to_renderables
from fleetkit.review.gitrev import Revision
from fleetkit.verify import Verdict, finding
from fleetkit.verify.runner import verdict_text, verify_stack


def _failed() -> Verdict:
    return Verdict(
        "chart values",
        "fail",
        "1 problem(s) in 1 release(s)",
        [
            finding(
                "helm.v3.Release r (gateway 1.30.3)",
                "values.networkGatewayPorts",
                "helm.values-schema",
                "[...] is not of type 'object'",
            )
        ],
    )


def test_a_failed_real_check_blocks_the_review() -> None:
    ok = StackReview("aws-us-east-1", "unchanged", verdicts=[Verdict("CEL", "pass", "3 rules on 1 objects")])
    bad = StackReview("aws-us-west-2", "unchanged", verdicts=[_failed()])
    review = Review(Revision("HEAD", "0" * 40), "preview", None, [ok, bad])
    assert review.exit_code == 1
    md = to_markdown(review)
    assert "`aws-us-west-2`: chart values ✗ 1 problem(s)" in md and "values.networkGatewayPorts" in md
    assert json.loads(to_json(review))["stacks"]["aws-us-west-2"]["verdicts"][0]["status"] == "fail"
    assert any("chart values ✗" in str(r) for r in to_renderables(review))
    assert Review(Revision("HEAD", "0" * 40), "preview", None, [ok]).exit_code == 0


def test_verdict_line_lists_every_check_and_the_failures() -> None:
    text = verdict_text(
        [
            Verdict("CEL", "pass", "3 rules on 1 objects"),
            _failed(),
            Verdict("promtool", "skipped", "promtool not installed (2 rules NOT checked)"),
        ]
    ).plain
    assert text.startswith("real checks: CEL ✓ 3 rules on 1 objects · chart values ✗")
    assert "promtool – promtool not installed" in text and "values.networkGatewayPorts" in text


def test_the_runner_runs_every_verifier(demo_preview) -> None:
    res = demo_preview["aws-us-east-1"]
    verdicts = verify_stack(res.manifests(), res.resources_json())
    assert [v.check for v in verdicts] == ["chart values", "promtool", "vLLM 0.33.0 parser", "CEL", "envoy"]
    assert not any(v.failed for v in verdicts)


def test_preview_exits_1_on_an_error_verdict(demo_preview, project_root) -> None:
    fleet = load_fleet(project_root)
    good = {"aws-us-east-1": demo_preview["aws-us-east-1"]}
    assert preview_report(fleet, good).exit_code == 0
    broken = copy.deepcopy(demo_preview["aws-us-east-1"])
    release = next(
        r
        for r in broken.resources
        if r.type == "kubernetes:helm.sh/v3:Release"
        and r.inputs.get("chart") == "gateway"
        and "networkGatewayPorts" in r.inputs["values"]
    )
    release.inputs["values"]["networkGatewayPorts"] = [{"name": "tls", "port": 15443}]
    report = preview_report(fleet, {"aws-us-east-1": broken})
    assert report.exit_code == 1
