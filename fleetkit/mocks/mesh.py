"""Preview outputs for the mesh: CA material, Helm releases, static gateway addresses, reader tokens.

Key material is fake and says so (``fleetkit-preview-…`` inside the PEM armour, never a parsable
key), but it is still returned as a Pulumi secret — exactly where a real provider's output would be
secret — so a leak check over a preview means the same as over a real deployment.
"""

from __future__ import annotations

import base64
from typing import Any

from pulumi.runtime.rpc import wrap_rpc_secret

from fleetkit.mocks.registry import MockResource, digest, fake_ip, resource_outputs

_NOT_BEFORE = "2026-01-01T00:00:00Z"


def _pem(kind: str, *parts: str) -> str:
    body = base64.b64encode(
        f"fleetkit-preview-{kind.lower().replace(' ', '-')}:{'/'.join(parts)}".encode()
    ).decode()
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n"


def _valid_until(hours: Any) -> str:
    years = int(hours or 0) // (24 * 365)
    return f"{2026 + years}-01-01T00:00:00Z"


@resource_outputs("tls:index/privateKey:PrivateKey")
def _private_key(r: MockResource) -> dict[str, Any]:
    algorithm = r.inputs.get("algorithm", "RSA")
    kind = "EC PRIVATE KEY" if algorithm == "ECDSA" else "RSA PRIVATE KEY"
    return {
        "id": digest("tls-key", r.stack, r.name, length=40),
        "privateKeyPem": wrap_rpc_secret(_pem(kind, r.stack, r.name)),
        "privateKeyPemPkcs8": wrap_rpc_secret(_pem("PRIVATE KEY", r.stack, r.name)),
        "privateKeyOpenssh": wrap_rpc_secret(_pem("OPENSSH PRIVATE KEY", r.stack, r.name)),
        "publicKeyPem": _pem("PUBLIC KEY", r.stack, r.name),
        "publicKeyFingerprintSha256": "SHA256:" + digest("tls-fp", r.stack, r.name, length=43),
    }


@resource_outputs("tls:index/selfSignedCert:SelfSignedCert")
def _self_signed(r: MockResource) -> dict[str, Any]:
    cn = (r.inputs.get("subject") or {}).get("commonName", r.name)
    return {
        "id": str(int(digest("tls-serial", r.stack, r.name, length=16), 16)),
        "certPem": _pem("CERTIFICATE", "self-signed", cn, r.stack),
        "validityStartTime": _NOT_BEFORE,
        "validityEndTime": _valid_until(r.inputs.get("validityPeriodHours")),
        "readyForRenewal": False,
    }


@resource_outputs("tls:index/certRequest:CertRequest")
def _cert_request(r: MockResource) -> dict[str, Any]:
    cn = (r.inputs.get("subject") or {}).get("commonName", r.name)
    return {
        "id": digest("tls-csr", r.stack, r.name, length=40),
        "certRequestPem": _pem("CERTIFICATE REQUEST", cn, r.stack),
    }


@resource_outputs("tls:index/locallySignedCert:LocallySignedCert")
def _locally_signed(r: MockResource) -> dict[str, Any]:
    csr = str(r.inputs.get("certRequestPem") or "")
    issuer = digest("issuer", str(r.inputs.get("caCertPem") or ""), length=8)
    return {
        "id": str(int(digest("tls-serial", r.stack, r.name, length=16), 16)),
        "certPem": _pem("CERTIFICATE", "signed-by", issuer, digest("csr", csr, length=12), r.stack),
        "validityStartTime": _NOT_BEFORE,
        "validityEndTime": _valid_until(r.inputs.get("validityPeriodHours")),
        "readyForRenewal": False,
    }


@resource_outputs("kubernetes:helm.sh/v3:Release")
def _helm_release(r: MockResource) -> dict[str, Any]:
    name = r.inputs.get("name") or r.name
    return {
        "status": {
            "name": name,
            "namespace": r.inputs.get("namespace", "default"),
            "chart": r.inputs.get("chart"),
            "version": r.inputs.get("version"),
            "appVersion": r.inputs.get("version"),
            "revision": 1,
            "status": "deployed",
        }
    }


@resource_outputs("kubernetes:core/v1:Secret")
def _secret(r: MockResource) -> dict[str, Any]:
    """A service-account-token Secret comes back filled by the token controller; others as given."""
    if r.inputs.get("type") != "kubernetes.io/service-account-token":
        return {}
    token = f"fleetkit-preview-token.{digest('sa-token', r.stack, r.name, length=32)}"
    ca = _pem("CERTIFICATE", "cluster-ca", r.stack)
    return {
        "data": wrap_rpc_secret(
            {
                "token": base64.b64encode(token.encode()).decode(),
                "ca.crt": base64.b64encode(ca.encode()).decode(),
                "namespace": base64.b64encode(b"istio-system").decode(),
            }
        )
    }


@resource_outputs("aws:ec2/eip:Eip")
def _eip(r: MockResource) -> dict[str, Any]:
    alloc = f"eipalloc-{digest('eip', r.stack, r.name, length=17)}"
    ip = fake_ip("eip", r.stack, r.name)
    return {
        "id": alloc,
        "allocationId": alloc,
        "publicIp": ip,
        "domain": "vpc",
        "publicDns": f"ec2-{ip.replace('.', '-')}.compute.amazonaws.com",
    }


@resource_outputs("gcp:compute/address:Address")
def _gcp_address(r: MockResource) -> dict[str, Any]:
    project, region = r.inputs.get("project") or "fleetkit-preview", r.inputs.get("region") or "us-central1"
    name = r.inputs.get("name") or f"{r.name}-{digest('addr', r.stack, r.name, length=7)}"
    return {
        "id": f"projects/{project}/regions/{region}/addresses/{name}",
        "name": name,
        "address": fake_ip("gcp-address", r.stack, r.name),
        "project": project,
        "region": region,
        "selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}/regions/{region}/addresses/{name}",
    }


@resource_outputs("azure-native:network:PublicIPAddress")
def _azure_public_ip(r: MockResource) -> dict[str, Any]:
    group = r.inputs.get("resourceGroupName", "fleetkit-preview")
    name = r.inputs.get("publicIpAddressName") or f"{r.name}{digest('pip', r.stack, r.name, length=8)}"
    return {
        "id": f"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/{group}"
        f"/providers/Microsoft.Network/publicIPAddresses/{name}",
        "name": name,
        "ipAddress": fake_ip("azure-pip", r.stack, r.name),
        "provisioningState": "Succeeded",
    }
