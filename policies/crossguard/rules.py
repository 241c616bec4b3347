"""The kit's guardrails as pure functions over resource records.

A record is what Pulumi knows about one resource: its type token, its name and its properties
(camelCase, as the engine passes them). The same functions run

1. inside the CrossGuard pack (``policies/crossguard/__main__.py`` adapts ``ResourceValidationArgs``
   and ``StackValidationArgs`` to :class:`Resource`), and
2. offline over the resources ``fleetkit preview`` records (:mod:`fleetkit.guardrails`).

Two values are special in properties: :data:`SECRET` (``"[secret]"``) stands for a Pulumi secret —
fine wherever a credential lives — and :data:`UNKNOWN` (``"(known after apply)"``) for a value the
engine cannot know during preview; rules never report on an unknown value.

Standard library only: the pack's virtualenv holds nothing but ``pulumi-policy``.

Suppressing a verdict on one Kubernetes object takes an annotation with a reason, the same shape as
the lint one: ``fleetkit.dev/guardrail-ignore: "no-public-load-balancer: partner VPN terminates here"``.
A suppressed verdict is still reported (with its reason) but never counts as a violation.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

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
class Violation:
    policy: str
    message: str
    resource: Resource | None = None
    #: the justification from the ignore annotation, when the object suppresses this policy
    suppressed: str | None = None


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


def _list(value: Any) -> list[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return []


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _is_k8s(res: Resource, api_group_kind: str) -> bool:
    """``api_group_kind`` like ``core/v1:Service`` or ``security.istio.io/v1:PeerAuthentication``."""
    return res.type == f"kubernetes:{api_group_kind}"


def _istio_kind(res: Resource, group: str, kind: str) -> bool:
    return res.type.startswith(f"kubernetes:{group}.istio.io/") and res.type.endswith(f":{kind}")


def _selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A ``matchLabels`` map (or LabelSelector) selects pods carrying ``labels``; empty selects all."""
    if not selector:
        return True
    match_labels = (
        _map(selector.get("matchLabels"))
        if "matchLabels" in selector or "matchExpressions" in selector
        else selector
    )
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for expr in _list(selector.get("matchExpressions")):
        key, op, values = expr.get("key"), expr.get("operator"), _list(expr.get("values"))
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# --------------------------------------------------------------------------- GPU pools tainted
_AWS_GPU_INSTANCE = re.compile(r"^(p\d|g\d|gr\d)[a-z0-9-]*\.", re.IGNORECASE)
_GCP_GPU_MACHINE = re.compile(r"^(a2|a3|a4|a4x|g2|g4)-", re.IGNORECASE)
_AZURE_GPU_VM = re.compile(r"^standard_n", re.IGNORECASE)
_HARD_EFFECTS = ("NOSCHEDULE", "NOEXECUTE")  # EKS/GKE write NO_SCHEDULE, AKS and Kubernetes NoSchedule


def _hard_taints(taints: Iterable[Any]) -> list[str]:
    out = []
    for t in taints:
        if isinstance(t, Mapping):
            effect, shown = str(t.get("effect", "")), f"{t.get('key')}={t.get('value', '')}:{t.get('effect')}"
        elif isinstance(t, str):  # AKS spelling key=value:NoSchedule
            effect, shown = t.rpartition(":")[2], t
        else:
            continue
        if effect.replace("_", "").upper() in _HARD_EFFECTS:
            out.append(shown)
    return out


def _aks_pool_gpu(pool: Mapping[str, Any]) -> bool:
    vm = pool.get("vmSize")
    return (isinstance(vm, str) and bool(_AZURE_GPU_VM.match(vm))) or bool(pool.get("gpuProfile"))


def _taint_message(what: str, gpu: str, expected: str) -> str:
    return (
        f"{what} has GPUs ({gpu}) but no NoSchedule/NoExecute taint: any pod can be scheduled on a GPU "
        f"node and hold it; add {expected}"
    )


def check_gpu_pool_taints(res: Resource) -> Iterator[str]:
    if res.type == "aws:eks/nodeGroup:NodeGroup":
        ami = res.get("amiType", default="")
        types = [t for t in _list(res.get("instanceTypes")) if isinstance(t, str)]
        if is_unknown(ami) or is_unknown(res.get("taints")):
            return
        gpu_types = [t for t in types if _AWS_GPU_INSTANCE.match(t)]
        if not (("NVIDIA" in str(ami).upper() or "GPU" in str(ami).upper()) or gpu_types):
            return
        if not _hard_taints(_list(res.get("taints"))):
            yield _taint_message(
                f"EKS node group {res.name}",
                ", ".join([str(ami)] * bool(ami) + gpu_types),
                "taints: [{key: nvidia.com/gpu, value: present, effect: NO_SCHEDULE}]",
            )
    elif res.type == "gcp:container/nodePool:NodePool":
        cfg = _map(res.get("nodeConfig"))
        machine = cfg.get("machineType", "")
        accels = _list(cfg.get("guestAccelerators"))
        if is_unknown(machine) or is_unknown(cfg.get("taints")):
            return
        if not (accels or (isinstance(machine, str) and _GCP_GPU_MACHINE.match(machine))):
            return
        if not _hard_taints(_list(cfg.get("taints"))):
            yield _taint_message(
                f"GKE node pool {res.name}",
                str(machine or "guestAccelerators"),
                "nodeConfig.taints: [{key: nvidia.com/gpu, value: present, effect: NO_SCHEDULE}]",
            )
    elif res.type == "azure-native:containerservice:AgentPool":
        if is_unknown(res.get("nodeTaints")) or not _aks_pool_gpu(res.inputs):
            return
        if not _hard_taints(_list(res.get("nodeTaints"))):
            yield _taint_message(
                f"AKS agent pool {res.name}",
                str(res.get("vmSize", "gpuProfile")),
                "nodeTaints: ['nvidia.com/gpu=present:NoSchedule']",
            )
    elif res.type == "azure-native:containerservice:ManagedCluster":
        for pool in _list(res.get("agentPoolProfiles")):
            if not isinstance(pool, Mapping) or not _aks_pool_gpu(pool) or is_unknown(pool.get("nodeTaints")):
                continue
            if not _hard_taints(_list(pool.get("nodeTaints"))):
                yield _taint_message(
                    f"AKS agent pool {pool.get('name', '?')} of cluster {res.name}",
                    str(pool.get("vmSize")),
                    "nodeTaints: ['nvidia.com/gpu=present:NoSchedule']",
                )


