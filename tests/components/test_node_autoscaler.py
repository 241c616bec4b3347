"""Cluster Autoscaler on EKS (issue 14.2): rendered objects, IRSA scoping, and the demo stacks' wiring."""

from __future__ import annotations

import json
from typing import Any

from components import node_autoscaler
from fleetkit.resolve import resolve
from fleetkit.schema import validate_objects
from tests.components.infra_mocks import demo_spec, with_changes


def _by_kind(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objs}


def test_objects_are_schema_valid_and_discover_this_clusters_groups() -> None:
    spec = demo_spec("aws-us-east-1")
    objs = node_autoscaler.render(resolve(spec).placement, "arn:aws:iam::123456789012:role/ca")
    assert validate_objects(objs) == []
    kinds = _by_kind(objs)
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert (
        "--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,"
        "k8s.io/cluster-autoscaler/fleetkit-use1"
    ) in container["command"]
    assert (
        container["image"] == "registry.k8s.io/autoscaling/cluster-autoscaler:v1.33.0"
    )  # the cluster's minor
    assert kinds["ServiceAccount"]["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/ca"
    }
    assert kinds["ClusterRoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "cluster-autoscaler", "namespace": "kube-system"}
    ]


def test_iam_policy_changes_only_this_clusters_groups() -> None:
    doc = node_autoscaler.iam_policy("fleetkit-use1")
    write = next(s for s in doc["Statement"] if "autoscaling:SetDesiredCapacity" in s["Action"])
    assert write["Condition"] == {
        "StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/fleetkit-use1": "owned"}
    }
    describe = next(s for s in doc["Statement"] if s["Sid"] == "Describe")
    assert all(":Describe" in a or ":Get" in a for a in describe["Action"])
    json.dumps(doc)


def test_installed_on_eks_only_and_only_when_auto() -> None:
    use1 = demo_spec("aws-us-east-1")
    assert node_autoscaler.installs_cluster_autoscaler(resolve(use1).placement)
    gcp = resolve(demo_spec("gcp-europe-west4")).placement
    assert not node_autoscaler.installs_cluster_autoscaler(gcp)  # GKE pools scale
    external = with_changes(use1, addons={**use1.addons.model_dump(), "node_autoscaler": "external"})
    assert not node_autoscaler.installs_cluster_autoscaler(resolve(external).placement)


def test_demo_preview_runs_the_autoscaler_with_its_role(demo_preview: dict[str, Any]) -> None:
    for stack in ("aws-us-east-1", "aws-us-west-2"):
        res = demo_preview[stack].resources
        deps = [
            r
            for r in res
            if r.type == "kubernetes:apps/v1:Deployment"
            and r.inputs["metadata"]["name"] == "cluster-autoscaler"
        ]
        assert len(deps) == 1, stack
        roles = [r for r in res if r.type == "aws:iam/role:Role" and "cluster-autoscaler" in r.name]
        trust = json.loads(roles[0].inputs["assumeRolePolicy"])
        cond = trust["Statement"][0]["Condition"]["StringEquals"]
        assert any(v == "system:serviceaccount:kube-system:cluster-autoscaler" for v in cond.values())
    for stack in ("gcp-europe-west4", "azure-eastus"):
        assert not [r for r in demo_preview[stack].resources if "cluster-autoscaler" in r.name]
