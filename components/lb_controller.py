"""What a cluster needs before its gateway Services can get an address: per cloud, the LB prerequisites.

* **EKS** — the east-west and ingress Services carry ``aws-load-balancer-type: external`` (an NLB with
  pod-IP targets and Elastic IPs), which only the **AWS Load Balancer Controller** acts on; the in-tree
  cloud provider ignores ``external`` (AWS LBC docs, "Network Load Balancer": "the in-tree controller
  ... ignores ``external``"). Installed here: an IRSA role for ``kube-system/aws-load-balancer-controller``
  with the controller's permissions (the actions of the controller's published ``iam_policy.json``,
  grouped as in its docs: read the VPC/ELB state; create and tag the security groups, load balancers,
  target groups and listeners it manages — scoped by the ``elbv2.k8s.aws/cluster`` tag where the
  controller tags; shield/WAF/ACM integrations off), and the Helm chart ``aws-load-balancer-controller``
  from ``https://aws.github.io/eks-charts`` with ``clusterName``, ``region``, ``vpcId`` and the role ARN
  on its service account. The gateway releases wait for it (the chart also installs the mutating
  webhook that must be up before a LoadBalancer Service is created).
* **AKS** — the east-west Service names a static public IP in a resource group
  (``azure-load-balancer-resource-group``). The cluster's managed identity needs *Network
  Contributor* on that group (AKS docs, "Use a static public IP address and DNS label with the AKS
  load balancer": "the cluster identity ... must have delegated permissions ... Network Contributor").
  Granted here with an ``authorization.RoleAssignment`` the gateway release waits for.
* **GKE** — nothing: ``cloud.google.com/l4-rbs`` is handled by GKE's own service controller.

``ready`` lists what the gateway releases must wait for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_azure_native as azure_native
import pulumi_kubernetes as k8s

from components.handles import ClusterHandle
from components.identity import aws_partition, irsa_trust_policy
from fleetkit.resolve import ResolvedPlacement

LBC_REPO = "https://aws.github.io/eks-charts"
LBC_CHART = "aws-load-balancer-controller"
#: chart 1.14.0 ships controller v2.14.0
LBC_VERSION = "1.14.0"
LBC_NAMESPACE = "kube-system"
LBC_SERVICE_ACCOUNT = "aws-load-balancer-controller"
#: Azure built-in role "Network Contributor" (role definition GUID, the same in every tenant)
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"
CLUSTER_TAG = "elbv2.k8s.aws/cluster"

_READ = (
    "ec2:DescribeAccountAttributes",
    "ec2:DescribeAddresses",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeVpcs",
    "ec2:DescribeVpcPeeringConnections",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeInstances",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeTags",
    "ec2:DescribeCoipPools",
    "ec2:GetCoipPoolUsage",
    "ec2:DescribeIpamPools",
    "ec2:DescribeRouteTables",
    "ec2:GetSecurityGroupsForVpc",
    "ec2:DescribeVpcEndpoints",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeListenerCertificates",
    "elasticloadbalancing:DescribeSSLPolicies",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeTrustStores",
    "elasticloadbalancing:DescribeListenerAttributes",
    "elasticloadbalancing:DescribeCapacityReservation",
)
_CREATE_TAGGED = (
    "ec2:CreateSecurityGroup",
    "elasticloadbalancing:CreateLoadBalancer",
    "elasticloadbalancing:CreateTargetGroup",
)
_MANAGE_TAGGED = (
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:DeleteSecurityGroup",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:SetIpAddressType",
    "elasticloadbalancing:SetSecurityGroups",
    "elasticloadbalancing:SetSubnets",
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:ModifyListenerAttributes",
    "elasticloadbalancing:ModifyCapacityReservation",
)
_LISTENERS = (
    "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:DeleteListener",
    "elasticloadbalancing:CreateRule",
    "elasticloadbalancing:DeleteRule",
    "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:AddListenerCertificates",
    "elasticloadbalancing:RemoveListenerCertificates",
    "elasticloadbalancing:ModifyRule",
    "elasticloadbalancing:SetRulePriorities",
)
_TARGETS = ("elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets")


def lbc_policy() -> dict[str, Any]:
    """The controller's IAM permissions; creation requires, and changes are scoped to, its cluster tag."""
    requested = {"Null": {f"aws:RequestTag/{CLUSTER_TAG}": "false"}}
    owned = {"Null": {f"aws:ResourceTag/{CLUSTER_TAG}": "false"}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ServiceLinkedRole",
                "Effect": "Allow",
                "Action": "iam:CreateServiceLinkedRole",
                "Resource": "*",
                "Condition": {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}},
            },
            {"Sid": "Read", "Effect": "Allow", "Action": list(_READ), "Resource": "*"},
            {
                "Sid": "CreateTagged",
                "Effect": "Allow",
                "Action": list(_CREATE_TAGGED),
                "Resource": "*",
                "Condition": requested,
            },
            {
                "Sid": "TagOnCreate",
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": "*",
                "Condition": {**requested, "StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}},
            },
            {
                "Sid": "TagOnElbCreate",
                "Effect": "Allow",
                "Action": "elasticloadbalancing:AddTags",
                "Resource": "*",
                "Condition": {
                    **requested,
                    "StringEquals": {
                        "elasticloadbalancing:CreateAction": ["CreateTargetGroup", "CreateLoadBalancer"]
                    },
                },
            },
            {
                "Sid": "RetagOwned",
                "Effect": "Allow",
                "Action": [
                    "ec2:CreateTags",
                    "ec2:DeleteTags",
                    "elasticloadbalancing:AddTags",
                    "elasticloadbalancing:RemoveTags",
                ],
                "Resource": "*",
                "Condition": owned,
            },
            {
                "Sid": "ManageOwned",
                "Effect": "Allow",
                "Action": list(_MANAGE_TAGGED),
                "Resource": "*",
                "Condition": owned,
            },
            {"Sid": "ListenersAndRules", "Effect": "Allow", "Action": list(_LISTENERS), "Resource": "*"},
            {
                "Sid": "Targets",
                "Effect": "Allow",
                "Action": list(_TARGETS),
                "Resource": "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
            },
        ],
    }


