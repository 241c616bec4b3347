"""Fixtures for the model-service tests."""

from __future__ import annotations

import pytest
from model_fixtures import demo_fleet

from fleetkit.loader import Fleet


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    return demo_fleet()
