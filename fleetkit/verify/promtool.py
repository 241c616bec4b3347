"""Prometheus rules, alert unit tests and every PromQL expression, through the real ``promtool``.

* Every ``PrometheusRule``'s ``spec.groups`` is written as a rule file (the Prometheus Operator mounts
  exactly that: ``groups:``) and must pass ``promtool check rules --lint=all --lint-fatal``
  (https://prometheus.io/docs/prometheus/latest/command-line/promtool/).
* Every alert gets ``promtool test rules`` cases (:mod:`fleetkit.verify.alert_tests`).
* Every PromQL expression elsewhere — KEDA ``prometheus`` trigger queries, the Grafana dashboard's
  panel targets and ``label_values(<expr>, label)`` variable queries — is wrapped as a recording rule
  and must parse (``promtool check rules``). Grafana variables are substituted first the way Grafana
  would (``$__rate_interval`` → ``5m``; a ``$var`` inside a label matcher → ``.+``). The HPA engine uses
  prometheus-adapter metric *names*, not PromQL; the kit renders no adapter rules.

``promtool`` comes from the Debian package ``prometheus`` (``.ci/run`` installs it). Without it the
verdict is ``skipped`` with that reason.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from fleetkit.issue import Issue
from fleetkit.verify import Verdict, finding
from fleetkit.verify.alert_tests import unit_tests

TIMEOUT_S = 120
RULE_CHECK = "promtool.check-rules"
RULE_TEST = "promtool.test-rules"
RULE_UNTESTED = "promtool.alert-untested"
RULE_PROMQL = "promtool.promql"

#: Grafana's built-in interval variables -> a duration promtool accepts
GRAFANA_DURATIONS = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__interval_ms": "60000",
    "__range_s": "3600",
}
_VAR = re.compile(
    r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}|\[\[([A-Za-z_][A-Za-z0-9_]*)\]\]|\$([A-Za-z_][A-Za-z0-9_]*)"
)


def promtool_path() -> str | None:
    return shutil.which("promtool")


def substitute_grafana(expr: str) -> str:
    """Grafana template variables replaced by values that keep the PromQL well-formed."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return GRAFANA_DURATIONS.get(name, ".+")

    return _VAR.sub(one, expr)


def _subject(obj: Mapping[str, Any]) -> str:
    md = obj.get("metadata") or {}
    return f"{obj.get('kind')} {md.get('namespace') or '-'}/{md.get('name')}"


