"""Cluster add-ons GPU workloads need: the NVIDIA device plugin (where images lack it) and KEDA.

* NVIDIA device plugin (Helm chart ``nvidia-device-plugin`` from NVIDIA's repository): installed when
  :func:`fleetkit.scheduling.needs_device_plugin` says so - AL2023 NVIDIA AMIs on EKS and AKS pools
  whose driver AKS installs. Not on Bottlerocket (the AMI runs its own plugin) or GKE (GKE deploys
  it). The DaemonSet selects the pools that need it (``nvidia.com/gpu.present=true``) and tolerates
  their taints.
* KEDA (chart ``keda`` from kedacore's repository) when ``addons.keda`` is on; it runs on the system
  pool.
* Monitoring (chart ``kube-prometheus-stack`` from prometheus-community) when ``addons.monitoring`` is
  ``kube-prometheus-stack``: Prometheus Operator and its CRDs (PodMonitor, PrometheusRule — the model
  services need them), Prometheus selecting monitors and rules in every namespace, kube-state-metrics
  (restart and init-container alerts), and Grafana with its dashboard sidecar watching ConfigMaps
  labelled ``grafana_dashboard: "1"``. Prometheus is reachable at
  ``http://prometheus-operated.monitoring.svc:9090``, the KEDA triggers' default address.

* Cluster Autoscaler on EKS when ``addons.node_autoscaler`` is ``auto`` (:mod:`components.node_autoscaler`:
  plain manifests and an IRSA role; GKE and AKS pools scale with their own autoscaler).

The charts are ``kubernetes.helm.v3.Release``; ``ready`` lists what model workloads must wait for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_kubernetes as k8s

from components import node_autoscaler
from components.handles import ClusterHandle
from components.identity import irsa_trust_policy
from fleetkit.kube import apply_manifest, resource_name
from fleetkit.resolve import ResolvedPlacement
from fleetkit.scheduling import PodScheduling

if TYPE_CHECKING:  # annotation only: components.node_pools imports every cloud SDK
    from components.node_pools import GpuNodePool

DEVICE_PLUGIN_REPO = "https://nvidia.github.io/k8s-device-plugin"
DEVICE_PLUGIN_CHART = "nvidia-device-plugin"
#: chart version == plugin version (image nvcr.io/nvidia/k8s-device-plugin:v0.19.3)
DEVICE_PLUGIN_VERSION = "0.19.3"
DEVICE_PLUGIN_NAMESPACE = "nvidia-device-plugin"

KEDA_REPO = "https://kedacore.github.io/charts"
KEDA_CHART = "keda"
#: chart versions track KEDA releases; 2.20.2 matches the vendored KEDA CRD schemas
KEDA_VERSION = "2.20.2"
KEDA_NAMESPACE = "keda"

MONITORING_REPO = "https://prometheus-community.github.io/helm-charts"
MONITORING_CHART = "kube-prometheus-stack"
MONITORING_NAMESPACE = "monitoring"


@dataclass
class AddonsArgs:
    #: the stack's ``addons`` section, cloud, cluster and device plugin placement (:mod:`fleetkit.resolve`)
    placement: ResolvedPlacement
    #: the stack's GPU pools, keyed by pool name (the device plugin waits for their cloud resources)
    node_pools: Mapping[str, GpuNodePool]
    #: the stack's cluster (EKS: its OIDC provider, for the Cluster Autoscaler's IRSA role)
    cluster: ClusterHandle | None = None
    stack: str = ""


def build_device_plugin_values(sched: PodScheduling) -> dict[str, Any]:
    """Values of the device plugin chart: placement on the pools that need it, no GFD/NFD."""
    return {
        "nodeSelector": dict(sched.node_selector),
        "tolerations": [*sched.tolerations, {"key": "CriticalAddonsOnly", "operator": "Exists"}],
        "priorityClassName": "system-node-critical",
        "gfd": {"enabled": False},
        "nfd": {"enabled": False},
    }


def build_keda_values() -> dict[str, Any]:
    """Values of the KEDA chart (on the untainted system pool; the chart's defaults otherwise)."""
    return {
        "resources": {
            "operator": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
            "metricServer": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
        },
        "prometheus": {"operator": {"enabled": True}, "metricServer": {"enabled": True}},
    }


def build_monitoring_values() -> dict[str, Any]:
    """kube-prometheus-stack values: select monitors/rules everywhere, Grafana dashboards from ConfigMaps."""
    return {
        "prometheus": {
            "prometheusSpec": {
                "podMonitorSelectorNilUsesHelmValues": False,
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "retention": "15d",
            }
        },
        "grafana": {
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": "grafana_dashboard",
                    "labelValue": "1",
                    "searchNamespace": "ALL",
                }
            }
        },
        "kube-state-metrics": {"metricLabelsAllowlist": ["pods=[app,version,fleetkit.dev/model]"]},
    }


