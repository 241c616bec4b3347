"""``promtool test rules`` unit tests for every alert the kit renders: one case where the alert fires
with exactly the expected labels and annotations, one where it stays silent.

The pattern is kube-prometheus's (``tests.yaml`` beside its rules, run by ``promtool test rules``;
format: https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/). The synthetic
series are built per alert from the rendered rule itself — its namespace, pod regex, containers and
threshold — so every model's copy of an alert is tested, not one hand-picked example.

Expected annotations are the rule's own templates expanded by a small oracle here that knows only
the template forms the kit uses (``$labels.<name>``, ``$value | printf "%.1f"``, ``$value |
humanizeDuration`` below one minute); promtool expands them with Prometheus' real template engine and
compares. A misspelt label in a template expands to ``<no value>`` there and fails the case. An alert
with no builder here is reported (``promtool.alert-untested``): adding an alert means adding its test.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Kubernetes' generated-name alphabet, as the kit's pod regexes use it
_SAFE_CLASS = "[bcdfghjklmnpqrstvwxz2456789]"


class NoOracle(ValueError):
    """A template form the oracle cannot expand (so no exact expectation can be written)."""


#: minutes of each phase: the alert must be silent at QUIET_EVAL, firing at LOUD_EVAL
PHASE = 40
QUIET_EVAL = "35m"
LOUD_EVAL = "75m"


@dataclass
class Case:
    """Series that are quiet for ``PHASE`` minutes, then loud; the alert's value and labels when loud."""

    #: series -> (values of the quiet phase, values of the loud phase), promtool's expanding notation
    series: dict[str, tuple[str, str]]
    value: float | None = None
    labels: dict[str, str] = field(default_factory=dict)


def _const(value: float) -> str:
    return f"{value:g}x{PHASE - 1}"