def build_lbc_values(cluster_name: str, region: str, vpc_id: Any, role_arn: Any) -> dict[str, Any]:
    """Chart values: the cluster, its VPC (no IMDS lookup: hop limit 1), the IRSA role; on the system pool."""
    return {
        "clusterName": cluster_name,
        "region": region,
        "vpcId": vpc_id,
        "replicaCount": 2,
        "serviceAccount": {
            "create": True,
            "name": LBC_SERVICE_ACCOUNT,
            "annotations": {"eks.amazonaws.com/role-arn": role_arn},
        },
        "enableShield": False,
        "enableWaf": False,
        "enableWafv2": False,
        "nodeSelector": {"fleetkit.dev/pool": "system"},
    }


@dataclass
class LoadBalancerPrerequisitesArgs:
    stack: str
    #: the stack's cloud, region, account and ``cluster`` section (:mod:`fleetkit.resolve`)
    placement: ResolvedPlacement
    #: the stack's cluster (EKS: OIDC provider, VPC; AKS: identity and resource group)
    cluster: ClusterHandle


class LoadBalancerPrerequisites(pulumi.ComponentResource):
    """The AWS Load Balancer Controller (EKS) or the Network Contributor grant (AKS); ``ready`` for gateways."""

    ready: list[pulumi.Resource]

    def __init__(
        self, name: str, args: LoadBalancerPrerequisitesArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("fleetkit:components:LoadBalancerPrerequisites", name, None, opts)
        self.ready = []
        placement, cluster = args.placement, args.cluster
        if placement.cloud == "aws":
            self._aws(name, placement, cluster)
        elif placement.cloud == "azure":
            self._azure(name, placement, cluster)
        self.register_outputs({"ready": [r.urn for r in self.ready]})

    def _aws(self, name: str, placement: ResolvedPlacement, cluster: ClusterHandle) -> None:
        child = pulumi.ResourceOptions(parent=self)
        trust = pulumi.Output.all(cluster.oidc_provider_arn, cluster.oidc_issuer).apply(
            lambda a: json.dumps(
                irsa_trust_policy(a[0], a[1], LBC_NAMESPACE, LBC_SERVICE_ACCOUNT), sort_keys=True
            )
        )
        role = aws.iam.Role(
            f"{name}-lbc",
            assume_role_policy=trust,
            description=f"fleetkit: AWS Load Balancer Controller of {placement.cluster.name}",
            tags=dict(cluster.tags),
            opts=child,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-lbc",
            role=role.name,
            policy=json.dumps(lbc_policy(), sort_keys=True).replace(
                "arn:aws:", f"arn:{aws_partition(placement.region)}:"
            ),
            opts=child,
        )
        values = build_lbc_values(placement.cluster.name, placement.region, cluster.network_id, role.arn)
        self.controller = k8s.helm.v3.Release(
            f"{name}-aws-load-balancer-controller",
            name=LBC_CHART,
            chart=LBC_CHART,
            version=LBC_VERSION,
            repository_opts={"repo": LBC_REPO},
            namespace=LBC_NAMESPACE,
            values=values,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        self.ready.append(self.controller)

    def _azure(self, name: str, placement: ResolvedPlacement, cluster: ClusterHandle) -> None:
        if (
            cluster.principal_id is None or cluster.resource_group_name is None
        ):  # pragma: no cover - set on Azure
            raise ValueError("the AKS cluster exposes no identity to grant Network Contributor to")
        # the subscription from the account, else from the provider's credentials: known in a first preview
        subscription: Any = (
            placement.account.azure_subscription_id
            or azure_native.authorization.get_client_config_output(
                opts=pulumi.InvokeOutputOptions(parent=self)
            ).subscription_id
        )
        grant = azure_native.authorization.RoleAssignment(
            f"{name}-network-contributor",
            scope=pulumi.Output.all(subscription, cluster.resource_group_name).apply(
                lambda a: f"/subscriptions/{a[0]}/resourceGroups/{a[1]}"
            ),
            principal_id=cluster.principal_id,
            principal_type="ServicePrincipal",
            role_definition_id=pulumi.Output.from_input(subscription).apply(
                lambda sub: (
                    f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/"
                    f"{NETWORK_CONTRIBUTOR}"
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ready.append(grant)
