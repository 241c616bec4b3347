"""The kit's guardrails as pure functions over resource records.

A record is what Pulumi knows about one resource: its type token, its name and its properties
(camelCase, as the engine passes them). The same functions run

1. inside the CrossGuard pack (``policies/crossguard/__main__.py`` adapts ``ResourceValidationArgs``
   and ``StackValidationArgs`` to :class:`Resource`), and
2. offline over the resources ``fleetkit preview`` records (:mod:`fleetkit.guardrails`).

The rules are split by subject: :mod:`.records` (the records and helpers), :mod:`.infra_rules` (GPU
pools, mTLS, load balancers, weight buckets), :mod:`.workload_rules` (model Deployments, credentials,
the serving path) and :mod:`.fleet_rules` (node access, API exposure, autoscaling signals, mesh
traffic). This module is the table (:data:`RULES`) and the evaluator.

Standard library only: the pack's virtualenv holds nothing but ``pulumi-policy``.

Suppressing a verdict on one Kubernetes object takes an annotation with a reason, the same shape as
the lint one: ``fleetkit.dev/guardrail-ignore: "no-public-load-balancer: partner VPN terminates here"``.
A suppressed verdict is still reported (with its reason) but never counts as a violation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fleetkit.issue import Issue, Severity

from . import fleet_rules
from .infra_rules import (
    check_gpu_pool_taints,
    check_no_public_load_balancer,
    check_strict_mtls,
    check_weights_read_only,
    policy_document_problems,
)
from .records import IGNORE_ANNOTATION, SECRET, UNKNOWN, Resource, Rule, Violation
from .workload_rules import (
    VLLM_SECRET_FLAGS,
    check_lb_idle,
    check_model_pdb,
    check_model_probes,
    check_plain_credentials,
    check_secret_data,
    check_serving_routes,
    credential_key,
    is_model_deployment,
)

__all__ = [
    "IGNORE_ANNOTATION",
    "RULES",
    "RULES_BY_NAME",
    "SECRET",
    "UNKNOWN",
    "VLLM_SECRET_FLAGS",
    "Resource",
    "Rule",
    "Violation",
    "check_resource",
    "check_stack_rule",
    "credential_key",
    "evaluate",
    "is_model_deployment",
    "policy_document_problems",
]


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
    subject = res.label if res is not None else "(stack)"
    severity: Severity = "error" if rule.enforcement == "mandatory" else "warning"
    return Violation(
        Issue((), rule.name, message, severity=severity, subject=subject, suppressed=reason), res
    )


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
