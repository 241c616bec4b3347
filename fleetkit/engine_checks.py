"""Where a real ``pulumi up`` would fail but a mock run succeeds: the offline preview's engine checks.

The mock runtime accepts any graph; the engine and the clusters do not. Over one stack's recorded
preview (resources with their parents and dependencies, StackReferences, Helm values):

``engine.stack-reference`` (error)
    A ``StackReference`` to a stack that is not in ``stacks/``, or that a first bring-up has not
    created yet at this point (:func:`fleetkit.preview.preview_fleet` runs stacks in the documented
    order). The engine fails the whole update on it and the program cannot catch it
    (pulumi/pulumi#11275).
``engine.pod-dependency`` (error)
    A workload whose pods name a PriorityClass, ServiceAccount or Secret that the same stack creates,
    without (transitively) depending on it. Pulumi creates resources in parallel unless told
    otherwise; the API server rejects a pod naming a missing PriorityClass (admission plugin
    ``Priority``), the ServiceAccount admission controller rejects one naming a missing service
    account, and a pod whose Secret volume is missing stays in ``ContainerCreating``
    (Kubernetes docs: "Pod Priority and Preemption", "Service Accounts", "Secrets").
``engine.lb-controller`` (error)
    A LoadBalancer Service (a manifest, or the ``service`` values of an ``istio/gateway`` release)
    whose annotations only the AWS Load Balancer Controller acts on (``aws-load-balancer-type:
    external`` / ``nlb-ip``, ``aws-load-balancer-nlb-target-type``; the in-tree cloud provider ignores
    ``external`` — AWS LBC docs, "Network Load Balancer", "Annotations"), in a stack that installs no
    controller release, or whose release does not wait for it: the Service never gets an address and
    the Helm release times out.
``engine.lb-permission`` (error)
    An AKS Service naming a static IP in a resource group (``azure-load-balancer-resource-group``)
    without a Network Contributor ``RoleAssignment`` the release waits for (AKS docs, "Use a static
    public IP address": the cluster identity needs it on the other resource group).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from fleetkit.issue import Issue, Severity

#: Role definition id (GUID) of Azure's built-in *Network Contributor* role.
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"
LBC_CHART = "aws-load-balancer-controller"
_LBC_TYPES = {"external", "nlb-ip"}
_AWS_LB_TYPE = "service.beta.kubernetes.io/aws-load-balancer-type"
_AWS_TARGET_TYPE = "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"
_AZURE_RG = "service.beta.kubernetes.io/azure-load-balancer-resource-group"
_WORKLOADS = {"Deployment", "DaemonSet", "StatefulSet", "Job", "ReplicaSet"}


def finding(rule: str, severity: Severity, resource: str, message: str) -> Issue:
    """An engine check's issue: about the Pulumi resource ``resource`` (``type::name``) as a whole."""
    return Issue((), rule, message, severity=severity, subject=resource)


def to_dict(issue: Issue) -> dict[str, Any]:
    """The ``engine-checks.json`` form of an engine check's issue."""
    return {
        "rule": issue.rule,
        "severity": issue.severity,
        "resource": issue.subject,
        "message": issue.message,
    }


def check_preview(preview: Any) -> list[Issue]:
    """Every engine check over one ``StackPreview``, sorted."""
    out = [finding("engine.stack-reference", "error", "(stack)", msg) for msg in preview.ref_problems]
    out += pod_dependencies(preview.resources)
    out += load_balancer_prerequisites(preview.resources)
    return sorted(set(out), key=lambda f: (f.severity != "error", f.rule, f.subject, f.message))


# --------------------------------------------------------------------------- graph helpers
def _closure(resources: Iterable[Any]) -> dict[str, set[str]]:
    """URN -> every URN it waits for, transitively (what Pulumi creates before it)."""
    direct = {r.urn: set(r.deps) for r in resources}
    memo: dict[str, set[str]] = {}

    def walk(urn: str) -> set[str]:
        if urn in memo:
            return memo[urn]
        memo[urn] = set()  # cycles cannot happen in a Pulumi graph; guard anyway
        acc: set[str] = set()
        for dep in direct.get(urn, ()):
            acc.add(dep)
            acc |= walk(dep)
        memo[urn] = acc
        return acc

    return {urn: walk(urn) for urn in direct}


def _kind(r: Any) -> str:
    kind = r.inputs.get("kind") if isinstance(r.inputs, Mapping) else None
    return (
        kind
        if isinstance(kind, str)
        else (r.type.rsplit(":", 1)[-1] if r.type.startswith("kubernetes:") else "")
    )


def _meta(r: Any) -> tuple[str, str]:
    md = r.inputs.get("metadata") or {}
    return str(md.get("namespace") or "default"), str(md.get("name") or r.name)


