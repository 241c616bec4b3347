"""``fleetkit review`` with the full offline preview of both sides (and its fallback to the policy render)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetkit.cli import app
from fleetkit.review import render
from tests.review.conftest import canary_to_25, commit_all, edit, init_repo, l4_pool_to_l40s

runner = CliRunner()


def small_fleet(path: Path) -> Path:
    """The demo project cut to the trust root and one region (a full preview of it takes seconds)."""
    repo = init_repo(path)
    for other in ("aws-us-west-2", "azure-eastus", "gcp-europe-west4"):
        (repo / "stacks" / f"Pulumi.{other}.yaml").unlink()
    edit(
        repo / "stacks" / "fleet.yaml",
        "      models:\n        llama-3-8b:\n          gpu_weights: {l4: 2, a10g: 1, a100-80gb: 3}\n",
        "",
    )
    commit_all(repo, "one region")
    return repo


@pytest.mark.slow
def test_review_with_the_full_preview(tmp_path: Path) -> None:
    repo = small_fleet(tmp_path / "fleet")
    canary_to_25(repo)
    l4_pool_to_l40s(repo)
    edit(repo / "stacks" / "fleet.yaml", "      require_jwt: true\n", "      require_jwt: false\n")
    result = runner.invoke(app, ["review", "--root", str(repo), "--format", "json"])
    doc = json.loads(result.output)
    assert doc["renderer"] == "preview", doc["note"]
    stack = doc["stacks"]["aws-us-east-1"]
    texts = [c["text"] for c in stack["changes"]]
    assert "route llama-70b-canary: llama-3-70b/v2 10% → 25%" in texts
    assert "security: JWT required → optional" in texts
    diff = stack["manifest_diff"]
    # cloud resources are compared too, not only Kubernetes objects
    assert "+++ b/aws-us-east-1/aws/eks/nodeGroup/NodeGroup/region-l4-ng.yaml" in diff
    assert " instanceTypes:\n-- g6.12xlarge\n+- g6e.12xlarge\n" in diff
    assert "-      weight: 10\n+      weight: 25\n" in diff
    # dropping the JWT requirement leaves a public ingress: a new mandatory guardrail verdict, exit 1
    verdicts = stack["guardrails_introduced"]
    assert [v["policy"] for v in verdicts] == ["no-public-load-balancer"]
    assert verdicts[0]["enforcement"] == "mandatory" and "fleetkit-ingress" in verdicts[0]["message"]
    assert result.exit_code == 1
    assert doc["stacks"]["mesh-root"]["status"] == "unchanged"


def _failing_preview(root: Path, workdir: Path) -> render._Run:
    code = "import sys; sys.stderr.write('Traceback...\\nModuleNotFoundError: No module named components.x\\n'); sys.exit(1)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return render._Run(root, workdir / "out", proc)


def test_auto_falls_back_to_the_policy_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "_start_preview", _failing_preview)
    repo = init_repo(tmp_path / "fleet")
    canary_to_25(repo)
    result = runner.invoke(
        app, ["review", "--root", str(repo), "--format", "markdown", "-s", "aws-us-east-1"]
    )
    assert result.exit_code == 0, result.output
    assert (
        "serving-policy render (Istio, KEDA and PriorityClass objects only) — the Pulumi program did not run "
        "(base: ModuleNotFoundError: No module named components.x; head: ModuleNotFoundError" in result.output
    )
    assert "llama-3-70b/v2 10% → 25%" in result.output


def test_render_preview_insists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "_start_preview", _failing_preview)
    repo = init_repo(tmp_path / "fleet")
    result = runner.invoke(app, ["review", "--root", str(repo), "--render", "preview"])
    assert result.exit_code == 2
    assert (
        "review.preview-failed" in result.output
        and "Traceback" not in result.output.split("did not run", 1)[0]
    )
