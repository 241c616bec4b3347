"""fleetkit.schema: strict validation of CRD and core kinds, one valid and several invalid objects per family."""

from __future__ import annotations

import copy
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from fleetkit import schema
from fleetkit.issue import Issue
from fleetkit.schema import (
    KUBERNETES_VERSION,
    RULE_NOT_SERVED,
    RULE_UNKNOWN_KIND,
    known_kind,
    validate_object,
    validate_objects,
)


def meta(name: str = "llama", namespace: str = "serving", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, **extra}


VALID: dict[str, dict[str, Any]] = {
    "VirtualService": {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": meta(labels={"app.kubernetes.io/name": "llama"}),
        "spec": {
            "hosts": ["llama"],
            "gateways": ["mesh", "istio-system/public"],
            "http": [
                {
                    "name": "canary",
                    "match": [{"uri": {"prefix": "/v1/"}, "headers": {"x-canary": {"exact": "1"}}}],
                    "route": [
                        {
                            "destination": {"host": "llama", "subset": "stable", "port": {"number": 8000}},
                            "weight": 90,
                        },
                        {"destination": {"host": "llama", "subset": "canary"}, "weight": 10},
                    ],
                    "timeout": "300s",
                    "retries": {
                        "attempts": 2,
                        "perTryTimeout": "120s",
                        "retryOn": "connect-failure,refused-stream",
                    },
                    "mirrorPercentage": {"value": 5.0},
                }
            ],
        },
    },
    "DestinationRule": {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": meta(),
        "spec": {
            "host": "llama.serving.svc.cluster.local",
            "trafficPolicy": {
                "loadBalancer": {
                    "simple": "LEAST_REQUEST",
                    "localityLbSetting": {"enabled": True, "failoverPriority": ["topology.istio.io/network"]},
                },
                "connectionPool": {
                    "tcp": {"maxConnections": 1000, "connectTimeout": "5s"},
                    "http": {"http2MaxRequests": 1000, "idleTimeout": "1h"},
                },
                "outlierDetection": {"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "30s"},
                "tls": {"mode": "ISTIO_MUTUAL"},
                "portLevelSettings": [{"port": {"number": 8000}, "loadBalancer": {"simple": "ROUND_ROBIN"}}],
            },
            "subsets": [
                {"name": "stable", "labels": {"version": "v1"}},
                {
                    "name": "canary",
                    "labels": {"version": "v2"},
                    "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpHeaderName": "x-session"}}},
                },
            ],
        },
    },
    "Gateway": {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": meta("cross-network-gateway", "istio-system"),
        "spec": {
            "selector": {"istio": "eastwestgateway"},
            "servers": [
                {
                    "port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                    "tls": {"mode": "AUTO_PASSTHROUGH"},
                    "hosts": ["*.local"],
                }
            ],
        },
    },
    "PeerAuthentication": {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": meta("default", "istio-system"),
        "spec": {"mtls": {"mode": "STRICT"}},
    },
    "AuthorizationPolicy": {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": meta("allow-gateway"),
        "spec": {
            "selector": {"matchLabels": {"app": "llama"}},
            "action": "ALLOW",
            "rules": [
                {
                    "from": [{"source": {"principals": ["cluster.local/ns/istio-system/sa/ingress"]}}],
                    "to": [{"operation": {"methods": ["POST"], "paths": ["/v1/*"]}}],
                }
            ],
        },
    },
    "RequestAuthentication": {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": meta("jwt"),
        "spec": {
            "selector": {"matchLabels": {"app": "llama"}},
            "jwtRules": [{"issuer": "https://issuer.example", "jwksUri": "https://issuer.example/jwks"}],
        },
    },
    "ScaledObject": {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta(),
        "spec": {
            "scaleTargetRef": {"name": "llama"},
            "minReplicaCount": 1,
            "maxReplicaCount": 8,
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
                        "query": 'sum(vllm:num_requests_waiting{model_name="llama"})',
                        "threshold": "5",
                    },
                }
            ],
        },
    },
    "ServiceMonitor": {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta(),
        "spec": {
            "selector": {"matchLabels": {"app": "llama"}},
            "endpoints": [{"port": "http", "interval": "15s"}],
        },
    },
    "PodMonitor": {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": meta(),
        "spec": {
            "selector": {"matchLabels": {"app": "llama"}},
            "podMetricsEndpoints": [{"port": "http", "path": "/metrics"}],
        },
    },
    "PrometheusRule": {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": meta(),
        "spec": {
            "groups": [
                {
                    "name": "vllm",
                    "rules": [
                        {
                            "alert": "VllmQueueing",
                            "expr": "sum(vllm:num_requests_waiting) > 50",
                            "for": "5m",
                            "labels": {"severity": "warning"},
                        }
                    ],
                }
            ]
        },
    },
    "HorizontalPodAutoscaler": {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama"},
            "minReplicas": 1,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "vllm_num_requests_waiting"},
                        "target": {"type": "AverageValue", "averageValue": "5"},
                    },
                }
            ],
        },
    },
    "Deployment": {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(labels={"app": "llama"}),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "llama"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "llama"}},
                "spec": {
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm/vllm-openai:v0.11.0",
                            "command": ["vllm", "serve"],
                            "ports": [{"name": "http", "containerPort": 8000}],
                            "resources": {"limits": {"nvidia.com/gpu": 1}},
                        }
                    ]
                },
            },
        },
    },
    "Service": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(),
        "spec": {
            "selector": {"app": "llama"},
            "ports": [{"name": "http", "port": 8000, "targetPort": "http"}],
        },
    },
}