def promql_expressions(manifests: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(subject, path, PromQL with Grafana variables substituted) of every query outside rule files."""
    out: list[tuple[str, str, str]] = []
    for obj in manifests:
        kind = obj.get("kind")
        if kind == "ScaledObject":
            for i, trig in enumerate((obj.get("spec") or {}).get("triggers") or []):
                query = (trig.get("metadata") or {}).get("query")
                if trig.get("type") == "prometheus" and isinstance(query, str):
                    out.append((_subject(obj), f"spec.triggers[{i}].metadata.query", query))
        elif kind == "ConfigMap" and ((obj.get("metadata") or {}).get("labels") or {}).get(
            "grafana_dashboard"
        ):
            for key, text in sorted((obj.get("data") or {}).items()):
                if key.endswith(".json"):
                    out += [
                        (_subject(obj), f"data.{key}:{p}", e)
                        for p, e in dashboard_expressions(json.loads(text))
                    ]
    return [(s, p, substitute_grafana(e)) for s, p, e in out]


def dashboard_expressions(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(path, expr) of every Prometheus target and ``label_values`` variable query of a dashboard."""
    out: list[tuple[str, str]] = []

    def panels(items: list[Any], path: str) -> None:
        for i, panel in enumerate(items or []):
            for j, target in enumerate(panel.get("targets") or []):
                if isinstance(target.get("expr"), str) and target["expr"].strip():
                    out.append((f"{path}[{i}].targets[{j}].expr", target["expr"]))
            panels(panel.get("panels") or [], f"{path}[{i}].panels")

    panels(list(dashboard.get("panels") or []), "panels")
    for i, var in enumerate((dashboard.get("templating") or {}).get("list") or []):
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if var.get("type") != "query" or not isinstance(query, str):
            continue
        m = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", query, flags=re.S)
        if m:
            out.append((f"templating.list[{i}].query", m.group(1)))
    return out


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return 1, f"promtool did not finish in {TIMEOUT_S}s\n{out}"
    return proc.returncode, out


def _failures(output: str, files: Mapping[str, str]) -> list[tuple[str, str]]:
    """(subject, message) per promtool error line, mapped back from the file it names."""
    out = []
    for line in output.splitlines():
        for fname, subject in files.items():
            if line.startswith(f"{fname}:"):
                out.append((subject, line[len(fname) + 1 :].strip()))
    return out


def _write_inputs(
    root: Path, rule_objs: list[Mapping[str, Any]]
) -> tuple[dict[str, str], list[str], int, list[Issue]]:
    """Each PrometheusRule's groups (``rules-<i>.yaml``) and their alert tests (``tests-<i>.yaml``) under
    ``root``: (file -> subject, test files, alert test cases, alerts with no test)."""
    files: dict[str, str] = {}
    tests: list[str] = []
    n_tests = 0
    untested_findings: list[Issue] = []
    for i, obj in enumerate(rule_objs):
        groups = list((obj.get("spec") or {}).get("groups") or [])
        name = f"rules-{i}.yaml"
        (root / name).write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
        files[name] = _subject(obj)
        test_doc, untested = unit_tests(name, groups)
        untested_findings += [finding(_subject(obj), f"alert {a}", RULE_UNTESTED, why) for a, why in untested]
        if test_doc["tests"]:
            tname = f"tests-{i}.yaml"
            (root / tname).write_text(yaml.safe_dump(test_doc, sort_keys=False), encoding="utf-8")
            tests.append(tname)
            files[tname] = _subject(obj)
            n_tests += sum(len(t["alert_rule_test"]) for t in test_doc["tests"])
    return files, tests, n_tests, untested_findings


def _check_findings(proc: subprocess.Popen[str] | None, files: Mapping[str, str]) -> list[Issue]:
    """``promtool check rules`` said: one issue per error line, on the rule object it names."""
    if proc is None:
        return []
    code, out = _wait(proc)
    if not code:
        return []
    return [finding(s, "spec.groups", RULE_CHECK, m) for s, m in _failures(out, files)] or [
        finding("PrometheusRule", "spec.groups", RULE_CHECK, out.strip()[-500:])
    ]


def _test_findings(proc: subprocess.Popen[str] | None, files: Mapping[str, str]) -> list[Issue]:
    """``promtool test rules`` said: one issue per failed alert test."""
    if proc is None:
        return []
    code, out = _wait(proc)
    if not code:
        return []
    return [finding(files[t], "spec.groups", RULE_TEST, msg) for t, msg in _test_failures(out)] or [
        finding("PrometheusRule", "spec.groups", RULE_TEST, out.strip()[-500:])
    ]


def _promql_findings(proc: subprocess.Popen[str] | None, exprs: list[tuple[str, str, str]]) -> list[Issue]:
    """The PromQL parse run said: one issue per expression that does not parse, where it came from."""
    if proc is None:
        return []
    code, out = _wait(proc)
    if not code:
        return []
    found = []
    for line in out.splitlines():
        m = re.search(r'rule (\d+), "fleetkit:promql_check:\d+": (.*)$', line)
        if m:
            subject, path, expr = exprs[int(m.group(1)) - 1]
            found.append(finding(subject, path, RULE_PROMQL, m.group(2), expr))
    return found or [finding("PromQL", "", RULE_PROMQL, out.strip()[-500:])]


def verify(manifests: Iterable[Mapping[str, Any]]) -> Verdict:
    started = time.perf_counter()
    objs = list(manifests)
    exe = promtool_path()
    rule_objs = [o for o in objs if o.get("kind") == "PrometheusRule"]
    exprs = promql_expressions(objs)
    n_rules = sum(
        len(g.get("rules") or []) for o in rule_objs for g in (o.get("spec") or {}).get("groups") or []
    )
    if exe is None:
        return Verdict(
            "promtool",
            "skipped",
            f"promtool not installed ({n_rules} rules, {len(exprs)} PromQL "
            "expressions NOT checked; Debian package 'prometheus')",
            [],
            time.perf_counter() - started,
        )
    with tempfile.TemporaryDirectory(prefix="fleetkit-promtool-") as tmp:
        root = Path(tmp)
        files, tests, n_tests, findings = _write_inputs(root, rule_objs)
        # the three promtool runs are independent: run them side by side
        rule_files = [f for f in files if f.startswith("rules-")]
        check = (
            _start([exe, "check", "rules", "--lint=all", "--lint-fatal", *rule_files], root)
            if rule_objs
            else None
        )
        test = _start([exe, "test", "rules", *tests], root) if tests else None
        parse = None
        if exprs:
            rules = [{"record": f"fleetkit:promql_check:{i}", "expr": e} for i, (_, _, e) in enumerate(exprs)]
            (root / "promql.yaml").write_text(
                yaml.safe_dump({"groups": [{"name": "promql", "rules": rules}]}), encoding="utf-8"
            )
            parse = _start([exe, "check", "rules", "promql.yaml"], root)
        findings += _check_findings(check, files) + _test_findings(test, files)
        findings += _promql_findings(parse, exprs)
    seconds = time.perf_counter() - started
    summary = f"{n_rules} rules/{n_tests} tests, {len(exprs)} PromQL"
    if findings:
        return Verdict(
            "promtool", "fail", f"{len(findings)} problem(s) ({summary})", findings, seconds, n_rules
        )
    if not n_rules and not exprs:
        return Verdict("promtool", "skipped", "no rules or PromQL", [], seconds)
    return Verdict("promtool", "pass", summary, [], seconds, n_rules)


def _test_failures(output: str) -> list[tuple[str, str]]:
    """(test file, what failed) from ``promtool test rules`` output ("Unit Testing:  FILE" blocks)."""
    out: list[tuple[str, str]] = []
    current, lines = "", []  # type: ignore[var-annotated]
    for line in [*output.splitlines(), "Unit Testing:  "]:
        if line.startswith("Unit Testing:"):
            text = "\n".join(ln.rstrip() for ln in lines if ln.strip())
            if current and "FAILED" in text:
                out.append((current, text if len(text) < 2000 else text[:1997] + "..."))
            current, lines = line.split(":", 1)[1].strip(), []
        else:
            lines.append(line)
    return out
