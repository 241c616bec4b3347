"""The review's behaviour section: simulated outcomes that change between two revisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetkit.cli import app
from fleetkit.loader import load_fleet
from fleetkit.review.behaviour import behaviour, markdown
from tests.review.conftest import canary_to_25
from tests.review.test_review_preview import small_fleet

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_manifests(demo_preview):
    return {n: r.manifests() for n, r in demo_preview.items()}


def _reweighted(manifests, old: int, new: int):
    out = json.loads(json.dumps(manifests))
    for objs in out.values():
        for o in objs:
            if o.get("kind") == "VirtualService":
                for http in o["spec"]["http"]:
                    if http["name"].startswith("llama-70b-canary"):
                        for d in http["route"]:
                            d["weight"] = {90: 100 - new, 10: new}.get(d["weight"], d["weight"])
    return out


def test_unchanged_fleet_has_no_behaviour_change(project_root, demo_manifests):
    specs = load_fleet(project_root)
    b = behaviour(specs, specs, demo_manifests, demo_manifests, full_render=True)
    assert b.changes == [] and b.scenarios >= 5 and b.classes > 0
    assert "No request class changes its outcome" in "\n".join(markdown(b))


def test_canary_weight_change_is_listed_before_and_after(project_root, demo_manifests):
    specs = load_fleet(project_root)
    b = behaviour(specs, specs, demo_manifests, _reweighted(demo_manifests, 10, 40), full_render=True)
    sentences = [c.sentence for c in b.changes]
    # the cohort comes from the verified token (#13), so a premium caller's share of v2 follows the weight:
    # the canary cohort's share of premium traffic times the canary weight (10 % -> 40 %)
    wanted = (
        "premium llama-3-70b from aws-use1, healthy: "
        "100% llama-3-70b@v1 l40s in aws-use1, 0% llama-3-70b@v2 l40s in aws-use1 → "
        "98% llama-3-70b@v1 l40s in aws-use1, 2% llama-3-70b@v2 l40s in aws-use1"
    )
    assert wanted in sentences
    text = "\n".join(markdown(b))
    assert "### Behaviour (simulated)" in text and "```mermaid\nflowchart LR" in text


def test_policy_render_says_why_there_is_no_simulation(project_root):
    specs = load_fleet(project_root)
    b = behaviour(specs, specs, {}, {}, full_render=False)
    assert b.note and "--render preview" in b.note


@pytest.mark.slow
def test_review_markdown_has_the_behaviour_section(tmp_path: Path) -> None:
    repo = small_fleet(tmp_path / "fleet")
    canary_to_25(repo)
    result = runner.invoke(app, ["review", "--root", str(repo), "--format", "markdown"])
    assert "### Behaviour (simulated)" in result.output, result.output
    # the cohort comes from the verified token, so the canary share follows the weight for token classes
    assert "**premium llama-3-70b from aws-use1**, healthy" in result.output
    assert "→ 99% llama-3-70b@v1 l40s in aws-use1, 1% llama-3-70b@v2" in result.output
