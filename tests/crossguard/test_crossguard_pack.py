"""The CrossGuard pack: it builds a real PolicyPack, and the SDK's analyzer runs our rules through it.

The analyzer's gRPC server is replaced by a stand-in so nothing listens on a port; requests are
handed to the SDK's servicer directly, as the engine would send them.
"""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime.rpc import wrap_rpc_secret

from policies.crossguard import rules

PACK_DIR = Path(__file__).resolve().parents[2] / "policies" / "crossguard"


def test_policies_package_never_imports_pulumi() -> None:
    code = (
        "import sys, policies, policies.crossguard, policies.crossguard.rules; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'pulumi_policy')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACK_DIR.parents[1])


def test_rules_module_is_standard_library_only() -> None:
    # the pack's own virtualenv has only pulumi-policy: the rule modules must load on their own, outside
    # the kit, the way __main__._load_rules loads them (this directory as a package, the checkout on the
    # path for the one kit module they use, fleetkit.issue — itself standard library only)
    code = (
        "import importlib, importlib.util, sys; "
        f"sys.path.append({str(PACK_DIR.parents[1])!r}); "
        "spec = importlib.util.spec_from_file_location("
        f"'fleetkit_guardrails', {str(PACK_DIR / '__init__.py')!r}, submodule_search_locations=[{str(PACK_DIR)!r}]); "
        "p = importlib.util.module_from_spec(spec); sys.modules[spec.name] = p; spec.loader.exec_module(p); "
        "m = importlib.import_module('fleetkit_guardrails.rules'); "
        f"assert len(m.RULES) == {len(rules.RULES)}; "
        "kit = sorted(x for x in sys.modules if x.split('.')[0] in ('policies', 'fleetkit', 'pydantic', 'yaml')); "
        "assert kit == ['fleetkit', 'fleetkit.issue'], kit"
    )
    subprocess.run([sys.executable, "-I", "-c", code], check=True, cwd="/")


def test_pack_files() -> None:
    import yaml

    meta = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text())
    assert meta["runtime"]["name"] == "python" and meta["description"]
    reqs = (PACK_DIR / "requirements.txt").read_text()
    assert "pulumi-policy" in reqs


@pytest.fixture()
def pack_module() -> Any:
    pytest.importorskip("pulumi_policy")
    return importlib.import_module("policies.crossguard.__main__")


@pytest.fixture()
def servicer(pack_module: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Construct the real PolicyPack with a stand-in gRPC server; return the SDK's analyzer servicer."""
    import pulumi_policy.policy as sdk

    captured: dict[str, Any] = {}

    class _Server:
        def add_insecure_port(self, address: str) -> int:
            return 0

        def start(self) -> None:
            pass

        def stop(self, grace: Any) -> None:
            captured["stopped"] = True

    def _serve_once(_seconds: float) -> None:
        raise KeyboardInterrupt  # PolicyPack's serve loop ends on Ctrl-C

    class _Stdout:
        buffer = io.BytesIO()

        def write(self, _s: str) -> None:
            pass

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sdk.grpc, "server", lambda *a, **k: _Server())
    monkeypatch.setattr(
        sdk.analyzer_pb2_grpc,
        "add_AnalyzerServicer_to_server",
        lambda s, _server: captured.setdefault("servicer", s),
    )
    monkeypatch.setattr(sdk.time, "sleep", _serve_once)
    monkeypatch.setattr(sdk, "deserialize_properties", sdk.deserialize_properties)  # restored after the test
    assert pack_module.mark_secrets_in_analysis() is True
    with monkeypatch.context() as m:
        m.setattr(sys, "stdout", _Stdout())  # the pack announces its port on stdout
        sdk.PolicyPack(**pack_module.pack_arguments())
    assert captured.get("stopped")
    return captured["servicer"]


def _struct(props: dict[str, Any]) -> Any:
    from google.protobuf import json_format, struct_pb2

    s = struct_pb2.Struct()
    json_format.ParseDict(props, s)
    return s