def mutate(kind: str, path: str, value: Any) -> dict[str, Any]:
    """A copy of VALID[kind] with ``path`` (dotted, ``[i]`` for list items) set to ``value``."""
    obj = copy.deepcopy(VALID[kind])
    tokens: list[str | int] = []
    for part in path.replace("]", "").split("."):
        name, *indexes = part.split("[")
        tokens.append(name)
        tokens.extend(int(i) for i in indexes)
    node: Any = obj
    for token in tokens[:-1]:
        node = node[token]
    node[tokens[-1]] = value
    return obj


def paths(issues: list[Issue]) -> list[str]:
    return [i.where for i in issues]


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_examples_pass(kind: str) -> None:
    assert validate_object(VALID[kind]) == []
    assert known_kind(VALID[kind]["apiVersion"], kind)


INVALID = [
    # (kind, path to set, bad value, expected issue path, expected message fragment)
    (
        "VirtualService",
        "spec.http[0].route[0].weight",
        "90",
        "spec.http[0].route[0].weight",
        "expected integer",
    ),
    (
        "VirtualService",
        "spec.http[0].route[0].destination.subsets",
        "stable",
        "spec.http[0].route[0].destination.subsets",
        "unknown field 'subsets' (did you mean 'subset'?)",
    ),
    ("VirtualService", "spec.http[0].timeout", "5 minutes", "spec.http[0].timeout", "Go duration"),
    (
        "VirtualService",
        "spec.http[0].match[0].uri",
        {"exact": "/a", "prefix": "/"},
        "spec.http[0].match[0].uri",
        "only one of exact, prefix, regex",
    ),
    ("DestinationRule", "spec.subsets[0].weight", 50, "spec.subsets[0].weight", "unknown field 'weight'"),
    (
        "DestinationRule",
        "spec.trafficPolicy.loadBalancer.simple",
        "FASTEST",
        "spec.trafficPolicy.loadBalancer.simple",
        "is not one of",
    ),
    (
        "DestinationRule",
        "spec.trafficPolicy.connectionPool.tcp.maxConnections",
        "many",
        "spec.trafficPolicy.connectionPool.tcp.maxConnections",
        "expected integer",
    ),
    ("Gateway", "spec.servers[0].port.number", "15443", "spec.servers[0].port.number", "expected integer"),
    ("Gateway", "spec.servers[0].tls.mode", "PASSTHRU", "spec.servers[0].tls.mode", "is not one of"),
    ("Gateway", "spec.selectors", {"istio": "x"}, "spec.selectors", "unknown field 'selectors'"),
    ("PeerAuthentication", "spec.mtls.mode", "STRICT_ONLY", "spec.mtls.mode", "is not one of"),
    ("PeerAuthentication", "spec.mtls.strict", True, "spec.mtls.strict", "unknown field"),
    ("AuthorizationPolicy", "spec.action", "PERMIT", "spec.action", "is not one of"),
    (
        "AuthorizationPolicy",
        "spec.rules[0].from[0].source.principal",
        ["x"],
        "spec.rules[0].from[0].source.principal",
        "did you mean 'principals'?",
    ),
    (
        "RequestAuthentication",
        "spec.jwtRules[0].audiences",
        "llama",
        "spec.jwtRules[0].audiences",
        "expected array",
    ),
    ("RequestAuthentication", "spec.jwtRules[0].issuerr", "x", "spec.jwtRules[0].issuerr", "unknown field"),
    (
        "ScaledObject",
        "spec.triggers[0].metadata.threshold",
        5,
        "spec.triggers[0].metadata.threshold",
        "expected string, got integer",
    ),
    ("ScaledObject", "spec.minReplicas", 1, "spec.minReplicas", "unknown field 'minReplicas'"),
    (
        "ScaledObject",
        "spec.scaleTargetRef",
        {},
        "spec.scaleTargetRef.name",
        "required field 'name' is missing",
    ),
    (
        "ServiceMonitor",
        "spec.endpoints[0].interval",
        "15 seconds",
        "spec.endpoints[0].interval",
        "does not match",
    ),
    ("ServiceMonitor", "spec.endpoints[0].scheme", "tcp", "spec.endpoints[0].scheme", "is not one of"),
    (
        "PodMonitor",
        "spec.podMetricsEndpoints[0].portNumber",
        "8000",
        "spec.podMetricsEndpoints[0].portNumber",
        "expected integer",
    ),
    ("PodMonitor", "spec.podMetricEndpoints", [], "spec.podMetricEndpoints", "unknown field"),
    (
        "PrometheusRule",
        "spec.groups[0].rules[0].expr",
        ["sum(x)"],
        "spec.groups[0].rules[0].expr",
        "expected integer or string",
    ),
    (
        "PrometheusRule",
        "spec.groups[0].rules[0].severity",
        "page",
        "spec.groups[0].rules[0].severity",
        "unknown field",
    ),
    ("HorizontalPodAutoscaler", "spec.maxReplicas", "4", "spec.maxReplicas", "expected integer"),
    (
        "HorizontalPodAutoscaler",
        "spec.targetCPUUtilizationPercentage",
        80,
        "spec.targetCPUUtilizationPercentage",
        "unknown field",
    ),
    ("Deployment", "spec.replicas", "2", "spec.replicas", "expected integer"),
    (
        "Deployment",
        "spec.template.spec.containers[0].gpus",
        1,
        "spec.template.spec.containers[0].gpus",
        "unknown field 'gpus'",
    ),
    ("Service", "spec.ports[0].port", "8000", "spec.ports[0].port", "expected integer"),
    ("Service", "spec.selectr", {"app": "x"}, "spec.selectr", "did you mean 'selector'?"),
    ("Service", "metadata.name", "vLLM_Service", "metadata.name", "RFC 1035"),
    ("Deployment", "metadata.labels", {"version": 2}, "metadata.labels.version", "must be strings"),
    (
        "VirtualService",
        "metadata.labels",
        {"bad key!": "x"},
        "metadata.labels.bad key!",
        "not a qualified name",
    ),
    ("VirtualService", "metadata.annotation", {}, "metadata.annotation", "did you mean 'annotations'?"),
    ("DestinationRule", "metadata.namespace", "Serving", "metadata.namespace", "not a valid namespace"),
]


