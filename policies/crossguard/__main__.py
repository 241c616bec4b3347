"""fleetkit-guardrails, the CrossGuard pack: ``pulumi preview --policy-pack policies/crossguard``.

Thin adapters only: each rule of :mod:`rules` becomes a ``ResourceValidationPolicy`` or a
``StackValidationPolicy`` that turns the engine's arguments into plain :class:`rules.Resource`
records (secrets as ``"[secret]"``, unknowns as ``"(known after apply)"``) and reports what the rule
returns. ``fleetkit preview`` runs the very same rules offline (``fleetkit.guardrails``).

Building the policies is a function (:func:`build_policies`, :func:`pack_arguments`); the pack — which
starts the analyzer's gRPC server and never returns — is only constructed when Pulumi runs this
file as a program.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

PACK_NAME = "fleetkit-guardrails"


def _load_rules() -> ModuleType:
    """The kit's module when the kit is importable; else this directory loaded as a package of its own
    (the pack's virtualenv), with the checkout on the path for ``fleetkit.issue`` — a standard-library-only
    leaf whose package ``__init__`` imports nothing."""
    try:
        # reason: the pack's own venv may not have the kit; the fallback below loads the file
        from policies.crossguard import rules
    except ImportError:
        here = Path(__file__).resolve().parent
        if str(here.parents[1]) not in sys.path:
            sys.path.append(str(here.parents[1]))
        spec = importlib.util.spec_from_file_location(
            "fleetkit_guardrails", here / "__init__.py", submodule_search_locations=[str(here)]
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = package
        spec.loader.exec_module(package)
        rules = importlib.import_module("fleetkit_guardrails.rules")
    return rules


rules = _load_rules()


# --------------------------------------------------------------------------- plain records
def plain(value: Any) -> Any:
    """A plain copy of (proxied) engine properties; values unknown during preview become ``UNKNOWN``."""
    if isinstance(value, Mapping):
        out = {}
        for key in list(value):
            try:
                item = value[key]
            except UnknownValueError:
                out[key] = rules.UNKNOWN
                continue
            out[key] = plain(item)
        return out
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items = []
        for i in range(len(value)):
            try:
                items.append(plain(value[i]))
            except UnknownValueError:
                items.append(rules.UNKNOWN)
        return items
    return value


def record(resource_type: str, name: str, props: Any, urn: str = "") -> Any:
    return rules.Resource(type=resource_type, name=name, inputs=plain(props), urn=urn)


# --------------------------------------------------------------------------- adapters
def resource_validation(rule: Any) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        res = record(args.resource_type, args.name, args.props, args.urn)
        for v in rules.check_resource(rule, res):
            if v.suppressed is None:
                report_violation(v.message, None)

    return validate


def stack_validation(rule: Any) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [record(r.resource_type, r.name, r.props, r.urn) for r in args.resources]
        for v in rules.check_stack_rule(rule, resources):
            if v.suppressed is None:
                report_violation(
                    v.message, v.resource.urn if v.resource is not None and v.resource.urn else None
                )

    return validate


_ENFORCEMENT = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}
_SEVERITY = {
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}


def build_policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    out: list[ResourceValidationPolicy | StackValidationPolicy] = []
    for rule in rules.RULES:
        common: dict[str, Any] = {
            "name": rule.name,
            "description": rule.description,
            "enforcement_level": _ENFORCEMENT[rule.enforcement],
            "severity": _SEVERITY[rule.severity],
            "remediation_steps": rule.remediation,
        }
        if rule.resource_check is not None:
            out.append(ResourceValidationPolicy(validate=resource_validation(rule), **common))
        else:
            out.append(StackValidationPolicy(validate=stack_validation(rule), **common))
    return out


def pack_arguments() -> dict[str, Any]:
    """Keyword arguments of the ``PolicyPack`` (tests build these without starting the server)."""
    return {
        "name": PACK_NAME,
        "description": "fleetkit guardrails: tainted GPU pools, STRICT mTLS, no public load balancers, read-only "
        "weight buckets, probes and PDBs on model Deployments, no plain credentials.",
        "enforcement_level": EnforcementLevel.MANDATORY,
        "policies": build_policies(),
    }


# --------------------------------------------------------------------------- secrets stay visible as secrets
def mark_secrets_in_analysis() -> bool:
    """Show Pulumi secrets to the validations as ``"[secret]"`` instead of their plaintext.

    The engine sends secret properties marked as such, but ``pulumi_policy`` unwraps them before the
    validations run, so "is this credential a secret?" cannot be answered. This wraps the SDK's
    property decoding for validations (remediations are untouched). Returns False, changing nothing,
    if the SDK no longer has the hook — the secret rules then see plaintext and may over-report.
    """
    from pulumi_policy import deserialize as sdk_deserialize
    from pulumi_policy import policy as sdk_policy

    original = getattr(sdk_policy, "deserialize_properties", None)
    sig_key = getattr(sdk_deserialize, "SPECIAL_SIG_KEY", None)
    secret_sig = getattr(sdk_deserialize, "SPECIAL_SECRET_SIG", None)
    if original is None or sig_key is None or secret_sig is None or getattr(original, "_fleetkit", False):
        return False

    def redact(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get(sig_key) == secret_sig:
                return rules.SECRET
            return {k: redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [redact(v) for v in value]
        return value

    def deserialize_properties(props: dict[str, Any], proxy_secrets: bool = False) -> dict[str, Any]:
        if proxy_secrets:  # the remediation path keeps real secrets
            return original(props, proxy_secrets)
        return original(redact(props), proxy_secrets)

    deserialize_properties._fleetkit = True  # type: ignore[attr-defined]
    sdk_policy.deserialize_properties = deserialize_properties
    return True


def main() -> None:
    mark_secrets_in_analysis()
    PolicyPack(**pack_arguments())  # serves the analyzer until the engine stops it


if __name__ == "__main__":
    main()
