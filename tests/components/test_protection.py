"""Protection: what is costly to lose cannot be deleted by an ``up``, a create -> adopt switch forgets
the cluster instead of deleting it, mesh addresses do not follow the GPU pools, and a
``pulumi stack rename`` replaces nothing.

The offline preview records the resource options the engine enforces (``protect``,
``retainOnDelete``, ``ignoreChanges``), so these run the real program per stack (:func:`run_stack`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetkit.mocks.runtime import Recorded as RecordedResource
from fleetkit.preview import StackPreview, run_stack

ROOT = Path(__file__).resolve().parents[2]
CLUSTERS = {
    "aws-us-east-1": "aws:eks/cluster:Cluster",
    "gcp-europe-west4": "gcp:container/cluster:Cluster",
    "azure-eastus": "azure-native:containerservice:ManagedCluster",
}
STATIC_IPS = {
    "aws-us-east-1": "aws:ec2/eip:Eip",
    "gcp-europe-west4": "gcp:compute/address:Address",
    "azure-eastus": "azure-native:network:PublicIPAddress",
}
EIP = "aws:ec2/eip:Eip"


def _of(res: StackPreview, type_token: str) -> list[RecordedResource]:
    return sorted((r for r in res.resources if r.type == type_token), key=lambda r: r.name)


def _edit(root: Path, stack: str, fn: Callable[[dict[str, Any]], None]) -> None:
    path = root / "stacks" / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    fn(doc["config"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope="module")
def demo() -> dict[str, StackPreview]:
    return {name: run_stack(ROOT, name, {}) for name in CLUSTERS}


def _cloud(res: StackPreview) -> dict[str, RecordedResource]:
    return {
        r.name: r for r in res.resources if r.custom and not r.type.startswith(("kubernetes:", "pulumi:"))
    }


# --------------------------------------------------------------------------- protect (default on)
@pytest.mark.parametrize("stack", sorted(CLUSTERS))
def test_clusters_and_static_ips_are_protected_by_default(demo: dict[str, StackPreview], stack: str) -> None:
    [cluster] = _of(demo[stack], CLUSTERS[stack])
    assert cluster.options.get("protect") is True
    assert "retainOnDelete" not in cluster.options  # `pulumi destroy` still deletes once unprotected
    ips = _of(demo[stack], STATIC_IPS[stack])
    assert ips and all(ip.options.get("protect") is True for ip in ips)
    protected = {r.type for r in demo[stack].resources if r.options.get("protect")}
    assert protected == {CLUSTERS[stack], STATIC_IPS[stack]}, protected


def test_protection_is_configurable(tmp_project: Path) -> None:
    def off(cfg: dict[str, Any]) -> None:
        cfg["fleetkit:protection"] = {"cluster": False, "static_ips": False}

    _edit(tmp_project, "aws-us-east-1", off)
    res = run_stack(tmp_project, "aws-us-east-1", {})
    assert [r.name for r in res.resources if r.options.get("protect")] == []


def test_a_resource_group_the_kit_creates_is_protected_with_its_cluster(tmp_project: Path) -> None:
    _edit(tmp_project, "azure-eastus", lambda cfg: cfg.pop("fleetkit:account"))
    res = run_stack(tmp_project, "azure-eastus", {})
    [rg] = _of(res, "azure-native:resources:ResourceGroup")
    assert rg.options.get("protect") is True  # deleting a resource group deletes the cluster in it


# --------------------------------------------------------------------------- create -> adopt
ADOPT: dict[str, dict[str, Any]] = {
    "aws-us-east-1": {},
    "gcp-europe-west4": {},
    "azure-eastus": {"resource_group": "rg-fleetkit-eus"},
}


@pytest.mark.parametrize("stack", sorted(CLUSTERS))
def test_switching_to_adopt_after_retain_forgets_instead_of_deleting(tmp_project: Path, stack: str) -> None:
    """The runbook's step 1 (retain, unprotect, ``up``) marks everything step 2 (adopt) drops as retained."""
    if stack == "azure-eastus":  # a kit-created resource group, so it is part of what adopt drops
        _edit(tmp_project, stack, lambda cfg: cfg.pop("fleetkit:account"))

    def retain(cfg: dict[str, Any]) -> None:
        cfg["fleetkit:protection"] = {"cluster": False, "retain_cluster": True}

    _edit(tmp_project, stack, retain)
    created = _cloud(run_stack(tmp_project, stack, {}))

    def adopt(cfg: dict[str, Any]) -> None:
        cluster = cfg["fleetkit:cluster"]
        cluster.pop("create")
        cluster["adopt"] = ADOPT[stack]

    _edit(tmp_project, stack, adopt)
    adopted = _cloud(run_stack(tmp_project, stack, {}))
    dropped = sorted(set(created) - set(adopted))
    assert any(created[n].type == CLUSTERS[stack] for n in dropped)
    not_retained = [n for n in dropped if not created[n].options.get("retainOnDelete")]
    assert not_retained == [], f"{stack}: an adopt would delete {not_retained}"
    assert all(not r.options.get("protect") for n, r in created.items() if n in dropped)


