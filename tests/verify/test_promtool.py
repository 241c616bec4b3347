"""PrometheusRules, alert unit tests and PromQL through the real promtool (Debian package ``prometheus``)."""

from __future__ import annotations

import copy
import json

import pytest

from fleetkit.verify import alert_tests, finding_line, promtool

pytestmark = pytest.mark.skipif(
    promtool.promtool_path() is None,
    reason="REAL CHECK NOT RUN: promtool is not installed (apt-get install --no-install-recommends prometheus; "
    ".ci/run does this as root)",
)


@pytest.fixture(scope="module")
def east(demo_preview):
    return demo_preview["aws-us-east-1"].manifests()


def _rule(manifests, alert: str):
    for obj in manifests:
        if obj["kind"] == "PrometheusRule":
            for rule in obj["spec"]["groups"][0]["rules"]:
                if rule.get("alert") == alert:
                    return obj, rule
    raise AssertionError(alert)


def test_every_stack_passes_lint_unit_tests_and_promql(demo_preview) -> None:
    total_rules = 0
    for name, res in demo_preview.items():
        verdict = promtool.verify(res.manifests())
        assert verdict.status in ("pass", "skipped"), (name, [finding_line(f) for f in verdict.findings])
        total_rules += verdict.count
    east = promtool.verify(demo_preview["aws-us-east-1"].manifests())
    # every alert asserted twice (silent, then firing); 3 usage recording rules (tested in
    # test_usage_rules.py); KEDA queries and the dashboard parsed
    assert east.summary.startswith("26 rules/46 tests") and "PromQL" in east.summary
    assert total_rules >= 60


def test_every_rendered_alert_has_a_unit_test(east) -> None:
    for obj in east:
        if obj["kind"] == "PrometheusRule":
            doc, untested = alert_tests.unit_tests("r.yaml", obj["spec"]["groups"])
            assert untested == []
            alerts = {r["alert"] for g in obj["spec"]["groups"] for r in g["rules"] if "alert" in r}
            checked = [c["alertname"] for t in doc["tests"] for c in t["alert_rule_test"]]
            assert sorted(checked) == sorted(a for a in alerts for _ in (0, 1))


def test_a_broken_alert_expression_fails_check_rules(east) -> None:
    objs = copy.deepcopy(east)
    _, rule = _rule(objs, "FleetkitModelKvCacheFull")
    rule["expr"] = rule["expr"].replace("max by (", "max by ((")
    verdict = promtool.verify(objs)
    assert verdict.failed
    assert any(
        f.rule == promtool.RULE_CHECK and "FleetkitModelKvCacheFull" in f.message for f in verdict.findings
    )


def test_an_alert_that_never_fires_fails_its_unit_test(east) -> None:
    objs = copy.deepcopy(east)
    _, rule = _rule(objs, "FleetkitModelUnavailable")
    # a misspelt metric: valid PromQL, lint-clean, and silent forever
    rule["expr"] = rule["expr"].replace(
        "kube_deployment_status_replicas_available", "kube_deployment_status_replica_available"
    )
    verdict = promtool.verify(objs)
    assert [f.rule for f in verdict.findings] == [promtool.RULE_TEST]
    assert "FleetkitModelUnavailable" in verdict.findings[0].message


def test_a_misspelt_label_in_an_annotation_fails_its_unit_test(east) -> None:
    objs = copy.deepcopy(east)
    _, rule = _rule(objs, "FleetkitModelCrashLooping")
    rule["annotations"]["summary"] = rule["annotations"]["summary"].replace("$labels.pod", "$labels.pdo")
    verdict = promtool.verify(objs)
    assert verdict.failed and verdict.findings[0].rule == promtool.RULE_TEST


def test_an_alert_without_a_builder_is_reported(east) -> None:
    objs = copy.deepcopy(east)
    obj, rule = _rule(objs, "FleetkitModelRestarting")
    obj["spec"]["groups"][0]["rules"].append({**rule, "alert": "FleetkitSomethingNew"})
    verdict = promtool.verify(objs)
    assert [(f.rule, f.where) for f in verdict.findings] == [
        (promtool.RULE_UNTESTED, "alert FleetkitSomethingNew")
    ]


def test_lint_is_fatal(east) -> None:
    objs = copy.deepcopy(east)
    obj, rule = _rule(objs, "FleetkitModelRestarting")
    obj["spec"]["groups"][0]["rules"].append(copy.deepcopy(rule))  # a duplicate rule: a lint finding
    verdict = promtool.verify(objs)
    assert any(f.rule == promtool.RULE_CHECK for f in verdict.findings)


def test_a_broken_keda_query_and_dashboard_query_fail(east) -> None:
    objs = copy.deepcopy(east)
    so = next(o for o in objs if o["kind"] == "ScaledObject")
    so["spec"]["triggers"][0]["metadata"]["query"] = 'sum(vllm:num_requests_waiting{model_name="x"}'
    cm = next(
        o
        for o in objs
        if o["kind"] == "ConfigMap" and o["metadata"].get("labels", {}).get("grafana_dashboard")
    )
    key = next(iter(cm["data"]))
    dash = json.loads(cm["data"][key])
    dash["panels"][1]["targets"][0]["expr"] = "rate(vllm:request_success_total[$__rate_interval]"
    cm["data"][key] = json.dumps(dash)
    verdict = promtool.verify(objs)
    paths = sorted(f.where for f in verdict.findings if f.rule == promtool.RULE_PROMQL)
    assert paths == [f"data.{key}:panels[1].targets[0].expr", "spec.triggers[0].metadata.query"]


def test_grafana_variables_are_substituted() -> None:
    expr = 'sum(rate(x{region=~"$region",m=~"${model}"}[$__rate_interval]))'
    assert promtool.substitute_grafana(expr) == 'sum(rate(x{region=~".+",m=~".+"}[5m]))'


def test_expand_oracle_refuses_unknown_templates() -> None:
    assert (
        alert_tests.expand('{{ $labels.pod }} at {{ $value | printf "%.1f" }}', {"pod": "p"}, 2.25)
        == "p at 2.2"
    )
    with pytest.raises(alert_tests.NoOracle):
        alert_tests.expand("{{ $value | humanizePercentage }}", {}, 0.5)
