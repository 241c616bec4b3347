"""Every guardrail of policies/crossguard/rules.py: a failing and a passing case on hand-built records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policies.crossguard import rules
from policies.crossguard.rules import RULES, SECRET, UNKNOWN, Resource
from tests.crossguard.fleet_cases import FLEET_CASES

NS = "llm"


# --------------------------------------------------------------------------- builders
def k8s(
    type_: str,
    kind: str,
    name: str,
    namespace: str | None = NS,
    annotations: dict[str, str] | None = None,
    **body: Any,
) -> Resource:
    api = type_.split(":")[1]
    md: dict[str, Any] = {"name": name}
    if namespace:
        md["namespace"] = namespace
    if annotations:
        md["annotations"] = annotations
    return Resource(
        type_,
        name,
        {"apiVersion": api.removeprefix("core/"), "kind": kind, "metadata": md, **body},
        urn=f"urn:pulumi:s::p::{type_}::{name}",
    )


def node_group(
    ami: str = "AL2023_x86_64_NVIDIA",
    types: tuple[str, ...] = ("g6.12xlarge",),
    taints: list[dict[str, str]] | None = None,
) -> Resource:
    return Resource(
        "aws:eks/nodeGroup:NodeGroup",
        "use1-l4",
        {"amiType": ami, "instanceTypes": list(types), "taints": taints or []},
    )


GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}


def gke_pool(machine: str = "g2-standard-48", taints: list[dict[str, str]] | None = None) -> Resource:
    return Resource(
        "gcp:container/nodePool:NodePool",
        "euw4-l4",
        {"nodeConfig": {"machineType": machine, "taints": taints or []}},
    )


def aks_pool(vm: str = "Standard_NC24ads_A100_v4", taints: list[str] | None = None) -> Resource:
    return Resource(
        "azure-native:containerservice:AgentPool", "eastus-a100", {"vmSize": vm, "nodeTaints": taints or []}
    )


def peer_auth(
    mode: str, namespace: str = "istio-system", port_level: dict[str, Any] | None = None
) -> Resource:
    spec: dict[str, Any] = {"mtls": {"mode": mode}}
    if port_level:
        spec["portLevelMtls"] = port_level
    return k8s(
        "kubernetes:security.istio.io/v1:PeerAuthentication",
        "PeerAuthentication",
        "default",
        namespace,
        spec=spec,
    )


def lb_service(
    name: str = "fleetkit-ingress",
    selector: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> Resource:
    return k8s(
        "kubernetes:core/v1:Service",
        "Service",
        name,
        "istio-system",
        annotations,
        spec={
            "type": "LoadBalancer",
            "selector": selector or {"istio": "fleetkit-ingress"},
            "ports": [{"port": 443}],
        },
    )


def request_auth(selector: dict[str, str] | None = None) -> Resource:
    return k8s(
        "kubernetes:security.istio.io/v1:RequestAuthentication",
        "RequestAuthentication",
        "ingress-jwt",
        "istio-system",
        spec={
            "selector": {"matchLabels": selector or {"istio": "fleetkit-ingress"}},
            "jwtRules": [{"issuer": "https://auth.example.com/"}],
        },
    )


def require_jwt(selector: dict[str, str] | None = None) -> Resource:
    return k8s(
        "kubernetes:security.istio.io/v1:AuthorizationPolicy",
        "AuthorizationPolicy",
        "ingress-require-jwt",
        "istio-system",
        spec={
            "selector": {"matchLabels": selector or {"istio": "fleetkit-ingress"}},
            "action": "ALLOW",
            "rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}],
        },
    )


def east_west_release(gateway_tls: str = "AUTO_PASSTHROUGH") -> list[Resource]:
    release = Resource(
        "kubernetes:helm.sh/v3:Release",
        "istio-eastwestgateway",
        {
            "chart": "gateway",
            "name": "istio-eastwestgateway",
            "namespace": "istio-system",
            "values": {
                "labels": {"istio": "eastwestgateway", "topology.istio.io/network": "net-aws-use1"},
                "service": {"ports": [{"name": "tls", "port": 15443}]},
            },
        },
    )
    gw = k8s(
        "kubernetes:networking.istio.io/v1:Gateway",
        "Gateway",
        "cross-network-gateway",
        "istio-system",
        spec={
            "selector": {"istio": "eastwestgateway"},
            "servers": [
                {
                    "port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                    "tls": {"mode": gateway_tls},
                    "hosts": ["*.local"],
                }
            ],
        },
    )
    return [release, gw]


def role(name: str, principal: str = "web-identity") -> Resource:
    trust = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Principal": {"Federated": "arn:aws:iam::1:oidc-provider/x"},
            }
        ]
    }
    if principal != "web-identity":
        trust = {
            "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": principal}}
            ]
        }
    return Resource("aws:iam/role:Role", name, {"name": name, "assumeRolePolicy": json.dumps(trust)})


def role_policy(role_name: str, actions: list[str], resources: list[str] | None = None) -> Resource:
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": actions, "Resource": resources or ["arn:aws:s3:::weights/models/*"]}
        ],
    }
    return Resource(
        "aws:iam/rolePolicy:RolePolicy",
        f"{role_name}-weights",
        {"role": role_name, "policy": json.dumps(doc)},
    )


def model_deployment(
    probes: tuple[str, ...] = ("startupProbe", "readinessProbe", "livenessProbe"),
    env: list[dict[str, Any]] | None = None,
    args: list[str] | None = None,
    namespace: str = NS,
) -> Resource:
    container: dict[str, Any] = {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.11.0",
        "resources": {"limits": {"nvidia.com/gpu": 4}},
        "env": env or [],
        "args": args or [],
    }
    for p in probes:
        container[p] = {"httpGet": {"path": "/health", "port": 8000}}
    labels = {"app": "llama-3-8b", "version": "v1", "fleetkit.dev/model": "llama-3-8b"}
    return k8s(
        "kubernetes:apps/v1:Deployment",
        "Deployment",
        "llama-3-8b",
        namespace,
        spec={
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    )


def pdb(namespace: str = NS, selector: dict[str, str] | None = None) -> Resource:
    return k8s(
        "kubernetes:policy/v1:PodDisruptionBudget",
        "PodDisruptionBudget",
        "llama-3-8b",
        namespace,
        spec={
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector or {"fleetkit.dev/model": "llama-3-8b"}},
        },
    )


def secret(**data: Any) -> Resource:
    return k8s("kubernetes:core/v1:Secret", "Secret", "hf-token", NS, **data)


def helm(values: dict[str, Any], chart: str = "keda") -> Resource:
    return Resource(
        "kubernetes:helm.sh/v3:Release", chart, {"chart": chart, "namespace": "keda", "values": values}
    )


ISTIO_BASE = [peer_auth("STRICT")]


# --------------------------------------------------------------------------- the cases
# (rule, case id, resources, should the rule report a violation?)
def vs(headers: dict[str, Any], timeout: str = "900s", per_try: str | None = None) -> Resource:
    retries: dict[str, Any] = {"attempts": 1, "retryOn": "connect-failure"}
    if per_try:
        retries["perTryTimeout"] = per_try
    return k8s(
        "kubernetes:networking.istio.io/v1:VirtualService",
        "VirtualService",
        "routes",
        spec={
            "http": [
                {
                    "name": "r",
                    "match": [{"headers": headers}],
                    "route": [{"destination": {"host": "m"}}],
                    "timeout": timeout,
                    "retries": retries,
                }
            ]
        },
    )


def strip_filter(*headers: str) -> Resource:
    code = (
        "function envoy_on_request(h)\n"
        + "".join(f'  h:headers():remove("{x}")\n' for x in headers)
        + "end\n"
    )
    return k8s(
        "kubernetes:networking.istio.io/v1alpha3:EnvoyFilter",
        "EnvoyFilter",
        "edge",
        "istio-system",
        spec={
            "configPatches": [
                {
                    "applyTo": "HTTP_FILTER",
                    "patch": {
                        "operation": "INSERT_FIRST",
                        "value": {
                            "name": "strip",
                            "typed_config": {"default_source_code": {"inline_string": code}},
                        },
                    },
                }
            ]
        },
    )


AWS_LB = {"service.beta.kubernetes.io/aws-load-balancer-type": "external"}
AWS_IDLE = "service.beta.kubernetes.io/aws-load-balancer-listener-attributes.TCP-443"
AZURE_IDLE = "service.beta.kubernetes.io/azure-load-balancer-tcp-idle-timeout"
AZURE_LB = {"service.beta.kubernetes.io/azure-load-balancer-ipv4": "203.0.113.5"}

CASES: list[tuple[str, str, list[Resource], bool]] = [
    ("serving-routes", "client-cohort-header", [vs({"x-canary-cohort": {"exact": "beta"}})], True),
    ("serving-routes", "tier-header-without-strip", [vs({"x-fleetkit-tier": {"exact": "premium"}})], True),
    (
        "serving-routes",
        "tier-header-stripped",
        [vs({"x-fleetkit-tier": {"exact": "premium"}}), strip_filter("x-fleetkit-tier")],
        False,
    ),
    ("serving-routes", "per-try-cuts-generation", [vs({"x-team": {"exact": "a"}}, "900s", "450s")], True),
    ("serving-routes", "per-try-equals-timeout", [vs({"x-team": {"exact": "a"}}, "900s", "900s")], False),
    ("lb-idle-timeout", "aws-default-350s", [vs({}), lb_service(annotations=AWS_LB)], True),
    (
        "lb-idle-timeout",
        "aws-raised",
        [vs({}), lb_service(annotations={**AWS_LB, AWS_IDLE: "tcp.idle_timeout.seconds=900"})],
        False,
    ),
    ("lb-idle-timeout", "azure-default-4min", [vs({}), lb_service(annotations=AZURE_LB)], True),
    (
        "lb-idle-timeout",
        "azure-raised",
        [vs({}), lb_service(annotations={**AZURE_LB, AZURE_IDLE: "15"})],
        False,
    ),
    (
        "lb-idle-timeout",
        "gcp-no-proxy-timeout",
        [vs({}), lb_service(annotations={"cloud.google.com/l4-rbs": "enabled"})],
        False,
    ),
    ("gpu-pools-tainted", "eks-untainted", [node_group()], True),
    (
        "gpu-pools-tainted",
        "eks-soft-taint-only",
        [node_group(taints=[{**GPU_TAINT, "effect": "PREFER_NO_SCHEDULE"}])],
        True,
    ),
    (
        "gpu-pools-tainted",
        "eks-gpu-by-instance-type",
        [node_group(ami="AL2023_x86_64_STANDARD", types=("p5.48xlarge",))],
        True,
    ),
    ("gpu-pools-tainted", "eks-tainted", [node_group(taints=[GPU_TAINT])], False),
    (
        "gpu-pools-tainted",
        "eks-cpu-pool",
        [node_group(ami="AL2023_x86_64_STANDARD", types=("m6i.xlarge",))],
        False,
    ),
    (
        "gpu-pools-tainted",
        "eks-taints-unknown",
        [
            Resource(
                "aws:eks/nodeGroup:NodeGroup", "x", {"amiType": "AL2023_x86_64_NVIDIA", "taints": UNKNOWN}
            )
        ],
        False,
    ),
    ("gpu-pools-tainted", "gke-untainted", [gke_pool()], True),
    ("gpu-pools-tainted", "gke-tainted", [gke_pool(taints=[GPU_TAINT])], False),
    ("gpu-pools-tainted", "gke-cpu", [gke_pool(machine="e2-standard-4")], False),
    ("gpu-pools-tainted", "aks-untainted", [aks_pool()], True),
    ("gpu-pools-tainted", "aks-tainted", [aks_pool(taints=["nvidia.com/gpu=present:NoSchedule"])], False),
    (
        "gpu-pools-tainted",
        "aks-inline-pool-untainted",
        [
            Resource(
                "azure-native:containerservice:ManagedCluster",
                "aks",
                {
                    "agentPoolProfiles": [
                        {"name": "system", "vmSize": "Standard_D4ds_v5"},
                        {"name": "gpu", "vmSize": "Standard_NC24ads_A100_v4"},
                    ]
                },
            )
        ],
        True,
    ),
    ("strict-mtls", "strict-mesh-wide", [*ISTIO_BASE, peer_auth("STRICT", NS)], False),
    (
        "strict-mtls",
        "no-peer-authentication",
        [k8s("kubernetes:networking.istio.io/v1:Gateway", "Gateway", "g", "istio-system", spec={})],
        True,
    ),
    ("strict-mtls", "strict-only-in-namespace", [peer_auth("STRICT", NS)], True),
    ("strict-mtls", "permissive-namespace", [*ISTIO_BASE, peer_auth("PERMISSIVE", NS)], True),
    (
        "strict-mtls",
        "port-level-disable",
        [*ISTIO_BASE, peer_auth("STRICT", NS, {"8000": {"mode": "DISABLE"}})],
        True,
    ),
    ("strict-mtls", "no-mesh-in-stack", [node_group(taints=[GPU_TAINT])], False),
    ("no-public-load-balancer", "public-service", [lb_service()], True),
    (
        "no-public-load-balancer",
        "internal-aws",
        [lb_service(annotations={"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"})],
        False,
    ),
    (
        "no-public-load-balancer",
        "internal-gke",
        [lb_service(annotations={"networking.gke.io/load-balancer-type": "Internal"})],
        False,
    ),
    (
        "no-public-load-balancer",
        "internal-azure",
        [lb_service(annotations={"service.beta.kubernetes.io/azure-load-balancer-internal": "true"})],
        False,
    ),
    ("no-public-load-balancer", "jwt-required", [lb_service(), request_auth(), require_jwt()], False),
    ("no-public-load-balancer", "jwt-optional", [lb_service(), request_auth()], True),
    (
        "no-public-load-balancer",
        "jwt-for-another-gateway",
        [lb_service(), request_auth({"istio": "other"}), require_jwt({"istio": "other"})],
        True,
    ),
    ("no-public-load-balancer", "east-west-auto-passthrough", east_west_release(), False),
    ("no-public-load-balancer", "east-west-with-simple-tls", east_west_release("SIMPLE"), True),
    (
        "no-public-load-balancer",
        "helm-gateway-default-lb",
        [helm({"labels": {"istio": "ingress"}}, chart="gateway")],
        True,
    ),
    (
        "no-public-load-balancer",
        "cluster-ip",
        [k8s("kubernetes:core/v1:Service", "Service", "x", spec={"type": "ClusterIP"})],
        False,
    ),
    (
        "weights-read-only",
        "irsa-read-only",
        [role("vllm"), role_policy("vllm", ["s3:GetObject", "s3:ListBucket"])],
        False,
    ),
    (
        "weights-read-only",
        "irsa-put-object",
        [role("vllm"), role_policy("vllm", ["s3:GetObject", "s3:PutObject"])],
        True,
    ),
    ("weights-read-only", "irsa-s3-star", [role("vllm"), role_policy("vllm", ["s3:*"])], True),
    (
        "weights-read-only",
        "irsa-unscoped",
        [role("vllm"), role_policy("vllm", ["s3:GetObject"], ["*"])],
        True,
    ),
    (
        "weights-read-only",
        "node-role-write",
        [role("nodes", "ec2.amazonaws.com"), role_policy("nodes", ["s3:PutObject"])],
        True,
    ),
    (
        "weights-read-only",
        "managed-full-access",
        [
            role("vllm"),
            Resource(
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                "vllm-s3",
                {"role": "vllm", "policyArn": "arn:aws:iam::aws:policy/AmazonS3FullAccess"},
            ),
        ],
        True,
    ),
    (
        "weights-read-only",
        "customer-policy-by-arn",
        [
            role("vllm"),
            Resource(
                "aws:iam/policy:Policy",
                "weights-rw",
                {
                    "name": "weights-rw",
                    "policy": json.dumps(
                        {
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Action": "s3:DeleteObject",
                                    "Resource": "arn:aws:s3:::w/*",
                                }
                            ]
                        }
                    ),
                },
            ),
            Resource(
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                "a",
                {"role": "vllm", "policyArn": "arn:aws:iam::123456789012:policy/weights-rw"},
            ),
        ],
        True,
    ),
    (
        "weights-read-only",
        "control-plane-role-not-a-workload",
        [role("eks", "eks.amazonaws.com"), role_policy("eks", ["s3:*"])],
        False,
    ),
    ("model-probes", "all-probes", [model_deployment()], False),
    ("model-probes", "no-liveness", [model_deployment(probes=("startupProbe", "readinessProbe"))], True),
    ("model-probes", "no-probes", [model_deployment(probes=())], True),
    (
        "model-probes",
        "not-a-model",
        [
            k8s(
                "kubernetes:apps/v1:Deployment",
                "Deployment",
                "web",
                spec={
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web"}]},
                    }
                },
            )
        ],
        False,
    ),
    ("model-pdb", "covered", [model_deployment(), pdb()], False),
    ("model-pdb", "missing", [model_deployment()], True),
    ("model-pdb", "other-namespace", [model_deployment(), pdb(namespace="default")], True),
    (
        "model-pdb",
        "selector-does-not-match",
        [model_deployment(), pdb(selector={"fleetkit.dev/model": "other"})],
        True,
    ),
    ("no-plain-secret-data", "plain-string-data", [secret(stringData={"token": "hf_abc"})], True),
    ("no-plain-secret-data", "plain-data", [secret(data={"token": "aGZfYWJj"})], True),
    ("no-plain-secret-data", "whole-data-secret", [secret(stringData=SECRET)], False),
    ("no-plain-secret-data", "each-key-secret", [secret(data={"token": SECRET, "user": SECRET})], False),
    ("no-plain-secret-data", "unknown-at-preview", [secret(data=UNKNOWN)], False),
    (
        "no-plain-credentials",
        "env-token-plain",
        [model_deployment(env=[{"name": "HF_TOKEN", "value": "hf_live_123"}])],
        True,
    ),
    (
        "no-plain-credentials",
        "env-from-secret",
        [
            model_deployment(
                env=[{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}]
            )
        ],
        False,
    ),
    (
        "no-plain-credentials",
        "env-pulumi-secret",
        [model_deployment(env=[{"name": "HF_TOKEN", "value": SECRET}])],
        False,
    ),
    (
        "no-plain-credentials",
        "env-token-file-path",
        [
            model_deployment(
                env=[
                    {
                        "name": "AWS_WEB_IDENTITY_TOKEN_FILE",
                        "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
                    },
                    {"name": "TOKENIZERS_PARALLELISM", "value": "false"},
                ]
            )
        ],
        False,
    ),
    (
        "no-plain-credentials",
        "env-aws-key-shaped-value",
        [model_deployment(env=[{"name": "S3_CONFIG", "value": "AKIAIOSFODNN7EXAMPLE"}])],
        True,
    ),
    (
        "no-plain-credentials",
        "arg-api-key-plain",
        [model_deployment(args=["--api-key", "s3cr3t-value"])],
        True,
    ),
    (
        "no-plain-credentials",
        "arg-api-key-from-env",
        [model_deployment(args=["--api-key", "$(VLLM_API_KEY)"])],
        False,
    ),
    ("no-plain-credentials", "helm-password-plain", [helm({"grafana": {"adminPassword": "hunter22"}})], True),
    ("no-plain-credentials", "helm-password-secret", [helm({"grafana": {"adminPassword": SECRET}})], False),
    (
        "no-plain-credentials",
        "helm-secret-references",
        [helm({"existingSecret": "grafana-admin", "tls": {"secretName": "cert", "credentialName": "c"}})],
        False,
    ),
    (
        "no-plain-credentials",
        "configmap-private-key",
        [
            k8s(
                "kubernetes:core/v1:ConfigMap",
                "ConfigMap",
                "cfg",
                data={"key.pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n-----END RSA PRIVATE KEY-----\n"},
            )
        ],
        True,
    ),
    (
        "no-plain-credentials",
        "configmap-ca-cert",
        [
            k8s(
                "kubernetes:core/v1:ConfigMap",
                "ConfigMap",
                "cfg",
                data={"root-cert.pem": "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"},
            )
        ],
        False,
    ),
]

CASES += FLEET_CASES  # issue 14's rules (policies/crossguard/fleet_rules.py)


@pytest.mark.parametrize(
    ("rule_name", "resources", "fails"),
    [pytest.param(r, res, f, id=f"{r}:{case}") for r, case, res, f in CASES],
)
def test_rule(rule_name: str, resources: list[Resource], fails: bool) -> None:
    rule = rules.RULES_BY_NAME[rule_name]
    found = [v for v in rules.evaluate(resources, [rule]) if v.policy == rule_name]
    assert bool(found) == fails, [v.message for v in found]
    for v in found:
        assert v.message and v.suppressed is None


def test_every_rule_has_a_failing_and_a_passing_case() -> None:
    for rule in RULES:
        outcomes = {fails for name, _, _, fails in CASES if name == rule.name}
        assert outcomes == {True, False}, rule.name


def test_rule_metadata_is_complete() -> None:
    names = [r.name for r in RULES]
    assert len(names) == len(set(names))
    for r in RULES:
        assert (r.resource_check is None) != (r.stack_check is None), r.name
        assert r.enforcement in ("mandatory", "advisory") and r.severity in (
            "low",
            "medium",
            "high",
            "critical",
        )
        assert r.description.endswith(".") and r.remediation


def test_messages_name_the_resource_and_the_fix() -> None:
    [v] = rules.evaluate([node_group()], [rules.RULES_BY_NAME["gpu-pools-tainted"]])
    assert "use1-l4" in v.message and "NO_SCHEDULE" in v.message
    [v] = rules.evaluate(
        [role("vllm"), role_policy("vllm", ["s3:PutObject"])], [rules.RULES_BY_NAME["weights-read-only"]]
    )
    assert "workload role vllm" in v.message and "s3:PutObject" in v.message
    assert v.resource is not None and v.resource.type == "aws:iam/rolePolicy:RolePolicy"


def test_suppression_needs_a_reason_and_is_reported() -> None:
    reason = "partner VPN terminates on this address"
    svc = lb_service(annotations={rules.IGNORE_ANNOTATION: f"no-public-load-balancer: {reason}"})
    [v] = rules.evaluate([svc], [rules.RULES_BY_NAME["no-public-load-balancer"]])
    assert v.suppressed == reason
    bare = lb_service(annotations={rules.IGNORE_ANNOTATION: "no-public-load-balancer"})
    [v] = rules.evaluate([bare], [rules.RULES_BY_NAME["no-public-load-balancer"]])
    assert v.suppressed is None


@pytest.mark.parametrize(
    ("key", "credential"),
    [
        ("adminPassword", True),
        ("HF_TOKEN", True),
        ("VLLM_API_KEY", True),
        ("api-key", True),
        ("clientSecret", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("privateKey", True),
        ("secret", True),
        ("secretName", False),
        ("existingSecret", False),
        ("TOKEN_FILE", False),
        ("passwordKey", False),
        ("credentialName", False),
        ("TOKENIZERS_PARALLELISM", False),
        ("privateKeySecretRef", False),
        ("jwtPolicy", False),
    ],
)
def test_credential_key(key: str, credential: bool) -> None:
    assert rules.credential_key(key) is credential