# --------------------------------------------------------------------------- STRICT mTLS
def _mesh_present(resources: Sequence[Resource]) -> bool:
    for r in resources:
        if r.type.startswith("kubernetes:") and ".istio.io/" in r.type:
            return True
        if r.type in HELM_TYPES and _chart_name(r) in ("istiod", "base", "istio-base"):
            return True
    return False


def _pa_modes(pa: Resource) -> list[tuple[str, str]]:
    """(where, mode) for the workload-level and every port-level mTLS mode of a PeerAuthentication."""
    spec = _map(pa.get("spec"))
    out = []
    mode = dig(spec, "mtls", "mode")
    if isinstance(mode, str):
        out.append(("mtls.mode", mode.upper()))
    for port, cfg in sorted(_map(spec.get("portLevelMtls")).items(), key=lambda kv: str(kv[0])):
        pmode = dig(cfg, "mode")
        if isinstance(pmode, str):
            out.append((f"portLevelMtls.{port}.mode", pmode.upper()))
    return out


def check_strict_mtls(resources: Sequence[Resource]) -> Iterator[tuple[Resource | None, str]]:
    if not _mesh_present(resources):
        return
    pas = [r for r in resources if _istio_kind(r, "security", "PeerAuthentication")]
    mesh_wide = False
    for pa in pas:
        modes = _pa_modes(pa)
        for where, mode in modes:
            if mode in ("DISABLE", "PERMISSIVE"):
                yield (
                    pa,
                    (
                        f"PeerAuthentication {pa.ref} sets {where}: {mode}: plaintext can reach workloads; "
                        "the kit runs the mesh with STRICT mTLS only"
                    ),
                )
        if (
            pa.get("metadata", "namespace") == ROOT_NAMESPACE
            and not pa.get("spec", "selector")
            and ("mtls.mode", "STRICT") in modes
        ):
            mesh_wide = True
    if not mesh_wide:
        strict = [pa.ref for pa in pas if ("mtls.mode", "STRICT") in _pa_modes(pa)]
        where = f" (STRICT only in {', '.join(strict)})" if strict else ""
        yield (
            None,
            (
                f"the stack installs Istio but has no mesh-wide PeerAuthentication with mtls.mode STRICT in "
                f"{ROOT_NAMESPACE} (no selector){where}"
            ),
        )


# --------------------------------------------------------------------------- public load balancers
HELM_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
#: annotations that make a LoadBalancer Service internal (value compared case-insensitively)
INTERNAL_LB_ANNOTATIONS: dict[str, tuple[str, ...]] = {
    "service.beta.kubernetes.io/aws-load-balancer-internal": ("true", "0.0.0.0/0"),
    "service.beta.kubernetes.io/aws-load-balancer-scheme": ("internal",),
    "networking.gke.io/load-balancer-type": ("internal",),
    "cloud.google.com/load-balancer-type": ("internal",),
    "service.beta.kubernetes.io/azure-load-balancer-internal": ("true",),
}
EAST_WEST_LABELS = ("topology.istio.io/network",)


def _chart_name(res: Resource) -> str:
    chart = res.get("chart", default="")
    return str(chart).rstrip("/").rsplit("/", 1)[-1] if isinstance(chart, str) else ""


@dataclass(frozen=True)
class _Exposure:
    resource: Resource
    what: str
    namespace: str
    pod_labels: Mapping[str, str]
    annotations: Mapping[str, Any]


def _load_balancers(resources: Sequence[Resource]) -> Iterator[_Exposure]:
    for r in resources:
        if _is_k8s(r, "core/v1:Service"):
            if r.get("spec", "type") != "LoadBalancer":
                continue
            yield _Exposure(
                r,
                f"Service {r.ref}",
                r.namespace,
                _map(r.get("spec", "selector")),
                _map(r.get("metadata", "annotations")),
            )
        elif r.type in HELM_TYPES and _chart_name(r) == "gateway":
            values = _map(r.get("values"))
            svc = _map(values.get("service"))
            if svc.get("type", "LoadBalancer") != "LoadBalancer":  # the istio/gateway chart's default
                continue
            name = str(values.get("name") or r.get("name") or r.name)
            labels = {"app": name, "istio": name.removeprefix("istio-"), **_map(values.get("labels"))}
            ns = r.get("namespace", default="default")
            yield _Exposure(r, f"gateway release {name}", str(ns), labels, _map(svc.get("annotations")))


