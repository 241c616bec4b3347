"""GKE: the node service account and its roles, the cluster or its lookup, the system pool.

Creating: a VPC-native regional cluster with workload identity (``<project>.svc.id.goog``), the
default pool removed and a small CPU pool for system pods. Adopting reads the cluster with
``gcp.container.get_cluster``. The created cluster carries ``protection.cluster`` (``protect``) and,
with the system pool, ``protection.retain_cluster`` (``retain_on_delete``).
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from components.cluster_common import (
    SYSTEM_INSTANCE_TYPE,
    SYSTEM_POOL_SIZE,
    ClusterCore,
    kubeconfig_doc,
    reported,
)
from fleetkit.resolve import ResolvedPlacement
from fleetkit.scheduling import LABEL_POOL
from fleetkit.spec import CreateCluster

#: Roles the GKE node service account gets (logging, monitoring, image pulls).
GKE_NODE_ROLES = (
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
)
GKE_OAUTH_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


# --------------------------------------------------------------------------- pure helpers
def build_gke_authorized_networks(
    create: CreateCluster,
) -> gcp.container.ClusterMasterAuthorizedNetworksConfigArgsDict | None:
    if not create.authorized_networks:
        return None
    return {
        "cidr_blocks": [
            {"cidr_block": cidr, "display_name": f"fleetkit-{i}"}
            for i, cidr in enumerate(create.authorized_networks)
        ]
    }


def build_gke_kubeconfig(cluster_name: str, endpoint: str, ca_data: str) -> str:
    """Kubeconfig authenticating with ``gke-gcloud-auth-plugin`` (exec plugin)."""
    return kubeconfig_doc(
        cluster_name,
        f"https://{endpoint}" if not endpoint.startswith("https://") else endpoint,
        ca_data,
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "gke-gcloud-auth-plugin",
                "installHint": "gcloud components install gke-gcloud-auth-plugin",
                "provideClusterInfo": True,
                "interactiveMode": "Never",
            }
        },
    )


def gke_oidc_issuer(project: str, location: str, name: str) -> str:
    """GKE's service-account token issuer (Kubernetes OIDC discovery) URL."""
    return f"https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{name}"


def gke_node_service_account_id(cluster_name: str) -> str:
    """A valid GCP service account id (6-30 chars, lowercase, starts with a letter) for the nodes."""
    base = "".join(c if c.isalnum() else "-" for c in cluster_name.lower()).strip("-")
    if not base or not base[0].isalpha():
        base = f"fk-{base}"
    return f"{base[:24].rstrip('-')}-nodes"


