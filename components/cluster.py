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

Pure ``build_*`` helpers render inputs and kubeconfigs; the class only wires resources together.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_azure_native as azure_native
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import pulumi_tls as tls
import yaml
from pulumi_terraform import state as tfstate

from fleetkit.foundation import coerce_backend_setting
from fleetkit.scheduling import LABEL_POOL
from fleetkit.spec import ClusterSpec, CreateCluster, RegionStackSpec, TerraformFoundation, secret_config_key

#: Default machine types of the system (CPU) pool per cloud.
SYSTEM_INSTANCE_TYPE = {"aws": "m6i.xlarge", "gcp": "e2-standard-4", "azure": "Standard_D4ds_v5"}
#: System pool size (nodes, whole cluster): min, max.
SYSTEM_POOL_SIZE = (2, 4)
#: Managed policies of EKS roles (``aws`` partition).
EKS_CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
EKS_NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
)
#: Roles the GKE node service account gets (logging, monitoring, image pulls).
GKE_NODE_ROLES = (
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
)
GKE_OAUTH_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
#: Audience of IRSA tokens.
STS_AUDIENCE = "sts.amazonaws.com"
_TF_READERS = {
    "s3": tfstate.get_s3_reference_output,
    "azurerm": tfstate.get_azure_rm_reference_output,
    "remote": tfstate.get_remote_reference_output,
    "local": tfstate.get_local_reference_output,
}


@dataclass
class ClusterArgs:
    stack: str
    spec: RegionStackSpec


# --------------------------------------------------------------------------- pure helpers
def managed_tags(stack: str, spec: RegionStackSpec) -> dict[str, str]:
    """Tags/labels every cloud resource of the stack carries."""
    return {"managed-by": "fleetkit", "fleetkit-stack": stack, "fleetkit-cluster": spec.cluster.name}


def assume_role_policy(service: str) -> str:
    """IAM trust policy letting an AWS service assume a role."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        },
        sort_keys=True,
    )


def aws_managed_policy_arn(name: str) -> str:
    return f"arn:aws:iam::aws:policy/{name}"


def public_cidrs(create: CreateCluster) -> list[str]:
    """CIDRs allowed to reach a public API endpoint.

    Never empty: EKS reads a missing ``publicAccessCidrs`` as ``0.0.0.0/0`` (EKS API ``VpcConfigRequest``).
    The spec check ``cluster.api-open-to-internet`` refuses a public endpoint without ranges, so an
    empty list here is a bug in the caller, not a user mistake.
    """
    if not create.authorized_networks:
        raise ValueError(
            "a public API endpoint needs authorized_networks (checked by cluster.api-open-to-internet)"
        )
    return list(create.authorized_networks)


def build_eks_vpc_config(create: CreateCluster, subnet_ids: Any) -> dict[str, Any]:
    return {
        "subnet_ids": subnet_ids,
        "endpoint_public_access": create.public_endpoint,
        "endpoint_private_access": True,
        "public_access_cidrs": public_cidrs(create) if create.public_endpoint else None,
    }


def build_gke_authorized_networks(create: CreateCluster) -> dict[str, Any] | None:
    if not create.authorized_networks:
        return None
    return {
        "cidr_blocks": [
            {"cidr_block": cidr, "display_name": f"fleetkit-{i}"}
            for i, cidr in enumerate(create.authorized_networks)
        ]
    }


def build_aks_api_access(create: CreateCluster) -> dict[str, Any] | None:
    """AKS API server access; an allow-list of exactly 0.0.0.0/0 is the same as none."""
    if not create.public_endpoint:
        return {"enable_private_cluster": True}
    ranges = [c for c in create.authorized_networks if c != "0.0.0.0/0"]
    return {"authorized_ip_ranges": ranges} if ranges else None


def _kubeconfig(name: str, server: str, ca_data: str, user: dict[str, Any]) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "users": [{"name": name, "user": user}],
    }
    return json.dumps(doc, sort_keys=True, indent=2)


def build_eks_kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """Kubeconfig authenticating with ``aws eks get-token`` (exec plugin; needs the AWS CLI)."""
    return _kubeconfig(
        cluster_name,
        endpoint,
        ca_data,
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "aws",
                "args": [
                    "eks",
                    "get-token",
                    "--cluster-name",
                    cluster_name,
                    "--region",
                    region,
                    "--output",
                    "json",
                ],
                "interactiveMode": "Never",
            }
        },
    )


def build_gke_kubeconfig(cluster_name: str, endpoint: str, ca_data: str) -> str:
    """Kubeconfig authenticating with ``gke-gcloud-auth-plugin`` (exec plugin)."""
    return _kubeconfig(
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


def kubeconfig_cluster(kubeconfig: str) -> tuple[str, str]:
    """(server, certificate-authority-data) of a kubeconfig's current context."""
    doc = yaml.safe_load(kubeconfig)
    current = doc.get("current-context")
    ctx = next((c["context"] for c in doc.get("contexts", []) if c["name"] == current), None)
    name = ctx["cluster"] if ctx else doc["clusters"][0]["name"]
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == name)
    return cluster["server"], cluster.get("certificate-authority-data", "")