def _internal(annotations: Mapping[str, Any]) -> bool:
    for key, values in INTERNAL_LB_ANNOTATIONS.items():
        v = annotations.get(key)
        if isinstance(v, str) and v.strip().lower() in values:
            return True
    return False


def _applies_to(policy: Resource, ns: str, labels: Mapping[str, str]) -> bool:
    """Istio scoping: a policy applies in its own namespace, or everywhere from the root namespace;
    its selector (none = every workload there) must match the pod labels."""
    if policy.namespace not in (ns, ROOT_NAMESPACE):
        return False
    return _selector_matches(_map(policy.get("spec", "selector", default=None)), labels)


def _requires_jwt(ap: Resource) -> bool:
    spec = _map(ap.get("spec"))
    action = str(spec.get("action", "ALLOW")).upper()
    rules = [r for r in _list(spec.get("rules")) if isinstance(r, Mapping)]
    if action == "ALLOW":
        if not rules:
            return False  # allow-nothing: denies, does not require a token
        return all(
            any(_list(dig(src, "source", "requestPrincipals")) for src in _list(rule.get("from")))
            for rule in rules
        )
    if action == "DENY":
        return any(
            "*" in _list(dig(src, "source", "notRequestPrincipals"))
            for rule in rules
            for src in _list(rule.get("from"))
        )
    return False


def _jwt_protected(exp: _Exposure, resources: Sequence[Resource]) -> bool:
    has_ra = any(
        _istio_kind(r, "security", "RequestAuthentication")
        and _list(r.get("spec", "jwtRules"))
        and _applies_to(r, exp.namespace, exp.pod_labels)
        for r in resources
    )
    has_ap = any(
        _istio_kind(r, "security", "AuthorizationPolicy")
        and _requires_jwt(r)
        and _applies_to(r, exp.namespace, exp.pod_labels)
        for r in resources
    )
    return has_ra and has_ap


def _east_west_only(exp: _Exposure, resources: Sequence[Resource]) -> tuple[bool, str]:
    labels = exp.pod_labels
    if not any(k in labels for k in EAST_WEST_LABELS) and labels.get("istio") != "eastwestgateway":
        return False, ""
    for gw in resources:
        if not _istio_kind(gw, "networking", "Gateway"):
            continue
        if not _selector_matches(_map(gw.get("spec", "selector")), labels):
            continue
        for server in _list(gw.get("spec", "servers")):
            mode = str(dig(server, "tls", "mode", default="")).upper()
            if mode != "AUTO_PASSTHROUGH":
                port = dig(server, "port", "number", default="?")
                return False, (
                    f"it carries the east-west network label but Gateway {gw.ref} opens port {port} "
                    f"with tls mode {mode or 'none (plaintext)'}, not AUTO_PASSTHROUGH"
                )
    return True, ""


def check_no_public_load_balancer(resources: Sequence[Resource]) -> Iterator[tuple[Resource | None, str]]:
    for exp in _load_balancers(resources):
        if _internal(exp.annotations):
            continue
        east_west, why = _east_west_only(exp, resources)
        if east_west or _jwt_protected(exp, resources):
            continue
        selector = ", ".join(f"{k}={v}" for k, v in sorted(exp.pod_labels.items())) or "(no selector)"
        yield (
            exp.resource,
            (
                f"{exp.what} is a public LoadBalancer (no internal annotation) and neither a RequestAuthentication "
                f"with a require-JWT AuthorizationPolicy selects its pods ({selector}) nor is it an east-west "
                f"gateway with AUTO_PASSTHROUGH servers only" + (f": {why}" if why else "")
            ),
        )


# --------------------------------------------------------------------------- weight buckets read-only
ALLOWED_S3_ACTIONS = frozenset({"s3:getobject", "s3:listbucket"})
#: AWS-managed policies too broad for workload roles (write access, or read access to every bucket)
BROAD_MANAGED_S3 = (
    "AmazonS3FullAccess",
    "AmazonS3ReadOnlyAccess",
    "AmazonS3OutpostsFullAccess",
    "AdministratorAccess",
    "PowerUserAccess",
)


