"""AKS: the resource group, the managed cluster or its lookup, and the user credentials.

Creating: a ManagedCluster with a system-assigned identity, OIDC issuer and workload identity, Azure
CNI overlay and a system agent pool (GPU pools are separate AgentPool resources). The resource group
the kit creates holds the cluster, so it is protected with it (``protection.cluster``): deleting a
resource group deletes everything in it. Adopting reads the cluster with
``containerservice.get_managed_cluster``. The kubeconfig comes from
``list_managed_cluster_user_credentials`` and holds a credential (never a stack output).
"""

from __future__ import annotations

import base64
from typing import Any

import pulumi
import pulumi_azure_native as azure_native

from components.cluster_common import (
    SYSTEM_INSTANCE_TYPE,
    SYSTEM_POOL_SIZE,
    ClusterCore,
    kubeconfig_cluster,
    reported,
)
from fleetkit.resolve import ResolvedPlacement
from fleetkit.scheduling import LABEL_POOL
from fleetkit.spec import CreateCluster


def build_aks_api_access(
    create: CreateCluster,
) -> azure_native.containerservice.ManagedClusterAPIServerAccessProfileArgsDict | None:
    """AKS API server access; an allow-list of exactly 0.0.0.0/0 is the same as none."""
    if not create.public_endpoint:
        return {"enable_private_cluster": True}
    ranges = [c for c in create.authorized_networks if c != "0.0.0.0/0"]
    return {"authorized_ip_ranges": ranges} if ranges else None


def adopted_principal(identity: Any) -> str:
    """The principal of an adopted cluster's identity: the load-balancer prerequisites grant it Network
    Contributor (:mod:`components.lb_controller`), so a cluster without a system-assigned identity is
    refused here rather than by the role assignment at ``pulumi up``."""
    principal = identity.principal_id if identity is not None else None
    if not principal:
        raise ValueError(
            "cluster.adopt: the AKS cluster has no system-assigned identity, whose principal needs "
            "Network Contributor on the resource group of the east-west gateway's public IP"
        )
    return str(principal)


class AksCluster(ClusterCore):
    """Builds the AKS side of :class:`components.cluster.Cluster`."""

    def _azure(self, placement: ResolvedPlacement) -> None:
        cl = placement.cluster
        rg_from_tf = self._from_foundation("resource_group")
        subnets = self._subnets(cl.create)
        self.vnet_subnet_id = subnets.apply(lambda s: s[0]) if subnets is not None else None
        rg: pulumi.Output[str]
        if rg_from_tf is not None:
            rg = rg_from_tf.apply(str)
        elif cl.adopt is not None and cl.adopt.resource_group:
            rg = pulumi.Output.from_input(cl.adopt.resource_group)
        elif placement.account.azure_resource_group:
            rg = pulumi.Output.from_input(placement.account.azure_resource_group)
        else:
            # holds the cluster: deleting it would delete the cluster too
            rg = azure_native.resources.ResourceGroup(
                f"{self._name}-rg",
                resource_group_name=f"rg-{cl.name}",
                location=placement.region,
                tags=self._tags,
                opts=self._cluster_opts(),
            ).name
        self.resource_group_name = rg
        if cl.create is not None:
            self._azure_create(placement, cl.create, rg)
        else:
            self._azure_adopt(placement, rg)

    def _azure_credentials(
        self, rg: pulumi.Output[str], cluster_name: pulumi.Input[str], depends: list[pulumi.Resource]
    ) -> None:
        creds = azure_native.containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=rg,
            resource_name=cluster_name,
            opts=pulumi.InvokeOutputOptions(parent=self, depends_on=depends),
        )
        self.kubeconfig = creds.kubeconfigs.apply(lambda ks: base64.b64decode(ks[0].value).decode())
        self.ca_data = pulumi.Output.unsecret(self.kubeconfig.apply(lambda k: kubeconfig_cluster(k)[1]))

    def _azure_create(
        self, placement: ResolvedPlacement, create: CreateCluster, rg: pulumi.Output[str]
    ) -> None:
        name, cl = self._name, placement.cluster
        lo, hi = SYSTEM_POOL_SIZE
        system_pool: azure_native.containerservice.ManagedClusterAgentPoolProfileArgsDict = {
            "name": "system",
            "mode": "System",
            "vm_size": create.system_instance_type or SYSTEM_INSTANCE_TYPE["azure"],
            "count": lo,
            "enable_auto_scaling": True,
            "min_count": lo,
            "max_count": hi,
            "os_type": "Linux",
            "os_sku": "Ubuntu",
            "type": "VirtualMachineScaleSets",
            "node_labels": {LABEL_POOL: "system"},
        }
        if self.vnet_subnet_id is not None:
            system_pool["vnet_subnet_id"] = self.vnet_subnet_id
        aks = azure_native.containerservice.ManagedCluster(
            f"{name}-aks",
            resource_group_name=rg,
            resource_name_=cl.name,
            location=placement.region,
            dns_prefix=cl.name,
            kubernetes_version=create.kubernetes_version,
            enable_rbac=True,
            identity={"type": azure_native.containerservice.ResourceIdentityType.SYSTEM_ASSIGNED},
            sku={"name": "Base", "tier": "Standard"},
            oidc_issuer_profile={"enabled": True},
            security_profile={"workload_identity": {"enabled": True}},
            api_server_access_profile=build_aks_api_access(create),
            network_profile={
                "network_plugin": "azure",
                "network_plugin_mode": "overlay",
                "load_balancer_sku": "standard",
            },
            auto_upgrade_profile={"upgrade_channel": "patch", "node_os_upgrade_channel": "NodeImage"},
            agent_pool_profiles=[system_pool],
            tags=self._tags,
            # GPU pools are separate AgentPool resources; the autoscaler owns the system pool's count
            opts=self._cluster_opts(ignore_changes=["agentPoolProfiles"]),
        )
        self.cloud_name = aks.name
        # principal_id is computed: set once the cluster exists; a first preview answers the identity input
        # without it (None, passed on as before), which the SDK's non-optional field does not allow for
        self.principal_id = aks.identity.apply(lambda i: i.principal_id if i else None)  # type: ignore[arg-type,return-value]
        self.endpoint = aks.fqdn.apply(lambda f: f"https://{f}:443")
        self.oidc_issuer = aks.oidc_issuer_profile.apply(lambda p: p.issuer_url if p else "")
        self.network_id = (
            self.vnet_subnet_id
            if self.vnet_subnet_id is not None
            else aks.node_resource_group.apply(lambda g: reported(g, "node resource group"))
        )
        self._azure_credentials(rg, aks.name, [aks])

    def _azure_adopt(self, placement: ResolvedPlacement, rg: pulumi.Output[str]) -> None:
        name = self._cluster_name(placement.cluster)
        found = azure_native.containerservice.get_managed_cluster_output(
            resource_group_name=rg, resource_name=name, opts=self._invoke
        )
        self.cloud_name = found.name
        self.principal_id = found.identity.apply(adopted_principal)
        self.endpoint = found.fqdn.apply(lambda f: f"https://{f}:443")
        self.oidc_issuer = found.oidc_issuer_profile.apply(lambda p: p.issuer_url if p else "")
        self.network_id = (
            self.vnet_subnet_id if self.vnet_subnet_id is not None else found.node_resource_group
        )
        self._azure_credentials(rg, name, [])
