"""Plausible Terraform foundation state outputs (``pulumi_terraform.state`` readers).

One state per backend location, holding the outputs foundations commonly export on each cloud
(terraform-aws-modules/vpc names on AWS, network/subnetwork/ranges on GCP, VNet/subnet on Azure),
so a stack can map any of them in ``cluster.foundation.outputs``.
"""

from __future__ import annotations

from typing import Any

from fleetkit.mocks.registry import digest, invoke


def foundation_outputs(source: str) -> dict[str, Any]:
    def h(*parts: str) -> str:
        return digest("tf", source, *parts, length=17)

    sub = f"/subscriptions/00000000-0000-0000-0000-{digest('sub', source, length=12)}"
    vnet = f"{sub}/resourceGroups/rg-foundation/providers/Microsoft.Network/virtualNetworks/vnet-foundation"
    return {
        # AWS (terraform-aws-modules/vpc)
        "vpc_id": f"vpc-{h('vpc')}",
        "private_subnets": [f"subnet-{h('private', z)}" for z in "abc"],
        "public_subnets": [f"subnet-{h('public', z)}" for z in "abc"],
        "cluster_name": f"tf-{digest('tf-cluster', source, length=6)}",
        # GCP
        "network_name": "foundation-vpc",
        "subnetwork_name": "foundation-gke",
        "pods_range_name": "gke-pods",
        "services_range_name": "gke-services",
        # Azure
        "resource_group_name": "rg-foundation",
        "vnet_id": vnet,
        "aks_subnet_id": f"{vnet}/subnets/aks-nodes",
    }


@invoke("terraform:state:getS3Reference")
def _s3(args: dict[str, Any], stack: str) -> dict[str, Any]:
    return {"outputs": foundation_outputs(f"s3://{args.get('bucket')}/{args.get('key')}")}


@invoke("terraform:state:getAzureRMReference")
def _azurerm(args: dict[str, Any], stack: str) -> dict[str, Any]:
    src = f"azurerm://{args.get('storageAccountName')}/{args.get('containerName')}/{args.get('key')}"
    return {"outputs": foundation_outputs(src)}


@invoke("terraform:state:getRemoteReference")
def _remote(args: dict[str, Any], stack: str) -> dict[str, Any]:
    ws = args.get("workspaces") or {}
    return {
        "outputs": foundation_outputs(
            f"remote://{args.get('organization')}/{ws.get('name') or ws.get('prefix')}"
        )
    }


@invoke("terraform:state:getLocalReference")
def _local(args: dict[str, Any], stack: str) -> dict[str, Any]:
    return {"outputs": foundation_outputs(f"local://{args.get('path') or 'terraform.tfstate'}")}
