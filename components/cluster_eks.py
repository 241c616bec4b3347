"""EKS: the cluster's IAM roles, the cluster or its lookup, IRSA, the system pool and access entries.

Access: the cluster runs ``authentication_mode: API``, so only EKS access entries grant Kubernetes
API access. ``cluster.access_entries`` become one ``aws.eks.AccessEntry`` plus one
``aws.eks.AccessPolicyAssociation`` each (EKS docs, "Create access entries", "Associate access
policies with access entries"), for a created or an adopted cluster; the Kubernetes provider waits
for them, so a CI role listed there can apply every object in the same ``pulumi up``. The identity
that creates the cluster gets its own admin entry from ``bootstrapClusterCreatorAdminPermissions``
(``cluster.create.bootstrap_creator_admin``); EKS reads that flag only at creation and the provider
replaces the cluster when it changes (pulumi/pulumi-aws#3997), so the program ignores later changes
to it (``ignore_changes``). A principal can be in one access entry only, so the creator must not be
listed while the flag is on (pulumi/pulumi-eks#2373).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_tls as tls

from components.cluster_common import (
    SYSTEM_INSTANCE_TYPE,
    SYSTEM_POOL_SIZE,
    ClusterCore,
    kubeconfig_doc,
    public_cidrs,
    reported,
)
from fleetkit.regions import aws_partition
from fleetkit.resolve import ResolvedPlacement
from fleetkit.scheduling import LABEL_POOL
from fleetkit.spec import CreateCluster, EksAccessEntry

#: Managed policies of EKS roles (``aws`` partition).
EKS_CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
EKS_NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
)
#: Audience of IRSA tokens.
STS_AUDIENCE = "sts.amazonaws.com"
#: The cluster input EKS reads only at creation; a change would replace the cluster (pulumi-aws#3997).
BOOTSTRAP_ADMIN_PATH = "accessConfig.bootstrapClusterCreatorAdminPermissions"


# --------------------------------------------------------------------------- pure helpers
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


def default_subnet_filters(vpc_id: str, zones: Sequence[str]) -> list[aws.ec2.GetSubnetsFilterArgsDict]:
    """``ec2:DescribeSubnets`` filters: the default VPC's default subnets, in the pools' zones if they name any."""
    filters: list[aws.ec2.GetSubnetsFilterArgsDict] = [
        {"name": "vpc-id", "values": [vpc_id]},
        {"name": "default-for-az", "values": ["true"]},
    ]
    if zones:
        filters.append({"name": "availability-zone", "values": list(zones)})
    return filters


def build_eks_vpc_config(create: CreateCluster, subnet_ids: Any) -> aws.eks.ClusterVpcConfigArgsDict:
    return {
        "subnet_ids": subnet_ids,
        "endpoint_public_access": create.public_endpoint,
        "endpoint_private_access": True,
        "public_access_cidrs": public_cidrs(create) if create.public_endpoint else None,
    }


def build_eks_access_config(create: CreateCluster) -> aws.eks.ClusterAccessConfigArgsDict:
    """Access entries only (no ``aws-auth`` ConfigMap); the creator's admin entry per the spec."""
    return {
        "authentication_mode": "API",
        "bootstrap_cluster_creator_admin_permissions": create.bootstrap_creator_admin,
    }


def access_policy_arn(region: str, policy: str) -> str:
    """ARN of an EKS access policy (``arn:<partition>:eks::aws:cluster-access-policy/<name>``)."""
    return f"arn:{aws_partition(region)}:eks::aws:cluster-access-policy/{policy}"


def build_access_scope(entry: EksAccessEntry) -> aws.eks.AccessPolicyAssociationAccessScopeArgsDict:
    """The association's scope: the whole cluster, or the listed namespaces."""
    if entry.namespaces:
        return {"type": "namespace", "namespaces": list(entry.namespaces)}
    return {"type": "cluster"}


