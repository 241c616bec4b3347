"""Proof by the real tools: each rendered artifact checked by the consumer that will read it.

One module per consumer; each returns a :class:`Verdict`:

* :mod:`fleetkit.verify.helm_values` — Helm release values against the pinned chart's
  ``values.schema.json`` (what Helm enforces at install) and ``values.yaml`` (Helm ignores unknown
  keys silently);
* :mod:`fleetkit.verify.promtool` — PrometheusRule groups, alert unit tests and every PromQL
  expression (KEDA triggers, the Grafana dashboard) through the real ``promtool``;
* :mod:`fleetkit.verify.vllm_args` — every rendered ``vllm serve`` command line against the flag
  table generated from vLLM's own argument parser (``images/vllm/vllm-flags.json``);
* :mod:`fleetkit.verify.cel` — the CRDs' ``x-kubernetes-validations`` rules on every rendered custom
  resource, with a real CEL engine;
* :mod:`fleetkit.verify.envoy` — Envoy configuration (EnvoyFilter patches) through
  ``envoy --mode validate``.

:func:`fleetkit.verify.runner.verify_stack` runs them all on one stack's manifests and resources.
A tool that is not installed gives a ``skipped`` verdict with the reason — never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fleetkit.issue import MISSING, Issue, plain_value

Status = Literal["pass", "fail", "skipped"]


def finding(subject: str, path: str, rule: str, message: str, value: Any = None) -> Issue:
    """What a real consumer reported about ``subject`` (an object, a release, a file) at ``path`` in it.

    The tools report the place as text (``spec.groups``, ``alert KVCacheHigh``): it is kept as one opaque
    path part, so it renders exactly as the tool put it. A ``None`` value is no value.
    """
    return Issue((path,) if path else (), rule, message, MISSING if value is None else value, subject=subject)


def finding_line(issue: Issue) -> str:
    """``subject: path: [rule] message (got value)`` — one line of a failed verdict."""
    where = f"{issue.subject}: {issue.where}" if issue.where else issue.subject
    shown = "" if issue.value is MISSING else f" (got {issue.value!r})"
    return f"{where}: [{issue.rule}] {issue.message}{shown}"


def finding_dict(issue: Issue) -> dict[str, Any]:
    return {
        "subject": issue.subject,
        "path": issue.where,
        "rule": issue.rule,
        "message": issue.message,
        "value": plain_value(issue.value),
    }


@dataclass
class Verdict:
    """What one real check said about a stack."""

    check: str
    status: Status
    summary: str
    findings: list[Issue] = field(default_factory=list)
    seconds: float = 0.0
    #: how many things were checked (rules, releases, command lines…), for the figures
    count: int = 0

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def line(self) -> str:
        mark = {"pass": "✓", "fail": "✗", "skipped": "–"}[self.status]
        return f"{self.check} {mark} {self.summary}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status,
            "summary": self.summary,
            "count": self.count,
            "findings": [finding_dict(f) for f in self.findings],
        }
