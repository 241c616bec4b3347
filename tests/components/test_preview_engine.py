"""The offline preview engine on a tiny program: recording, secrets, StackReferences, unknown invokes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from fleetkit.errors import SpecError
from fleetkit.output import stack_files, write_tree
from fleetkit.preview import SECRET, run_stack

PROGRAM = textwrap.dedent(
    """
    import pulumi, pulumi_kubernetes as k8s
    from components.policy_manifests import PolicyManifests, PolicyManifestsArgs

    cfg = pulumi.Config("fleetkit")
    provider = k8s.Provider("k8s", kubeconfig=pulumi.Output.secret("apiVersion: v1\\nkind: Config"))
    manifests = [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "llm"},
         "stringData": {"token": pulumi.Output.secret("s3cr3t-value")}},
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
         "metadata": {"name": "m", "namespace": "llm"},
         "spec": {"host": "m.llm.svc.cluster.local", "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 10}}}}},
    ]
    ps = PolicyManifests("pol", PolicyManifestsArgs(manifests=manifests), pulumi.ResourceOptions(provider=provider))
    peer = pulumi.StackReference(cfg.get("peer") or "org/fleetkit/none")
    pulumi.export("objects", ps.object_count)
    pulumi.export("peerEndpoint", peer.get_output("endpoint"))
    pulumi.export("token", pulumi.Output.secret("t0k3n"))
    pulumi.export("endpoint", "https://" + pulumi.get_stack() + ".example")
    if cfg.get_bool("callUnknown"):
        pulumi.runtime.invoke("madeup:index:getThing", {})
    """
)


def _project(tmp_path: Path, extra: str = "") -> Path:
    root = tmp_path / "p"
    (root / "stacks").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text("name: fleetkit\nruntime: python\n")
    (root / "__main__.py").write_text(PROGRAM)
    (root / "stacks" / "Pulumi.a.yaml").write_text("config:\n  fleetkit:peer: org/fleetkit/b\n" + extra)
    (root / "stacks" / "Pulumi.b.yaml").write_text("config:\n  fleetkit:peer: a\n")
    return root


def test_records_resources_parents_providers_and_redacts_secrets(tmp_path):
    root = _project(tmp_path)
    res = run_stack(root, "a")
    by_name = {r.name: r for r in res.resources}
    secret = by_name["pol-secret-llm-creds"]
    assert secret.type == "kubernetes:core/v1:Secret"
    assert secret.inputs["stringData"] == {"token": SECRET}  # keys stay visible, values never
    rows = {r["name"]: r for r in res.resources_json()}
    assert rows["pol-destinationrule-llm-m"]["parent"] == "fleetkit:components:PolicySet::pol"
    assert rows["pol-destinationrule-llm-m"]["provider"] == "pulumi:providers:kubernetes::k8s"
    assert rows["k8s"]["inputs"]["kubeconfig"] == SECRET
    assert res.public_outputs()["token"] == SECRET
    assert res.outputs["objects"] == 2
    text = json.dumps(res.resources_json()) + json.dumps(res.public_outputs())
    assert "s3cr3t-value" not in text and "t0k3n" not in text


def test_stack_references_resolve_from_previewed_peers(tmp_path):
    root = _project(tmp_path)
    b = run_stack(root, "b")
    a = run_stack(root, "a", peers={"b": b})
    assert a.outputs["peerEndpoint"] == "https://b.example"
    assert a.missing_refs == set()
    lonely = run_stack(root, "a")
    assert lonely.missing_refs == {"b"} and lonely.outputs["peerEndpoint"] is None


def test_unknown_provider_function_is_an_error(tmp_path):
    root = _project(tmp_path, "  fleetkit:callUnknown: true\n")
    with pytest.raises(Exception, match="no mock for provider function 'madeup:index:getThing'"):
        run_stack(root, "a")


def test_output_is_deterministic_and_written_atomically(tmp_path):
    root = _project(tmp_path)
    out = tmp_path / "out"
    first = stack_files(run_stack(root, "b"))
    write_tree(out, first)
    snapshot = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    write_tree(out, stack_files(run_stack(root, "b")))
    again = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert snapshot == again
    assert Path("b/manifests/networking.istio.io_destinationrule.yaml") in snapshot
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_spec_errors_from_the_program_are_spec_errors(tmp_path):
    root = _project(tmp_path)
    (root / "__main__.py").write_text("import pulumi\nraise pulumi.RunError('bad things')\n")
    with pytest.raises(SpecError, match="bad things"):
        run_stack(root, "a")
