"""The Kubernetes cluster of a region stack: created or adopted on EKS, GKE or AKS.

``Cluster`` resolves the stack's ``cluster`` spec into one cloud cluster and exposes what the rest of
the stack needs: a Kubernetes provider, the API endpoint and CA (peers' istiod reach it), the OIDC
issuer (workload identity), the network id and a kubeconfig (a secret). The node pool components
read the cloud-specific handles it also exposes (node role and subnets on AWS, project/location and
node service account on GCP, resource group on Azure).

Creating a cluster also creates a small CPU pool for system pods, istiod, gateways and KEDA (GPU pools
are tainted, so those pods need somewhere else to run). Adopting reads the cluster from the cloud
API (``aws.eks.get_cluster``, ``gcp.container.get_cluster``, ``containerservice.get_managed_cluster``).
When ``cluster.foundation`` is set, network ids (and the adopted cluster's name) come from the
Terraform state outputs of that foundation, read with ``pulumi_terraform.state``.

Each cloud is its own module (``cluster_eks``, ``cluster_gke``, ``cluster_aks``; shared plumbing and
protection options in ``cluster_common``); this module wires them into one component and keeps
every public name importable from here. Pure ``build_*`` helpers render inputs and kubeconfigs.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster_aks import AksCluster, build_aks_api_access
from components.cluster_common import (
    SYSTEM_INSTANCE_TYPE,
    SYSTEM_POOL_SIZE,
    ClusterArgs,
    as_list,
    build_foundation_args,
    kubeconfig_cluster,
    managed_tags,
    public_cidrs,
    secret_config_output,
)
from components.cluster_eks import (
    BOOTSTRAP_ADMIN_PATH,
    EKS_CLUSTER_POLICIES,
    EKS_NODE_POLICIES,
    STS_AUDIENCE,
    EksCluster,
    access_policy_arn,
    assume_role_policy,
    aws_managed_policy_arn,
    build_access_scope,
    build_eks_access_config,
    build_eks_kubeconfig,
    build_eks_vpc_config,
)
from components.cluster_gke import (
    GKE_NODE_ROLES,
    GKE_OAUTH_SCOPES,
    GkeCluster,
    build_gke_authorized_networks,
    build_gke_kubeconfig,
    gke_node_service_account_id,
    gke_oidc_issuer,
)

__all__ = [
    "BOOTSTRAP_ADMIN_PATH",
    "EKS_CLUSTER_POLICIES",
    "EKS_NODE_POLICIES",
    "GKE_NODE_ROLES",
    "GKE_OAUTH_SCOPES",
    "STS_AUDIENCE",
    "SYSTEM_INSTANCE_TYPE",
    "SYSTEM_POOL_SIZE",
    "Cluster",
    "ClusterArgs",
    "access_policy_arn",
    "as_list",
    "assume_role_policy",
    "aws_managed_policy_arn",
    "build_access_scope",
    "build_aks_api_access",
    "build_eks_access_config",
    "build_eks_kubeconfig",
    "build_eks_vpc_config",
    "build_foundation_args",
    "build_gke_authorized_networks",
    "build_gke_kubeconfig",
    "gke_node_service_account_id",
    "gke_oidc_issuer",
    "kubeconfig_cluster",
    "managed_tags",
    "public_cidrs",
    "secret_config_output",
]


class Cluster(EksCluster, GkeCluster, AksCluster):
    """A created or adopted EKS/GKE/AKS cluster and the Kubernetes provider for everything in it."""

    provider: k8s.Provider

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleetkit:components:Cluster", name, None, opts)
        self._name = name
        self._args = args
        placement = args.placement
        self._child = pulumi.ResourceOptions(parent=self)
        self._invoke = pulumi.InvokeOutputOptions(parent=self)
        self._tags = managed_tags(args.stack, placement.cluster.name)
        self._access_ready = []
        #: tags/labels every cloud resource of the stack carries (node pools add fleetkit-pool)
        self.tags = dict(self._tags)
        self._foundation = self._read_foundation(placement.cluster.foundation)

        build = {"aws": self._aws, "gcp": self._gcp, "azure": self._azure}[placement.cloud]
        build(placement)

        adopt = placement.cluster.adopt
        #: the kubeconfig holds a credential (AKS user credentials, a given kubeconfig): never a stack
        #: output. EKS/GKE kubeconfigs authenticate through an exec plugin and hold none.
        self.kubeconfig_has_credentials = placement.cloud == "azure"
        if adopt is not None and adopt.kubeconfig_secret:
            self.kubeconfig = secret_config_output(adopt.kubeconfig_secret)
            self.kubeconfig_has_credentials = True
        else:
            self.kubeconfig = pulumi.Output.secret(self.kubeconfig)
        # every Kubernetes object waits for the access policies (a listed CI role applies them)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self._access_ready)),
        )
        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "caData": self.ca_data,
                "oidcIssuer": self.oidc_issuer,
                "networkId": self.network_id,
                "kubeconfig": self.kubeconfig,
                "cloudName": self.cloud_name,
            }
        )

    def exports(self) -> dict[str, Any]:
        """Stack outputs peers (remote secrets, trust) and operators need; camelCase keys."""
        out: dict[str, Any] = {
            "clusterEndpoint": self.endpoint,
            "clusterCaData": self.ca_data,
            "clusterOidcIssuer": self.oidc_issuer,
            "networkId": self.network_id,
            "cloudClusterName": self.cloud_name,
        }
        if not self.kubeconfig_has_credentials:
            out["kubeconfig"] = self.kubeconfig
        if self.oidc_provider_arn is not None:
            out["clusterOidcProviderArn"] = self.oidc_provider_arn
        if self.gcp_project is not None:
            out["workloadIdentityPool"] = f"{self.gcp_project}.svc.id.goog"
        if self.resource_group_name is not None:
            out["resourceGroup"] = self.resource_group_name
        return out
