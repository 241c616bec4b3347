"""Mock outputs for the resources of model services (``components.model_service``/``identity``).

The Kubernetes objects of a model (ServiceAccount, Deployment, PDB, DaemonSet, PodMonitor,
PrometheusRule, Secret) need nothing beyond their inputs and an id, which the registry's default
gives; only the cloud identity resources return values the program reads (ARNs, e-mails, client ids).
The IAM role (``aws:iam/role:Role``) and GCP service account (``gcp:serviceaccount/account:Account``)
mocks are shared with the cluster components and registered in ``fleetkit.mocks.aws``/``gcp``.
"""

from __future__ import annotations

import uuid
from typing import Any

from fleetkit.mocks.registry import MockResource, digest, resource_outputs


def _fake_uuid(*parts: str) -> str:
    return str(uuid.UUID(digest(*parts, length=32)))


@resource_outputs("aws:iam/rolePolicy:RolePolicy")
def _iam_role_policy(r: MockResource) -> dict[str, Any]:
    role = str(r.inputs.get("role", r.name))
    name = r.inputs.get("name") or r.name
    return {"id": f"{role}:{name}", "name": name}


@resource_outputs("gcp:serviceaccount/iAMMember:IAMMember")
def _gcp_sa_iam_member(r: MockResource) -> dict[str, Any]:
    sa, role, member = (str(r.inputs.get(k, "")) for k in ("serviceAccountId", "role", "member"))
    return {"id": f"{sa}/{role}/{member}", "etag": "BwY" + digest("etag", sa, role, member, length=9)}


@resource_outputs("azure-native:managedidentity:UserAssignedIdentity")
def _azure_identity(r: MockResource) -> dict[str, Any]:
    name = r.inputs.get("resourceName") or r.name
    rg = r.inputs.get("resourceGroupName", "preview-rg")
    sub = _fake_uuid("subscription", r.stack)
    return {
        "id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
        "name": name,
        "clientId": _fake_uuid("client", r.stack, name),
        "principalId": _fake_uuid("principal", r.stack, name),
        "tenantId": _fake_uuid("tenant", r.stack),
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
    }


@resource_outputs("azure-native:managedidentity:FederatedIdentityCredential")
def _azure_federated_credential(r: MockResource) -> dict[str, Any]:
    name = r.inputs.get("federatedIdentityCredentialResourceName") or r.name
    identity = r.inputs.get("resourceName", "identity")
    return {
        "id": f"{identity}/federatedIdentityCredentials/{name}",
        "name": name,
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
    }
