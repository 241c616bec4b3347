"""``fleetkit review`` on a two-commit git fixture: words, tables, markdown, JSON, raw diff, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetkit.cli import app
from tests.conftest import copy_project
from tests.review.conftest import canary_to_25, commit_all, edit, git, init_repo, sample_change

runner = CliRunner()

SAMPLE_SENTENCES = [
    "route llama-70b-canary: llama-3-70b/v1 90% → 75%",
    "route llama-70b-canary: llama-3-70b/v2 10% → 25%",
    "tier batch: max_requests 128 → 64",
    "failover order: priority network > cluster > region > zone → priority cluster > network > region > zone",
    "autoscaling llama-3-8b: max replicas 4 → 6",
    "GPU pool l4: instance type g6.12xlarge (4× NVIDIA L4 22 GiB) → g6e.12xlarge (4× NVIDIA L40S 45 GiB)",
]


def review(repo: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["review", "--root", str(repo), "--render", "policies", *args])
    return result.exit_code, result.output


def test_two_commits_markdown(two_commits: Path) -> None:
    code, out = review(two_commits, "--base", "HEAD~1", "--format", "markdown")
    assert code == 0, out
    assert out.startswith("## fleetkit review\n")
    assert "Base `HEAD~1`" in out and "serving-policy render" in out
    # the sample change, in words, for the stack that has all of it
    section = out.split("### `aws-us-east-1` — changed", 1)[1].split("### `", 1)[0]
    for sentence in SAMPLE_SENTENCES:
        assert f"- {sentence}\n" in section, sentence
    # ... and as a table
    assert "| area | subject | setting | before | after |" in section
    assert "| routing | route llama-70b-canary | llama-3-70b/v2 | 10% | 25% |" in section
    assert "| qos | tier batch | max_requests | 128 | 64 |" in section
    # the raw diff is collapsible and shows the rendered YAML change
    assert "<details><summary>Raw manifest diff (" in section and "```diff" in section
    assert "-      weight: 10\n+      weight: 25\n" in section
    assert "+  maxReplicaCount: 6" in section
    # the other region stacks inherit the fleet file: they change too, without the pool change
    assert "### `gcp-europe-west4` — changed" in out
    assert "| `mesh-root` |" not in out and "Unchanged: `mesh-peering`, `mesh-root`." in out


def test_two_commits_table(two_commits: Path) -> None:
    code, out = review(two_commits, "--base", "HEAD~1", "--stack", "aws-us-east-1")
    assert code == 0, out
    for sentence in SAMPLE_SENTENCES:
        assert sentence in out, sentence
    assert "aws-us-east-1 · changed" in out
    assert (
        "raw manifest diff (" in out and "+++ b/aws-us-east-1/keda.sh/ScaledObject/llm/llama-3-8b.yaml" in out
    )
    assert "gcp-europe-west4" not in out  # --stack selects


def test_two_commits_json(two_commits: Path) -> None:
    code, out = review(
        two_commits, "--base", "HEAD~1", "--format", "json", "-s", "aws-us-east-1", "-s", "mesh-root"
    )
    assert code == 0, out
    doc = json.loads(out)
    assert doc["base"]["rev"] == "HEAD~1" and len(doc["base"]["sha"]) == 40
    assert doc["renderer"] == "policies" and doc["head"] == "working tree"
    assert set(doc["stacks"]) == {"aws-us-east-1", "mesh-root"}
    assert doc["stacks"]["mesh-root"]["status"] == "unchanged"
    stack = doc["stacks"]["aws-us-east-1"]
    texts = [c["text"] for c in stack["changes"]]
    assert texts == SAMPLE_SENTENCES
    assert {c["area"] for c in stack["changes"]} == {"routing", "qos", "failover", "autoscaling", "gpu-pools"}
    assert stack["manifest_diff"].startswith("--- a/aws-us-east-1/")
    assert stack["guardrails_introduced"] is None  # no resources without the full preview


def test_clean_tree_against_head_has_no_change(two_commits: Path) -> None:
    code, out = review(two_commits, "--format", "markdown")
    assert code == 0
    assert "Base `HEAD`" in out and "No behavioural change in any stack." in out


def test_default_base_is_the_working_tree_against_head(repo: Path) -> None:
    canary_to_25(repo)  # uncommitted
    code, out = review(repo, "--format", "json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["base"]["rev"] == "HEAD"
    assert "route llama-70b-canary: llama-3-70b/v2 10% → 25%" in [
        c["text"] for c in doc["stacks"]["aws-us-west-2"]["changes"]
    ]


def test_default_base_is_the_merge_base_with_origin_main(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "update-ref", "refs/remotes/origin/main", first)
    canary_to_25(repo)
    commit_all(repo, "canary 25%")  # committed on the branch: HEAD alone would show nothing
    code, out = review(repo, "--format", "json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["base"]["sha"] == first and "origin/main" in doc["base"]["rev"]
    assert doc["stacks"]["aws-us-east-1"]["status"] == "changed"


def test_working_tree_is_never_touched(two_commits: Path) -> None:
    before = (
        git(two_commits, "status", "--porcelain"),
        git(two_commits, "rev-parse", "HEAD"),
        (two_commits / "stacks" / "fleet.yaml").read_text(),
    )
    review(two_commits, "--base", "HEAD~1")
    after = (
        git(two_commits, "status", "--porcelain"),
        git(two_commits, "rev-parse", "HEAD"),
        (two_commits / "stacks" / "fleet.yaml").read_text(),
    )
    assert before == after


def test_added_and_removed_stacks(repo: Path) -> None:
    stacks = repo / "stacks"
    (stacks / "Pulumi.aws-eu-west-1.yaml").write_text(
        (stacks / "Pulumi.aws-us-west-2.yaml")
        .read_text()
        .replace("us-west-2", "eu-west-1")
        .replace("usw2", "euw1"),
        encoding="utf-8",
    )
    (stacks / "Pulumi.aws-us-west-2.yaml").unlink()  # moved to eu-west-1
    code, out = review(repo, "--format", "json")
    assert code == 0, out
    doc = json.loads(out)["stacks"]
    assert doc["aws-eu-west-1"]["status"] == "added"
    assert doc["aws-us-west-2"]["status"] == "removed"
    assert doc["aws-eu-west-1"]["changes"][0]["text"].startswith("stack added (aws eu-west-1")
    assert doc["aws-us-west-2"]["changes"][0]["text"].startswith("stack removed (was aws us-west-2")
    assert doc["aws-us-west-2"]["manifest_diff"].count("+++ /dev/null") > 5


def test_introduced_lint_findings(repo: Path) -> None:
    # a 30 s route timeout is too short for generation (lint FK107, a warning): reported, exit still 0
    edit(
        repo / "stacks" / "fleet.yaml",
        "          timeout: 900s\n          retries: {attempts: 1}",
        "          timeout: 30s\n          retries: {attempts: 0}",
    )
    code, out = review(repo, "--format", "json", "-s", "aws-us-east-1")
    assert code == 0, out
    stack = json.loads(out)["stacks"]["aws-us-east-1"]
    texts = [c["text"] for c in stack["changes"]]
    assert "resilience llama-3-70b: timeout 900s → 30s" in texts
    assert "resilience llama-3-70b: retry attempts 1 → 0" in texts
    rules = {f["rule"] for f in stack["lint_introduced"]}
    assert "FK107" in rules
    assert all(f["severity"] != "error" for f in stack["lint_introduced"])


# --------------------------------------------------------------------------- bad input: exit 2, no traceback
def test_unknown_revision(two_commits: Path) -> None:
    code, out = review(two_commits, "--base", "no-such-branch")
    assert code == 2
    assert "review.unknown-rev" in out and "no-such-branch" in out and "Traceback" not in out


def test_option_like_revision_is_rejected(two_commits: Path) -> None:
    code, out = review(two_commits, "--base=--output=out/x")
    assert code == 2 and "review.unknown-rev" in out


def test_not_a_git_repository(tmp_project: Path) -> None:
    code, out = review(tmp_project)
    assert code == 2 and "review.not-a-repo" in out and "Traceback" not in out


def test_unknown_stack(two_commits: Path) -> None:
    code, out = review(two_commits, "--stack", "nope")
    assert code == 2 and "cli.unknown-stack" in out


def test_invalid_base_spec(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "fleet")
    edit(repo / "stacks" / "fleet.yaml", "replicas: {min: 1, max: 4}", "replicas: {min: 5, max: 4}")
    commit_all(repo, "broken")
    edit(
        repo / "stacks" / "fleet.yaml", "replicas: {min: 5, max: 4}", "replicas: {min: 1, max: 4}"
    )  # fixed, uncommitted
    code, out = review(repo)
    assert code == 2, out
    assert "review.base-invalid" in out and "stacks/fleet.yaml (at " in out and "Traceback" not in out


def test_invalid_working_tree_spec(repo: Path) -> None:
    edit(repo / "stacks" / "fleet.yaml", "replicas: {min: 1, max: 4}", "replicas: {min: 5, max: 4}")
    code, out = review(repo)
    assert code == 2 and "stacks/fleet.yaml" in out and "(at " not in out


def test_repository_without_commits(tmp_project: Path) -> None:
    git(tmp_project, "init", "-q")
    code, out = review(tmp_project)
    assert code == 2 and "review.no-commits" in out


@pytest.mark.parametrize("fmt", ["markdown", "json", "table"])
def test_output_file(two_commits: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"review.{fmt}"
    code, _ = review(
        two_commits, "--base", "HEAD~1", "-s", "aws-us-east-1", "--format", fmt, "--output", str(target)
    )
    assert code == 0
    assert "llama-3-70b/v2 10% → 25%" in target.read_text(encoding="utf-8")


def test_project_in_a_subdirectory_of_the_repository(tmp_path: Path) -> None:
    top = tmp_path / "monorepo"
    copy_project(top / "infra" / "fleet")
    git(top, "init", "-q")
    commit_all(top, "monorepo")
    sample_change(top / "infra" / "fleet")
    code, out = review(top / "infra" / "fleet", "--format", "json", "-s", "aws-us-east-1")
    assert code == 0, out
    assert len(json.loads(out)["stacks"]["aws-us-east-1"]["changes"]) == len(SAMPLE_SENTENCES)
