"""The offline preview fails where a real ``pulumi up`` would: each engine check with a failing case,
and the demo fleet clean of all of them (first bring-up in one pass, controllers, grants, dependencies)."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import pytest

from fleetkit import program
from fleetkit.engine_checks import (
    NETWORK_CONTRIBUTOR,
    check_preview,
    load_balancer_prerequisites,
    pod_dependencies,
)
from fleetkit.preview import run_stack

REGIONS = ("aws-us-east-1", "aws-us-west-2", "azure-eastus", "gcp-europe-west4")


def _project(tmp_path: Path, body: str, stacks: dict[str, str]) -> Path:
    root = tmp_path / "p"
    (root / "stacks").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text("name: fleetkit\nruntime: python\n")
    head = "import pulumi, pulumi_kubernetes as k8s\ncfg = pulumi.Config('fleetkit')\n"
    (root / "__main__.py").write_text(head + textwrap.dedent(body))
    for name, text in stacks.items():
        (root / "stacks" / f"Pulumi.{name}.yaml").write_text(text)
    return root


# --------------------------------------------------------------------------- stack references
def test_reference_to_a_stack_not_in_stacks_or_not_yet_up_is_an_error(tmp_path):
    root = _project(
        tmp_path,
        """
        for ref in (cfg.get_object("refs") or []):
            pulumi.export(ref, pulumi.StackReference(ref).get_output("x"))
        """,
        {"a": "config:\n  fleetkit:refs: [acme/fleetkit/b, gone]\n", "b": "config: {}\n"},
    )
    res = run_stack(root, "a", {})
    findings = [f for f in check_preview(res) if f.rule == "engine.stack-reference"]
    assert [f.severity for f in findings] == ["error", "error"]
    text = " ".join(f.message for f in findings)
    assert "'acme/fleetkit/b'" in text and "stack 'b' is not initialised" in text
    assert "stack 'gone' is not in stacks/" in text and "pulumi/pulumi#11275" in text
    up = run_stack(root, "b", {})
    assert [f.message for f in check_preview(run_stack(root, "a", {"b": up})) if "'b'" in f.message] == []


def test_demo_fleet_first_bring_up_needs_one_pass(demo_preview):
    """Regions see only the trust root (any order); the peering stack sees every region: no reference fails."""
    for name in REGIONS:
        refs = [r.name for r in demo_preview[name].resources if r.type == "pulumi:pulumi:StackReference"]
        assert refs == ["mesh-root"], (name, refs)
        assert demo_preview[name].ref_problems == []
    peering = demo_preview["mesh-peering"]
    assert peering.ref_problems == [] and peering.missing_refs == set()
    assert len(peering.outputs["remoteSecrets"]) == 12
    for name, res in demo_preview.items():
        assert check_preview(res) == [], name


# --------------------------------------------------------------------------- pod dependencies
POD_PROGRAM = """
    pc = k8s.scheduling.v1.PriorityClass("pc", metadata={"name": "gold"}, value=1000)
    sa = k8s.core.v1.ServiceAccount("sa", metadata={"name": "runner", "namespace": "llm"})
    wait = [pc, sa] if cfg.get_bool("wait") else []
    k8s.apps.v1.Deployment("d", metadata={"name": "m", "namespace": "llm"}, spec={
        "selector": {"matchLabels": {"app": "m"}},
        "template": {"metadata": {"labels": {"app": "m"}}, "spec": {
            "priorityClassName": "gold", "serviceAccountName": "runner",
            "containers": [{"name": "c", "image": "x"}]}}},
        opts=pulumi.ResourceOptions(depends_on=wait))
    """


def test_pod_naming_a_priority_class_or_service_account_created_in_parallel_is_an_error(tmp_path):
    root = _project(
        tmp_path, POD_PROGRAM, {"loose": "config: {}\n", "tight": "config:\n  fleetkit:wait: true\n"}
    )
    loose = [f for f in check_preview(run_stack(root, "loose", {})) if f.rule == "engine.pod-dependency"]
    assert sorted(f.message.split(" names ")[1].split(",")[0] for f in loose) == [
        "PriorityClass gold",
        "ServiceAccount runner",
    ]
    assert check_preview(run_stack(root, "tight", {})) == []


def test_demo_model_deployments_wait_for_their_priority_classes(demo_preview):
    res = demo_preview["aws-us-east-1"]
    assert pod_dependencies(res.resources) == []
    # the same graph without the PriorityClass edge is what the program built before: caught
    pcs = {r.urn for r in res.resources if r.type == "kubernetes:scheduling.k8s.io/v1:PriorityClass"}
    stripped = [dataclasses.replace(r, deps=tuple(d for d in r.deps if d not in pcs)) for r in res.resources]
    found = pod_dependencies(stripped)
    assert found and all("PriorityClass fleetkit-" in f.message for f in found)


# --------------------------------------------------------------------------- load balancers
def test_aws_external_load_balancer_without_the_controller_is_an_error(tmp_path):
    root = _project(
        tmp_path,
        """
        k8s.core.v1.Service("s", metadata={"name": "gw", "namespace": "istio-system", "annotations": {
            "service.beta.kubernetes.io/aws-load-balancer-type": "external"}},
            spec={"type": "LoadBalancer", "ports": [{"port": 443}]})
        """,
        {"a": "config: {}\n"},
    )
    (finding,) = check_preview(run_stack(root, "a", {}))
    assert finding.rule == "engine.lb-controller" and "aws-load-balancer-controller" in finding.message


def _after(res, release_name):
    rel = next(
        r
        for r in res.resources
        if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs.get("name") == release_name
    )
    by_urn = {r.urn: r for r in res.resources}
    seen, todo = set(), list(rel.deps)
    while todo:
        urn = todo.pop()
        if urn not in seen:
            seen.add(urn)
            todo.extend(by_urn[urn].deps if urn in by_urn else ())
    return [by_urn[u] for u in seen if u in by_urn]


def test_eks_installs_the_load_balancer_controller_before_the_gateways(demo_preview):
    res = demo_preview["aws-us-east-1"]
    (lbc,) = [r for r in res.resources if r.inputs.get("chart") == "aws-load-balancer-controller"]
    assert lbc.inputs["namespace"] == "kube-system" and lbc.inputs["values"]["clusterName"] == "fleetkit-use1"
    role_arn = lbc.inputs["values"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    role = next(r for r in res.resources if r.type == "aws:iam/role:Role" and r.name == "region-lb-lbc")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert "system:serviceaccount:kube-system:aws-load-balancer-controller" in json.dumps(trust["Condition"])
    assert role_arn.startswith("arn:aws:iam::")
    for gateway in ("istio-eastwestgateway", "fleetkit-ingress"):
        assert lbc in _after(res, gateway), gateway
    # the same stack without the controller edge: caught
    cut = [dataclasses.replace(r, deps=tuple(d for d in r.deps if d != lbc.urn)) for r in res.resources]
    assert {f.rule for f in load_balancer_prerequisites(cut)} == {"engine.lb-controller"}


def test_aks_grants_network_contributor_before_the_east_west_gateway(demo_preview):
    res = demo_preview["azure-eastus"]
    (grant,) = [r for r in res.resources if r.type == "azure-native:authorization:RoleAssignment"]
    assert grant.inputs["roleDefinitionId"].endswith(f"/roleDefinitions/{NETWORK_CONTRIBUTOR}")
    assert grant.inputs["scope"].endswith("/resourceGroups/fleetkit-eastus")
    assert grant.inputs["principalType"] == "ServicePrincipal" and grant.inputs["principalId"]
    assert grant in _after(res, "istio-eastwestgateway")
    without = [r for r in res.resources if r.urn != grant.urn]
    assert {f.rule for f in load_balancer_prerequisites(without)} == {"engine.lb-permission"}


# --------------------------------------------------------------------------- names, first preview
def test_logical_names_never_embed_the_stack_name(demo_preview):
    """`pulumi stack rename` keeps every URN name; the old stack-named root is an alias."""
    for name, res in demo_preview.items():
        offenders = [
            r.name for r in res.resources if name in r.name and r.type != "pulumi:pulumi:StackReference"
        ]
        assert offenders == [], (name, offenders[:3])
    assert [a.name for a in program.root_options("aws-us-east-1").aliases] == ["aws-us-east-1"]


@pytest.mark.parametrize("stack", ["aws-us-east-1", "azure-eastus", "gcp-europe-west4"])
def test_first_preview_with_every_new_output_unknown_builds_the_same_graph(project_root, demo_preview, stack):
    roots = {"mesh-root": demo_preview["mesh-root"]}
    first = run_stack(project_root, stack, roots, unknown_outputs=True)
    assert {(r.type, r.name) for r in first.resources} == {
        (r.type, r.name) for r in demo_preview[stack].resources
    }
    unknown = sum(json.dumps(r.inputs).count("(known after apply)") for r in first.resources)
    assert unknown > 0, "outputs of resources yet to be created must be unknown in this run"
    # the same warnings as a preview with every output known (e.g. the N-1 capacity report), no new ones
    assert first.messages == demo_preview[stack].messages and check_preview(first) == []