def _policy_doc(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            doc = json.loads(value)
        except ValueError:
            return None
        return doc if isinstance(doc, Mapping) else None
    return None


def _statements(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    st = doc.get("Statement")
    if isinstance(st, Mapping):
        return [st]
    return [s for s in _list(st) if isinstance(s, Mapping)]


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in _list(value) if isinstance(v, str)]


def policy_document_problems(doc: Mapping[str, Any]) -> list[str]:
    """What in an IAM policy document goes beyond reading the weights (s3:GetObject/s3:ListBucket)."""
    out = []
    for i, st in enumerate(_statements(doc)):
        if str(st.get("Effect", "")).lower() != "allow":
            continue
        sid = f"statement {st.get('Sid') or i}"
        if "NotAction" in st:
            out.append(
                f"{sid} allows NotAction {_str_list(st['NotAction'])}, i.e. everything else, S3 writes included"
            )
            continue
        actions = _str_list(st.get("Action"))
        s3 = [a for a in actions if a == "*" or a.lower().startswith("s3:")]
        bad = [a for a in s3 if a.lower() not in ALLOWED_S3_ACTIONS]
        if bad:
            out.append(f"{sid} allows {', '.join(bad)} (workloads may only s3:GetObject and s3:ListBucket)")
        resources = _str_list(st.get("Resource"))
        if s3 and not bad and any(r == "*" or r in ("arn:aws:s3:::*", "arn:aws:s3:::*/*") for r in resources):
            out.append(
                f"{sid} grants {', '.join(s3)} on {', '.join(resources)}: scope it to the weights bucket/prefix"
            )
    return out


_WORKLOAD_PRINCIPALS = ("pods.eks.amazonaws.com", "ec2.amazonaws.com")


def _workload_role(role: Resource, pod_identity_roles: set[str]) -> bool | None:
    """True for roles pods can use (IRSA, EKS Pod Identity, node roles via IMDS); None when unknown."""
    if _identities(role) & pod_identity_roles:
        return True
    trust = role.get("assumeRolePolicy", default=None)
    if is_unknown(trust):
        return None
    text = json.dumps(trust) if isinstance(trust, Mapping) else str(trust or "")
    return "AssumeRoleWithWebIdentity" in text or any(p in text for p in _WORKLOAD_PRINCIPALS)


def _identities(res: Resource) -> set[str]:
    """Every string another resource may use to point at this one: name, id, ARN, URN."""
    ids = {res.name, res.urn}
    for key in ("name", "arn", "id"):
        v = res.get(key, default=None)
        if isinstance(v, str) and v and not is_unknown(v):
            ids.add(v)
    return {i for i in ids if i}


def _refers_to(ref: Any, res: Resource) -> bool:
    if not isinstance(ref, str) or not ref or is_unknown(ref):
        return False
    ids = _identities(res)
    if ref in ids:
        return True
    # ARNs end in role/<name> or policy/<path><name>
    tail = ref.rsplit("/", 1)[-1]
    return ref.startswith("arn:") and tail in ids


def check_weights_read_only(resources: Sequence[Resource]) -> Iterator[tuple[Resource | None, str]]:
    roles = [r for r in resources if r.type == "aws:iam/role:Role"]
    if not roles:
        return
    pod_identity = {
        str(r.get("roleArn"))
        for r in resources
        if r.type == "aws:eks/podIdentityAssociation:PodIdentityAssociation"
    }
    pod_identity |= {a.rsplit("/", 1)[-1] for a in pod_identity if a.startswith("arn:")}
    policies = [r for r in resources if r.type == "aws:iam/policy:Policy"]
    for role in roles:
        if not _workload_role(role, pod_identity):
            continue
        role_name = role.get("name")
        who = f"workload role {role_name if isinstance(role_name, str) and not is_unknown(role_name) else role.name}"
        for inline in _list(role.get("inlinePolicies")):
            doc = _policy_doc(dig(inline, "policy"))
            for p in policy_document_problems(doc or {}):
                yield role, f"{who}: inline policy {dig(inline, 'name', default='?')}: {p}"
        for arn in _str_list(role.get("managedPolicyArns")):
            yield from _managed_arn(role, who, arn, policies)
        for r in resources:
            if r.type == "aws:iam/rolePolicy:RolePolicy" and _refers_to(r.get("role"), role):
                for p in policy_document_problems(_policy_doc(r.get("policy")) or {}):
                    yield r, f"{who}: role policy {r.name}: {p}"
            elif _attaches(r, role):
                yield from _managed_arn(r, who, r.get("policyArn"), policies)


def _attaches(r: Resource, role: Resource) -> bool:
    if r.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
        return _refers_to(r.get("role"), role)
    if r.type == "aws:iam/policyAttachment:PolicyAttachment":
        return any(_refers_to(x, role) for x in _list(r.get("roles")))
    return False


def _managed_arn(
    at: Resource, who: str, arn: Any, policies: Sequence[Resource]
) -> Iterator[tuple[Resource, str]]:
    if not isinstance(arn, str) or is_unknown(arn):
        return
    if arn.startswith("arn:aws:iam::aws:policy/"):
        name = arn.rsplit("/", 1)[-1]
        if name in BROAD_MANAGED_S3:
            yield (
                at,
                (
                    f"{who}: AWS-managed policy {name} is attached; weight buckets must be read-only and scoped "
                    "(s3:GetObject/s3:ListBucket on the weights prefix)"
                ),
            )
        return
    for pol in policies:
        if _refers_to(arn, pol):
            for p in policy_document_problems(_policy_doc(pol.get("policy")) or {}):
                yield pol, f"{who}: policy {pol.name}: {p}"


# --------------------------------------------------------------------------- model Deployments
def _pod_spec(res: Resource) -> Mapping[str, Any]:
    return _map(res.get("spec", "template", "spec"))


def _pod_labels(res: Resource) -> Mapping[str, str]:
    return _map(res.get("spec", "template", "metadata", "labels"))


def _requests_gpu(container: Mapping[str, Any]) -> bool:
    res = _map(container.get("resources"))
    return any(g in _map(res.get(part)) for part in ("limits", "requests") for g in GPU_RESOURCES)


def is_model_deployment(res: Resource) -> bool:
    if not _is_k8s(res, "apps/v1:Deployment"):
        return False
    containers = [c for c in _list(_pod_spec(res).get("containers")) if isinstance(c, Mapping)]
    return MODEL_LABEL in _pod_labels(res) or any(_requests_gpu(c) for c in containers)


def check_model_probes(res: Resource) -> Iterator[str]:
    if not is_model_deployment(res):
        return
    containers = [c for c in _list(_pod_spec(res).get("containers")) if isinstance(c, Mapping)]
    serving = [c for c in containers if _requests_gpu(c)] or containers[:1]
    for c in serving:
        missing = [p for p in ("startupProbe", "readinessProbe", "livenessProbe") if not c.get(p)]
        if missing:
            yield (
                f"model Deployment {res.ref}: container {c.get('name', '?')} has no {', '.join(missing)}: a "
                "loading or wedged vLLM server would take traffic or never be restarted"
            )


def check_model_pdb(resources: Sequence[Resource]) -> Iterator[tuple[Resource | None, str]]:
    pdbs = [
        r
        for r in resources
        if r.type.startswith("kubernetes:policy/") and r.type.endswith(":PodDisruptionBudget")
    ]
    for dep in resources:
        if not is_model_deployment(dep):
            continue
        labels = _pod_labels(dep)
        if any(
            p.namespace == dep.namespace
            and p.get("spec", "selector")
            and _selector_matches(_map(p.get("spec", "selector")), labels)
            for p in pdbs
        ):
            continue
        yield (
            dep,
            (
                f"model Deployment {dep.ref} has no PodDisruptionBudget selecting its pods: a node drain or "
                "upgrade can evict every replica at once"
            ),
        )


# --------------------------------------------------------------------------- secrets in plain config
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_CREDENTIAL_WORDS = {
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "token",
    "secret",
    "credential",
    "credentials",
    "apikey",
    "privatekey",
    "secretkey",
    "accesskey",
}
_CREDENTIAL_PAIRS = {
    ("api", "key"),
    ("access", "key"),
    ("secret", "key"),
    ("private", "key"),
    ("client", "secret"),
    ("auth", "key"),
    ("signing", "key"),
    ("encryption", "key"),
}
#: a key ending in one of these names *where* a credential is, not the credential itself
_REFERENCE_SUFFIXES = {
    "name",
    "names",
    "ref",
    "file",
    "path",
    "dir",
    "namespace",
    "enabled",
    "mount",
    "type",
    "ttl",
    "header",
    "length",
    "id",
    "ids",
    "key",
    "keys",
    "secret",
    "field",
    "env",
    "selector",
    "uri",
    "url",
    "audience",
    "audiences",
    "issuer",
    "provider",
}
_VALUE_PATTERNS = (
    (re.compile(r"\bA(KIA|SIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a PEM private key"),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), "a Hugging Face token"),
    (re.compile(r"\b(ghp|gho|ghs|ghu)_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{40,}"), "a GitHub token"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), "an API secret key"),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), "a GitLab token"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), "a Google API key"),
    (re.compile(r"://[^/\s:@]+:[^/\s@]+@"), "a URL with an embedded password"),
)
#: ``vllm serve`` flags whose value is a credential: the kit's one list (``fleetkit.model_checks`` refuses
#: them in ``extra_args``; the rule below refuses them with a plain value). Checked against vLLM's own
#: parser table by tests/verify/test_vllm_args.py.
VLLM_SECRET_FLAGS = ("--api-key", "--hf-token")
_CREDENTIAL_FLAGS = re.compile(
    r"^--?("
    + "|".join(
        sorted(
            {f.lstrip("-") for f in VLLM_SECRET_FLAGS}
            | {"token", "password", "secret", "access-key", "secret-key"}
        )
    )
    + r")(=(?P<v>.*))?$"
)


