"""Shared fixtures: the project root and throwaway copies of the demo project."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


def copy_project(dest: Path) -> Path:
    """A copy of the Pulumi project (program + stacks) to edit freely in a test."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Pulumi.yaml", dest / "Pulumi.yaml")
    shutil.copy(ROOT / "__main__.py", dest / "__main__.py")
    shutil.copytree(ROOT / "stacks", dest / "stacks")
    return dest


@pytest.fixture()
def tmp_project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


@pytest.fixture(scope="session")
def demo_preview():
    """The offline preview of the bundled demo fleet, computed once per test session."""
    from fleetkit.loader import load_fleet
    from fleetkit.preview import preview_fleet

    return preview_fleet(load_fleet(ROOT))
