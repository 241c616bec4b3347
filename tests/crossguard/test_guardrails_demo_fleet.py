"""The guardrails on the demo fleet's offline preview: nothing blocks, and the rules do see real resources.

The second half breaks one recorded resource at a time (as a bad change to the kit would) and checks
that the matching rule reports it, so a clean result is not a vacuous one.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from fleetkit.guardrails import blocking, check_records, check_stack, to_records
from policies.crossguard import rules


def test_demo_fleet_has_no_blocking_verdict(demo_preview: dict[str, Any]) -> None:
    for name, preview in demo_preview.items():
        verdicts = check_stack(preview)
        assert blocking(verdicts) == [], f"{name}: {[v.message for v in verdicts]}"


def test_preview_writes_guardrails_json(demo_preview: dict[str, Any]) -> None:
    from fleetkit.guardrails import preview_section

    section = preview_section(demo_preview["aws-us-east-1"])
    assert json.loads(section.files["guardrails.json"]) == [] and not section.failed


def _rows(preview: Any) -> list[dict[str, Any]]:
    return copy.deepcopy([{"type": r.type, "name": r.name, "custom": r.custom, "inputs": r.inputs, "urn": r.urn}
                          for r in preview.resources])


def _first(rows: list[dict[str, Any]], pred: Any) -> dict[str, Any]:
    found = [r for r in rows if pred(r)]
    assert found, "the demo preview has no such resource"
    return found[0]


def _gpu_nodegroup(r: dict[str, Any]) -> bool:
    return r["type"] == "aws:eks/nodeGroup:NodeGroup" and "NVIDIA" in str(r["inputs"].get("amiType"))


def _model_deployment(r: dict[str, Any]) -> bool:
    return bool(r["custom"]) and rules.is_model_deployment(to_records([r])[0])


def _untaint(rows: list[dict[str, Any]]) -> None:
    _first(rows, _gpu_nodegroup)["inputs"]["taints"] = []


def _drop_liveness(rows: list[dict[str, Any]]) -> None:
    dep = _first(rows, _model_deployment)
    for c in dep["inputs"]["spec"]["template"]["spec"]["containers"]:
        c.pop("livenessProbe", None)


def _drop_pdbs(rows: list[dict[str, Any]]) -> None:
    rows[:] = [r for r in rows if not r["type"].endswith(":PodDisruptionBudget")]


def _permissive(rows: list[dict[str, Any]]) -> None:
    pa = _first(rows, lambda r: r["type"].endswith(":PeerAuthentication")
                and r["inputs"]["metadata"]["namespace"] == "istio-system")
    pa["inputs"]["spec"]["mtls"]["mode"] = "PERMISSIVE"


def _drop_require_jwt(rows: list[dict[str, Any]]) -> None:
    rows[:] = [r for r in rows if not (r["type"].endswith(":AuthorizationPolicy")
                                       and r["inputs"]["metadata"]["name"].endswith("require-jwt"))]


def _weights_write(rows: list[dict[str, Any]]) -> None:
    pol = _first(rows, lambda r: r["type"] == "aws:iam/rolePolicy:RolePolicy" and "weights" in r["name"])
    doc = json.loads(pol["inputs"]["policy"])
    doc["Statement"][0]["Action"] = ["s3:GetObject", "s3:PutObject"]
    pol["inputs"]["policy"] = json.dumps(doc)


def _plain_secret(rows: list[dict[str, Any]]) -> None:
    sec = _first(rows, lambda r: r["type"] == "kubernetes:core/v1:Secret" and r["inputs"].get("stringData"))
    sec["inputs"]["stringData"] = {"ca-key.pem": "plain text"}


def _plain_token_env(rows: list[dict[str, Any]]) -> None:
    dep = _first(rows, _model_deployment)
    dep["inputs"]["spec"]["template"]["spec"]["containers"][0].setdefault("env", []).append(
        {"name": "HF_TOKEN", "value": "hf_plaintexttoken"})


@pytest.mark.parametrize(("breakage", "policy"), [
    (_untaint, "gpu-pools-tainted"),
    (_drop_liveness, "model-probes"),
    (_drop_pdbs, "model-pdb"),
    (_permissive, "strict-mtls"),
    (_drop_require_jwt, "no-public-load-balancer"),
    (_weights_write, "weights-read-only"),
    (_plain_secret, "no-plain-secret-data"),
    (_plain_token_env, "no-plain-credentials"),
])
def test_rules_bite_on_the_kit_output(demo_preview: dict[str, Any], breakage: Any, policy: str) -> None:
    rows = _rows(demo_preview["aws-us-east-1"])
    assert check_records(rows) == []
    breakage(rows)
    found = {v.policy for v in check_records(rows) if v.blocking}
    assert found == {policy}
