"""EKS cluster under Pulumi mocks: IAM roles, the cluster, IRSA, the system pool, adoption, foundations."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleetkit.mocks.runtime import is_secret
from tests.components.infra_mocks import build_infra, demo_spec, run, with_changes

STACK = "aws-us-east-1"
EKS = "aws:eks/cluster:Cluster"


@pytest.fixture(scope="module")
def created():
    spec = demo_spec(STACK)
    return run(STACK, spec, build_infra(STACK, spec))


def test_eks_cluster_inputs(created):
    mocks, _ = created
    eks = mocks.one(EKS).plain_inputs
    assert eks["name"] == "fleetkit-use1" and eks["version"] == "1.33"
    assert eks["vpcConfig"]["endpointPublicAccess"] is True
    assert eks["vpcConfig"]["publicAccessCidrs"] == ["203.0.113.0/24", "198.51.100.0/24"]  # never 0.0.0.0/0
    assert len(eks["vpcConfig"]["subnetIds"]) == 3  # default subnets of the pools' zones
    assert eks["accessConfig"] == {
        "authenticationMode": "API",
        "bootstrapClusterCreatorAdminPermissions": True,
    }
    assert eks["roleArn"].endswith(":role/" + eks["roleArn"].split("/")[-1])
    assert eks["deletionProtection"] is True


def test_iam_roles_and_policies(created):
    mocks, _ = created
    roles = [
        r
        for r in mocks.of_type("aws:iam/role:Role")
        if "Service" in json.loads(r.plain_inputs["assumeRolePolicy"])["Statement"][0]["Principal"]
    ]
    services = sorted(
        json.loads(r.plain_inputs["assumeRolePolicy"])["Statement"][0]["Principal"]["Service"] for r in roles
    )
    assert services == ["ec2.amazonaws.com", "eks.amazonaws.com"]  # (the Cluster Autoscaler's role is IRSA)
    policies = sorted(
        a.plain_inputs["policyArn"].split("/")[-1]
        for a in mocks.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    )
    assert policies == [
        "AmazonEC2ContainerRegistryReadOnly",
        "AmazonEKSClusterPolicy",
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
    ]


def test_irsa_oidc_provider(created):
    mocks, out = created
    oidc = mocks.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider").plain_inputs
    assert oidc["url"] == out["clusterOidcIssuer"]
    assert oidc["url"].startswith("https://oidc.eks.us-east-1.amazonaws.com/id/")
    assert oidc["clientIdLists"] == ["sts.amazonaws.com"]
    assert len(oidc["thumbprintLists"]) == 1 and len(oidc["thumbprintLists"][0]) == 40
    assert ("tls:index/getCertificate:getCertificate", {"url": out["clusterOidcIssuer"]}) in [
        (t, {k: v for k, v in a.items() if v is not None}) for t, a in mocks.calls
    ]
    assert out["clusterOidcProviderArn"].startswith("arn:aws:iam::")


def test_system_pool_for_non_gpu_pods(created):
    mocks, _ = created
    system = mocks.one("aws:eks/nodeGroup:NodeGroup", "-cluster-system").plain_inputs
    assert system["amiType"] == "AL2023_x86_64_STANDARD"
    assert "taints" not in system
    assert system["scalingConfig"]["minSize"] >= 1


def test_exports_and_kubeconfig(created):
    _, out = created
    assert out["clusterEndpoint"].endswith(".gr7.us-east-1.eks.amazonaws.com")
    assert out["cloudClusterName"] == "fleetkit-use1"
    assert out["networkId"].startswith("vpc-")
    kube = json.loads(out["kubeconfig"])
    user = kube["users"][0]["user"]["exec"]
    assert user["command"] == "aws"
    assert user["args"] == [
        "eks",
        "get-token",
        "--cluster-name",
        "fleetkit-use1",
        "--region",
        "us-east-1",
        "--output",
        "json",
    ]
    assert kube["clusters"][0]["cluster"]["server"] == out["clusterEndpoint"]
    assert kube["clusters"][0]["cluster"]["certificate-authority-data"] == out["clusterCaData"]


def test_explicit_subnets_and_private_endpoint_skip_the_default_vpc():
    spec = demo_spec(STACK)
    cluster = spec.cluster.model_dump()
    cluster["create"].update(
        subnet_ids=["subnet-1", "subnet-2"], public_endpoint=False, authorized_networks=[]
    )
    spec = with_changes(spec, cluster=cluster)
    mocks, _ = run(STACK, spec, build_infra(STACK, spec))
    vpc = mocks.one(EKS).plain_inputs["vpcConfig"]
    assert vpc["subnetIds"] == ["subnet-1", "subnet-2"]
    assert vpc["endpointPublicAccess"] is False and "publicAccessCidrs" not in vpc
    assert "aws:ec2/getVpc:getVpc" not in mocks.tokens()


def _adopt(spec, **adopt: Any):
    cluster = spec.cluster.model_dump()
    cluster.update(create=None, adopt={"kubernetes_version": "1.33", **adopt})
    return with_changes(spec, cluster=cluster)


def test_adopt_reads_the_cluster_and_creates_no_control_plane():
    spec = _adopt(demo_spec(STACK))
    mocks, out = run(STACK, spec, build_infra(STACK, spec))
    assert not mocks.of_type(EKS)
    assert not mocks.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert ("aws:eks/getCluster:getCluster", {"name": "fleetkit-use1"}) in [
        (t, {k: v for k, v in a.items() if v is not None}) for t, a in mocks.calls
    ]
    assert out["clusterEndpoint"].startswith("https://")
    assert out["clusterOidcProviderArn"].endswith(out["clusterOidcIssuer"].removeprefix("https://"))
    # GPU pools still land in the adopted cluster's subnets
    ng = mocks.one("aws:eks/nodeGroup:NodeGroup", "-l40s-ng").plain_inputs
    assert ng["clusterName"] == "fleetkit-use1" and ng["subnetIds"]


def test_adopt_with_a_kubeconfig_secret():
    spec = _adopt(demo_spec(STACK), kubeconfig_secret="adoptKubeconfig")
    given = json.dumps({"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []})
    mocks, out = run(
        STACK,
        spec,
        build_infra(STACK, spec),
        config={"fleetkit-secrets:adoptKubeconfig": given},
        secret_keys=["fleetkit-secrets:adoptKubeconfig"],
    )
    assert "kubeconfig" not in out  # a given kubeconfig is a credential: never a stack output
    provider = mocks.one("pulumi:providers:kubernetes")
    assert is_secret(provider.inputs["kubeconfig"])  # the SDK sends it as a secret
    assert provider.plain_inputs["kubeconfig"] == given


def test_terraform_foundation_feeds_the_network():
    spec = demo_spec(STACK)
    cluster = spec.cluster.model_dump()
    cluster["foundation"] = {
        "backend": "s3",
        "config": {
            "bucket": "tf-state",
            "key": "network/terraform.tfstate",
            "region": "us-east-1",
            "encrypt": "true",
        },
        "outputs": {"vpc_id": "vpc_id", "subnet_ids": "private_subnets"},
    }
    spec = with_changes(spec, cluster=cluster)
    state = {"vpc_id": "vpc-0123456789abcdef0", "private_subnets": ["subnet-aaa", "subnet-bbb", "subnet-ccc"]}
    mocks, _ = run(
        STACK,
        spec,
        build_infra(STACK, spec),
        invokes={"terraform:state:getS3Reference": lambda args, stack: {"outputs": state}},
    )
    call = next(a for t, a in mocks.calls if t == "terraform:state:getS3Reference")
    assert call["bucket"] == "tf-state" and call["encrypt"] is True
    assert mocks.one(EKS).plain_inputs["vpcConfig"]["subnetIds"] == state["private_subnets"]
    assert "aws:ec2/getVpc:getVpc" not in mocks.tokens()


def test_foundation_output_missing_from_state_is_named():
    spec = demo_spec(STACK)
    cluster = spec.cluster.model_dump()
    cluster["foundation"] = {
        "backend": "s3",
        "config": {"bucket": "b", "key": "k"},
        "outputs": {"subnet_ids": "private_subnetz"},
    }
    spec = with_changes(spec, cluster=cluster)
    with pytest.raises(Exception, match="private_subnetz"):
        run(STACK, spec, build_infra(STACK, spec))