def gke_oidc_issuer(project: str, location: str, name: str) -> str:
    """GKE's service-account token issuer (Kubernetes OIDC discovery) URL."""
    return f"https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{name}"


def gke_node_service_account_id(cluster_name: str) -> str:
    """A valid GCP service account id (6-30 chars, lowercase, starts with a letter) for the nodes."""
    base = "".join(c if c.isalnum() else "-" for c in cluster_name.lower()).strip("-")
    if not base or not base[0].isalpha():
        base = f"fk-{base}"
    return f"{base[:24].rstrip('-')}-nodes"


def build_foundation_args(fnd: TerraformFoundation) -> dict[str, Any]:
    """Keyword arguments of the ``pulumi_terraform.state`` reader, secrets excluded."""
    args: dict[str, Any] = {k: coerce_backend_setting(k, v) for k, v in sorted(fnd.config.items())}
    if fnd.workspace:
        if fnd.backend == "remote":
            args["workspaces"] = {"name": fnd.workspace}
        elif fnd.backend in ("s3", "azurerm"):
            args["workspace"] = fnd.workspace
    return args


def as_list(value: Any) -> list[str]:
    """A Terraform output that is one id or a list of ids, as a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def secret_config_output(key: str) -> pulumi.Output[str]:
    """A credential from Pulumi config, as a secret (bare names are in ``fleetkit-secrets``)."""
    namespace, name = secret_config_key(key)
    return pulumi.Config(namespace).require_secret(name)


# --------------------------------------------------------------------------- the component
class Cluster(pulumi.ComponentResource):
    """A created or adopted EKS/GKE/AKS cluster and the Kubernetes provider for everything in it."""

    provider: k8s.Provider
    endpoint: pulumi.Output[str]
    ca_data: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    network_id: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    #: the cluster's name in the cloud
    cloud_name: pulumi.Output[str]
    # ---- cloud handles for the node pools (None on other clouds)
    node_role_arn: pulumi.Output[str] | None = None
    subnet_ids: pulumi.Output[list[str]] | None = None
    oidc_provider_arn: pulumi.Output[str] | None = None
    gcp_project: str | None = None
    location: pulumi.Output[str] | None = None
    node_service_account: pulumi.Output[str] | None = None
    resource_group_name: pulumi.Output[str] | None = None
    vnet_subnet_id: pulumi.Output[str] | None = None
    #: AKS: the cluster identity's principal (it attaches load-balancer IPs)
    principal_id: pulumi.Output[str] | None = None
    #: GKE secondary range names from a foundation (pods, services)
    ip_ranges: tuple[pulumi.Output[str] | None, pulumi.Output[str] | None] = (None, None)

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleetkit:components:Cluster", name, None, opts)
        self._name = name
        self._args = args
        spec = args.spec
        self._child = pulumi.ResourceOptions(parent=self)
        self._invoke = pulumi.InvokeOutputOptions(parent=self)
        self._tags = managed_tags(args.stack, spec)
        #: tags/labels every cloud resource of the stack carries (node pools add fleetkit-pool)
        self.tags = dict(self._tags)
        self._foundation = self._read_foundation(spec.cluster.foundation)

        build = {"aws": self._aws, "gcp": self._gcp, "azure": self._azure}[spec.cloud]
        build(spec)

        adopt = spec.cluster.adopt
        #: the kubeconfig holds a credential (AKS user credentials, a given kubeconfig): never a stack
        #: output. EKS/GKE kubeconfigs authenticate through an exec plugin and hold none.
        self.kubeconfig_has_credentials = spec.cloud == "azure"
        if adopt is not None and adopt.kubeconfig_secret:
            self.kubeconfig = secret_config_output(adopt.kubeconfig_secret)
            self.kubeconfig_has_credentials = True
        else:
            self.kubeconfig = pulumi.Output.secret(self.kubeconfig)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self),
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

    # ------------------------------------------------------------------ exports
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

    # ------------------------------------------------------------------ foundation
    def _read_foundation(self, fnd: TerraformFoundation | None) -> pulumi.Output[dict[str, Any]] | None:
        if fnd is None:
            return None
        args: dict[str, Any] = build_foundation_args(fnd)
        for setting, key in sorted(fnd.secret_config.items()):
            args[setting] = secret_config_output(key)
        reader = _TF_READERS[fnd.backend]
        return reader(**args, opts=self._invoke).outputs

    def _from_foundation(self, kit_input: str) -> pulumi.Output[Any] | None:
        fnd = self._args.spec.cluster.foundation
        if fnd is None or self._foundation is None or kit_input not in fnd.outputs:
            return None
        tf_name = fnd.outputs[kit_input]

        def pick(outputs: dict[str, Any]) -> Any:
            if tf_name not in outputs:
                raise ValueError(
                    f"cluster.foundation.outputs.{kit_input}: Terraform output {tf_name!r} is not in the "
                    f"foundation's state (outputs: {', '.join(sorted(outputs)) or 'none'})"
                )
            return outputs[tf_name]

        return self._foundation.apply(pick)

    def _cluster_name(self, cl: ClusterSpec) -> pulumi.Output[str]:
        from_tf = self._from_foundation("cluster_name") if cl.adopt is not None else None
        return from_tf.apply(str) if from_tf is not None else pulumi.Output.from_input(cl.name)

    def _subnets(self, create: CreateCluster | None) -> pulumi.Output[list[str]] | None:
        from_tf = self._from_foundation("subnet_ids")
        if from_tf is not None:
            return from_tf.apply(as_list)
        if create is not None and create.subnet_ids:
            return pulumi.Output.from_input(list(create.subnet_ids))
        return None

    def _vpc(self, create: CreateCluster | None) -> pulumi.Output[str] | None:
        from_tf = self._from_foundation("vpc_id")
        if from_tf is not None:
            return from_tf.apply(str)
        if create is not None and create.vpc_id:
            return pulumi.Output.from_input(create.vpc_id)
        return None

    # ------------------------------------------------------------------ AWS
    def _aws(self, spec: RegionStackSpec) -> None:
        cl = spec.cluster
        node_role, attachments = self._aws_role(
            "node", "ec2.amazonaws.com", f"fleetkit: nodes of EKS cluster {cl.name}", EKS_NODE_POLICIES
        )
        self.node_role_arn = pulumi.Output.all(node_role.arn, *[a.id for a in attachments]).apply(
            lambda xs: xs[0]
        )

        if cl.create is not None:
            self._aws_create(spec, cl.create)
        else:
            self._aws_adopt(spec)

    def _aws_role(
        self, kind: str, service: str, description: str, policies: Any
    ) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
        """An IAM role ``<name>-<kind>-role`` assumable by ``service``, with AWS-managed policies attached."""
        role = aws.iam.Role(
            f"{self._name}-{kind}-role",
            assume_role_policy=assume_role_policy(service),
            description=description,
            tags=self._tags,
            opts=self._child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{self._name}-{kind}-{policy}",
                role=role.name,
                policy_arn=aws_managed_policy_arn(policy),
                opts=self._child,
            )
            for policy in policies
        ]
        return role, attachments

    def _aws_default_subnets(self, spec: RegionStackSpec) -> pulumi.Output[list[str]]:
        vpc = aws.ec2.get_vpc_output(default=True, opts=self._invoke)
        zones = sorted({z for p in spec.node_pools.values() for z in p.zones})
        filters: list[dict[str, Any]] = [
            {"name": "vpc-id", "values": [vpc.id]},
            {"name": "default-for-az", "values": ["true"]},
        ]
        if zones:
            filters.append({"name": "availability-zone", "values": zones})
        return aws.ec2.get_subnets_output(filters=filters, opts=self._invoke).ids

    def _aws_create(self, spec: RegionStackSpec, create: CreateCluster) -> None:
        name, cl, tags = self._name, spec.cluster, self._tags
        cluster_role, cluster_attachments = self._aws_role(
            "cluster", "eks.amazonaws.com", f"fleetkit: EKS control plane of {cl.name}", EKS_CLUSTER_POLICIES
        )
        subnets = self._subnets(create) or self._aws_default_subnets(spec)
        self.subnet_ids = subnets
        eks = aws.eks.Cluster(
            f"{name}-eks",
            name=cl.name,
            version=create.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config=build_eks_vpc_config(create, subnets),
            access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": True},
            deletion_protection=create.deletion_protection,
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=cluster_attachments),
        )
        self.cloud_name = eks.name
        self.endpoint = eks.endpoint
        self.ca_data = eks.certificate_authority.apply(lambda ca: ca.data)
        self.oidc_issuer = eks.identities.apply(lambda ids: ids[0].oidcs[0].issuer)
        self.network_id = eks.vpc_config.apply(lambda v: v.vpc_id)
        # IRSA: an IAM OIDC provider trusting the cluster's service-account token issuer.
        cert = tls.get_certificate_output(url=self.oidc_issuer, opts=self._invoke)
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.oidc_issuer,
            client_id_lists=[STS_AUDIENCE],
            thumbprint_lists=cert.certificates.apply(lambda cs: [cs[0].sha1_fingerprint]),
            tags=tags,
            opts=self._child,
        )
        self.oidc_provider_arn = oidc.arn
        self.kubeconfig = pulumi.Output.all(eks.name, self.endpoint, self.ca_data).apply(
            lambda a: build_eks_kubeconfig(a[0], a[1], a[2], spec.region)
        )
        system_type = create.system_instance_type or SYSTEM_INSTANCE_TYPE["aws"]
        lo, hi = SYSTEM_POOL_SIZE
        aws.eks.NodeGroup(
            f"{name}-system",
            cluster_name=eks.name,
            node_role_arn=self.node_role_arn,
            subnet_ids=subnets,
            instance_types=[system_type],
            ami_type="AL2023_x86_64_STANDARD",
            capacity_type="ON_DEMAND",
            scaling_config={"min_size": lo, "desired_size": lo, "max_size": hi},
            labels={LABEL_POOL: "system"},
            update_config={"max_unavailable": 1},
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["scalingConfig.desiredSize"]),
        )

    def _aws_adopt(self, spec: RegionStackSpec) -> None:
        found = aws.eks.get_cluster_output(name=self._cluster_name(spec.cluster), opts=self._invoke)
        self.cloud_name = found.name
        self.endpoint = found.endpoint
        self.ca_data = found.certificate_authorities.apply(lambda cas: cas[0].data)
        self.oidc_issuer = found.identities.apply(lambda ids: ids[0].oidcs[0].issuer)
        self.network_id = found.vpc_config.apply(lambda v: v.vpc_id)
        self.subnet_ids = self._subnets(None) or found.vpc_config.apply(lambda v: list(v.subnet_ids))
        account = aws.get_caller_identity_output(opts=self._invoke).account_id
        # an adopted cluster's IRSA provider already exists; its ARN follows from the issuer
        self.oidc_provider_arn = pulumi.Output.all(account, self.oidc_issuer).apply(
            lambda a: f"arn:aws:iam::{a[0]}:oidc-provider/{a[1].removeprefix('https://')}"
        )
        self.kubeconfig = pulumi.Output.all(found.name, self.endpoint, self.ca_data).apply(
            lambda a: build_eks_kubeconfig(a[0], a[1], a[2], spec.region)
        )

    # ------------------------------------------------------------------ GCP
    def _gcp(self, spec: RegionStackSpec) -> None:
        name, cl = self._name, spec.cluster
        project = spec.account.gcp_project
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
            self._gcp_create(spec, cl.create, project)
        else:
            self._gcp_adopt(spec, project)

    def _gcp_create(self, spec: RegionStackSpec, create: CreateCluster, project: str) -> None:
        name, cl = self._name, spec.cluster
        subnets = self._subnets(create)
        network = self._vpc(create)
        pods, services = self.ip_ranges
        ip_policy: dict[str, Any] = {}
        if pods is not None:
            ip_policy["cluster_secondary_range_name"] = pods
        if services is not None:
            ip_policy["services_secondary_range_name"] = services
        gke = gcp.container.Cluster(
            f"{name}-gke",
            name=cl.name,
            project=project,
            location=spec.region,
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
            private_cluster_config=(
                None
                if create.public_endpoint
                else {"enable_private_nodes": True, "enable_private_endpoint": True}
            ),
            resource_labels=self._tags,
            opts=self._child,
        )
        self.cloud_name = gke.name
        self.location = gke.location
        self.endpoint = gke.endpoint.apply(lambda e: f"https://{e}")
        self.ca_data = gke.master_auth.apply(lambda m: m.cluster_ca_certificate)
        self.oidc_issuer = pulumi.Output.all(gke.location, gke.name).apply(
            lambda a: gke_oidc_issuer(project, a[0], a[1])
        )
        self.network_id = gke.network
        self.kubeconfig = pulumi.Output.all(gke.name, gke.endpoint, self.ca_data).apply(
            lambda a: build_gke_kubeconfig(a[0], a[1], a[2])
        )
        lo, hi = SYSTEM_POOL_SIZE
        gcp.container.NodePool(
            f"{name}-system",
            cluster=gke.name,
            project=project,
            location=spec.region,
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
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["initialNodeCount"]),
        )

    def _gcp_adopt(self, spec: RegionStackSpec, project: str) -> None:
        adopt = spec.cluster.adopt
        assert adopt is not None
        location = adopt.location or spec.region
        found = gcp.container.get_cluster_output(
            name=self._cluster_name(spec.cluster), location=location, project=project, opts=self._invoke
        )
        self.cloud_name = found.name.apply(lambda n: n or spec.cluster.name)
        self.location = pulumi.Output.from_input(location)
        self.endpoint = found.endpoint.apply(lambda e: f"https://{e}")
        self.ca_data = found.master_auths.apply(lambda ms: ms[0].cluster_ca_certificate)
        self.oidc_issuer = self.cloud_name.apply(lambda n: gke_oidc_issuer(project, location, n))
        self.network_id = found.network
        self.kubeconfig = pulumi.Output.all(self.cloud_name, found.endpoint, self.ca_data).apply(
            lambda a: build_gke_kubeconfig(a[0], a[1], a[2])
        )

    # ------------------------------------------------------------------ Azure
    def _azure(self, spec: RegionStackSpec) -> None:
        cl = spec.cluster
        rg_from_tf = self._from_foundation("resource_group")
        subnets = self._subnets(cl.create)
        self.vnet_subnet_id = subnets.apply(lambda s: s[0]) if subnets is not None else None
        if rg_from_tf is not None:
            self.resource_group_name = rg_from_tf.apply(str)
        elif cl.adopt is not None and cl.adopt.resource_group:
            self.resource_group_name = pulumi.Output.from_input(cl.adopt.resource_group)
        elif spec.account.azure_resource_group:
            self.resource_group_name = pulumi.Output.from_input(spec.account.azure_resource_group)
        else:
            rg = azure_native.resources.ResourceGroup(
                f"{self._name}-rg",
                resource_group_name=f"rg-{cl.name}",
                location=spec.region,
                tags=self._tags,
                opts=self._child,
            )
            self.resource_group_name = rg.name
        if cl.create is not None:
            self._azure_create(spec, cl.create)
        else:
            self._azure_adopt(spec)

    def _azure_credentials(self, cluster_name: pulumi.Input[str], depends: list[pulumi.Resource]) -> None:
        creds = azure_native.containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=self.resource_group_name,
            resource_name=cluster_name,
            opts=pulumi.InvokeOutputOptions(parent=self, depends_on=depends),
        )
        self.kubeconfig = creds.kubeconfigs.apply(lambda ks: base64.b64decode(ks[0].value).decode())
        self.ca_data = pulumi.Output.unsecret(self.kubeconfig.apply(lambda k: kubeconfig_cluster(k)[1]))

    def _azure_create(self, spec: RegionStackSpec, create: CreateCluster) -> None:
        name, cl = self._name, spec.cluster
        lo, hi = SYSTEM_POOL_SIZE
        system_pool: dict[str, Any] = {
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
            resource_group_name=self.resource_group_name,
            resource_name_=cl.name,
            location=spec.region,
            dns_prefix=cl.name,
            kubernetes_version=create.kubernetes_version,
            enable_rbac=True,
            identity={"type": "SystemAssigned"},
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
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["agentPoolProfiles"]),
        )
        self.cloud_name = aks.name
        self.principal_id = aks.identity.apply(lambda i: i.principal_id if i else None)
        self.endpoint = aks.fqdn.apply(lambda f: f"https://{f}:443")
        self.oidc_issuer = aks.oidc_issuer_profile.apply(lambda p: p.issuer_url if p else "")
        self.network_id = self.vnet_subnet_id if self.vnet_subnet_id is not None else aks.node_resource_group
        self._azure_credentials(aks.name, [aks])

    def _azure_adopt(self, spec: RegionStackSpec) -> None:
        name = self._cluster_name(spec.cluster)
        found = azure_native.containerservice.get_managed_cluster_output(
            resource_group_name=self.resource_group_name, resource_name=name, opts=self._invoke
        )
        self.cloud_name = found.name
        self.principal_id = found.identity.apply(lambda i: i.principal_id if i else None)  # type: ignore[return-value]
        self.endpoint = found.fqdn.apply(lambda f: f"https://{f}:443")
        self.oidc_issuer = found.oidc_issuer_profile.apply(lambda p: p.issuer_url if p else "")
        self.network_id = (
            self.vnet_subnet_id if self.vnet_subnet_id is not None else found.node_resource_group
        )
        self._azure_credentials(name, [])