class ClusterAddons(pulumi.ComponentResource):
    """Device plugin and KEDA Helm releases; ``ready`` is what model workloads wait for."""

    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: AddonsArgs, opts: pulumi.ResourceOptions | None = None):
        # the type token keeps its first name: a deployed stack's URNs must not change
        super().__init__("fleetkit:components:Addons", name, None, opts)
        placement = args.placement
        # the Kubernetes provider comes in through opts (and is inherited by children)
        pool_resources = [p.resource for _, p in sorted(args.node_pools.items())]
        self.ready = []
        self.device_plugin: k8s.helm.v3.Release | None = None
        self.keda: k8s.helm.v3.Release | None = None
        self.monitoring: k8s.helm.v3.Release | None = None
        self.cluster_autoscaler: list[pulumi.CustomResource] = []
        if placement.addons.monitoring == "kube-prometheus-stack":
            self.monitoring = self._release(
                f"{name}-monitoring",
                "kube-prometheus-stack",
                MONITORING_CHART,
                placement.addons.monitoring_chart_version,
                MONITORING_REPO,
                MONITORING_NAMESPACE,
                build_monitoring_values(),
            )
        if placement.device_plugin is not None:
            self.device_plugin = self._release(
                f"{name}-nvidia-device-plugin",
                "nvidia-device-plugin",
                DEVICE_PLUGIN_CHART,
                DEVICE_PLUGIN_VERSION,
                DEVICE_PLUGIN_REPO,
                DEVICE_PLUGIN_NAMESPACE,
                build_device_plugin_values(placement.device_plugin),
                # a DaemonSet on pools that may be at zero nodes: do not wait for pods
                skip_await=True,
                depends_on=pool_resources,
            )
        if placement.addons.keda:
            self.keda = self._release(
                f"{name}-keda",
                "keda",
                KEDA_CHART,
                KEDA_VERSION,
                KEDA_REPO,
                KEDA_NAMESPACE,
                build_keda_values(),
                # KEDA's chart creates ServiceMonitors: the monitoring CRDs must exist first
                depends_on=[self.monitoring] if self.monitoring else [],
            )
        if node_autoscaler.installs_cluster_autoscaler(placement):
            self.cluster_autoscaler = self._cluster_autoscaler(name, args)
        self.register_outputs(
            {
                "ready": [r.urn for r in self.ready],
                "clusterAutoscaler": node_autoscaler.image(placement) if self.cluster_autoscaler else None,
                "devicePlugin": DEVICE_PLUGIN_VERSION if self.device_plugin else None,
                "keda": KEDA_VERSION if self.keda else None,
                "monitoring": placement.addons.monitoring_chart_version if self.monitoring else None,
            }
        )

    def _cluster_autoscaler(self, name: str, args: AddonsArgs) -> list[pulumi.CustomResource]:
        """The autoscaler's IRSA role (trusts exactly its ServiceAccount), policy and Kubernetes objects."""
        import pulumi_aws as aws  # AWS stacks only, as in components.identity

        placement = args.placement
        provider_arn = getattr(args.cluster, "oidc_provider_arn", None)
        issuer = getattr(args.cluster, "oidc_issuer", None)
        if provider_arn is None or issuer is None:
            raise ValueError(
                "aws: the cluster component exposes no OIDC provider, needed by the Cluster Autoscaler"
            )
        trust = pulumi.Output.all(provider_arn, issuer).apply(
            lambda v: json.dumps(
                irsa_trust_policy(v[0], v[1], node_autoscaler.NAMESPACE, node_autoscaler.NAME), sort_keys=True
            )
        )
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-cluster-autoscaler-role",
            assume_role_policy=trust,
            max_session_duration=3600,
            description=f"fleetkit {args.stack}: Cluster Autoscaler of {placement.cluster.name}",
            tags={"fleetkit.dev/stack": args.stack},
            opts=child,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-cluster-autoscaler-policy",
            name="cluster-autoscaler",
            role=role.id,
            policy=json.dumps(node_autoscaler.iam_policy(placement.cluster.name), sort_keys=True),
            opts=child,
        )
        objs = pulumi.ResourceOptions(parent=self, depends_on=[policy])
        rendered = node_autoscaler.render(placement, role.arn)
        # the ServiceAccount and RBAC first: the Deployment's pods are refused until their ServiceAccount exists
        support = [
            apply_manifest(resource_name(f"{name}-ca", o), o, objs)
            for o in rendered
            if o["kind"] != "Deployment"
        ]
        after_support = pulumi.ResourceOptions(parent=self, depends_on=[policy, *support])
        return [
            *support,
            *(
                apply_manifest(resource_name(f"{name}-ca", o), o, after_support)
                for o in rendered
                if o["kind"] == "Deployment"
            ),
        ]

    def _release(
        self,
        resource_name: str,
        release: str,
        chart: str,
        version: str,
        repo: str,
        namespace: str,
        values: dict[str, Any],
        *,
        skip_await: bool = False,
        depends_on: list[Any] | None = None,
    ) -> k8s.helm.v3.Release:
        """A Helm release in its own namespace; workloads wait for it (``ready``)."""
        extra: dict[str, Any] = {"skip_await": True} if skip_await else {}
        rel = k8s.helm.v3.Release(
            resource_name,
            name=release,
            chart=chart,
            version=version,
            repository_opts={"repo": repo},
            namespace=namespace,
            create_namespace=True,
            values=values,
            **extra,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on or []),
        )
        self.ready.append(rel)
        return rel
