"""The mesh's certificate hierarchy as plain data: key parameters, subjects, key usages, lifetimes.

Pure (no ``pulumi`` import). :mod:`mesh.trust` turns these into ``pulumi_tls`` resources.

Hierarchy (Istio's plug-in CA model, one root for the whole mesh):

* **root** — self-signed, in the trust-root stack only; may sign exactly one level of CA below it
  (``max_path_length`` 1). It is never renewed automatically: a new root is a mesh-wide migration.
* **intermediate** — one per cluster, signed by the root, subject names the cluster; it signs workload
  certificates directly (``max_path_length`` 0). It is renewed by ``pulumi up`` once it enters its
  early-renewal window (10 % of its validity, at most 30 days), so ``pulumi preview`` shows a due
  rotation as a replacement; see ``runbooks/mesh-rotate-intermediate-ca.md``.
"""

from __future__ import annotations

from typing import Any

from fleetkit.spec import CaSpec

#: Key usages of the root (a CA that only signs certificates and revocation lists).
ROOT_USES = ("cert_signing", "crl_signing", "digital_signature")
#: Key usages of a cluster intermediate.
INTERMEDIATE_USES = ("cert_signing", "crl_signing", "digital_signature", "key_encipherment")

ECDSA_CURVE = "P256"
RSA_BITS = 4096
_MAX_EARLY_RENEWAL_HOURS = 30 * 24


def key_params(ca: CaSpec) -> dict[str, Any]:
    """``pulumi_tls.PrivateKey`` arguments for the CA's key algorithm."""
    if ca.key_algorithm == "ECDSA":
        return {"algorithm": "ECDSA", "ecdsa_curve": ECDSA_CURVE}
    return {"algorithm": "RSA", "rsa_bits": RSA_BITS}


def root_subject(ca: CaSpec, mesh_id: str) -> dict[str, str]:
    return {
        "common_name": f"{mesh_id} root CA",
        "organization": ca.organization,
        "organizational_unit": mesh_id,
    }


def intermediate_subject(ca: CaSpec, mesh_id: str, cluster_name: str) -> dict[str, str]:
    """The intermediate's subject names the cluster (CN and locality), as Istio's cert tooling does."""
    return {
        "common_name": f"{cluster_name} intermediate CA",
        "organization": ca.organization,
        "organizational_unit": mesh_id,
        "locality": cluster_name,
    }


def intermediate_early_renewal_hours(ca: CaSpec) -> int:
    return min(_MAX_EARLY_RENEWAL_HOURS, ca.intermediate_validity_hours // 10)


def cert_chain(intermediate_pem: str, root_pem: str) -> str:
    """``cert-chain.pem`` of the ``cacerts`` secret: the intermediate followed by the root."""
    return intermediate_pem.rstrip("\n") + "\n" + root_pem.rstrip("\n") + "\n"
