"""The mesh's plug-in CA: one shared root (trust-root stack) and one intermediate per cluster.

* :class:`TrustRoot` runs in the small trust-root stack (``role: trust-root``) and exports the root
  certificate (public) and the root key (a Pulumi secret, encrypted in that stack's state).
* :class:`IntermediateCa` runs in each region stack: a fresh key, a CSR whose subject names the
  cluster, signed with the root key read from the trust-root stack. Keys are Pulumi secrets end to
  end; they reach the cluster only inside the ``cacerts`` Secret.

Every region stack reads the root key, so every region stack's state holds it (encrypted). That is
the price of signing intermediates with ``pulumi up``; a production mesh may prefer an external CA
(Vault, cert-manager istio-csr) and keep the root offline — see ``docs/mesh.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_tls as tls

from fleetkit.spec import CaSpec, TrustRootStackSpec
from mesh import pki
from mesh.topology import EXPORT_MESH_ID, EXPORT_ROOT_CERT, EXPORT_ROOT_KEY


@dataclass
class TrustRootArgs:
    spec: TrustRootStackSpec


class TrustRoot(pulumi.ComponentResource):
    """The shared root CA of the mesh (self-signed, never renewed automatically)."""

    root_cert_pem: pulumi.Output[str]
    root_key_pem: pulumi.Output[str]

    def __init__(self, name: str, args: TrustRootArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleetkit:mesh:TrustRoot", name, None, opts)
        ca, mesh_id = args.spec.ca, args.spec.mesh.mesh_id
        child = pulumi.ResourceOptions(parent=self)
        self.key = tls.PrivateKey(f"{name}-root-key", **pki.key_params(ca), opts=child)
        self.root_key_pem = pulumi.Output.secret(self.key.private_key_pem)
        self.cert = tls.SelfSignedCert(
            f"{name}-root-cert",
            private_key_pem=self.root_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(**pki.root_subject(ca, mesh_id)),
            is_ca_certificate=True,
            max_path_length=1,
            set_subject_key_id=True,
            validity_period_hours=ca.root_validity_hours,
            allowed_uses=list(pki.ROOT_USES),
            opts=child,
        )
        self.mesh_id = mesh_id
        self.root_cert_pem = self.cert.cert_pem
        self.register_outputs(self.exports())

    def exports(self) -> dict[str, Any]:
        return {
            EXPORT_MESH_ID: self.mesh_id,
            EXPORT_ROOT_CERT: self.root_cert_pem,
            EXPORT_ROOT_KEY: self.root_key_pem,
        }


@dataclass
class IntermediateCaArgs:
    cluster_name: str
    mesh_id: str
    ca: CaSpec
    #: the root certificate and key (the key must be a secret Output) from the trust-root stack
    root_cert_pem: pulumi.Input[str]
    root_key_pem: pulumi.Input[str]


class IntermediateCa(pulumi.ComponentResource):
    """A cluster's intermediate CA, signed by the mesh root; feeds the ``cacerts`` secret."""

    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]
    root_cert_pem: pulumi.Output[str]
    cert_chain_pem: pulumi.Output[str]

    def __init__(self, name: str, args: IntermediateCaArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleetkit:mesh:IntermediateCa", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.key = tls.PrivateKey(f"{name}-key", **pki.key_params(args.ca), opts=child)
        self.key_pem = pulumi.Output.secret(self.key.private_key_pem)
        self.request = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=self.key_pem,
            subject=tls.CertRequestSubjectArgs(
                **pki.intermediate_subject(args.ca, args.mesh_id, args.cluster_name)
            ),
            opts=child,
        )
        self.cert = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=self.request.cert_request_pem,
            ca_cert_pem=args.root_cert_pem,
            ca_private_key_pem=pulumi.Output.secret(args.root_key_pem),
            is_ca_certificate=True,
            max_path_length=0,
            set_subject_key_id=True,
            validity_period_hours=args.ca.intermediate_validity_hours,
            early_renewal_hours=pki.intermediate_early_renewal_hours(args.ca),
            allowed_uses=list(pki.INTERMEDIATE_USES),
            opts=child,
        )
        self.cert_pem = self.cert.cert_pem
        self.root_cert_pem = pulumi.Output.from_input(args.root_cert_pem)
        self.cert_chain_pem = pulumi.Output.all(self.cert_pem, self.root_cert_pem).apply(
            lambda pems: pki.cert_chain(pems[0] or "", pems[1] or "")
        )
        self.register_outputs({"cert_pem": self.cert_pem, "cert_chain_pem": self.cert_chain_pem})
