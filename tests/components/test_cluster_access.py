"""EKS access entries: typed deployer principals, rendered after the cluster, checked before anything runs.

Without an access entry only the identity that created an EKS cluster (``authentication_mode: API``)
can use its Kubernetes API; a CI role or a second operator gets ``Unauthorized`` on every object.
``cluster.access_entries`` becomes an ``aws.eks.AccessEntry`` and an ``AccessPolicyAssociation`` per
key, the Kubernetes provider waits for them, and the cluster ignores later edits of the bootstrap
flag (a change there replaces the cluster, pulumi/pulumi-aws#3997).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cluster import BOOTSTRAP_ADMIN_PATH, access_policy_arn
from fleetkit.errors import SpecError
from fleetkit.loader import load_fleet
from fleetkit.mocks.runtime import Recorded as RecordedResource
from fleetkit.preview import StackPreview, run_stack
from fleetkit.spec import AdoptCluster, ClusterSpec
from tests.components.infra_mocks import build_infra, demo_spec, run

ROOT = Path(__file__).resolve().parents[2]
USE1 = "stacks/Pulumi.aws-us-east-1.yaml"
EUW4 = "stacks/Pulumi.gcp-europe-west4.yaml"
ENTRY = "aws:eks/accessEntry:AccessEntry"
ASSOC = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
EKS = "aws:eks/cluster:Cluster"


@pytest.fixture(scope="module")
def use1() -> StackPreview:
    return run_stack(ROOT, "aws-us-east-1", {})


def _of(res: StackPreview, type_token: str) -> list[RecordedResource]:
    return sorted((r for r in res.resources if r.type == type_token), key=lambda r: r.name)


def test_each_principal_is_an_access_entry_with_its_policy_after_the_cluster(use1: StackPreview) -> None:
    [eks] = _of(use1, EKS)
    entries = {r.name.rsplit("-access-", 1)[1]: r for r in _of(use1, ENTRY)}
    assocs = {r.name.rsplit("-access-", 1)[1].removesuffix("-policy"): r for r in _of(use1, ASSOC)}
    assert sorted(entries) == sorted(assocs) == ["model-deployers", "operators"]
    ops, deployers = entries["operators"].inputs, entries["model-deployers"].inputs
    assert ops["principalArn"] == "arn:aws:iam::111122223333:role/platform/operators"
    assert ops["type"] == "STANDARD" and ops["clusterName"] == "fleetkit-use1"
    assert deployers["principalArn"] == "arn:aws:iam::111122223333:role/llm-deployers"
    assert assocs["operators"].inputs["policyArn"] == (
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    )
    assert assocs["operators"].inputs["accessScope"] == {"type": "cluster"}
    assert assocs["model-deployers"].inputs["policyArn"].endswith("/AmazonEKSEditPolicy")
    assert assocs["model-deployers"].inputs["accessScope"] == {"type": "namespace", "namespaces": ["llm"]}
    for key, entry in entries.items():
        assert eks.urn in entry.deps, key  # the cluster first
        assert entry.urn in assocs[key].deps, key  # then the entry, then its policy


def test_kubernetes_objects_wait_for_the_access_policies(use1: StackPreview) -> None:
    [provider] = [r for r in use1.resources if r.type == "pulumi:providers:kubernetes"]
    assert {r.urn for r in _of(use1, ASSOC)} <= set(provider.deps)


def test_bootstrap_flag_is_ignored_after_creation(use1: StackPreview) -> None:
    [eks] = _of(use1, EKS)
    assert eks.inputs["accessConfig"] == {
        "authenticationMode": "API",
        "bootstrapClusterCreatorAdminPermissions": True,
    }
    assert BOOTSTRAP_ADMIN_PATH in eks.options["ignoreChanges"]
    off = run_stack(ROOT, "aws-us-east-1", {}, ["cluster.create.bootstrap_creator_admin=false"])
    [eks_off] = _of(off, EKS)
    assert eks_off.inputs["accessConfig"]["bootstrapClusterCreatorAdminPermissions"] is False
    assert BOOTSTRAP_ADMIN_PATH in eks_off.options["ignoreChanges"]


def test_an_adopted_eks_cluster_gets_the_access_entries_too() -> None:
    spec = demo_spec("aws-us-east-1")
    cl = spec.cluster
    adopted = spec.model_copy(
        update={"cluster": ClusterSpec(name=cl.name, adopt=AdoptCluster(), access_entries=cl.access_entries)}
    )
    mocks, _ = run("aws-us-east-1", adopted, build_infra("aws-us-east-1", adopted))
    assert not mocks.of_type(EKS)
    entries = sorted(r.inputs["principalArn"] for r in mocks.of_type(ENTRY))
    assert entries == sorted(e.principal_arn for e in cl.access_entries.values())
    assert {r.inputs["clusterName"] for r in mocks.of_type(ASSOC)} == {"fleetkit-use1"}


def test_access_policy_arn_follows_the_partition() -> None:
    assert access_policy_arn("cn-north-1", "AmazonEKSViewPolicy") == (
        "arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
    )


# --------------------------------------------------------------------------- validation
def _edit(root: Path, rel: str, fn: Callable[[dict[str, Any]], None]) -> None:
    path = root / rel
    doc = yaml.safe_load(path.read_text())
    fn(doc["config"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _entries(**entries: Any) -> Callable[[dict[str, Any]], None]:
    def fn(cfg: dict[str, Any]) -> None:
        cfg["fleetkit:cluster"]["access_entries"] = entries

    return fn


ARN_CASES = [
    (
        "sts-session",
        _entries(ci={"principal_arn": "arn:aws:sts::111122223333:assumed-role/ci-deployer/run-42"}),
        "cluster.access-entry-arn",
        "fleetkit:cluster.access_entries.ci.principal_arn",
        "arn:aws:iam::111122223333:role/<path/>ci-deployer",
    ),
    (
        "not-an-arn",
        _entries(ci={"principal_arn": "ci-deployer"}),
        "cluster.access-entry-arn",
        "fleetkit:cluster.access_entries.ci.principal_arn",
        "not an IAM role or user ARN",
    ),
    (
        "short-account",
        _entries(ci={"principal_arn": "arn:aws:iam::1111:role/ci"}),
        "cluster.access-entry-arn",
        "fleetkit:cluster.access_entries.ci.principal_arn",
        "not an IAM role or user ARN",
    ),
    (
        "other-partition",
        _entries(ci={"principal_arn": "arn:aws-cn:iam::111122223333:role/ci"}),
        "cluster.access-entry-arn",
        "fleetkit:cluster.access_entries.ci.principal_arn",
        "partition 'aws-cn'",
    ),
    (
        "duplicate",
        _entries(
            a={"principal_arn": "arn:aws:iam::111122223333:role/ci"},
            b={"principal_arn": "arn:aws:iam::111122223333:role/ci", "policy": "AmazonEKSViewPolicy"},
        ),
        "cluster.access-entry-duplicate",
        "fleetkit:cluster.access_entries.b.principal_arn",
        "access entry 'a'",
    ),
]


@pytest.mark.parametrize(
    ("edit", "rule", "path", "says"), [c[1:] for c in ARN_CASES], ids=[c[0] for c in ARN_CASES]
)
def test_a_bad_principal_is_one_located_error(
    tmp_project: Path, edit: Callable[[dict[str, Any]], None], rule: str, path: str, says: str
) -> None:
    _edit(tmp_project, USE1, edit)
    with pytest.raises(SpecError) as info:
        load_fleet(tmp_project)
    found = [p for p in info.value.problems if p.rule == rule]
    assert len(found) == 1, [p.render() for p in info.value.problems]
    assert (found[0].file, found[0].where) == (USE1, path)
    assert says in found[0].message
    assert (
        found[0].value
        == yaml.safe_load((tmp_project / USE1).read_text())["config"]["fleetkit:cluster"]["access_entries"][
            path.split(".")[2]
        ]["principal_arn"]
    )


def test_a_role_arn_with_a_path_is_accepted(tmp_project: Path) -> None:
    _edit(
        tmp_project, USE1, _entries(ci={"principal_arn": "arn:aws:iam::111122223333:role/team/ci/deployer"})
    )
    spec = load_fleet(tmp_project).stacks["aws-us-east-1"].spec
    assert spec.cluster.access_entries["ci"].policy == "AmazonEKSClusterAdminPolicy"  # type: ignore[union-attr]


def test_access_entries_are_eks_only(tmp_project: Path) -> None:
    _edit(tmp_project, EUW4, _entries(ci={"principal_arn": "arn:aws:iam::111122223333:role/ci"}))
    with pytest.raises(SpecError) as info:
        load_fleet(tmp_project)
    [p] = [p for p in info.value.problems if p.rule == "cluster.access-entries-eks-only"]
    assert (p.file, p.where, p.value) == (EUW4, "fleetkit:cluster.access_entries", ["ci"])
