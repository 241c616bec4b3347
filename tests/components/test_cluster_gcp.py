"""GKE cluster under Pulumi mocks: workload identity, authorized networks, node service account, adoption."""

from __future__ import annotations

import json

from tests.components.infra_mocks import build_infra, demo_spec, run, with_changes

STACK = "gcp-europe-west4"
GKE = "gcp:container/cluster:Cluster"


def _with_create(**changes):
    spec = demo_spec(STACK)
    cluster = spec.cluster.model_dump()
    cluster["create"].update(changes)
    return with_changes(spec, cluster=cluster)


def test_gke_cluster_inputs_and_exports():
    spec = _with_create(authorized_networks=["198.51.100.0/24"])
    mocks, out = run(STACK, spec, build_infra(STACK, spec))
    gke = mocks.one(GKE).plain_inputs
    assert gke["workloadIdentityConfig"] == {"workloadPool": "fleetkit-demo.svc.id.goog"}
    assert gke["removeDefaultNodePool"] is True
    assert gke["location"] == "europe-west4" and gke["project"] == "fleetkit-demo"
    assert gke["minMasterVersion"] == "1.33" and gke["releaseChannel"] == {"channel": "REGULAR"}
    assert gke["masterAuthorizedNetworksConfig"]["cidrBlocks"] == [
        {"cidrBlock": "198.51.100.0/24", "displayName": "fleetkit-0"}
    ]
    assert "privateClusterConfig" not in gke
    assert out["workloadIdentityPool"] == "fleetkit-demo.svc.id.goog"
    assert out["clusterOidcIssuer"] == (
        "https://container.googleapis.com/v1/projects/fleetkit-demo/locations/europe-west4/clusters/fleetkit-euw4"
    )
    kube = json.loads(out["kubeconfig"])
    assert kube["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert kube["clusters"][0]["cluster"]["server"] == out["clusterEndpoint"]
    assert out["clusterEndpoint"].startswith("https://203.0.")


def test_node_service_account_and_roles():
    spec = demo_spec(STACK)
    mocks, _ = run(STACK, spec, build_infra(STACK, spec))
    sa = mocks.one("gcp:serviceaccount/account:Account").plain_inputs
    assert sa["accountId"] == "fleetkit-euw4-nodes"
    roles = sorted(m.plain_inputs["role"] for m in mocks.of_type("gcp:projects/iAMMember:IAMMember"))
    assert "roles/logging.logWriter" in roles and "roles/artifactregistry.reader" in roles
    email = "fleetkit-euw4-nodes@fleetkit-demo.iam.gserviceaccount.com"
    for pool in mocks.of_type("gcp:container/nodePool:NodePool"):
        assert pool.plain_inputs["nodeConfig"]["serviceAccount"] == email
        assert pool.plain_inputs["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}


def test_private_endpoint_and_foundation_network():
    spec = _with_create(public_endpoint=False)
    cluster = spec.cluster.model_dump()
    cluster["foundation"] = {
        "backend": "remote",
        "config": {"organization": "acme", "hostname": "app.terraform.io"},
        "secret_config": {"token": "tfeToken"},
        "workspace": "gcp-network",
        "outputs": {
            "vpc_id": "network_name",
            "subnet_ids": "subnetwork_name",
            "pods_range_name": "pods_range_name",
            "services_range_name": "services_range_name",
        },
    }
    spec = with_changes(spec, cluster=cluster)
    mocks, _ = run(
        STACK,
        spec,
        build_infra(STACK, spec),
        config={"fleetkit-secrets:tfeToken": "tfe-secret"},
        secret_keys=["fleetkit-secrets:tfeToken"],
    )
    call = next(a for t, a in mocks.calls if t == "terraform:state:getRemoteReference")
    assert call["organization"] == "acme" and call["workspaces"] == {"name": "gcp-network"}
    assert call["token"] == "tfe-secret"
    gke = mocks.one(GKE).plain_inputs
    assert gke["network"] == "foundation-vpc" and gke["subnetwork"] == "foundation-gke"
    assert gke["ipAllocationPolicy"] == {
        "clusterSecondaryRangeName": "gke-pods",
        "servicesSecondaryRangeName": "gke-services",
    }
    assert gke["privateClusterConfig"] == {"enablePrivateEndpoint": True, "enablePrivateNodes": True}


def test_adopt_a_zonal_cluster():
    spec = demo_spec(STACK)
    cluster = spec.cluster.model_dump()
    cluster.update(create=None, adopt={"location": "europe-west4-b"})
    spec = with_changes(spec, cluster=cluster)
    mocks, out = run(STACK, spec, build_infra(STACK, spec))
    assert not mocks.of_type(GKE)
    call = next(a for t, a in mocks.calls if t == "gcp:container/getCluster:getCluster")
    assert (call["name"], call["location"], call["project"]) == (
        "fleetkit-euw4",
        "europe-west4-b",
        "fleetkit-demo",
    )
    assert "/locations/europe-west4-b/" in out["clusterOidcIssuer"]
    assert {p.plain_inputs["location"] for p in mocks.of_type("gcp:container/nodePool:NodePool")} == {
        "europe-west4-b"
    }
