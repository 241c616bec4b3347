"""Plausible GCP outputs: GKE cluster and node pools, the node service account, IAM grants, lookups."""

from __future__ import annotations

from typing import Any

from fleetkit.mocks.registry import MockResource, digest, fake_ca_data, fake_ip, invoke, resource_outputs


def _project(r: MockResource) -> str:
    return str(r.inputs.get("project") or "fleetkit-preview")


def _named(r: MockResource) -> str:
    if r.inputs.get("name"):
        return str(r.inputs["name"])
    if r.inputs.get("namePrefix"):
        return f"{r.inputs['namePrefix']}{digest(r.stack, r.type, r.name, length=8)}"
    return f"{r.name}-{digest(r.stack, r.type, r.name, length=7)}"


def _network(project: str, value: Any) -> str:
    name = str(value or "default")
    return name if name.startswith("projects/") else f"projects/{project}/global/networks/{name}"


@resource_outputs("gcp:container/cluster:Cluster")
def _cluster(r: MockResource) -> dict[str, Any]:
    project, location, name = _project(r), str(r.inputs.get("location", "us-central1")), _named(r)
    path = f"projects/{project}/locations/{location}/clusters/{name}"
    region = location if location.count("-") == 1 else location.rsplit("-", 1)[0]
    subnetwork = r.inputs.get("subnetwork") or "default"
    return {
        "id": path,
        "name": name,
        "endpoint": fake_ip("gke", r.stack, name),
        "masterAuth": {
            "clusterCaCertificate": fake_ca_data("gke", r.stack, name),
            "clientCertificateConfig": {"issueClientCertificate": False},
        },
        "selfLink": f"https://container.googleapis.com/v1/{path}",
        "network": _network(project, r.inputs.get("network")),
        "subnetwork": subnetwork
        if str(subnetwork).startswith("projects/")
        else f"projects/{project}/regions/{region}/subnetworks/{subnetwork}",
        "masterVersion": f"{r.inputs.get('minMasterVersion', '1.33')}.2-gke.1000000",
        "servicesIpv4Cidr": "34.118.224.0/20",
        "clusterIpv4Cidr": "10.4.0.0/14",
        "labelFingerprint": digest("labels", r.stack, name, length=8),
        "operation": None,
    }


@resource_outputs("gcp:container/nodePool:NodePool")
def _node_pool(r: MockResource) -> dict[str, Any]:
    project, location, name = _project(r), str(r.inputs.get("location", "us-central1")), _named(r)
    cluster = str(r.inputs.get("cluster", "cluster"))
    zones = r.inputs.get("nodeLocations") or [f"{location}-a", f"{location}-b", f"{location}-c"]
    groups = [
        f"https://www.googleapis.com/compute/v1/projects/{project}/zones/{z}/instanceGroupManagers/"
        f"gke-{cluster[:14]}-{name[:14]}-{digest('mig', r.stack, name, z, length=8)}-grp"
        for z in zones
    ]
    return {
        "id": f"projects/{project}/locations/{location}/clusters/{cluster}/nodePools/{name}",
        "name": name,
        "instanceGroupUrls": groups,
        "managedInstanceGroupUrls": groups,
        "version": "1.33.2-gke.1000000",
        "operation": None,
    }


@resource_outputs("gcp:serviceaccount/account:Account")
def _service_account(r: MockResource) -> dict[str, Any]:
    """Every Google service account of the stack (GKE nodes, model workload identities)."""
    project = _project(r)
    account_id = str(r.inputs.get("accountId", r.name))
    email = f"{account_id}@{project}.iam.gserviceaccount.com"
    return {
        "id": f"projects/{project}/serviceAccounts/{email}",
        "name": f"projects/{project}/serviceAccounts/{email}",
        "email": email,
        "member": f"serviceAccount:{email}",
        "uniqueId": str(int(digest("gsa", project, account_id, length=16), 16))[:21],
        "project": project,
    }


@resource_outputs("gcp:projects/iAMMember:IAMMember")
def _iam_member(r: MockResource) -> dict[str, Any]:
    return {
        "id": f"{_project(r)}/{r.inputs.get('role')}/{r.inputs.get('member')}",
        "etag": "BwY" + digest("etag", r.stack, r.name, length=8),
    }


@invoke("gcp:container/getCluster:getCluster")
def _get_cluster(args: dict[str, Any], stack: str) -> dict[str, Any]:
    project = str(args.get("project") or "fleetkit-preview")
    location = str(args.get("location") or "us-central1")
    name = str(args.get("name") or "cluster")
    path = f"projects/{project}/locations/{location}/clusters/{name}"
    return {
        "id": path,
        "name": name,
        "location": location,
        "project": project,
        "endpoint": fake_ip("gke", stack, name),
        "masterAuths": [{"clusterCaCertificate": fake_ca_data("gke", stack, name)}],
        "network": _network(project, "default"),
        "subnetwork": f"projects/{project}/regions/{location}/subnetworks/default",
        "selfLink": f"https://container.googleapis.com/v1/{path}",
        "workloadIdentityConfigs": [{"workloadPool": f"{project}.svc.id.goog"}],
        "masterVersion": "1.33.2-gke.1000000",
        "nodeLocations": [f"{location}-a", f"{location}-b", f"{location}-c"],
    }
