"""Golden resource plans of the cluster and GPU pools, one demo stack per cloud.

``tests/golden/infra/<cloud>.json`` lists every cloud resource the Cluster and GPU pool components
register for the stack — type, name and inputs — sorted and stable, so a pull request shows any
change in what ``pulumi up`` would create. Regenerate with ``FLEETKIT_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.components.infra_mocks import ROOT, build_infra, demo_spec, run

GOLDEN = ROOT / "tests" / "golden" / "infra"
STACKS = {"aws": "aws-us-east-1", "gcp": "gcp-europe-west4", "azure": "azure-eastus"}


def plan(stack: str) -> list[dict[str, Any]]:
    spec = demo_spec(stack)
    mocks, _ = run(stack, spec, build_infra(stack, spec))
    rows = [
        {"type": r.type, "name": r.name, "inputs": r.plain_inputs}
        for r in mocks.resources
        if r.custom and not r.type.startswith(("kubernetes:", "pulumi:providers:"))
    ]
    return sorted(rows, key=lambda r: (r["type"], r["name"]))


@pytest.mark.parametrize("cloud", sorted(STACKS))
def test_golden_infra_plan(cloud: str) -> None:
    path: Path = GOLDEN / f"{cloud}.json"
    text = (
        json.dumps({"stack": STACKS[cloud], "resources": plan(STACKS[cloud])}, indent=2, sort_keys=True)
        + "\n"
    )
    if os.environ.get("FLEETKIT_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing {path.name}: run with FLEETKIT_UPDATE_GOLDEN=1"
    assert path.read_text() == text, (
        f"{path.name} changed: review, then regenerate with FLEETKIT_UPDATE_GOLDEN=1"
    )
