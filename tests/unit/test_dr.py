"""DR capacity (N-1) and single points of failure over the demo fleet and edited copies of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fleetkit import dr
from fleetkit.loader import load_fleet
from tests.conftest import ROOT


def _edit(root: Path, stack: str, fn: Any) -> None:
    path = root / "stacks" / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    fn(doc["config"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_demo_fleet_survives_losing_any_region_for_its_main_services() -> None:
    rows = {(r.lost, r.service): r for r in dr.n_minus_one(load_fleet(ROOT))}
    for lost in ("aws-us-east-1", "gcp-europe-west4"):
        row = rows[(lost, "llama-3-70b v1")]
        assert row.carried, row
    assert all(r.carried for (_, s), r in rows.items() if s == "llama-3-8b v1")


def test_demo_fleet_70b_is_not_all_spot() -> None:
    found = {(w.rule, w.service) for w in dr.warnings(load_fleet(ROOT))}
    assert (dr.RULE_ALL_SPOT, "llama-3-70b v1") not in found


def test_all_spot_single_replica_model_is_warned(tmp_project: Path) -> None:
    # the old demo: both 70B pools on spot
    _edit(tmp_project, "aws-us-east-1", lambda c: c["fleetkit:node_pools"]["l40s"].update(spot=True))
    found = [w for w in dr.warnings(load_fleet(tmp_project)) if w.rule == dr.RULE_ALL_SPOT]
    assert [w.service for w in found] == ["llama-3-70b v1", "llama-3-70b v2"]
    assert (
        "aws-us-east-1/llama-3-70b" in found[0].message and "gcp-europe-west4/llama-3-70b" in found[0].message
    )
    assert "PodDisruptionBudget" in found[0].message


def test_losing_the_only_region_of_a_service_is_not_carried(tmp_project: Path) -> None:
    fleet = load_fleet(tmp_project)
    rows = [r for r in dr.n_minus_one(fleet) if r.service == "llama-3-70b v1" and r.lost == "aws-us-east-1"]
    assert rows and rows[0].carried  # GCP's 70B max 2 carries the fleet's min load of 2
    _edit(
        tmp_project,
        "gcp-europe-west4",
        lambda c: c["fleetkit:models"]["llama-3-70b"].update(replicas={"min": 1, "max": 1}),
    )
    _edit(
        tmp_project,
        "aws-us-east-1",
        lambda c: c["fleetkit:models"]["llama-3-70b"].update(replicas={"min": 2, "max": 3}),
    )
    warned = [w for w in dr.warnings(load_fleet(tmp_project)) if w.rule == dr.RULE_N_MINUS_ONE]
    assert any("losing aws-us-east-1" in w.message and "llama-3-70b" in w.message for w in warned)


def test_single_region_and_single_replica_services_are_warned() -> None:
    found = {(w.rule, w.service) for w in dr.warnings(load_fleet(ROOT))}
    # the canary version is a service version, not a service: the service runs in two regions
    assert (dr.RULE_ONE_REGION, "llama-3-70b v1") not in found
    assert (dr.RULE_ONE_REPLICA, "llama-3-70b v1") not in found


def test_the_one_region_one_replica_canary_is_warned() -> None:
    found = {(w.rule, w.service) for w in dr.warnings(load_fleet(ROOT))}
    # the canary v2 lives only in us-east-1 with one replica: losing it leaves the canary share without endpoints
    assert {
        (dr.RULE_ONE_REGION, "llama-3-70b v2"),
        (dr.RULE_ONE_REPLICA, "llama-3-70b v2"),
        (dr.RULE_N_MINUS_ONE, "llama-3-70b v2"),
    } <= found
    assert not {w for w in found if w[1] != "llama-3-70b v2"}