def test_without_retain_the_switch_is_refused_by_protect(demo: dict[str, StackPreview]) -> None:
    """Default: nothing is retained, but the cluster is protected, so the engine refuses the delete."""
    for stack, res in demo.items():
        [cluster] = _of(res, CLUSTERS[stack])
        assert cluster.options.get("protect") and not cluster.options.get("retainOnDelete"), stack


# --------------------------------------------------------------------------- east-west zones
def _eips(res: StackPreview) -> list[tuple[str, Any]]:
    return [(r.name, r.inputs) for r in _of(res, EIP)]


def test_editing_a_pools_zones_keeps_every_mesh_address(
    demo: dict[str, StackPreview], tmp_project: Path
) -> None:
    before = _eips(demo["aws-us-east-1"])
    assert [n.split("-eip-", 1)[1] for n, _ in before] == ["us-east-1a", "us-east-1b", "us-east-1c"]

    def shrink(cfg: dict[str, Any]) -> None:
        for pool in cfg["fleetkit:node_pools"].values():
            pool["zones"] = ["us-east-1b"]

    _edit(tmp_project, "aws-us-east-1", shrink)
    assert _eips(run_stack(tmp_project, "aws-us-east-1", {})) == before

    def grow(cfg: dict[str, Any]) -> None:
        cfg["fleetkit:node_pools"]["l4"]["zones"] = ["us-west-2c", "us-west-2d"]

    usw2 = _eips(run_stack(ROOT, "aws-us-west-2", {}))
    _edit(tmp_project, "aws-us-west-2", grow)
    assert _eips(run_stack(tmp_project, "aws-us-west-2", {})) == usw2
    assert [n.split("-eip-", 1)[1] for n, _ in usw2] == ["us-west-2a", "us-west-2b"]


def test_east_west_zones_come_from_the_mesh_config(tmp_project: Path) -> None:
    _edit(
        tmp_project, "aws-us-east-1", lambda cfg: cfg["fleetkit:mesh"].update(east_west_zones=["us-east-1d"])
    )
    res = run_stack(tmp_project, "aws-us-east-1", {})
    assert [n.split("-eip-", 1)[1] for n, _ in _eips(res)] == ["us-east-1d"]


@pytest.mark.parametrize(
    ("stack", "zones", "rule", "path"),
    [
        (
            "aws-us-east-1",
            ["us-east-1a", "us-west-2a"],
            "mesh.east-west-zone-not-in-region",
            "fleetkit:mesh.east_west_zones[1]",
        ),
        (
            "aws-us-east-1",
            ["us-east-1a", "us-east-1a"],
            "mesh.east-west-zone-duplicate",
            "fleetkit:mesh.east_west_zones[1]",
        ),
        ("aws-us-east-1", [], "mesh.east-west-zone-not-in-region", "fleetkit:mesh.east_west_zones"),
        (
            "gcp-europe-west4",
            ["europe-west4-a"],
            "mesh.east-west-zones-aws-only",
            "fleetkit:mesh.east_west_zones",
        ),
    ],
    ids=["other-region", "twice", "empty", "not-aws"],
)
def test_bad_east_west_zones_are_located_errors(
    tmp_project: Path, stack: str, zones: list[str], rule: str, path: str
) -> None:
    from fleetkit.errors import SpecError
    from fleetkit.loader import load_fleet

    _edit(tmp_project, stack, lambda cfg: cfg["fleetkit:mesh"].update(east_west_zones=zones))
    with pytest.raises(SpecError) as info:
        load_fleet(tmp_project)
    [p] = [p for p in info.value.problems if p.rule == rule]
    assert (p.file, p.where) == (f"stacks/Pulumi.{stack}.yaml", path), p.render()


# --------------------------------------------------------------------------- stack rename
#: inputs a provider updates in place: the stack name may appear there (tags, labels, descriptions)
IN_PLACE = {"tags", "tagSpecifications", "resourceLabels", "labels", "description", "displayName"}


def _mentions(value: Any, needle: str, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() if k not in IN_PLACE for p in _mentions(v, needle, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _mentions(v, needle, (*path, i))]
    return [path] if isinstance(value, str) and needle in value else []


@pytest.mark.parametrize("stack", sorted(CLUSTERS))
def test_no_name_that_forces_a_replacement_embeds_the_stack_name(
    demo: dict[str, StackPreview], stack: str
) -> None:
    found = {r.name: _mentions(r.inputs, stack) for r in demo[stack].resources if r.custom}
    assert {n: p for n, p in found.items() if p} == {}


@pytest.mark.parametrize("stack", sorted(CLUSTERS))
def test_stack_rename_keeps_every_logical_and_physical_name(
    demo: dict[str, StackPreview], tmp_project: Path, stack: str
) -> None:
    renamed = f"{stack}-renamed"
    (tmp_project / "stacks" / f"Pulumi.{stack}.yaml").rename(
        tmp_project / "stacks" / f"Pulumi.{renamed}.yaml"
    )
    after = _cloud(run_stack(tmp_project, renamed, {}))
    before = _cloud(demo[stack])
    assert sorted(after) == sorted(before)  # logical names (URN names): no create/delete
    keys = ("name", "accountId", "resourceName", "roleName", "nodeGroupName")
    for name, r in before.items():
        assert {k: r.inputs.get(k) for k in keys} == {k: after[name].inputs.get(k) for k in keys}, name