@pytest.mark.parametrize(("kind", "path", "value", "issue_path", "fragment"), INVALID)
def test_invalid_examples_fail(kind: str, path: str, value: Any, issue_path: str, fragment: str) -> None:
    obj = mutate(kind, path, value)
    issues = validate_object(obj)
    assert issue_path in paths(issues), issues
    message = next(i.message for i in issues if i.where == issue_path)
    assert fragment in message
    assert all(i.subject == f"{kind}/{obj['metadata']['name']}" for i in issues)


def test_explicit_nulls_are_pruned_as_the_api_server_does() -> None:
    """Helm leaves `trafficPolicy:`/`retries:`/`match:` null; the API server drops them, so must we."""
    assert validate_object(mutate("DestinationRule", "spec.trafficPolicy.tls", None)) == []
    vs = copy.deepcopy(VALID["VirtualService"])
    vs["spec"]["http"][0].update({"retries": None, "match": None, "fault": None})
    assert validate_object(vs) == []
    required = mutate(
        "DestinationRule", "spec.host", None
    )  # a pruned required field is missing, as for kubectl
    assert any("required" in i.message for i in validate_object(required))


def test_status_of_kinds_with_a_status_subresource_is_not_validated() -> None:
    for kind in ("VirtualService", "Deployment"):
        obj = copy.deepcopy(VALID[kind])
        obj["status"] = {"conditions": "whatever the controller wrote", "bogus": 1}
        assert validate_object(obj) == [], kind


