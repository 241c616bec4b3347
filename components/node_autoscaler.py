"""The node autoscaler EKS lacks: Cluster Autoscaler with its own IRSA role, as plain manifests.

EKS managed node groups keep their desired size; nothing adds a node for a pending pod unless a node
autoscaler runs in the cluster (EKS user guide, "Scale cluster compute with Karpenter and Cluster
Autoscaler"). GKE node pools and AKS agent pools scale by themselves once their autoscaling is on,
which ``components.node_pools`` renders for every pool (GKE ``autoscaling`` with ``total_*`` bounds,
AKS ``enable_auto_scaling`` with ``min_count``/``max_count``).

With ``addons.node_autoscaler: auto`` on EKS the kit runs Cluster Autoscaler the way its AWS
cloud-provider README sets it up with auto-discovery (kubernetes/autoscaler
``cluster-autoscaler/cloudprovider/aws/README.md`` and ``examples/cluster-autoscaler-autodiscover.yaml``):

* it finds the node groups by their ASG tags ``k8s.io/cluster-autoscaler/enabled`` and
  ``k8s.io/cluster-autoscaler/<cluster>`` (EKS tags managed node groups' ASGs with both; the GPU pools
  also carry node-template tags, so a pool at zero nodes still advertises its GPUs, labels and
  taints: ``components.node_pools.build_autoscaler_tags``);
* it runs with an IRSA role trusted by exactly ``kube-system/cluster-autoscaler``: ``Describe*`` on
  everything, ``SetDesiredCapacity``/``TerminateInstanceInAutoScalingGroup`` only on ASGs tagged
  ``k8s.io/cluster-autoscaler/<cluster>: owned`` (the README's recommended policy);
* its image tag follows the cluster's Kubernetes minor (the project releases one autoscaler minor per
  Kubernetes minor and supports that pairing), ``least-waste`` expands the cheapest fitting group,
  ``balance-similar-node-groups`` spreads across zones, and nodes with local storage (the node
  cache) may be scaled down, since the cache is only a cache.

Pure builders return plain manifest dicts (validated like every other object); the IAM role is the
only cloud resource.
"""

from __future__ import annotations

from typing import Any

from fleetkit.resolve import ResolvedPlacement
from policies.common import metadata

NAME = "cluster-autoscaler"
NAMESPACE = "kube-system"
IMAGE_REPOSITORY = "registry.k8s.io/autoscaling/cluster-autoscaler"
METRICS_PORT = 8085
LABELS = {"app.kubernetes.io/name": NAME}


def installs_cluster_autoscaler(placement: ResolvedPlacement) -> bool:
    return placement.cloud == "aws" and placement.addons.node_autoscaler == "auto"


def image(placement: ResolvedPlacement) -> str:
    return f"{IMAGE_REPOSITORY}:v{placement.cluster.kubernetes_version}.0"


def iam_policy(cluster_name: str) -> dict[str, Any]:
    """Describe everything; change only this cluster's node groups."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Describe",
                "Effect": "Allow",
                "Resource": "*",
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "autoscaling:DescribeTags",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements",
                    "eks:DescribeNodegroup",
                ],
            },
            {
                "Sid": "ScaleOwnGroups",
                "Effect": "Allow",
                "Resource": "*",
                "Action": [
                    "autoscaling:SetDesiredCapacity",
                    "autoscaling:TerminateInstanceInAutoScalingGroup",
                ],
                "Condition": {
                    "StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}
                },
            },
        ],
    }


def _rule(
    groups: list[str], resources: list[str], verbs: list[str], names: list[str] | None = None
) -> dict[str, Any]:
    rule: dict[str, Any] = {"apiGroups": groups, "resources": resources, "verbs": verbs}
    if names:
        rule["resourceNames"] = names
    return rule


def cluster_role_rules() -> list[dict[str, Any]]:
    """What the autoscaler reads (to simulate scheduling) and writes (events, evictions, its lease)."""
    read = ["get", "list", "watch"]
    return [
        _rule([""], ["events", "endpoints"], ["create", "patch"]),
        _rule([""], ["pods/eviction"], ["create"]),
        _rule([""], ["pods/status"], ["update"]),
        _rule([""], ["endpoints"], ["get", "update"], [NAME]),
        _rule([""], ["nodes"], [*read, "update"]),
        _rule(
            [""],
            [
                "namespaces",
                "pods",
                "services",
                "replicationcontrollers",
                "persistentvolumeclaims",
                "persistentvolumes",
            ],
            read,
        ),
        _rule(["apps"], ["statefulsets", "replicasets", "daemonsets"], read),
        _rule(["policy"], ["poddisruptionbudgets"], ["list", "watch"]),
        _rule(
            ["storage.k8s.io"],
            ["storageclasses", "csinodes", "csidrivers", "csistoragecapacities", "volumeattachments"],
            read,
        ),
        _rule(["batch"], ["jobs", "cronjobs"], read),
        _rule(["coordination.k8s.io"], ["leases"], ["create"]),
        _rule(["coordination.k8s.io"], ["leases"], ["get", "update"], [NAME]),
        _rule(["resource.k8s.io"], ["resourceclaims", "resourceslices", "deviceclasses"], read),
    ]


def render(placement: ResolvedPlacement, role_arn: Any) -> list[dict[str, Any]]:
    """ServiceAccount (IRSA), RBAC, Deployment and PodDisruptionBudget of the Cluster Autoscaler."""
    args = [
        "--cloud-provider=aws",
        f"--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,"
        f"k8s.io/cluster-autoscaler/{placement.cluster.name}",
        "--expander=least-waste",
        "--balance-similar-node-groups",
        "--skip-nodes-with-local-storage=false",
        "--skip-nodes-with-system-pods=false",
        "--scale-down-unneeded-time=10m",
        "--stderrthreshold=info",
        "--v=2",
    ]
    container = {
        "name": NAME,
        "image": image(placement),
        "imagePullPolicy": "IfNotPresent",
        "command": ["./cluster-autoscaler", *args],
        "env": [{"name": "AWS_REGION", "value": placement.region}],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
        "resources": {"requests": {"cpu": "100m", "memory": "600Mi"}, "limits": {"memory": "600Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(NAME, NAMESPACE, LABELS, {"eks.amazonaws.com/role-arn": role_arn}),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": metadata(NAME, None, LABELS),
            "rules": cluster_role_rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": metadata(NAME, None, LABELS),
            "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(NAME, NAMESPACE, LABELS),
            "rules": [
                _rule([""], ["configmaps"], ["create", "list", "watch"]),
                _rule(
                    [""],
                    ["configmaps"],
                    ["delete", "get", "update", "watch"],
                    ["cluster-autoscaler-status", "cluster-autoscaler-priority-expander"],
                ),
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata(NAME, NAMESPACE, LABELS),
            "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(NAME, NAMESPACE, LABELS),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": dict(LABELS)},
                "template": {
                    "metadata": {"labels": dict(LABELS)},
                    "spec": {
                        "serviceAccountName": NAME,
                        "priorityClassName": "system-cluster-critical",
                        "securityContext": {"fsGroup": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
                        "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
                        "containers": [container],
                    },
                },
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": metadata(NAME, NAMESPACE, LABELS),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(LABELS)}},
        },
    ]
