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
    return copy.deepcopy(
        [
            {"type": r.type, "name": r.name, "custom": r.custom, "inputs": r.inputs, "urn": r.urn}
            for r in preview.resources
        ]
    )


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
    pa = _first(
        rows,
        lambda r: (
            r["type"].endswith(":PeerAuthentication")
            and r["inputs"]["metadata"]["namespace"] == "istio-system"
        ),
    )
    pa["inputs"]["spec"]["mtls"]["mode"] = "PERMISSIVE"


def _drop_require_jwt(rows: list[dict[str, Any]]) -> None:
    rows[:] = [
        r
        for r in rows
        if not (
            r["type"].endswith(":AuthorizationPolicy")
            and r["inputs"]["metadata"]["name"].endswith("require-jwt")
        )
    ]


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
        {"name": "HF_TOKEN", "value": "hf_plaintexttoken"}
    )


# --------------------------------------------------------------------------- issue 14: the old forms
def _imds_hop_two(rows: list[dict[str, Any]]) -> None:
    lt = _first(rows, lambda r: r["type"] == "aws:ec2/launchTemplate:LaunchTemplate")
    lt["inputs"]["metadataOptions"]["httpPutResponseHopLimit"] = 2


def _api_open(rows: list[dict[str, Any]]) -> None:
    _first(rows, lambda r: r["type"] == "aws:eks/cluster:Cluster")["inputs"]["vpcConfig"][
        "publicAccessCidrs"
    ] = ["0.0.0.0/0"]


def _query_on_served_name(rows: list[dict[str, Any]]) -> None:
    so = _first(
        rows,
        lambda r: r["type"].endswith(":ScaledObject") and r["inputs"]["metadata"]["name"] == "llama-3-70b",
    )
    for trig in (t for t in so["inputs"]["spec"]["triggers"] if t["type"] == "prometheus"):
        q = trig["metadata"]["query"]
        trig["metadata"]["query"] = q.replace(
            'fleetkit_model="llama-3-70b"', 'model_name="meta-llama/Llama-3.1-70B-Instruct"'
        )


def _virtual_service(r: dict[str, Any]) -> bool:
    return r["type"].endswith(":VirtualService")


def _client_cohort_header(rows: list[dict[str, Any]]) -> None:
    # the seed's form: any caller could send x-canary-cohort and join the canary
    http = _first(rows, _virtual_service)["inputs"]["spec"]["http"][0]
    http["match"][0]["headers"]["x-canary-cohort"] = {"exact": "beta"}


def _no_strip_filter(rows: list[dict[str, Any]]) -> None:
    # routing on the edge's tier header without the filter that strips client copies
    rows[:] = [
        r
        for r in rows
        if not (r["type"].endswith(":EnvoyFilter") and r["inputs"]["metadata"]["name"] == "fleetkit-edge")
    ]


def _per_try_cuts(rows: list[dict[str, Any]]) -> None:
    http = _first(rows, _virtual_service)["inputs"]["spec"]["http"][0]
    http["timeout"], http["retries"]["perTryTimeout"] = "900s", "450s"


def _lb_idle_default(rows: list[dict[str, Any]]) -> None:
    gw = _first(
        rows,
        lambda r: (
            r["type"] == "kubernetes:helm.sh/v3:Release"
            and str(r["inputs"].get("name", "")).endswith("ingress")
        ),
    )
    ann = gw["inputs"]["values"]["service"]["annotations"]
    for k in [k for k in ann if "listener-attributes" in k]:
        del ann[k]


@pytest.mark.parametrize(
    ("breakage", "policy"),
    [
        (_client_cohort_header, "serving-routes"),
        (_no_strip_filter, "serving-routes"),
        (_per_try_cuts, "serving-routes"),
        (_lb_idle_default, "lb-idle-timeout"),
        (_untaint, "gpu-pools-tainted"),
        (_drop_liveness, "model-probes"),
        (_drop_pdbs, "model-pdb"),
        (_permissive, "strict-mtls"),
        (_drop_require_jwt, "no-public-load-balancer"),
        (_weights_write, "weights-read-only"),
        (_plain_secret, "no-plain-secret-data"),
        (_plain_token_env, "no-plain-credentials"),
        (_imds_hop_two, "imds-hop-limit"),
        (_api_open, "api-endpoint-restricted"),
        (_query_on_served_name, "autoscaler-selects-one-deployment"),
    ],
)
def test_rules_bite_on_the_kit_output(demo_preview: dict[str, Any], breakage: Any, policy: str) -> None:
    rows = _rows(demo_preview["aws-us-east-1"])
    assert check_records(rows) == []
    breakage(rows)
    found = {v.policy for v in check_records(rows) if v.blocking}
    assert found == {policy}


def test_a_metrics_allow_rule_on_merged_metrics_pods_is_reported_dead(demo_preview: dict[str, Any]) -> None:
    rows = _rows(demo_preview["aws-us-east-1"])
    ap = _first(
        rows,
        lambda r: (
            r["type"].endswith(":AuthorizationPolicy")
            and r["inputs"]["metadata"]["name"] == "allow-model-callers"
        ),
    )
    ap["inputs"]["spec"]["rules"].append(
        {
            "from": [{"source": {"namespaces": ["monitoring"]}}],
            "to": [{"operation": {"methods": ["GET"], "paths": ["/metrics"]}}],
        }
    )
    found = [v for v in check_records(rows) if v.policy == "no-dead-metrics-rule"]
    assert len(found) == 1 and not found[0].blocking and ":15020" in found[0].message