def _sel(name: str, labels: Mapping[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _pod(regex: str) -> str:
    """A pod name matching one of the kit's pod regexes (``<deployment>-<hash>-<suffix>``)."""
    return regex.replace(f"{_SAFE_CLASS}+", "7c9f8").replace(f"{_SAFE_CLASS}{{5}}", "x2b4z")


def _threshold(expr: str) -> float:
    m = re.search(r"(?:>|==)\s*([0-9.]+)\s*$", expr)
    if not m:
        raise NoOracle(f"no trailing threshold in {expr!r}")
    return float(m.group(1))


def _label(expr: str, name: str) -> str:
    m = re.search(rf'\b{name}="([^"]+)"', expr)
    if not m:
        raise NoOracle(f"no {name}=... matcher in {expr!r}")
    return m.group(1)


def _pod_regex(expr: str) -> str:
    m = re.search(r'pod=~"([^"]+)"', expr)
    if not m:
        raise NoOracle(f"no pod=~ matcher in {expr!r}")
    return m.group(1)


def _queue(rule: Mapping[str, Any]) -> Case:
    expr = rule["expr"]
    base = {"namespace": _label(expr, "namespace"), "fleetkit_model": _label(expr, "fleetkit_model")}
    high = _threshold(expr) * 2 + 1
    pods = [f"{base['fleetkit_model']}-7c9f8-x2b4z", f"{base['fleetkit_model']}-7c9f8-b4z2x"]
    # two replicas: the per-replica average is what crosses the threshold (quiet: just below it)
    return Case(
        {
            _sel("vllm:num_requests_waiting", {**base, "pod": p}): (
                _const(_threshold(expr)),
                f"{high:g}x{PHASE}",
            )
            for p in pods
        },
        high,
        base,
    )


def _ttft(rule: Mapping[str, Any]) -> Case:
    expr = rule["expr"]
    base = {
        "namespace": _label(expr, "namespace"),
        "fleetkit_model": _label(expr, "fleetkit_model"),
        "model_name": "served-model",
        "pod": f"{_label(expr, 'fleetkit_model')}-7c9f8-x2b4z",
    }
    hi = _threshold(expr) * 2
    name = "vllm:time_to_first_token_seconds_bucket"
    done = 10 * (PHASE - 1)
    # quiet: every observation below 1 s; loud: every one between 1 s and hi, so the 0.95 quantile
    # interpolates to 1 + 0.95 (hi - 1)
    series = {_sel(name, {**base, "le": "1"}): (f"0+10x{PHASE - 1}", f"{done}x{PHASE}")}
    for le in (f"{hi:g}", "+Inf"):
        series[_sel(name, {**base, "le": le})] = (f"0+10x{PHASE - 1}", f"{done + 10}+10x{PHASE}")
    labels = {k: v for k, v in base.items() if k != "pod"}
    return Case(series, 1 + 0.95 * (hi - 1), labels)


def _kv(rule: Mapping[str, Any]) -> Case:
    expr = rule["expr"]
    base = {
        "namespace": _label(expr, "namespace"),
        "fleetkit_model": _label(expr, "fleetkit_model"),
        "pod": f"{_label(expr, 'fleetkit_model')}-7c9f8-x2b4z",
    }
    full = min(1.0, _threshold(expr) + 0.04)
    return Case(
        {_sel("vllm:kv_cache_usage_perc", base): (_const(_threshold(expr)), f"{full:g}x{PHASE}")}, full, base
    )


def _waiting(rule: Mapping[str, Any]) -> Case:
    """CrashLoopBackOff alerts. A pod of a *different* deployment whose name extends this one
    (``<model>-v2-…``) crash-loops the whole time and must never fire: the regex isolation."""
    expr = rule["expr"]
    regex = _pod_regex(expr)
    pod = _pod(regex)
    prefix = regex[: regex.index("-" + _SAFE_CLASS)]
    other = _pod(regex.replace(prefix, prefix + "-v2", 1))
    container = _label(expr, "container") if 'container="' in expr else "vllm"
    labels = {"namespace": _label(expr, "namespace"), "pod": pod, "container": container}
    name = "kube_pod_container_status_waiting_reason"
    series = {
        _sel(name, {**labels, "reason": "CrashLoopBackOff"}): (_const(0), f"1x{PHASE}"),
        _sel(name, {**labels, "pod": other, "reason": "CrashLoopBackOff"}): (_const(1), f"1x{PHASE}"),
    }
    by = re.search(r"max by \(([^)]*)\)", expr)
    keep = [k.strip() for k in by.group(1).split(",")] if by else list(labels)
    return Case(series, 1, {k: labels[k] for k in keep})


def _restarts(rule: Mapping[str, Any]) -> Case:
    expr = rule["expr"]
    labels = {
        "namespace": _label(expr, "namespace"),
        "pod": _pod(_pod_regex(expr)),
        "container": _label(expr, "container"),
    }
    # quiet: one restart in the window (the threshold is "more than twice"); loud: one a minute
    quiet = f"0x{PHASE - 12} 1x10"
    return Case(
        {_sel("kube_pod_container_status_restarts_total", labels): (quiet, f"2+1x{PHASE}")}, None, labels
    )


def _sync(rule: Mapping[str, Any]) -> Case:
    expr = rule["expr"]
    labels = {
        "namespace": _label(expr, "namespace"),
        "pod": _pod(_pod_regex(expr)),
        "container": _label(expr, "container"),
    }
    # quiet: it failed once, then completed; loud: it fails and has not completed
    series = {
        _sel("kube_pod_init_container_status_last_terminated_reason", {**labels, "reason": "Error"}): (
            _const(1),
            f"1x{PHASE}",
        ),
        _sel("kube_pod_init_container_status_terminated_reason", {**labels, "reason": "Completed"}): (
            _const(1),
            f"0x{PHASE}",
        ),
    }
    return Case(series, 1, {"namespace": labels["namespace"], "pod": labels["pod"]})


def _unavailable(rule: Mapping[str, Any]) -> Case:
    expr = rule["expr"]
    labels = {"namespace": _label(expr, "namespace"), "deployment": _label(expr, "deployment")}
    return Case(
        {
            _sel("kube_deployment_status_replicas_available", labels): (_const(1), f"0x{PHASE}"),
            _sel("kube_deployment_spec_replicas", labels): (_const(2), f"2x{PHASE}"),
        },
        0,
        labels,
    )


#: alert name -> builder of its cases
BUILDERS: dict[str, Callable[[Mapping[str, Any]], Case]] = {
    "FleetkitModelQueueBacklog": _queue,
    "FleetkitModelTTFTHigh": _ttft,
    "FleetkitModelKvCacheFull": _kv,
    "FleetkitModelCrashLooping": _waiting,
    "FleetkitModelRestarting": _restarts,
    "FleetkitWeightSyncFailing": _sync,
    "FleetkitModelUnavailable": _unavailable,
    "FleetkitWeightPrefetchCrashLooping": _waiting,
}


def expand(template: str, labels: Mapping[str, str], value: float | None) -> str:
    """The oracle: the rule's annotation with the kit's template forms expanded."""

    def one(m: re.Match[str]) -> str:
        body = m.group(1).strip()
        lab = re.fullmatch(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)", body)
        if lab:
            return labels.get(lab.group(1), "<no value>")
        if value is None:
            raise NoOracle(f"{{{{ {body} }}}} needs the alert's value")
        if body == '$value | printf "%.1f"':
            return f"{value:.1f}"
        if body == "$value | humanizeDuration" and 1 <= value < 60:
            return f"{value:.4g}s"
        if body == "$value":
            return f"{value:g}"
        raise NoOracle(f"template {{{{ {body} }}}} has no oracle")

    return re.sub(r"\{\{(.*?)\}\}", one, template)


def unit_tests(
    rules_file: str, groups: list[Mapping[str, Any]]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(promtool test file for ``rules_file``, [(alert, why it has no test)]).

    One test group per rules file: every alert's series, each quiet for ``PHASE`` minutes then loud.
    Each alert is asserted twice: no alert at ``QUIET_EVAL``, exactly the expected one at ``LOUD_EVAL``
    (promtool compares the complete list of firing alerts of that name).
    """
    series: dict[str, str] = {}
    checks: list[dict[str, Any]] = []
    untested: list[tuple[str, str]] = []
    for group in groups:
        for rule in group.get("rules") or []:
            alert = rule.get("alert")
            if not alert:
                continue
            builder = BUILDERS.get(alert)
            if builder is None:
                untested.append((alert, "no unit-test builder in fleetkit/verify/alert_tests.py"))
                continue
            try:
                case = builder(rule)
                labels = {**case.labels, **{k: str(v) for k, v in (rule.get("labels") or {}).items()}}
                annotations = {
                    k: expand(str(v), labels, case.value) for k, v in (rule.get("annotations") or {}).items()
                }
            except NoOracle as err:
                untested.append((alert, str(err)))
                continue
            for name, (quiet, loud) in case.series.items():
                series[name] = f"{quiet} {loud}"
            checks.append({"eval_time": QUIET_EVAL, "alertname": alert, "exp_alerts": []})
            checks.append(
                {
                    "eval_time": LOUD_EVAL,
                    "alertname": alert,
                    "exp_alerts": [{"exp_labels": labels, "exp_annotations": annotations}],
                }
            )
    tests = (
        [
            {
                "name": "every alert: silent, then firing",
                "interval": "1m",
                "input_series": [{"series": k, "values": v} for k, v in sorted(series.items())],
                "alert_rule_test": checks,
            }
        ]
        if checks
        else []
    )
    return {"rule_files": [rules_file], "evaluation_interval": "1m", "tests": tests}, untested