def test_choice_errors_are_readable() -> None:
    obj = mutate(
        "DestinationRule",
        "spec.trafficPolicy.loadBalancer",
        {"simple": "ROUND_ROBIN", "consistentHash": {"useSourceIp": True}},
    )
    messages = [i.message for i in validate_object(obj)]
    assert messages and not any("is valid under each of" in m for m in messages), messages


def test_unknown_top_level_field() -> None:
    obj = copy.deepcopy(VALID["VirtualService"])
    obj["spc"] = {}
    assert paths(validate_object(obj)) == ["spc"]


def test_int_or_string_accepts_both() -> None:
    assert validate_object(mutate("Service", "spec.ports[0].targetPort", 8000)) == []
    assert validate_object(mutate("Deployment", "spec.strategy.rollingUpdate.maxSurge", 1)) == []
    issues = validate_object(mutate("Deployment", "spec.strategy.rollingUpdate.maxSurge", [1]))
    assert paths(issues) == ["spec.strategy.rollingUpdate.maxSurge"]


def test_nullable_fields_accept_null() -> None:
    # consecutive5xxErrors is `nullable: true` in the Istio CRD
    obj = mutate("DestinationRule", "spec.trafficPolicy.outlierDetection.consecutive5xxErrors", None)
    assert validate_object(obj) == []


@pytest.mark.parametrize(
    ("api_version", "kind", "served"),
    [
        ("networking.istio.io/v1alpha2", "VirtualService", "networking.istio.io/v1"),
        ("security.istio.io/v1alpha1", "PeerAuthentication", "security.istio.io/v1beta1"),
        ("keda.sh/v1", "ScaledObject", "keda.sh/v1alpha1"),
        ("autoscaling/v2beta2", "HorizontalPodAutoscaler", "autoscaling/v2"),
    ],
)
def test_unserved_api_version(api_version: str, kind: str, served: str) -> None:
    obj = {"apiVersion": api_version, "kind": kind, "metadata": meta(), "spec": {}}
    issues = validate_object(obj)
    assert [(i.path, i.rule) for i in issues] == [(("apiVersion",), RULE_NOT_SERVED)]
    assert "not served" in issues[0].message and served in issues[0].message
    assert not known_kind(api_version, kind)


def test_older_served_versions_still_validate() -> None:
    obj = copy.deepcopy(VALID["VirtualService"])
    obj["apiVersion"] = "networking.istio.io/v1beta1"
    assert validate_object(obj) == []
    obj["spec"]["bogus"] = 1
    assert paths(validate_object(obj)) == ["spec.bogus"]


def test_unknown_kind() -> None:
    issues = validate_object({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta()})
    assert issues == [
        Issue(("kind",), RULE_UNKNOWN_KIND, "no schema for example.com/v1/Widget", subject="Widget/llama")
    ]
    typo = validate_object(
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualServce", "metadata": meta()}
    )
    assert "known kinds in networking.istio.io" in typo[0].message


