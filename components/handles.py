"""What a component reads of another component it builds on, as typed protocols.

The node pools, add-ons, load-balancer prerequisites and model identities need a few outputs of the
stack's cluster — not the whole ``components.cluster.Cluster``. :class:`ClusterHandle` names them;
``Cluster`` satisfies it structurally (PEP 544 protocols: no inheritance, no import of the cluster
module), and so does a test double with the same attributes. Outputs that exist on one cloud only
are ``None`` elsewhere; a component that needs one checks it and says which.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import pulumi
import pulumi_kubernetes as k8s


class ClusterHandle(Protocol):
    """The cluster outputs the components read (``components.cluster.Cluster`` provides all)."""

    @property
    def provider(self) -> k8s.Provider:
        """The Kubernetes provider of the cluster (every in-cluster object uses it)."""
        ...

    @property
    def tags(self) -> Mapping[str, str]:
        """Tags/labels every cloud resource of the stack carries."""
        ...

    @property
    def cloud_name(self) -> pulumi.Output[str]:
        """The cluster's name in the cloud."""
        ...

    @property
    def oidc_issuer(self) -> pulumi.Output[str]:
        """The issuer URL of the cluster's service-account tokens (workload identity trust)."""
        ...

    @property
    def network_id(self) -> pulumi.Output[str]:
        """The VPC (EKS) or network (GKE) the cluster runs in."""
        ...

    @property
    def oidc_provider_arn(self) -> pulumi.Output[str] | None:
        """EKS: the IAM OIDC provider of the issuer (IRSA roles trust it)."""
        ...

    @property
    def node_role_arn(self) -> pulumi.Output[str] | None:
        """EKS: the IAM role of the nodes."""
        ...

    @property
    def subnet_ids(self) -> pulumi.Output[list[str]] | None:
        """EKS: the subnets node groups go in."""
        ...

    @property
    def gcp_project(self) -> str | None:
        """GKE: the project of the cluster."""
        ...

    @property
    def location(self) -> pulumi.Output[str] | None:
        """GKE: the cluster's region or zone."""
        ...

    @property
    def node_service_account(self) -> pulumi.Output[str] | None:
        """GKE: the service account the nodes run as."""
        ...

    @property
    def resource_group_name(self) -> pulumi.Output[str] | None:
        """AKS: the resource group of the cluster."""
        ...

    @property
    def vnet_subnet_id(self) -> pulumi.Output[str] | None:
        """AKS: the subnet of the node pools (None: the AKS-managed network)."""
        ...

    @property
    def principal_id(self) -> pulumi.Output[str] | None:
        """AKS: the cluster identity's principal (it attaches load-balancer IPs)."""
        ...
