"""A throwaway git repository holding a copy of the demo project, and helpers to change it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import copy_project

GIT_ENV = {
    "GIT_AUTHOR_NAME": "fleetkit tests",
    "GIT_AUTHOR_EMAIL": "tests@fleetkit.invalid",
    "GIT_COMMITTER_NAME": "fleetkit tests",
    "GIT_COMMITTER_EMAIL": "tests@fleetkit.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} not found exactly once in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def init_repo(path: Path) -> Path:
    repo = copy_project(path)
    git(repo, "init", "-q")
    commit_all(repo, "base fleet")
    return repo


# --------------------------------------------------------------------------- the sample change
def canary_to_25(repo: Path) -> None:
    fleet = repo / "stacks" / "fleet.yaml"
    edit(
        fleet,
        "- {model: llama-3-70b, version: v1, weight: 90}",
        "- {model: llama-3-70b, version: v1, weight: 75}",
    )
    edit(
        fleet,
        "- {model: llama-3-70b, version: v2, weight: 10}",
        "- {model: llama-3-70b, version: v2, weight: 25}",
    )


def batch_limit_64(repo: Path) -> None:
    edit(
        repo / "stacks" / "fleet.yaml",
        "batch: {priority: 1000, max_requests: 128,",
        "batch: {priority: 1000, max_requests: 64,",
    )


def cluster_before_network(repo: Path) -> None:
    edit(
        repo / "stacks" / "fleet.yaml",
        "        - topology.istio.io/network\n        - topology.istio.io/cluster\n",
        "        - topology.istio.io/cluster\n        - topology.istio.io/network\n",
    )


def llama_8b_max_6(repo: Path) -> None:
    edit(repo / "stacks" / "fleet.yaml", "replicas: {min: 1, max: 4}", "replicas: {min: 1, max: 6}")


def l4_pool_to_l40s(repo: Path) -> None:
    edit(
        repo / "stacks" / "Pulumi.aws-us-east-1.yaml",
        "instance_type: g6.12xlarge",
        "instance_type: g6e.12xlarge",
    )


def sample_change(repo: Path) -> None:
    canary_to_25(repo)
    batch_limit_64(repo)
    cluster_before_network(repo)
    llama_8b_max_6(repo)
    l4_pool_to_l40s(repo)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "fleet")


@pytest.fixture(scope="module")
def two_commits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """base fleet, then a commit with the sample change; the working tree is clean."""
    repo = init_repo(tmp_path_factory.mktemp("review") / "fleet")
    sample_change(repo)
    commit_all(
        repo, "canary 25%, batch limit 64, failover cluster first, llama-3-8b up to 6, l4 pool on L40S"
    )
    return repo
