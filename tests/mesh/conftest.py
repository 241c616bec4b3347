"""Fixtures for the mesh tests: the demo fleet run once under the mock runtime (two passes)."""

from __future__ import annotations

import pytest

from fleetkit.loader import Fleet, load_fleet
from tests.mesh.mesh_mocks import StackRun, run_fleet


@pytest.fixture(scope="session")
def demo_fleet(project_root) -> Fleet:
    return load_fleet(project_root)


@pytest.fixture(scope="session")
def fleet_passes(demo_fleet: Fleet) -> tuple[dict[str, StackRun], dict[str, StackRun]]:
    return run_fleet(demo_fleet)


@pytest.fixture(scope="session")
def fleet_run(fleet_passes) -> dict[str, StackRun]:
    """Every stack of the demo fleet after the second pass (every peer's outputs resolved)."""
    return fleet_passes[1]