# --------------------------------------------------------------------------- issue 14: old traffic forms
def _routes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return _first(rows, lambda r: r["type"].endswith(":VirtualService"))["inputs"]["spec"]["http"]


def _dr(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return _first(
        rows, lambda r: r["type"].endswith(":DestinationRule") and r["inputs"]["metadata"]["name"] == name
    )["inputs"]["spec"]


def _old_gpu_split(rows: list[dict[str, Any]]) -> None:
    """The 8B default route split 300/100/200 over a100-80gb (Azure only), a10g (min 0) and l4."""
    host = "llama-3-8b.llm.svc.cluster.local"
    dr = _dr(rows, "llama-3-8b")
    for g in ("a100-80gb", "a10g", "l4"):
        dr.setdefault("subsets", []).append({"name": g, "labels": {"fleetkit.dev/gpu-class": g}})
    route = next(r for r in _routes(rows) if r["name"].startswith("default"))
    route["route"] = [
        {"destination": {"host": host, "port": {"number": 8000}, "subset": g}, "weight": w}
        for g, w in (("a100-80gb", 300), ("a10g", 100), ("l4", 200))
    ]


def _remote_mirror(rows: list[dict[str, Any]]) -> None:
    """5% of every cluster's 70B traffic mirrored to v2, which runs only in us-east-1."""
    _dr(rows, "llama-3-70b").setdefault("subsets", []).append({"name": "v2", "labels": {"version": "v2"}})
    route = next(r for r in _routes(rows) if r["name"].startswith("llama-70b-"))
    route["mirror"] = {"host": "llama-3-70b.llm.svc.cluster.local", "port": {"number": 8000}, "subset": "v2"}
    route["mirrorPercentage"] = {"value": 5}


def _custom_failover_label(rows: list[dict[str, Any]]) -> None:
    """The first fallback design: a custom pod label first in failoverPriority."""
    lb = _dr(rows, "llama-3-8b")["trafficPolicy"]["loadBalancer"]["localityLbSetting"]
    lb["failoverPriority"].insert(0, "fallback.fleetkit.dev/llama-3-70b-p1=1")


@pytest.mark.parametrize(
    ("breakage", "policy"),
    [
        (_old_gpu_split, "weighted-subsets-have-endpoints"),
        (_remote_mirror, "mirror-target-local"),
        (_custom_failover_label, "failover-priority-topology-only"),
    ],
)
def test_traffic_rules_bite_on_the_old_forms(
    demo_preview: dict[str, Any], breakage: Any, policy: str
) -> None:
    rows = _rows(demo_preview["aws-us-west-2"])
    assert check_records(rows) == []
    breakage(rows)
    found = {v.policy for v in check_records(rows) if v.blocking}
    assert found == {policy}


def test_the_weighted_rule_names_only_the_subsets_without_local_replicas(
    demo_preview: dict[str, Any],
) -> None:
    rows = _rows(demo_preview["aws-us-west-2"])
    _old_gpu_split(rows)
    messages = [v.message for v in check_records(rows) if v.policy == "weighted-subsets-have-endpoints"]
    named = {g for m in messages for g in ("a100-80gb", "a10g", "l4") if f"subset {g} " in m}
    assert named == {"a100-80gb", "a10g"}  # l4 runs here with replicas.min 1


def _no_cluster_autoscaler(rows: list[dict[str, Any]]) -> None:
    """The old EKS stacks: autoscaler tags on the ASGs, but nothing that reads them."""
    rows[:] = [r for r in rows if "cluster-autoscaler" not in json.dumps(r["inputs"].get("metadata", {}))]


def _hpa_on_custom_metric(rows: list[dict[str, Any]]) -> None:
    """The old Azure form: an HPA on the Pods metric vllm_num_requests_waiting, no adapter installed."""
    rows.append(
        {
            "type": "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
            "name": "hpa",
            "custom": True,
            "urn": "",
            "inputs": {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "llama-3-8b", "namespace": "llm"},
                "spec": {
                    "scaleTargetRef": {"kind": "Deployment", "name": "llama-3-8b"},
                    "minReplicas": 1,
                    "maxReplicas": 4,
                    "metrics": [{"type": "Pods", "pods": {"metric": {"name": "vllm_num_requests_waiting"}}}],
                },
            },
        }
    )


@pytest.mark.parametrize(
    ("breakage", "policy"),
    [
        (_no_cluster_autoscaler, "node-autoscaler-present"),
        (_hpa_on_custom_metric, "hpa-custom-metric-needs-adapter"),
    ],
)
def test_advisory_rules_warn_on_the_old_forms(
    demo_preview: dict[str, Any], breakage: Any, policy: str
) -> None:
    rows = _rows(demo_preview["aws-us-east-1"])
    assert check_records(rows) == []
    breakage(rows)
    found = [v for v in check_records(rows) if v.policy == policy]
    assert found and not any(v.blocking for v in found)