def test_same_group_prefix_is_not_confused() -> None:
    # networking.istio.io/v1 and networking.k8s.io/v1 map to the same kubernetes-validate file prefix
    assert known_kind("networking.k8s.io/v1", "Ingress")
    assert not known_kind("networking.istio.io/v1", "Ingress")
    assert known_kind("gateway.networking.k8s.io/v1", "HTTPRoute")
    assert known_kind("inference.networking.k8s.io/v1", "InferencePool")
    assert known_kind("llm-d.ai/v1alpha2", "InferenceObjective")


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Namespace"),
        ("v1", "ServiceAccount"),
        ("policy/v1", "PodDisruptionBudget"),
        ("scheduling.k8s.io/v1", "PriorityClass"),
        ("apps/v1", "DaemonSet"),
        ("apps/v1", "StatefulSet"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("batch/v1", "Job"),
    ],
)
def test_core_kinds_known(api_version: str, kind: str) -> None:
    assert known_kind(api_version, kind)


def test_kind_spelling_must_match() -> None:
    assert not known_kind("apps/v1", "deployment")


def test_missing_metadata_and_kind() -> None:
    assert paths(validate_object({"apiVersion": "v1", "kind": "ConfigMap"})) == ["metadata"]
    assert paths(validate_object({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})) == [
        "metadata.name"
    ]
    assert paths(validate_object({"kind": "ConfigMap"})) == ["apiVersion"]


def test_validate_objects_sorted_and_deterministic() -> None:
    objs = [mutate("Service", "spec.ports[0].port", "x"), mutate("Deployment", "spec.replicas", "x")]
    first = validate_objects(objs)
    assert first == sorted(first)
    assert validate_objects(reversed(objs)) == first


def test_kubernetes_version_is_pinned_and_at_least_132() -> None:
    major, minor = (int(x) for x in KUBERNETES_VERSION.split("."))
    assert (major, minor) >= (1, 32)


def test_vendored_files_match_readme_checksums() -> None:
    readme = (schema.SCHEMA_DIR / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Checksums (sha256)")[1].split("```")[1]
    listed = dict(reversed(line.split()) for line in block.strip().splitlines())
    on_disk = sorted(p.relative_to(schema.SCHEMA_DIR).as_posix() for p in schema.SCHEMA_DIR.rglob("*.yaml"))
    assert sorted(listed) == on_disk
    for rel, digest in listed.items():
        assert hashlib.sha256((schema.SCHEMA_DIR / rel).read_bytes()).hexdigest() == digest, rel


def test_validation_is_cached_and_fast() -> None:
    objs = [copy.deepcopy(VALID[k]) for k in sorted(VALID)] * 20
    validate_objects(objs)  # warm the caches
    start = time.perf_counter()
    assert validate_objects(objs) == []
    assert time.perf_counter() - start < 2.0  # ~260 objects; typically well under 0.2 s


def test_no_repo_paths_needed() -> None:
    assert Path(schema.__file__).parent / "schemas" == schema.SCHEMA_DIR


def test_vendored_crds_validate_as_crd_objects() -> None:
    """Exercises recursive core definitions (JSONSchemaProps) and property names that are also keywords."""
    import yaml

    small = [
        p for p in sorted(schema.SCHEMA_DIR.rglob("*.yaml")) if p.stat().st_size < 30_000
    ]  # keep it fast
    docs = [d for p in small for d in yaml.safe_load_all(p.read_text()) if d]
    assert len(docs) >= 5
    for doc in docs:
        assert validate_object(doc) == [], doc["metadata"]["name"]
    crd = copy.deepcopy(next(d for d in docs if d["kind"] == "CustomResourceDefinition"))
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["propertiez"] = {}
    issues = validate_object(crd)
    assert [i.path for i in issues] == [("spec", "versions", 0, "schema", "openAPIV3Schema", "propertiez")]
    assert "did you mean 'properties'?" in issues[0].message
