"""lint_objects: the pure API (suppression, config, ordering, lines), plus durations and path helpers."""

from __future__ import annotations

import copy
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from fleetkit.lint import IGNORE_ANNOTATION, Finding, LintConfig, exit_code, lint_objects, lint_paths
from fleetkit.lint.durations import human, parse_duration
from fleetkit.schema import validate_object


def vs(
    timeout: str = "300s", retry_on: str = "connect-failure", annotations: dict | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "llama", "namespace": "serving"}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": meta,
        "spec": {
            "hosts": ["llama"],
            "http": [
                {
                    "route": [{"destination": {"host": "llama"}}],
                    "timeout": timeout,
                    "retries": {"attempts": 2, "retryOn": retry_on},
                }
            ],
        },
    }


def rules(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings if f.suppressed is None]


def test_lint_objects_is_pure_and_does_not_import_pulumi() -> None:
    code = (
        "import sys; from fleetkit.lint import lint_objects; "
        "lint_objects([('x', {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'a'}})]); "
        "assert 'pulumi' not in sys.modules, 'pulumi imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_clean_object() -> None:
    assert lint_objects([("a.yaml", vs())]) == []


def test_finding_fields() -> None:
    [finding] = lint_objects([("a.yaml", vs(retry_on="5xx"))])
    assert finding.file == "a.yaml"
    assert finding.object == "VirtualService/serving/llama"
    assert finding.rule == "FK105"
    assert finding.severity == "error"
    assert finding.message.startswith("spec.http[0].retries.retryOn: ")
    assert "connect-failure" in finding.fix
    assert finding.suppressed is None
    assert finding.line is None  # objects given as dicts have no lines
    assert set(finding.to_dict()) == {
        "file",
        "object",
        "rule",
        "ist",
        "severity",
        "message",
        "fix",
        "suppressed",
    }


def test_namespace_defaults_and_cluster_scoped_objects() -> None:
    obj = vs(timeout="5s")
    del obj["metadata"]["namespace"]
    [finding] = lint_objects([("a.yaml", obj)])
    assert finding.object == "VirtualService/default/llama"
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Bad_Name"}}
    [finding] = lint_objects([("ns.yaml", ns)])
    assert finding.object == "Namespace/Bad_Name" and finding.rule == "FK001"


def test_suppression_with_reason_keeps_finding_but_not_exit_code() -> None:
    obj = vs(retry_on="5xx", annotations={IGNORE_ANNOTATION: "FK105: tokenizer endpoint, cheap to replay"})
    [finding] = lint_objects([("a.yaml", obj)])
    assert finding.rule == "FK105"
    assert finding.suppressed == "tokenizer endpoint, cheap to replay"
    assert exit_code([finding]) == 0


def test_suppression_by_slug_and_several_entries() -> None:
    obj = vs(
        timeout="5s", retry_on="5xx", annotations={IGNORE_ANNOTATION: "unsafe-retry: ok; short-timeout: ok"}
    )
    findings = lint_objects([("a.yaml", obj)])
    assert sorted(f.rule for f in findings) == ["FK105", "FK107"]
    assert all(f.suppressed == "ok" for f in findings)


@pytest.mark.parametrize("value", ["FK105", "FK105:", "FK105:   ", "unsafe-retry"])
def test_suppression_without_reason_is_a_finding_and_not_applied(value: str) -> None:
    obj = vs(retry_on="5xx", annotations={IGNORE_ANNOTATION: value})
    findings = lint_objects([("a.yaml", obj)])
    assert rules(findings) == ["FK004", "FK105"] or sorted(rules(findings)) == ["FK004", "FK105"]
    assert exit_code(findings) == 1


def test_suppression_only_covers_its_own_object() -> None:
    quiet = vs(retry_on="5xx", annotations={IGNORE_ANNOTATION: "FK105: reviewed"})
    loud = copy.deepcopy(vs(retry_on="5xx"))
    loud["metadata"]["name"] = "other"
    loud["spec"]["hosts"] = ["other"]  # two mesh VirtualServices for one host would conflict (FK114)
    findings = lint_objects([("a.yaml", quiet), ("b.yaml", loud)])
    by_object = {f.object: f.suppressed for f in findings}
    assert by_object == {"VirtualService/serving/llama": "reviewed", "VirtualService/serving/other": None}


def test_order_is_stable_and_independent_of_input_order() -> None:
    other = vs(retry_on="5xx,reset")
    other["spec"]["hosts"] = ["other"]
    objs = [("b.yaml", vs(timeout="5s")), ("a.yaml", other)]
    first = lint_objects(objs)
    assert first == lint_objects(list(reversed(objs)))
    assert [f.file for f in first] == ["a.yaml", "b.yaml"]


def test_config_thresholds_disable_and_severity() -> None:
    obj = vs(timeout="45s")
    assert rules(lint_objects([("a", obj)])) == ["FK107"]
    assert rules(lint_objects([("a", obj)], LintConfig(min_timeout="30s"))) == []
    assert rules(lint_objects([("a", obj)], LintConfig(disable=frozenset({"short-timeout"})))) == []
    [f] = lint_objects([("a", obj)], LintConfig(severity={"FK107": "error"}))
    assert f.severity == "error" and exit_code([f]) == 1


def test_config_rejects_unknown_rules_and_bad_durations() -> None:
    with pytest.raises(ValidationError):
        LintConfig(disable=frozenset({"FK999"}))
    with pytest.raises(ValidationError):
        LintConfig(min_timeout="a minute")
    with pytest.raises(ValidationError):
        LintConfig(min_timout="60s")  # type: ignore[call-arg]
    assert LintConfig(min_timeout=90).min_timeout == timedelta(seconds=90)


def test_schema_off_still_reports_unserved_and_unknown_kinds() -> None:
    config = LintConfig(schema_validation=False)
    bad_field = vs()
    bad_field["spec"]["bogus"] = True
    assert lint_objects([("a", bad_field)], config) == []
    assert rules(lint_objects([("a", bad_field)])) == ["FK001"]
    hpa = {"apiVersion": "autoscaling/v2beta2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"}}
    [finding] = lint_objects([("a", hpa)], config)
    assert finding.rule == "FK003" and "autoscaling/v2" in finding.fix
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert rules(lint_objects([("a", widget)], config)) == ["FK002"]


