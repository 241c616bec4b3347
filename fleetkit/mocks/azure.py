"""Plausible Azure outputs: resource group, AKS managed cluster and agent pools, credentials."""

from __future__ import annotations

import base64
import json
from typing import Any

from fleetkit.mocks.registry import MockResource, digest, fake_ca_data, invoke, resource_outputs


def _uuid(*parts: str) -> str:
    h = digest(*parts, length=32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _location() -> str:
    import pulumi

    return pulumi.Config("azure-native").get("location") or "eastus"


def subscription(stack: str) -> str:
    return _uuid("subscription", stack)


def tenant(stack: str) -> str:
    return _uuid("tenant", stack)


def aks_fqdn(stack: str, name: str, location: str) -> str:
    return f"{name}-{digest('fqdn', stack, name, length=8)}.hcp.{location}.azmk8s.io"


def aks_issuer(stack: str, name: str, location: str) -> str:
    return f"https://{location}.oic.prod-aks.azure.com/{tenant(stack)}/{_uuid('oidc', stack, name)}/"


def _cluster_id(stack: str, rg: str, name: str) -> str:
    return (
        f"/subscriptions/{subscription(stack)}/resourceGroups/{rg}"
        f"/providers/Microsoft.ContainerService/managedClusters/{name}"
    )


def _cluster_facts(stack: str, rg: str, name: str, location: str) -> dict[str, Any]:
    kubelet = _uuid("kubelet", stack, name)
    return {
        "id": _cluster_id(stack, rg, name),
        "name": name,
        "location": location,
        "fqdn": aks_fqdn(stack, name, location),
        "azurePortalFQDN": f"{name}-{digest('portal', stack, name, length=8)}.portal.hcp.{location}.azmk8s.io",
        "oidcIssuerProfile": {"enabled": True, "issuerURL": aks_issuer(stack, name, location)},
        "identity": {
            "type": "SystemAssigned",
            "principalId": _uuid("principal", stack, name),
            "tenantId": tenant(stack),
        },
        "identityProfile": {
            "kubeletidentity": {
                "clientId": _uuid("kubelet-client", stack, name),
                "objectId": kubelet,
                "resourceId": f"/subscriptions/{subscription(stack)}/resourceGroups/MC_{rg}_{name}_{location}"
                f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}-agentpool",
            }
        },
        "nodeResourceGroup": f"MC_{rg}_{name}_{location}",
        "currentKubernetesVersion": "1.33.2",
        "provisioningState": "Succeeded",
        "powerState": {"code": "Running"},
        "maxAgentPools": 100,
    }


@resource_outputs("azure-native:resources:ResourceGroup")
def _resource_group(r: MockResource) -> dict[str, Any]:
    name = str(r.inputs.get("resourceGroupName") or f"{r.name}{digest(r.stack, r.name, length=8)}")
    return {
        "id": f"/subscriptions/{subscription(r.stack)}/resourceGroups/{name}",
        "name": name,
        "properties": {"provisioningState": "Succeeded"},
    }


@resource_outputs("azure-native:containerservice:ManagedCluster")
def _managed_cluster(r: MockResource) -> dict[str, Any]:
    name = str(r.inputs.get("resourceName") or r.name)
    rg = str(r.inputs.get("resourceGroupName", "rg"))
    location = str(r.inputs.get("location") or _location())
    facts = _cluster_facts(r.stack, rg, name, location)
    facts["oidcIssuerProfile"] = {
        **(r.inputs.get("oidcIssuerProfile") or {}),
        "issuerURL": aks_issuer(r.stack, name, location),
    }
    return facts


@resource_outputs("azure-native:containerservice:AgentPool")
def _agent_pool(r: MockResource) -> dict[str, Any]:
    name = str(r.inputs.get("agentPoolName") or r.name)
    cluster = _cluster_id(
        r.stack, str(r.inputs.get("resourceGroupName", "rg")), str(r.inputs.get("resourceName", ""))
    )
    return {
        "id": f"{cluster}/agentPools/{name}",
        "name": name,
        "provisioningState": "Succeeded",
        "currentOrchestratorVersion": "1.33.2",
        "nodeImageVersion": "AKSUbuntu-2204gen2containerd-202608.01.0",
    }


def preview_kubeconfig(stack: str, name: str, location: str) -> str:
    """A kubeconfig shaped like AKS's clusterUser one, with labelled fake credentials."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": f"https://{aks_fqdn(stack, name, location)}:443",
                    "certificate-authority-data": fake_ca_data("aks", stack, name),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"clusterUser_{name}"}}],
        "current-context": name,
        "users": [{"name": f"clusterUser_{name}", "user": {"token": "fleetkit-preview-token"}}],
    }
    return json.dumps(doc, sort_keys=True)


@invoke("azure-native:containerservice:listManagedClusterUserCredentials")
def _user_credentials(args: dict[str, Any], stack: str) -> dict[str, Any]:
    name = str(args.get("resourceName") or "cluster")
    text = preview_kubeconfig(stack, name, _location())
    return {"kubeconfigs": [{"name": "clusterUser", "value": base64.b64encode(text.encode()).decode()}]}


@invoke("azure-native:containerservice:getManagedCluster")
def _get_managed_cluster(args: dict[str, Any], stack: str) -> dict[str, Any]:
    name = str(args.get("resourceName") or "cluster")
    rg = str(args.get("resourceGroupName") or "rg")
    return _cluster_facts(stack, rg, name, _location())


@invoke("azure-native:authorization:getClientConfig")
def _client_config(args: dict[str, Any], stack: str) -> dict[str, Any]:
    return {
        "clientId": _uuid("client", stack),
        "objectId": _uuid("object", stack),
        "subscriptionId": subscription(stack),
        "tenantId": tenant(stack),
    }