def build_eks_kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """Kubeconfig authenticating with ``aws eks get-token`` (exec plugin; needs the AWS CLI)."""
    return kubeconfig_doc(
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


# --------------------------------------------------------------------------- builder
class EksCluster(ClusterCore):
    """Builds the EKS side of :class:`components.cluster.Cluster`."""

    def _aws(self, placement: ResolvedPlacement) -> None:
        cl = placement.cluster
        node_role, attachments = self._aws_role(
            "node", "ec2.amazonaws.com", f"fleetkit: nodes of EKS cluster {cl.name}", EKS_NODE_POLICIES
        )
        self.node_role_arn = pulumi.Output.all(node_role.arn, *[a.id for a in attachments]).apply(
            lambda xs: xs[0]
        )

        if cl.create is not None:
            self._aws_create(placement, cl.create)
        else:
            self._aws_adopt(placement)
        self._access_ready = self._aws_access_entries(placement)

    def _aws_role(
        self,
        kind: str,
        service: str,
        description: str,
        policies: Any,
        opts: pulumi.ResourceOptions | None = None,
    ) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
        """An IAM role ``<name>-<kind>-role`` assumable by ``service``, with AWS-managed policies attached."""
        opts = opts or self._child
        role = aws.iam.Role(
            f"{self._name}-{kind}-role",
            assume_role_policy=assume_role_policy(service),
            description=description,
            tags=self._tags,
            opts=opts,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{self._name}-{kind}-{policy}",
                role=role.name,
                policy_arn=aws_managed_policy_arn(policy),
                opts=opts,
            )
            for policy in policies
        ]
        return role, attachments

    def _aws_default_subnets(self, placement: ResolvedPlacement) -> pulumi.Output[list[str]]:
        vpc = aws.ec2.get_vpc_output(default=True, opts=self._invoke)
        filters = vpc.id.apply(lambda vpc_id: default_subnet_filters(vpc_id, placement.pool_zones))
        return aws.ec2.get_subnets_output(filters=filters, opts=self._invoke).ids

    def _aws_create(self, placement: ResolvedPlacement, create: CreateCluster) -> None:
        name, cl, tags = self._name, placement.cluster, self._tags
        cluster_role, cluster_attachments = self._aws_role(
            "cluster",
            "eks.amazonaws.com",
            f"fleetkit: EKS control plane of {cl.name}",
            EKS_CLUSTER_POLICIES,
            self._create_only_opts(),
        )
        subnets = self._subnets(create) or self._aws_default_subnets(placement)
        self.subnet_ids = subnets
        eks = aws.eks.Cluster(
            f"{name}-eks",
            name=cl.name,
            version=create.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config=build_eks_vpc_config(create, subnets),
            access_config=build_eks_access_config(create),
            deletion_protection=create.deletion_protection,
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            tags=tags,
            opts=self._cluster_opts(depends_on=cluster_attachments, ignore_changes=[BOOTSTRAP_ADMIN_PATH]),
        )
        self.cloud_name = eks.name
        self.endpoint = eks.endpoint
        self.ca_data = eks.certificate_authority.apply(lambda ca: reported(ca.data, "certificate authority"))
        self.oidc_issuer = eks.identities.apply(
            lambda ids: reported(reported(ids[0].oidcs, "OIDC identity")[0].issuer, "OIDC issuer")
        )
        # vpc_id is computed: the SDK types it optional; it is set once the cluster exists, and a first
        # preview answers the vpcConfig input without it (None, passed on as before)
        self.network_id = eks.vpc_config.apply(lambda v: v.vpc_id)  # type: ignore[arg-type,return-value]
        # IRSA: an IAM OIDC provider trusting the cluster's service-account token issuer.
        cert = tls.get_certificate_output(url=self.oidc_issuer, opts=self._invoke)
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.oidc_issuer,
            client_id_lists=[STS_AUDIENCE],
            thumbprint_lists=cert.certificates.apply(lambda cs: [cs[0].sha1_fingerprint]),
            tags=tags,
            opts=self._create_only_opts(),
        )
        self.oidc_provider_arn = oidc.arn
        self.kubeconfig = pulumi.Output.all(eks.name, self.endpoint, self.ca_data).apply(
            lambda a: build_eks_kubeconfig(a[0], a[1], a[2], placement.region)
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
            opts=self._create_only_opts(ignore_changes=["scalingConfig.desiredSize"]),
        )

    def _aws_adopt(self, placement: ResolvedPlacement) -> None:
        found = aws.eks.get_cluster_output(name=self._cluster_name(placement.cluster), opts=self._invoke)
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
            lambda a: build_eks_kubeconfig(a[0], a[1], a[2], placement.region)
        )

    def _aws_access_entries(self, placement: ResolvedPlacement) -> list[pulumi.Resource]:
        """One access entry and its policy association per ``cluster.access_entries`` key, after the cluster."""
        ready: list[pulumi.Resource] = []
        for key, entry in sorted(placement.cluster.access_entries.items()):
            access = aws.eks.AccessEntry(
                f"{self._name}-access-{key}",
                cluster_name=self.cloud_name,
                principal_arn=entry.principal_arn,
                type="STANDARD",
                tags=self._tags,
                opts=self._child,
            )
            ready.append(
                aws.eks.AccessPolicyAssociation(
                    f"{self._name}-access-{key}-policy",
                    cluster_name=self.cloud_name,
                    principal_arn=access.principal_arn,
                    policy_arn=access_policy_arn(placement.region, entry.policy),
                    access_scope=build_access_scope(entry),
                    opts=self._child,
                )
            )
        return ready