def test_lines_point_at_the_offending_field(tmp_path: Any) -> None:
    file = tmp_path / "vs.yaml"
    file.write_text(
        "apiVersion: networking.istio.io/v1\n"
        "kind: VirtualService\n"
        "metadata: {name: llama, namespace: serving}\n"
        "spec:\n"
        "  hosts: [llama]\n"
        "  http:\n"
        "  - route:\n"
        "    - destination: {host: llama}\n"
        "    timeout: 5s\n"
        "    retries:\n"
        "      attempts: 2\n"
        "      retryOn: 5xx\n"
    )
    findings = {f.rule: f.line for f in lint_paths([file])}
    assert findings == {"FK107": 9, "FK105": 12}


def test_schema_issue_paths_stay_structured_with_dotted_keys() -> None:
    # the schema validator's path is a tuple: a dotted label key stays one part, nothing is parsed back
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "serving", "labels": {"app.kubernetes.io/name": 1}},
    }
    [issue] = validate_object(obj)
    assert issue.path == ("metadata", "labels", "app.kubernetes.io/name")
    [finding] = [f for f in lint_objects([("c.yaml", obj)]) if f.rule == "FK001"]
    assert finding.issue.path == issue.path
    assert finding.message.startswith("metadata.labels.app.kubernetes.io/name: ")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m30s", 90), ("250ms", 0.25), ("1.5h", 5400), ("0", 0), ("0s", 0), ("2m", 120)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "30", "30 s", "1d", "s", "abc"])
def test_parse_duration_rejects(text: str) -> None:
    assert parse_duration(text) is None


def test_human_durations() -> None:
    assert [human(timedelta(seconds=s)) for s in (0.25, 30, 60, 90, 3600)] == [
        "250ms",
        "30s",
        "1m",
        "90s",
        "60m",
    ]


