"""Guardrails on the platform: tainted GPU pools, STRICT mTLS, no public load balancers, read-only weights.

Checks only (pure functions over :class:`~policies.crossguard.records.Resource` records); the rule
table in :mod:`policies.crossguard.rules` names, describes and runs them. Standard library only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from .records import (
    HELM_TYPES,
    ROOT_NAMESPACE,
    Exposure,
    Resource,
    as_list,
    as_map,
    chart_name,
    dig,
    is_istio_kind,
    is_unknown,
    load_balancers,
    selector_matches,
)

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
    check = _POOL_TAINT_CHECKS.get(res.type)
    if check is not None:
        yield from check(res)


def _eks_node_group_taints(res: Resource) -> Iterator[str]:
    ami = res.get("amiType", default="")
    types = [t for t in as_list(res.get("instanceTypes")) if isinstance(t, str)]
    if is_unknown(ami) or is_unknown(res.get("taints")):
        return
    gpu_types = [t for t in types if _AWS_GPU_INSTANCE.match(t)]
    if not (("NVIDIA" in str(ami).upper() or "GPU" in str(ami).upper()) or gpu_types):
        return
    if not _hard_taints(as_list(res.get("taints"))):
        yield _taint_message(
            f"EKS node group {res.name}",
            ", ".join([str(ami)] * bool(ami) + gpu_types),
            "taints: [{key: nvidia.com/gpu, value: present, effect: NO_SCHEDULE}]",
        )


def _gke_node_pool_taints(res: Resource) -> Iterator[str]:
    cfg = as_map(res.get("nodeConfig"))
    machine = cfg.get("machineType", "")
    accels = as_list(cfg.get("guestAccelerators"))
    if is_unknown(machine) or is_unknown(cfg.get("taints")):
        return
    if not (accels or (isinstance(machine, str) and _GCP_GPU_MACHINE.match(machine))):
        return
    if not _hard_taints(as_list(cfg.get("taints"))):
        yield _taint_message(
            f"GKE node pool {res.name}",
            str(machine or "guestAccelerators"),
            "nodeConfig.taints: [{key: nvidia.com/gpu, value: present, effect: NO_SCHEDULE}]",
        )


def _aks_agent_pool_taints(res: Resource) -> Iterator[str]:
    if is_unknown(res.get("nodeTaints")) or not _aks_pool_gpu(res.inputs):
        return
    if not _hard_taints(as_list(res.get("nodeTaints"))):
        yield _taint_message(
            f"AKS agent pool {res.name}",
            str(res.get("vmSize", "gpuProfile")),
            "nodeTaints: ['nvidia.com/gpu=present:NoSchedule']",
        )


def _aks_cluster_pool_taints(res: Resource) -> Iterator[str]:
    for pool in as_list(res.get("agentPoolProfiles")):
        if not isinstance(pool, Mapping) or not _aks_pool_gpu(pool) or is_unknown(pool.get("nodeTaints")):
            continue
        if not _hard_taints(as_list(pool.get("nodeTaints"))):
            yield _taint_message(
                f"AKS agent pool {pool.get('name', '?')} of cluster {res.name}",
                str(pool.get("vmSize")),
                "nodeTaints: ['nvidia.com/gpu=present:NoSchedule']",
            )


_POOL_TAINT_CHECKS: dict[str, Callable[[Resource], Iterator[str]]] = {
    "aws:eks/nodeGroup:NodeGroup": _eks_node_group_taints,
    "gcp:container/nodePool:NodePool": _gke_node_pool_taints,
    "azure-native:containerservice:AgentPool": _aks_agent_pool_taints,
    "azure-native:containerservice:ManagedCluster": _aks_cluster_pool_taints,
}


# --------------------------------------------------------------------------- STRICT mTLS
def _mesh_present(resources: Sequence[Resource]) -> bool:
    for r in resources:
        if r.type.startswith("kubernetes:") and ".istio.io/" in r.type:
            return True
        if r.type in HELM_TYPES and chart_name(r) in ("istiod", "base", "istio-base"):
            return True
    return False


def _pa_modes(pa: Resource) -> list[tuple[str, str]]:
    """(where, mode) for the workload-level and every port-level mTLS mode of a PeerAuthentication."""
    spec = as_map(pa.get("spec"))
    out = []
    mode = dig(spec, "mtls", "mode")
    if isinstance(mode, str):
        out.append(("mtls.mode", mode.upper()))
    for port, cfg in sorted(as_map(spec.get("portLevelMtls")).items(), key=lambda kv: str(kv[0])):
        pmode = dig(cfg, "mode")
        if isinstance(pmode, str):
            out.append((f"portLevelMtls.{port}.mode", pmode.upper()))
    return out


def check_strict_mtls(resources: Sequence[Resource]) -> Iterator[tuple[Resource | None, str]]:
    if not _mesh_present(resources):
        return
    pas = [r for r in resources if is_istio_kind(r, "security", "PeerAuthentication")]
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
#: annotations that make a LoadBalancer Service internal (value compared case-insensitively)
INTERNAL_LB_ANNOTATIONS: dict[str, tuple[str, ...]] = {
    "service.beta.kubernetes.io/aws-load-balancer-internal": ("true", "0.0.0.0/0"),
    "service.beta.kubernetes.io/aws-load-balancer-scheme": ("internal",),
    "networking.gke.io/load-balancer-type": ("internal",),
    "cloud.google.com/load-balancer-type": ("internal",),
    "service.beta.kubernetes.io/azure-load-balancer-internal": ("true",),
}
EAST_WEST_LABELS = ("topology.istio.io/network",)


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
    return selector_matches(as_map(policy.get("spec", "selector", default=None)), labels)


def _requires_jwt(ap: Resource) -> bool:
    spec = as_map(ap.get("spec"))
    action = str(spec.get("action", "ALLOW")).upper()
    rules = [r for r in as_list(spec.get("rules")) if isinstance(r, Mapping)]
    if action == "ALLOW":
        if not rules:
            return False  # allow-nothing: denies, does not require a token
        return all(
            any(as_list(dig(src, "source", "requestPrincipals")) for src in as_list(rule.get("from")))
            for rule in rules
        )
    if action == "DENY":
        return any(
            "*" in as_list(dig(src, "source", "notRequestPrincipals"))
            for rule in rules
            for src in as_list(rule.get("from"))
        )
    return False


def _jwt_protected(exp: Exposure, resources: Sequence[Resource]) -> bool:
    has_ra = any(
        is_istio_kind(r, "security", "RequestAuthentication")
        and as_list(r.get("spec", "jwtRules"))
        and _applies_to(r, exp.namespace, exp.pod_labels)
        for r in resources
    )
    has_ap = any(
        is_istio_kind(r, "security", "AuthorizationPolicy")
        and _requires_jwt(r)
        and _applies_to(r, exp.namespace, exp.pod_labels)
        for r in resources
    )
    return has_ra and has_ap


def _east_west_only(exp: Exposure, resources: Sequence[Resource]) -> tuple[bool, str]:
    labels = exp.pod_labels
    if not any(k in labels for k in EAST_WEST_LABELS) and labels.get("istio") != "eastwestgateway":
        return False, ""
    for gw in resources:
        if not is_istio_kind(gw, "networking", "Gateway"):
            continue
        if not selector_matches(as_map(gw.get("spec", "selector")), labels):
            continue
        for server in as_list(gw.get("spec", "servers")):
            mode = str(dig(server, "tls", "mode", default="")).upper()
            if mode != "AUTO_PASSTHROUGH":
                port = dig(server, "port", "number", default="?")
                return False, (
                    f"it carries the east-west network label but Gateway {gw.ref} opens port {port} "
                    f"with tls mode {mode or 'none (plaintext)'}, not AUTO_PASSTHROUGH"
                )
    return True, ""


def check_no_public_load_balancer(resources: Sequence[Resource]) -> Iterator[tuple[Resource | None, str]]:
    for exp in load_balancers(resources):
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
    return [s for s in as_list(st) if isinstance(s, Mapping)]


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in as_list(value) if isinstance(v, str)]


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
        for inline in as_list(role.get("inlinePolicies")):
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
        return any(_refers_to(x, role) for x in as_list(r.get("roles")))
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
