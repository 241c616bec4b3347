"""The records the guardrails read and write: a resource, a rule, a violation; shared helpers.

A record is what Pulumi knows about one resource: its type token, its name and its properties
(camelCase, as the engine passes them). Two values are special in properties: :data:`SECRET`
(``"[secret]"``) stands for a Pulumi secret — fine wherever a credential lives — and :data:`UNKNOWN`
(``"(known after apply)"``) for a value the engine cannot know during preview; rules never report on
an unknown value.

A :class:`Violation` is the kit's one problem type (:class:`fleetkit.issue.Issue`: the rule, the
message, the object as ``subject``, a suppression's reason) plus the resource record the pack reports
it against. Standard library only (and ``fleetkit.issue``, itself standard library only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetkit.issue import Issue, PolicyRecord

SECRET = "[secret]"
UNKNOWN = "(known after apply)"
IGNORE_ANNOTATION = "fleetkit.dev/guardrail-ignore"
#: label the kit puts on model pods (``policies.common.LABEL_MODEL``; repeated here to stay stdlib-only)
MODEL_LABEL = "fleetkit.dev/model"
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
ROOT_NAMESPACE = "istio-system"

Enforcement = Literal["mandatory", "advisory"]
Severity = Literal["low", "medium", "high", "critical"]


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Resource:
    """One resource as a policy sees it: type token, logical name, properties, URN (may be empty)."""

    type: str
    name: str
    inputs: Mapping[str, Any]
    urn: str = ""

    @property
    def label(self) -> str:
        """``type::name``: stable across runs, readable in reports."""
        return f"{self.type}::{self.name}"

    def get(self, *path: str | int, default: Any = None) -> Any:
        return dig(self.inputs, *path, default=default)

    # Kubernetes objects -------------------------------------------------
    @property
    def kind(self) -> str:
        kind = self.inputs.get("kind")
        if isinstance(kind, str) and kind:
            return kind
        return self.type.rsplit(":", 1)[-1] if self.type.startswith("kubernetes:") else ""

    @property
    def k8s_name(self) -> str:
        return str(self.get("metadata", "name", default="") or self.name)

    @property
    def namespace(self) -> str:
        ns = self.get("metadata", "namespace", default=None)
        return ns if isinstance(ns, str) and ns else "default"

    @property
    def ref(self) -> str:
        """``Kind/namespace/name`` for namespaced Kubernetes objects, else the record label."""
        if not self.type.startswith("kubernetes:") or not self.kind:
            return self.label
        ns = self.get("metadata", "namespace", default=None)
        return f"{self.kind}/{ns}/{self.k8s_name}" if ns else f"{self.kind}/{self.k8s_name}"

    def suppressions(self) -> dict[str, str]:
        """``policy -> reason`` from the ignore annotation (entries without a reason are ignored)."""
        raw = self.get("metadata", "annotations", IGNORE_ANNOTATION, default=None)
        if not isinstance(raw, str):
            return {}
        out: dict[str, str] = {}
        for entry in raw.split(";"):
            name, sep, reason = entry.partition(":")
            if sep and name.strip() and reason.strip():
                out[name.strip()] = reason.strip()
        return out


@dataclass(frozen=True)
class Violation(PolicyRecord):
    """A rule's verdict on one resource (or on the stack, ``resource`` None): an :class:`Issue` whose rule is
    the policy name and whose subject is the resource's ``label`` (``(stack)``), an ``error`` for a mandatory
    rule and a ``warning`` for an advisory one, plus the record the pack reports it on."""

    issue: Issue
    resource: Resource | None = None


ResourceCheck = Callable[[Resource], Iterable[str]]
StackCheck = Callable[[Sequence[Resource]], Iterable[tuple[Resource | None, str]]]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    enforcement: Enforcement
    severity: Severity
    remediation: str
    resource_check: ResourceCheck | None = field(default=None, repr=False)
    stack_check: StackCheck | None = field(default=None, repr=False)

    @property
    def scope(self) -> str:
        return "resource" if self.resource_check is not None else "stack"


# --------------------------------------------------------------------------- helpers
def dig(value: Any, *path: str | int, default: Any = None) -> Any:
    cur = value
    for part in path:
        if isinstance(part, int):
            if not isinstance(cur, Sequence) or isinstance(cur, str) or part >= len(cur):
                return default
            cur = cur[part]
        else:
            if not isinstance(cur, Mapping) or part not in cur:
                return default
            cur = cur[part]
    return default if cur is None else cur


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value == UNKNOWN


def as_list(value: Any) -> list[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return []


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def is_k8s(res: Resource, api_group_kind: str) -> bool:
    """``api_group_kind`` like ``core/v1:Service`` or ``security.istio.io/v1:PeerAuthentication``."""
    return res.type == f"kubernetes:{api_group_kind}"


def is_istio_kind(res: Resource, group: str, kind: str) -> bool:
    return res.type.startswith(f"kubernetes:{group}.istio.io/") and res.type.endswith(f":{kind}")


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A ``matchLabels`` map (or LabelSelector) selects pods carrying ``labels``; empty selects all."""
    if not selector:
        return True
    match_labels = (
        as_map(selector.get("matchLabels"))
        if "matchLabels" in selector or "matchExpressions" in selector
        else selector
    )
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for expr in as_list(selector.get("matchExpressions")):
        key, op, values = expr.get("key"), expr.get("operator"), as_list(expr.get("values"))
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# --------------------------------------------------------------------------- load balancers (two rule modules)
#: the type tokens of a Helm release / chart in Pulumi
HELM_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")


def chart_name(res: Resource) -> str:
    chart = res.get("chart", default="")
    return str(chart).rstrip("/").rsplit("/", 1)[-1] if isinstance(chart, str) else ""


@dataclass(frozen=True)
class Exposure:
    """Something a LoadBalancer exposes: a Service, or the Service of an istio/gateway release."""

    resource: Resource
    what: str
    namespace: str
    pod_labels: Mapping[str, str]
    annotations: Mapping[str, Any]


def load_balancers(resources: Sequence[Resource]) -> Iterator[Exposure]:
    for r in resources:
        if is_k8s(r, "core/v1:Service"):
            if r.get("spec", "type") != "LoadBalancer":
                continue
            yield Exposure(
                r,
                f"Service {r.ref}",
                r.namespace,
                as_map(r.get("spec", "selector")),
                as_map(r.get("metadata", "annotations")),
            )
        elif r.type in HELM_TYPES and chart_name(r) == "gateway":
            values = as_map(r.get("values"))
            svc = as_map(values.get("service"))
            if svc.get("type", "LoadBalancer") != "LoadBalancer":  # the istio/gateway chart's default
                continue
            name = str(values.get("name") or r.get("name") or r.name)
            labels = {"app": name, "istio": name.removeprefix("istio-"), **as_map(values.get("labels"))}
            ns = r.get("namespace", default="default")
            yield Exposure(r, f"gateway release {name}", str(ns), labels, as_map(svc.get("annotations")))
