"""AKS cluster under Pulumi mocks: OIDC + workload identity, system pool, credentials, resource group."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from components.cluster_aks import adopted_principal
from tests.components.infra_mocks import build_infra, demo_spec, run, with_changes

STACK = "azure-eastus"
AKS = "azure-native:containerservice:ManagedCluster"


def test_aks_cluster_inputs_and_exports():
    spec = demo_spec(STACK)
    mocks, out = run(STACK, spec, build_infra(STACK, spec))
    aks = mocks.one(AKS).plain_inputs
    assert aks["oidcIssuerProfile"] == {"enabled": True}
    assert aks["securityProfile"] == {"workloadIdentity": {"enabled": True}}
    assert aks["kubernetesVersion"] == "1.33" and aks["resourceName"] == "fleetkit-eus"
    assert aks["resourceGroupName"] == "fleetkit-eastus"  # the configured group, not a new one
    assert not mocks.of_type("azure-native:resources:ResourceGroup")
    assert aks["identity"] == {"type": "SystemAssigned"}
    (system,) = aks["agentPoolProfiles"]
    assert system["mode"] == "System" and system["enableAutoScaling"] is True and "nodeTaints" not in system
    # the demo's documented ranges: the API server is never open to every address
    assert aks["apiServerAccessProfile"] == {"authorizedIPRanges": ["203.0.113.0/24", "198.51.100.0/24"]}
    assert out["clusterOidcIssuer"].startswith("https://eastus.oic.prod-aks.azure.com/")
    assert out["clusterEndpoint"].endswith(".hcp.eastus.azmk8s.io:443")
    assert out["resourceGroup"] == "fleetkit-eastus"
    call = next(
        a for t, a in mocks.calls if t == "azure-native:containerservice:listManagedClusterUserCredentials"
    )
    assert (call["resourceGroupName"], call["resourceName"]) == ("fleetkit-eastus", "fleetkit-eus")
    # the user credentials are a credential: the provider gets them, the stack outputs never do
    assert "kubeconfig" not in out
    kube = yaml.safe_load(mocks.one("pulumi:providers:kubernetes").plain_inputs["kubeconfig"])
    assert kube["clusters"][0]["cluster"]["certificate-authority-data"] == out["clusterCaData"]


def test_authorized_ranges_and_created_resource_group():
    spec = demo_spec(STACK)
    cluster = spec.cluster.model_dump()
    cluster["create"]["authorized_networks"] = ["198.51.100.0/24"]
    spec = with_changes(spec, cluster=cluster, account={})
    mocks, _ = run(STACK, spec, build_infra(STACK, spec))
    rg = mocks.one("azure-native:resources:ResourceGroup").plain_inputs
    assert rg["resourceGroupName"] == "rg-fleetkit-eus" and rg["location"] == "eastus"
    aks = mocks.one(AKS).plain_inputs
    assert aks["apiServerAccessProfile"] == {"authorizedIPRanges": ["198.51.100.0/24"]}
    assert aks["resourceGroupName"] == "rg-fleetkit-eus"


def test_adopt_by_name_and_resource_group():
    spec = demo_spec(STACK)
    cluster = spec.cluster.model_dump()
    cluster.update(create=None, adopt={"resource_group": "rg-existing"})
    spec = with_changes(spec, cluster=cluster)
    mocks, out = run(STACK, spec, build_infra(STACK, spec))
    assert not mocks.of_type(AKS)
    call = next(a for t, a in mocks.calls if t == "azure-native:containerservice:getManagedCluster")
    assert (call["resourceGroupName"], call["resourceName"]) == ("rg-existing", "fleetkit-eus")
    pool = mocks.one("azure-native:containerservice:AgentPool").plain_inputs
    assert (pool["resourceGroupName"], pool["resourceName"]) == ("rg-existing", "fleetkit-eus")
    assert out["networkId"] == "MC_rg-existing_fleetkit-eus_eastus"


def test_adopted_cluster_principal_comes_from_the_lookup_and_is_required():
    spec = demo_spec(STACK)
    cluster = spec.cluster.model_dump()
    cluster.update(create=None, adopt={"resource_group": "rg-existing"})
    spec = with_changes(spec, cluster=cluster)
    _, out = run(STACK, spec, build_infra(STACK, spec, extra=lambda c: {"principal": c.principal_id}))
    assert isinstance(out["principal"], str) and len(out["principal"]) == 36  # the identity's object id
    assert adopted_principal(SimpleNamespace(principal_id="0000")) == "0000"
    for identity in (None, SimpleNamespace(principal_id=None)):  # no system-assigned identity
        with pytest.raises(ValueError, match="no system-assigned identity"):
            adopted_principal(identity)


def test_foundation_subnet_goes_to_every_pool():
    spec = demo_spec(STACK)
    cluster = spec.cluster.model_dump()
    cluster["foundation"] = {
        "backend": "azurerm",
        "config": {
            "storage_account_name": "tfstate",
            "container_name": "tfstate",
            "key": "net.tfstate",
            "use_azuread_auth": "true",
        },
        "outputs": {"subnet_ids": "aks_subnet_id"},
    }
    spec = with_changes(spec, cluster=cluster)
    mocks, out = run(STACK, spec, build_infra(STACK, spec))
    call = next(a for t, a in mocks.calls if t == "terraform:state:getAzureRMReference")
    assert call["useAzureadAuth"] is True
    aks = mocks.one(AKS).plain_inputs
    subnet = aks["agentPoolProfiles"][0]["vnetSubnetID"]
    assert subnet.endswith("/subnets/aks-nodes")
    assert mocks.one("azure-native:containerservice:AgentPool").plain_inputs["vnetSubnetID"] == subnet
    assert out["networkId"] == subnet
