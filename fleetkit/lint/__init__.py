"""``fleetkit lint``: schema and cross-object checks for Kubernetes, Istio and KEDA manifests.

Pure code (no Pulumi): ``lint_objects`` is reused on the kit's own rendered output by ``fleetkit preview``
and ``fleetkit review``. Rules are documented in runbooks/lint.md.
"""

from __future__ import annotations

from fleetkit.lint.engine import IGNORE_ANNOTATION, exit_code, lint_documents, lint_objects, lint_paths
from fleetkit.lint.model import RULES, Finding, LintConfig, LintRule, Severity, rule_for

__all__ = [
    "IGNORE_ANNOTATION",
    "RULES",
    "Finding",
    "LintConfig",
    "LintRule",
    "Severity",
    "exit_code",
    "lint_documents",
    "lint_objects",
    "lint_paths",
    "rule_for",
]