def credential_key(key: str) -> bool:
    """``adminPassword``, ``HF_TOKEN``, ``api-key``: names of credentials; ``secretName``, ``existingSecret``,
    ``TOKEN_FILE``, ``passwordKey``: names of places that hold one (references, not credentials)."""
    words = [w.lower() for w in _WORD.findall(key.replace("-", "_"))]
    if not words or words[0] == "existing":
        return False
    pairs = set(pairwise(words))
    # ...Key is a credential only as api/access/secret/private key; ...Secret only as client secret or alone
    named_reference = words[-1] in _REFERENCE_SUFFIXES and words != ["secret"]
    if named_reference and (len(words) < 2 or (words[-2], words[-1]) not in _CREDENTIAL_PAIRS):
        return False
    return any(w in _CREDENTIAL_WORDS for w in words) or bool(pairs & _CREDENTIAL_PAIRS)


def _plain_text(value: Any) -> bool:
    """A non-empty string that is neither a Pulumi secret nor unknown nor a placeholder/reference."""
    if not isinstance(value, str):
        return False
    v = value.strip()
    if not v or v in (SECRET, UNKNOWN) or v.lower() in ("true", "false", "none", "null", "-"):
        return False
    return not (v.startswith("$(") and v.endswith(")"))  # Kubernetes env expansion of another variable


def _value_pattern(value: Any) -> str | None:
    if not isinstance(value, str) or value in (SECRET, UNKNOWN):
        return None
    for pattern, what in _VALUE_PATTERNS:
        if pattern.search(value):
            return what
    return None