def test_tolerates_malformed_objects() -> None:
    """Analyzers see schema-invalid shapes; they must report, not crash."""
    weird = [
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "a"}, "spec": []},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "b"},
         "spec": {"http": [None, {"route": "x", "retries": [], "fault": 3}], "tcp": {"a": 1}}},
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "c"},
         "spec": {"host": 5, "subsets": [1, {"name": None}], "trafficPolicy": {"portLevelSettings": [None]}}},
        {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": "x", "spec": {"triggers": [7]}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
         "spec": {"scaleTargetRef": "d", "metrics": "cpu"}},
        {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "p"},
         "spec": {"selector": [], "portLevelMtls": {"x": 1}}},
    ]  # fmt: skip
    findings = lint_objects([("w.yaml", o) for o in weird])
    with_schema_errors = {f.object for f in findings if f.rule == "FK001"}
    assert len(with_schema_errors) == len(weird)


def test_partial_input_is_never_a_silent_pass() -> None:
    """An HPA alone (its Deployment elsewhere) scaling an LLM service on CPU and memory plus a custom Pods metric:
    the CPU/memory pattern is reported, and the checks that need the Deployment or the adapter are listed."""
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "llama-3-8b", "namespace": "llm"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama-3-8b"},
            "minReplicas": 1,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                },
                {
                    "type": "Resource",
                    "resource": {
                        "name": "memory",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                },
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "requests_per_second"},
                        "target": {"type": "AverageValue", "averageValue": "10"},
                    },
                },
            ],
        },
    }
    notes: list[str] = []
    findings = lint_objects([("hpa.yaml", hpa)], notes=notes)
    cpu = [f for f in findings if f.rule == "FK401"]
    assert len(cpu) == 2 and all(f.severity == "warning" for f in cpu), findings
    assert "not in the input" in cpu[0].message
    assert any("Deployment/llm/llama-3-8b is not in the input" in n for n in notes), notes
    assert any("requests_per_second" in n and "adapter" in n for n in notes), notes


def test_not_checked_lines_appear_in_the_table_summary() -> None:
    from fleetkit.lint.formats import render_table

    notes: list[str] = []
    findings = lint_objects([("vs.yaml", vs())], notes=notes)
    text = render_table(findings, 1, notes=notes)
    assert "Not checked" in text and "no Service or ServiceEntry is in the input" in text


def test_several_clusters_rendered_side_by_side_are_not_conflicts() -> None:
    """`fleetkit lint out/` reads every stack's manifests: the same object in two directories is one object per
    cluster, not two VirtualServices for one host (FK114) or two autoscalers for one Deployment (FK405)."""
    so = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "llama", "namespace": "serving"},
        "spec": {"scaleTargetRef": {"name": "llama"}, "minReplicaCount": 1, "triggers": []},
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "llama", "namespace": "serving"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama"},
            "minReplicas": 1,
            "maxReplicas": 2,
        },
    }
    clusters = [
        ("out/a/manifests/vs.yaml", vs()),
        ("out/a/manifests/so.yaml", so),
        ("out/b/manifests/vs.yaml", vs()),
        ("out/b/manifests/hpa.yaml", hpa),
    ]
    assert {"FK114", "FK405"}.isdisjoint(rules(lint_objects(clusters)))
    one_cluster = [
        ("a/vs.yaml", vs()),
        ("a/so.yaml", so),
        ("a/hpa.yaml", hpa),
        ("a/vs2.yaml", {**vs(), "metadata": {"name": "other", "namespace": "serving"}}),
    ]
    assert {"FK114", "FK405"} <= set(rules(lint_objects(one_cluster)))


def test_each_cluster_may_have_its_own_namespace_wide_telemetry() -> None:
    """Every stack renders one selector-less Telemetry in istio-system: side by side in `fleetkit lint out/`
    they are one per cluster (no FK513); two in one cluster still are (FK513)."""
    telemetry = {
        "apiVersion": "telemetry.istio.io/v1",
        "kind": "Telemetry",
        "metadata": {"name": "mesh-default", "namespace": "istio-system"},
        "spec": {"tracing": [{"randomSamplingPercentage": 1.0}]},
    }
    clusters = [
        ("out/a/manifests/telemetry.yaml", telemetry),
        ("out/b/manifests/telemetry.yaml", telemetry),
    ]
    assert "FK513" not in rules(lint_objects(clusters))
    other = {**telemetry, "metadata": {"name": "other", "namespace": "istio-system"}}
    assert "FK513" in rules(lint_objects([("a/t.yaml", telemetry), ("a/t2.yaml", other)]))
