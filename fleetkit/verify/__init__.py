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

Status = Literal["pass", "fail", "skipped"]


@dataclass(frozen=True)
class Finding:
    """One problem a real consumer reported: which object, where in it, which rule, what it said."""

    subject: str
    path: str
    rule: str
    message: str
    value: Any = None

    def line(self) -> str:
        where = f"{self.subject}: {self.path}" if self.path else self.subject
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{where}: [{self.rule}] {self.message}{shown}"


@dataclass
class Verdict:
    """What one real check said about a stack."""

    check: str
    status: Status
    summary: str
    findings: list[Finding] = field(default_factory=list)
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
            "findings": [f.__dict__ for f in self.findings],
        }
