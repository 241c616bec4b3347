"""examples/ci: the GitHub Actions workflow is valid YAML and runs commands and options that exist."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from fleetkit.cli import app

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "ci" / "fleetkit.yml"


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_workflow_lints_as_sarif_and_comments_the_review():
    wf = yaml.safe_load(WORKFLOW.read_text())
    jobs = wf["jobs"]
    lint, review = _runs(jobs["lint"]), _runs(jobs["review"])
    assert "fleetkit lint out/preview --format sarif" in lint
    assert any(
        s.get("uses", "").startswith("github/codeql-action/upload-sarif") for s in jobs["lint"]["steps"]
    )
    assert jobs["lint"]["permissions"]["security-events"] == "write"
    assert "fleetkit review --base" in review and "--format markdown --output review.md" in review
    assert jobs["review"]["permissions"]["pull-requests"] == "write"
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in triggers


def test_the_lint_step_produces_sarif_on_the_demo_manifests():
    res = CliRunner().invoke(app, ["lint", str(ROOT / "tests" / "golden" / "demo"), "--format", "sarif"])
    assert res.exit_code in (0, 1), res.output
    doc = json.loads(res.output)
    assert doc["version"] == "2.1.0" and doc["runs"][0]["tool"]["driver"]["name"]
