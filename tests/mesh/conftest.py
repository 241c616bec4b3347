"""Fixtures for the mesh tests: the demo fleet run once under the mock runtime, in one bring-up pass."""

from __future__ import annotations

import pytest

from fleetkit.loader import Fleet, load_fleet
from tests.mesh.mesh_mocks import StackRun, run_fleet


@pytest.fixture(scope="session")
def demo_fleet(project_root) -> Fleet:
    return load_fleet(project_root)


@pytest.fixture(scope="session")
def fleet_run(demo_fleet: Fleet) -> dict[str, StackRun]:
    """Every stack of the demo fleet after one pass: trust root, each region once, then the peering stack."""
    return run_fleet(demo_fleet)