def _scan(value: Any, path: str) -> Iterator[str]:
    """Credential-named keys with plain values, and credential-shaped values anywhere, in nested data."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if isinstance(k, str) and credential_key(k) and _plain_text(v):
                yield f"{sub} holds a plain value"
            else:
                yield from _scan(v, sub)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for i, v in enumerate(value):
            yield from _scan(v, f"{path}[{i}]")
    else:
        what = _value_pattern(value)
        if what:
            yield f"{path} looks like {what}"


_WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"}


def _containers(res: Resource) -> Iterator[tuple[str, Mapping[str, Any]]]:
    spec = _map(res.get("spec"))
    if res.kind == "CronJob":
        pod = dig(spec, "jobTemplate", "spec", "template", "spec", default={})
        base = "spec.jobTemplate.spec.template.spec"
    elif res.kind == "Pod":
        pod, base = spec, "spec"
    else:
        pod, base = dig(spec, "template", "spec", default={}), "spec.template.spec"
    for part in ("initContainers", "containers"):
        for i, c in enumerate(_list(_map(pod).get(part))):
            if isinstance(c, Mapping):
                yield f"{base}.{part}[{i}]", c


def _container_problems(c: Mapping[str, Any]) -> Iterator[str]:
    name = c.get("name", "?")
    for env in _list(c.get("env")):
        if not isinstance(env, Mapping) or "value" not in env:
            continue
        ename, value = str(env.get("name", "")), env.get("value")
        if credential_key(ename) and _plain_text(value):
            yield (
                f"container {name}: env {ename} has a plain value; take it from a Secret "
                "(valueFrom.secretKeyRef) fed by a Pulumi secret"
            )
        elif what := _value_pattern(value):
            yield f"container {name}: env {ename} looks like {what}"
    args = [a for a in [*_list(c.get("command")), *_list(c.get("args"))] if isinstance(a, str)]
    for i, a in enumerate(args):
        m = _CREDENTIAL_FLAGS.match(a)
        if m:
            value = m.group("v") if m.group("v") is not None else (args[i + 1] if i + 1 < len(args) else "")
            if _plain_text(value):
                yield f"container {name}: argument {a.split('=')[0]} is given a plain value; pass it as $(ENV) from a Secret"
        elif what := _value_pattern(a):
            yield f"container {name}: an argument looks like {what}"


def check_secret_data(res: Resource) -> Iterator[str]:
    """A Kubernetes Secret whose data is not a Pulumi secret was written in plain text somewhere."""
    if not _is_k8s(res, "core/v1:Secret"):
        return
    for part in ("data", "stringData"):
        value = res.get(part, default=None)
        if value is None or value == SECRET or is_unknown(value):
            continue
        plain = sorted(
            str(k) for k, v in _map(value).items() if isinstance(v, str) and v not in (SECRET, UNKNOWN, "")
        )
        if plain:
            yield (
                f"Secret {res.ref}: {part} keys {', '.join(plain)} are not Pulumi secrets (they sit in plain text in "
                "config, code or state); build them from pulumi.Output.secret / `pulumi config set --secret`"
            )


def check_plain_credentials(res: Resource) -> Iterator[str]:
    if res.type.startswith("kubernetes:") and res.kind in _WORKLOAD_KINDS:
        for _, c in _containers(res):
            for p in _container_problems(c):
                yield f"{res.kind} {res.ref}: {p}"
    elif _is_k8s(res, "core/v1:ConfigMap"):
        for p in _scan(_map(res.get("data")), "data"):
            yield f"ConfigMap {res.ref}: {p}; credentials belong in a Secret fed by a Pulumi secret"
    elif res.type in HELM_TYPES:
        for p in _scan(_map(res.get("values")), "values"):
            yield f"Helm release {res.name} ({_chart_name(res) or '?'}): {p}; pass it as a Pulumi secret"


# --------------------------------------------------------------------------- sibling rule modules
def _sibling(name: str) -> ModuleType:
    """``policies.crossguard.<name>`` inside the kit; the file beside this one when this file was loaded by
    path (the pack's own virtualenv, see ``__main__._load_rules``), importing nothing of the kit."""
    if __name__ == "policies.crossguard.rules":
        return importlib.import_module(f"policies.crossguard.{name}")
    path = Path(__file__).resolve().with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"fleetkit_guardrail_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fleet_rules = _sibling("fleet_rules")


# --------------------------------------------------------------------------- serving path (issue 13)
#: headers named like a caller's identity; routing on one a client can send is a forgery hole
IDENTITY_HEADER = re.compile(r"(tier|cohort|canary|plan|tenant|role|group|priority|premium|beta)")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
#: load-balancer idle timeout annotations (AWS LBC listener attributes, Azure cloud provider)
AWS_LISTENER_ATTRS = "service.beta.kubernetes.io/aws-load-balancer-listener-attributes."
AZURE_IDLE = "service.beta.kubernetes.io/azure-load-balancer-tcp-idle-timeout"


def _seconds(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    parts = _DURATION.findall(value)
    return sum(float(n) * _SECONDS[u] for n, u in parts) if parts else None


def _stripped_headers(resources: Sequence[Resource]) -> set[str]:
    """Headers an ingress EnvoyFilter removes ahead of every other HTTP filter (INSERT_FIRST Lua)."""
    out: set[str] = set()
    for r in resources:
        if not _istio_kind(r, "networking", "EnvoyFilter"):
            continue
        for patch in _list(r.get("spec", "configPatches")):
            if dig(patch, "patch", "operation") == "INSERT_FIRST":
                code = str(
                    dig(
                        patch,
                        "patch",
                        "value",
                        "typed_config",
                        "default_source_code",
                        "inline_string",
                        default="",
                    )
                )
                out.update(re.findall(r'remove\("([^"]+)"\)', code))
    return out


def check_serving_routes(resources: Sequence[Resource]) -> Iterator[tuple[Resource | None, str]]:
    """VirtualService routes: identity headers must be edge-derived; per-try timeouts must not cut generation."""
    stripped = _stripped_headers(resources)
    for r in resources:
        if not _istio_kind(r, "networking", "VirtualService"):
            continue
        for http in _list(r.get("spec", "http")):
            name = dig(http, "name", default="?")
            for match in _list(dig(http, "match")):
                for header in sorted(_map(dig(match, "headers"))):
                    if IDENTITY_HEADER.search(header) and header not in stripped:
                        yield (
                            r,
                            (
                                f"VirtualService {r.ref} route {name} matches {header!r}, a header clients can "
                                "send: derive it at the edge from a verified claim and strip client copies"
                            ),
                        )
            timeout = _seconds(dig(http, "timeout"))
            per_try = _seconds(dig(http, "retries", "perTryTimeout"))
            if timeout and per_try and per_try < timeout and dig(http, "retries", "attempts", default=0):
                yield (
                    r,
                    (
                        f"VirtualService {r.ref} route {name}: perTryTimeout {dig(http, 'retries', 'perTryTimeout')} "
                        f"< timeout {dig(http, 'timeout')} ends a non-streaming generation early"
                    ),
                )


def check_lb_idle(resources: Sequence[Resource]) -> Iterator[tuple[Resource | None, str]]:
    """Gateway load balancers on AWS/Azure keep idle connections at least as long as the longest route."""
    longest = max(
        (
            _seconds(dig(h, "timeout")) or 0.0
            for r in resources
            if _istio_kind(r, "networking", "VirtualService")
            for h in _list(r.get("spec", "http"))
        ),
        default=0.0,
    )
    for exp in _load_balancers(resources):
        ann = exp.annotations
        if any(is_unknown(v) for v in ann.values()):
            continue
        if any(k.startswith("service.beta.kubernetes.io/aws-load-balancer") for k in ann):
            idle = [
                float(m)
                for k, v in ann.items()
                if k.startswith(AWS_LISTENER_ATTRS)
                for m in re.findall(r"tcp\.idle_timeout\.seconds=(\d+)", str(v))
            ]
            have, default = (min(idle) if idle else 350.0), "AWS NLB default 350 s"
        elif any(k.startswith("service.beta.kubernetes.io/azure-load-balancer") for k in ann):
            have = float(ann[AZURE_IDLE]) * 60 if str(ann.get(AZURE_IDLE, "")).isdigit() else 240.0
            default = "Azure LB default 4 min"
        else:
            continue
        if have < longest:
            yield (
                exp.resource,
                (
                    f"{exp.what}: load-balancer idle timeout {have:g} s (or the {default}) is below "
                    f"the longest route timeout {longest:g} s; a silent generation would be cut"
                ),
            )


# --------------------------------------------------------------------------- the rule set
RULES: tuple[Rule, ...] = (
    Rule(
        "gpu-pools-tainted",
        "GPU node pools carry a NoSchedule/NoExecute taint so only GPU workloads land there.",
        "mandatory",
        "high",
        "Add the nvidia.com/gpu=present:NoSchedule taint (the kit's default node_pools.<pool>.taints).",
        resource_check=check_gpu_pool_taints,
    ),
    Rule(
        "strict-mtls",
        "The mesh runs STRICT mTLS: a mesh-wide STRICT PeerAuthentication and none PERMISSIVE/DISABLE.",
        "mandatory",
        "critical",
        "Keep policies.security.mtls STRICT; remove PERMISSIVE/DISABLE PeerAuthentications.",
        stack_check=check_strict_mtls,
    ),
    Rule(
        "no-public-load-balancer",
        "No public LoadBalancer unless JWT is required on it (RequestAuthentication + AuthorizationPolicy) or it is "
        "the east-west gateway with AUTO_PASSTHROUGH servers only.",
        "mandatory",
        "critical",
        "Annotate the Service internal, or require JWT on the gateway (policies.security.jwt "
        "with require_jwt: true).",
        stack_check=check_no_public_load_balancer,
    ),
    Rule(
        "weights-read-only",
        "Roles that pods can use reach weight buckets read-only: s3:GetObject and s3:ListBucket, scoped, nothing more.",
        "mandatory",
        "high",
        "Grant only s3:GetObject on the weights prefix and s3:ListBucket on the bucket.",
        stack_check=check_weights_read_only,
    ),
    Rule(
        "model-probes",
        "Every model Deployment's serving container has startup, readiness and liveness probes.",
        "mandatory",
        "high",
        "Give the vLLM container startupProbe, readinessProbe and livenessProbe on /health.",
        resource_check=check_model_probes,
    ),
    Rule(
        "model-pdb",
        "Every model Deployment is covered by a PodDisruptionBudget.",
        "mandatory",
        "high",
        "Add a PodDisruptionBudget selecting the model's pods.",
        stack_check=check_model_pdb,
    ),
    Rule(
        "no-plain-secret-data",
        "Kubernetes Secret data comes from Pulumi secrets, never plain values.",
        "mandatory",
        "critical",
        "Wrap the value with pulumi.Output.secret or read it with config.require_secret.",
        resource_check=check_secret_data,
    ),
    Rule(
        "no-plain-credentials",
        "No credential in plain config: container env/args, ConfigMaps and Helm values hold no plain passwords, "
        "tokens or keys.",
        "mandatory",
        "high",
        "Reference a Secret (env valueFrom.secretKeyRef) fed by a Pulumi secret.",
        resource_check=check_plain_credentials,
    ),
    Rule(
        "imds-hop-limit",
        "GPU node launch templates require IMDSv2 with a response hop limit of 1, so pods cannot "
        "read the node role.",
        "mandatory",
        "high",
        "Set metadataOptions httpTokens: required and httpPutResponseHopLimit: 1 (the kit's GPU pools do).",
        resource_check=fleet_rules.check_imds_hop_limit,
    ),
    Rule(
        "api-endpoint-restricted",
        "A public Kubernetes API endpoint accepts only listed source ranges, never 0.0.0.0/0.",
        "mandatory",
        "critical",
        "Set cluster.create.authorized_networks to the admin and peer-cluster egress CIDRs, or public_endpoint: false.",
        resource_check=fleet_rules.check_api_endpoint,
    ),
    Rule(
        "autoscaler-selects-one-deployment",
        "Every KEDA Prometheus trigger selects the series of its scale target "
        "alone, by a label its PodMonitor sets for that Deployment only.",
        "mandatory",
        "high",
        'Filter the query on fleetkit_model="<deployment>" (the kit\'s PodMonitor target label).',
        stack_check=fleet_rules.check_autoscaler_signals,
    ),
    Rule(
        "weighted-subsets-have-endpoints",
        "Every subset a route splits traffic over selects a local Deployment "
        "that keeps at least one replica (a subset with no endpoints answers 503 for its share).",
        "mandatory",
        "high",
        "Weight only GPU classes this cluster always runs (the kit's renderer does); route the rest to the whole model.",
        stack_check=fleet_rules.check_weighted_subsets,
    ),
    Rule(
        "mirror-target-local",
        "A route mirrors only to a target with an always-on Deployment in the same cluster.",
        "mandatory",
        "high",
        "Mirror only in the cluster that runs the target (the kit's renderer drops the mirror elsewhere).",
        stack_check=fleet_rules.check_mirror_local,
    ),
    Rule(
        "failover-priority-topology-only",
        "In a multi-network mesh, failoverPriority uses topology labels only "
        "(east-west gateway endpoints carry no others).",
        "mandatory",
        "high",
        "Keep network/cluster/region/zone labels; express model fallback as an Envoy aggregate cluster.",
        stack_check=fleet_rules.check_failover_priority,
    ),
    Rule(
        "node-autoscaler-present",
        "EKS node groups that may grow run beside a node autoscaler (Cluster Autoscaler or Karpenter).",
        "advisory",
        "high",
        "Keep addons.node_autoscaler auto (the kit installs Cluster Autoscaler) or run Karpenter.",
        stack_check=fleet_rules.check_node_autoscaler,
    ),
    Rule(
        "hpa-custom-metric-needs-adapter",
        "An HPA on custom or external metrics runs beside a metrics adapter.",
        "advisory",
        "high",
        "Autoscale with KEDA (engine: keda), or install prometheus-adapter.",
        stack_check=fleet_rules.check_hpa_adapter,
    ),
    Rule(
        "no-dead-metrics-rule",
        "No AuthorizationPolicy allows /metrics on pods that Prometheus scrapes through "
        "Istio's merged metrics port 15020 (such a rule never matches).",
        "advisory",
        "low",
        "Remove the /metrics rule; scrapes reach istio-agent on :15020, outside sidecar authorization.",
        stack_check=fleet_rules.check_dead_metrics_rule,
    ),
    Rule(
        "serving-routes",
        "Routes never match a client-sendable identity header (tier, cohort, …) and never set a per-try timeout "
        "shorter than the route timeout.",
        "mandatory",
        "high",
        "Route on the edge-derived tier/cohort (policies.routing typed matches); drop per_try_timeout.",
        stack_check=check_serving_routes,
    ),
    Rule(
        "lb-idle-timeout",
        "Gateway load balancers (AWS NLB, Azure LB) keep idle connections at least as long as the longest route "
        "timeout.",
        "mandatory",
        "high",
        "Keep the kit's idle-timeout annotations (mesh.lb_idle_timeout unset or >= the longest "
        "route timeout).",
        stack_check=check_lb_idle,
    ),
)
RULES_BY_NAME: dict[str, Rule] = {r.name: r for r in RULES}


def _with_suppression(rule: Rule, res: Resource | None, message: str) -> Violation:
    reason = res.suppressions().get(rule.name) if res is not None else None
    return Violation(rule.name, message, res, reason)


def check_resource(rule: Rule, res: Resource) -> list[Violation]:
    if rule.resource_check is None:
        return []
    return [_with_suppression(rule, res, m) for m in rule.resource_check(res)]


def check_stack_rule(rule: Rule, resources: Sequence[Resource]) -> list[Violation]:
    if rule.stack_check is None:
        return []
    return [_with_suppression(rule, r, m) for r, m in rule.stack_check(resources)]


def evaluate(resources: Sequence[Resource], rules: Iterable[Rule] = RULES) -> list[Violation]:
    """Every rule over every resource (resource rules) and over the whole stack (stack rules)."""
    out: list[Violation] = []
    for rule in rules:
        if rule.resource_check is not None:
            for res in resources:
                out.extend(check_resource(rule, res))
        else:
            out.extend(check_stack_rule(rule, resources))
    return out