def test_pack_arguments(pack_module: Any) -> None:
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

    args = pack_module.pack_arguments()
    assert args["name"] == "fleetkit-guardrails"
    assert args["enforcement_level"] is EnforcementLevel.MANDATORY
    by_name = {p.name: p for p in args["policies"]}
    assert list(by_name) == [r.name for r in rules.RULES]
    for r in rules.RULES:
        p = by_name[r.name]
        kind = ResourceValidationPolicy if r.scope == "resource" else StackValidationPolicy
        assert (
            isinstance(p, kind)
            and p.enforcement_level.value == r.enforcement
            and p.severity.value == r.severity
        )


def test_analyzer_info_lists_every_policy(servicer: Any) -> None:
    info = servicer.GetAnalyzerInfo(None, None)
    assert info.name == "fleetkit-guardrails"
    assert [p.name for p in info.policies] == [r.name for r in rules.RULES]


def test_resource_validation_through_the_sdk(servicer: Any) -> None:
    from pulumi.runtime.proto import analyzer_pb2

    props = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "hf", "namespace": "llm"},
        "stringData": {"plain": "hf_abc", "wrapped": wrap_rpc_secret("hf_def")},
    }
    resp = servicer.Analyze(
        analyzer_pb2.AnalyzeRequest(
            type="kubernetes:core/v1:Secret",
            properties=_struct(props),
            urn="urn:pulumi:s::p::kubernetes:core/v1:Secret::hf",
            name="hf",
        ),
        None,
    )
    [diag] = resp.diagnostics
    assert diag.policyName == "no-plain-secret-data"
    # the Pulumi secret is seen as a secret: only the plain key is reported
    assert "keys plain " in diag.message and "wrapped" not in diag.message


def test_unknown_values_do_not_break_validation(servicer: Any) -> None:
    from pulumi.runtime.proto import analyzer_pb2
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

    props = {
        "amiType": "AL2023_x86_64_NVIDIA",
        "instanceTypes": ["g6.12xlarge"],
        "taints": UNKNOWN_STRING_VALUE,
    }
    resp = servicer.Analyze(
        analyzer_pb2.AnalyzeRequest(
            type="aws:eks/nodeGroup:NodeGroup", properties=_struct(props), urn="urn:x", name="gpu"
        ),
        None,
    )
    assert list(resp.diagnostics) == []
    props["taints"] = []
    resp = servicer.Analyze(
        analyzer_pb2.AnalyzeRequest(
            type="aws:eks/nodeGroup:NodeGroup", properties=_struct(props), urn="urn:x", name="gpu"
        ),
        None,
    )
    assert [d.policyName for d in resp.diagnostics] == ["gpu-pools-tainted"]


def test_stack_validation_through_the_sdk(servicer: Any) -> None:
    from pulumi.runtime.proto import analyzer_pb2

    def res(typ: str, name: str, props: dict[str, Any]) -> Any:
        return analyzer_pb2.AnalyzerResource(
            type=typ, name=name, urn=f"urn:pulumi:s::p::{typ}::{name}", properties=_struct(props)
        )

    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "ingress", "namespace": "istio-system"},
        "spec": {"type": "LoadBalancer", "selector": {"istio": "ingress"}},
    }
    pa = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "istio-system"},
        "spec": {"mtls": {"mode": "PERMISSIVE"}},
    }
    resp = servicer.AnalyzeStack(
        analyzer_pb2.AnalyzeStackRequest(
            resources=[
                res("kubernetes:core/v1:Service", "ingress", svc),
                res("kubernetes:security.istio.io/v1:PeerAuthentication", "pa", pa),
            ]
        ),
        None,
    )
    by_policy = {d.policyName: d for d in resp.diagnostics}
    assert set(by_policy) == {"strict-mtls", "no-public-load-balancer"}
    assert by_policy["no-public-load-balancer"].urn.endswith("::ingress")
