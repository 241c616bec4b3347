"""Fleet-wide mesh validation: each bad input is one clear problem with its file, path and rule."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetkit.errors import Issue, SpecError
from fleetkit.loader import load_fleet
from fleetkit.mesh_checks import check_mesh
from mesh import topology

FLEET = "stacks/fleet.yaml"
USE1 = "stacks/Pulumi.aws-us-east-1.yaml"
USW2 = "stacks/Pulumi.aws-us-west-2.yaml"
EUS = "stacks/Pulumi.azure-eastus.yaml"
ROOT_FILE = "stacks/Pulumi.mesh-root.yaml"


def edit(root: Path, rel: str, fn: Callable[[dict[str, Any]], object]) -> None:
    path = root / rel
    doc = yaml.safe_load(path.read_text())
    fn(doc["config"] if "config" in doc else doc["fleetkit"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def problems(root: Path) -> list[Issue]:
    with pytest.raises(SpecError) as err:
        load_fleet(root)
    return err.value.problems


def find(found: list[Issue], rule: str) -> list[Issue]:
    hits = [p for p in found if p.rule == rule]
    assert hits, f"no {rule} in:\n" + "\n".join(p.render() for p in found)
    return hits


def test_the_demo_fleet_is_clean(project_root: Path) -> None:
    assert check_mesh(load_fleet(project_root), env={}) == []


def test_duplicate_cluster_name(tmp_project: Path) -> None:
    edit(tmp_project, USW2, lambda c: c["fleetkit:mesh"].update(cluster_name="aws-use1"))
    hits = find(problems(tmp_project), "mesh.duplicate-cluster-name")
    assert {(p.file, p.where, p.value) for p in hits} == {
        (USE1, "fleetkit:mesh.cluster_name", "aws-use1"),
        (USW2, "fleetkit:mesh.cluster_name", "aws-use1"),
    }


def test_mismatched_mesh_id(tmp_project: Path) -> None:
    edit(tmp_project, EUS, lambda c: c["fleetkit:mesh"].update(mesh_id="other-mesh"))
    [hit] = find(problems(tmp_project), "mesh.mesh-id-mismatch")
    assert (hit.file, hit.where, hit.value) == (EUS, "fleetkit:mesh.mesh_id", "other-mesh")
    assert "fleetkit-mesh" in hit.message


def test_failover_to_a_region_outside_the_fleet(tmp_project: Path) -> None:
    edit(
        tmp_project,
        USE1,
        lambda c: c.__setitem__(
            "fleetkit:policies",
            {
                "failover": {
                    "mode": "regions",
                    "regions": ["us-east-1", "us-east-2"],
                    "priority_labels": ["topology.istio.io/network"],
                }
            },
        ),
    )
    [hit] = find(problems(tmp_project), "ref.unknown-region")
    assert (hit.file, hit.where, hit.value) == (USE1, "fleetkit:policies.failover.regions[1]", "us-east-2")
    assert "europe-west4" in hit.message  # lists the fleet's regions


def test_trust_root_stack_missing(tmp_project: Path) -> None:
    (tmp_project / ROOT_FILE).unlink()
    # every region stack inherits the name from the fleet file: one problem, at the line that sets it
    [hit] = find(problems(tmp_project), "mesh.trust-root-missing")
    assert (hit.file, hit.where, hit.value) == (FLEET, "fleetkit.mesh.trust_root_stack", "mesh-root")
    assert "no role: trust-root stack" in hit.message


def test_trust_root_is_a_region_stack_and_roots_differ(tmp_project: Path) -> None:
    edit(tmp_project, EUS, lambda c: c["fleetkit:mesh"].update(trust_root_stack="aws-us-east-1"))
    found = problems(tmp_project)
    [not_root] = find(found, "mesh.trust-root-not-a-root")
    [mismatch] = find(found, "mesh.trust-root-mismatch")
    assert not_root.file == mismatch.file == EUS and not_root.where == "fleetkit:mesh.trust_root_stack"


def test_kubernetes_too_old_for_istio(tmp_project: Path) -> None:
    edit(tmp_project, USW2, lambda c: c["fleetkit:cluster"]["create"].update(kubernetes_version="1.31"))
    [hit] = find(problems(tmp_project), "mesh.kubernetes-too-old")
    assert (hit.file, hit.where, hit.value) == (USW2, "fleetkit:cluster.create.kubernetes_version", "1.31")
    assert "1.32" in hit.message


def test_unsupported_istio_version(tmp_project: Path) -> None:
    edit(tmp_project, FLEET, lambda f: f["mesh"].update(istio_version="1.29.6"))
    [hit] = find(problems(tmp_project), "mesh.istio-version-unsupported")
    assert (hit.file, hit.where, hit.value) == (FLEET, "fleetkit.mesh.istio_version", "1.29.6")
    assert "1.30.3" in hit.message


def test_network_without_east_west_gateway(tmp_project: Path) -> None:
    edit(tmp_project, EUS, lambda c: c["fleetkit:mesh"].update(east_west_gateway=False))
    [hit] = find(problems(tmp_project), "mesh.network-without-gateway")
    assert (hit.file, hit.where) == (EUS, "fleetkit:mesh.east_west_gateway")
    assert "net-azure-eus" in hit.message


def test_a_network_with_one_gateway_is_enough(tmp_project: Path) -> None:
    # two clusters share a network; only one of them runs the east-west gateway
    edit(
        tmp_project,
        USW2,
        lambda c: c["fleetkit:mesh"].update(network="net-aws-use1", east_west_gateway=False),
    )
    assert check_mesh(load_fleet(tmp_project), env={}) == []


def test_trust_domain_mismatch(tmp_project: Path) -> None:
    edit(tmp_project, EUS, lambda c: c["fleetkit:mesh"].update(trust_domain="azure.local"))
    [hit] = find(problems(tmp_project), "mesh.trust-domain-mismatch")
    assert (hit.file, hit.value) == (EUS, "azure.local")


def test_stack_reference_syntax(tmp_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edit(tmp_project, USE1, lambda c: c["fleetkit:mesh"].update(trust_root_stack="acme/mesh-root"))
    monkeypatch.setenv(topology.STACK_REF_PREFIX_ENV, "acme")
    hits = find(problems(tmp_project), "mesh.stack-ref-syntax")
    assert {(p.file, p.where) for p in hits} == {
        (USE1, "fleetkit:mesh.trust_root_stack"),
        ("$FLEETKIT_STACK_REF_PREFIX", "(environment)"),
    }


def test_every_problem_is_reported_at_once(tmp_project: Path) -> None:
    edit(
        tmp_project,
        USW2,
        lambda c: (
            c["fleetkit:mesh"].update(cluster_name="aws-use1"),
            c["fleetkit:cluster"]["create"].update(kubernetes_version="1.30"),
        ),
    )
    edit(tmp_project, EUS, lambda c: c["fleetkit:mesh"].update(mesh_id="other-mesh"))
    rules = {p.rule for p in problems(tmp_project)}
    assert {"mesh.duplicate-cluster-name", "mesh.kubernetes-too-old", "mesh.mesh-id-mismatch"} <= rules


def test_remote_secret_graph_of_the_demo_fleet(project_root: Path) -> None:
    graph = topology.remote_secret_graph(load_fleet(project_root))
    assert graph == {
        "aws-us-east-1": ["aws-usw2", "azure-eus", "gcp-euw4"],
        "aws-us-west-2": ["aws-use1", "azure-eus", "gcp-euw4"],
        "azure-eastus": ["aws-use1", "aws-usw2", "gcp-euw4"],
        "gcp-europe-west4": ["aws-use1", "aws-usw2", "azure-eus"],
    }


def test_explicit_peer_stack_missing(tmp_project):
    import yaml

    path = tmp_project / "stacks" / "Pulumi.aws-us-east-1.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["fleetkit:mesh"]["peers"] = [
        "aws-us-west-2",
        "gcp-europe-west4",
        "azure-eastus",
        "aws-eu-west-9",
    ]
    path.write_text(yaml.safe_dump(doc))
    [hit] = find(problems(tmp_project), "mesh.peer-missing")
    assert hit.file == "stacks/Pulumi.aws-us-east-1.yaml" and hit.where == "fleetkit:mesh.peers[3]"
    assert hit.value == "aws-eu-west-9"


def test_explicit_peers_must_cover_every_cluster(tmp_project):
    import yaml

    path = tmp_project / "stacks" / "Pulumi.aws-us-east-1.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["fleetkit:mesh"]["peers"] = ["aws-us-west-2"]
    path.write_text(yaml.safe_dump(doc))
    [hit] = find(problems(tmp_project), "mesh.remote-secret-graph-incomplete")
    assert "azure-eastus" in hit.message and "gcp-europe-west4" in hit.message


def test_east_west_gateway_admits_only_the_peers_egress(project_root: Path) -> None:
    fleet = load_fleet(project_root)
    ranges, missing = topology.east_west_source_ranges(fleet, "aws-us-east-1")
    assert missing == [] and ranges == ["198.51.100.32/29", "203.0.113.16/29", "203.0.113.32/29"]


def test_peer_without_egress_cidrs_is_refused(tmp_project: Path) -> None:
    edit(tmp_project, USW2, lambda c: c["fleetkit:mesh"].pop("egress_cidrs"))
    hits = find(problems(tmp_project), "mesh.east-west-source-unknown")
    # every other region's gateway would have to admit aws-us-west-2: each is told, at its own file
    assert {p.file for p in hits} == {USE1, EUS, "stacks/Pulumi.gcp-europe-west4.yaml"}
    assert all("'aws-us-west-2'" in p.message and p.where.endswith("east_west_source_ranges") for p in hits)


def test_explicit_source_ranges_win(tmp_project: Path) -> None:
    edit(tmp_project, USW2, lambda c: c["fleetkit:mesh"].pop("egress_cidrs"))
    for rel in (USE1, EUS, "stacks/Pulumi.gcp-europe-west4.yaml"):
        edit(tmp_project, rel, lambda c: c["fleetkit:mesh"].update(east_west_source_ranges=["0.0.0.0/0"]))
    fleet = load_fleet(tmp_project)
    assert topology.east_west_source_ranges(fleet, "aws-us-east-1") == (["0.0.0.0/0"], [])


def test_egress_cidrs_are_typed(tmp_project: Path) -> None:
    edit(tmp_project, USE1, lambda c: c["fleetkit:mesh"].update(egress_cidrs=["198.51.100.999/32"]))
    [hit] = [p for p in problems(tmp_project) if "egress_cidrs" in p.where]
    assert hit.file == USE1 and "198.51.100.999/32" in hit.render()