def pod_references(pod: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, name) of the PriorityClass, ServiceAccount and Secrets a pod spec names."""
    if isinstance(pod.get("priorityClassName"), str):
        yield "PriorityClass", pod["priorityClassName"]
    if isinstance(pod.get("serviceAccountName"), str):
        yield "ServiceAccount", pod["serviceAccountName"]
    for ref in pod.get("imagePullSecrets") or []:
        if isinstance(ref, Mapping) and isinstance(ref.get("name"), str):
            yield "Secret", ref["name"]
    for vol in pod.get("volumes") or []:
        secret = (vol or {}).get("secret") or {}
        if isinstance(secret.get("secretName"), str) and not secret.get("optional"):
            yield "Secret", secret["secretName"]
        for src in ((vol or {}).get("projected") or {}).get("sources") or []:
            sec = (src or {}).get("secret") or {}
            if isinstance(sec.get("name"), str) and not sec.get("optional"):
                yield "Secret", sec["name"]
    for c in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        for env in (c or {}).get("env") or []:
            ref = ((env or {}).get("valueFrom") or {}).get("secretKeyRef") or {}
            if isinstance(ref.get("name"), str) and not ref.get("optional"):
                yield "Secret", ref["name"]
        for src in (c or {}).get("envFrom") or []:
            ref = (src or {}).get("secretRef") or {}
            if isinstance(ref.get("name"), str) and not ref.get("optional"):
                yield "Secret", ref["name"]


def pod_dependencies(resources: list[Any]) -> list[Issue]:
    """Workloads naming an object the stack creates without waiting for it (``engine.pod-dependency``)."""
    created: dict[tuple[str, str, str], Any] = {}
    for r in resources:
        if r.custom and r.type.startswith("kubernetes:"):
            kind = _kind(r)
            if kind in ("PriorityClass", "ServiceAccount", "Secret"):
                ns, name = _meta(r)
                created[(kind, "" if kind == "PriorityClass" else ns, name)] = r
    if not created:
        return []
    closure = _closure(resources)
    out = []
    for r in resources:
        if not (r.custom and r.type.startswith("kubernetes:") and _kind(r) in _WORKLOADS):
            continue
        ns, name = _meta(r)
        pod = ((r.inputs.get("spec") or {}).get("template") or {}).get("spec") or {}
        for kind, ref in sorted(set(pod_references(pod))):
            target = created.get((kind, "" if kind == "PriorityClass" else ns, ref))
            if target is not None and target.urn not in closure.get(r.urn, set()):
                out.append(
                    finding(
                        "engine.pod-dependency",
                        "error",
                        f"{r.type}::{r.name}",
                        f"{_kind(r)} {ns}/{name} names {kind} {ref}, which this stack creates, without depending on "
                        f"it: Pulumi may create them in parallel and the pods are refused until it exists; add it "
                        f"to depends_on",
                    )
                )
    return out


# --------------------------------------------------------------------------- load balancers
def _service_annotations(r: Any) -> Mapping[str, Any] | None:
    """Annotations of a LoadBalancer Service manifest, or of a gateway chart release's Service."""
    if r.type == "kubernetes:helm.sh/v3:Release":
        svc = ((r.inputs.get("values") or {}).get("service")) or {}
        if svc.get("type", "LoadBalancer") != "LoadBalancer":
            return None
        return svc.get("annotations") or {}
    if r.custom and r.type == "kubernetes:core/v1:Service":
        if (r.inputs.get("spec") or {}).get("type") != "LoadBalancer":
            return None
        return (r.inputs.get("metadata") or {}).get("annotations") or {}
    return None


def _needs_lbc(annotations: Mapping[str, Any]) -> str | None:
    if str(annotations.get(_AWS_LB_TYPE, "")) in _LBC_TYPES:
        return f"{_AWS_LB_TYPE}: {annotations[_AWS_LB_TYPE]}"
    if _AWS_TARGET_TYPE in annotations:
        return f"{_AWS_TARGET_TYPE}: {annotations[_AWS_TARGET_TYPE]}"
    return None


def load_balancer_prerequisites(resources: list[Any]) -> list[Issue]:
    """``engine.lb-controller`` and ``engine.lb-permission`` over one stack."""
    releases = [r for r in resources if r.type == "kubernetes:helm.sh/v3:Release"]
    controllers = [r for r in releases if r.inputs.get("chart") == LBC_CHART]
    grants = [
        r
        for r in resources
        if r.type.startswith("azure-native:authorization:RoleAssignment")
        and NETWORK_CONTRIBUTOR in str(r.inputs.get("roleDefinitionId", ""))
    ]
    closure = _closure(resources)
    out = []
    for r in resources:
        ann = _service_annotations(r)
        if ann is None:
            continue
        label = f"{r.type}::{r.name}"
        need = _needs_lbc(ann)
        if need is not None:
            if not controllers:
                out.append(
                    finding(
                        "engine.lb-controller",
                        "error",
                        label,
                        f"the Service carries `{need}`, which only the AWS Load Balancer Controller acts "
                        f"on, and this stack installs no `{LBC_CHART}` release: it never gets an address",
                    )
                )
            elif not any(c.urn in closure.get(r.urn, set()) for c in controllers):
                out.append(
                    finding(
                        "engine.lb-controller",
                        "error",
                        label,
                        f"the Service carries `{need}` but does not wait for the `{LBC_CHART}` release: "
                        f"created first, it is provisioned by nobody (or the controller's webhook "
                        f"is not ready)",
                    )
                )
        if _AZURE_RG in ann:
            if not grants:
                out.append(
                    finding(
                        "engine.lb-permission",
                        "error",
                        label,
                        f"the Service uses a public IP in resource group {ann[_AZURE_RG]!r} but the stack "
                        f"grants the cluster identity no Network Contributor role there: it stays pending",
                    )
                )
            elif not any(g.urn in closure.get(r.urn, set()) for g in grants):
                out.append(
                    finding(
                        "engine.lb-permission",
                        "error",
                        label,
                        "the Service does not wait for the Network Contributor RoleAssignment: it may be "
                        "created before the grant and stay pending",
                    )
                )
    return out