# --------------------------------------------------------------------------- builder
class GkeCluster(ClusterCore):
    """Builds the GKE side of :class:`components.cluster.Cluster`."""

    def _gcp(self, placement: ResolvedPlacement) -> None:
        name, cl = self._name, placement.cluster
        project = placement.account.gcp_project
        if not project:  # the loader reports account.gcp-project first
            raise ValueError("GCP stacks need account.gcp_project")
        self.gcp_project = project
        sa = gcp.serviceaccount.Account(
            f"{name}-nodes",
            account_id=gke_node_service_account_id(cl.name),
            display_name=f"fleetkit: GKE nodes of {cl.name}",
            project=project,
            opts=self._child,
        )
        grants = [
            gcp.projects.IAMMember(
                f"{name}-nodes-{role.split('/')[-1].replace('.', '-')}",
                project=project,
                role=role,
                member=sa.email.apply(lambda e: f"serviceAccount:{e}"),
                opts=self._child,
            )
            for role in GKE_NODE_ROLES
        ]
        self.node_service_account = pulumi.Output.all(sa.email, *[g.id for g in grants]).apply(
            lambda xs: xs[0]
        )
        pods = self._from_foundation("pods_range_name")
        services = self._from_foundation("services_range_name")
        self.ip_ranges = (pods, services)
        if cl.create is not None:
            self._gcp_create(placement, cl.create, project)
        else:
            self._gcp_adopt(placement, project)

    def _gcp_create(self, placement: ResolvedPlacement, create: CreateCluster, project: str) -> None:
        name, cl = self._name, placement.cluster
        subnets = self._subnets(create)
        network = self._vpc(create)
        pods, services = self.ip_ranges
        ip_policy: gcp.container.ClusterIpAllocationPolicyArgsDict = {}
        if pods is not None:
            ip_policy["cluster_secondary_range_name"] = pods
        if services is not None:
            ip_policy["services_secondary_range_name"] = services
        private: gcp.container.ClusterPrivateClusterConfigArgsDict | None = (
            None
            if create.public_endpoint
            else {"enable_private_nodes": True, "enable_private_endpoint": True}
        )
        gke = gcp.container.Cluster(
            f"{name}-gke",
            name=cl.name,
            project=project,
            location=placement.region,
            remove_default_node_pool=True,
            initial_node_count=1,
            deletion_protection=create.deletion_protection,
            min_master_version=create.kubernetes_version,
            release_channel={"channel": "REGULAR"},
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=ip_policy,
            network=network,
            subnetwork=subnets.apply(lambda s: s[0]) if subnets is not None else None,
            workload_identity_config={"workload_pool": f"{project}.svc.id.goog"},
            master_authorized_networks_config=build_gke_authorized_networks(create),
            private_cluster_config=private,
            resource_labels=self._tags,
            opts=self._cluster_opts(),
        )
        self.cloud_name = gke.name
        self.location = gke.location
        self.endpoint = gke.endpoint.apply(lambda e: f"https://{e}")
        self.ca_data = gke.master_auth.apply(lambda m: reported(m.cluster_ca_certificate, "CA certificate"))
        self.oidc_issuer = pulumi.Output.all(gke.location, gke.name).apply(
            lambda a: gke_oidc_issuer(project, a[0], a[1])
        )
        self.network_id = gke.network.apply(lambda n: reported(n, "network"))
        self.kubeconfig = pulumi.Output.all(gke.name, gke.endpoint, self.ca_data).apply(
            lambda a: build_gke_kubeconfig(a[0], a[1], a[2])
        )
        lo, hi = SYSTEM_POOL_SIZE
        gcp.container.NodePool(
            f"{name}-system",
            cluster=gke.name,
            project=project,
            location=placement.region,
            initial_node_count=1,
            autoscaling={
                "total_min_node_count": lo,
                "total_max_node_count": hi,
                "location_policy": "BALANCED",
            },
            management={"auto_repair": True, "auto_upgrade": True},
            node_config={
                "machine_type": create.system_instance_type or SYSTEM_INSTANCE_TYPE["gcp"],
                "disk_size_gb": 100,
                "disk_type": "pd-balanced",
                "service_account": self.node_service_account,
                "oauth_scopes": list(GKE_OAUTH_SCOPES),
                "labels": {LABEL_POOL: "system"},
                "workload_metadata_config": {"mode": "GKE_METADATA"},
                "shielded_instance_config": {"enable_secure_boot": True, "enable_integrity_monitoring": True},
                "resource_labels": self._tags,
            },
            opts=self._create_only_opts(ignore_changes=["initialNodeCount"]),
        )

    def _gcp_adopt(self, placement: ResolvedPlacement, project: str) -> None:
        adopt = placement.cluster.adopt
        assert adopt is not None
        location = adopt.location or placement.region
        found = gcp.container.get_cluster_output(
            name=self._cluster_name(placement.cluster), location=location, project=project, opts=self._invoke
        )
        self.cloud_name = found.name.apply(lambda n: n or placement.cluster.name)
        self.location = pulumi.Output.from_input(location)
        self.endpoint = found.endpoint.apply(lambda e: f"https://{e}")
        self.ca_data = found.master_auths.apply(lambda ms: ms[0].cluster_ca_certificate)
        self.oidc_issuer = self.cloud_name.apply(lambda n: gke_oidc_issuer(project, location, n))
        self.network_id = found.network
        self.kubeconfig = pulumi.Output.all(self.cloud_name, found.endpoint, self.ca_data).apply(
            lambda a: build_gke_kubeconfig(a[0], a[1], a[2])
        )
