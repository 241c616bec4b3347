"""``MeshMember``: one cluster as a primary of the multi-network, multi-cloud Istio mesh.

Per cluster, in this order (each step ``depends_on`` the one before):

1. trust — the intermediate CA (signed with the root read from the trust-root stack) and the
   ``cacerts`` secret; the ``istio-system`` namespace labelled with the cluster's network;
2. ``istio/base`` (CRDs, reader service account);
3. ``istio/istiod`` with the mesh ID, the unique cluster name and the network — after ``cacerts``,
   so istiod starts with the plug-in CA instead of minting its own self-signed root;
4. the east-west gateway (static address, ``networkGateway``) with its cross-network ``Gateway``,
   and the ``fleetkit-ingress`` gateway the policy layer's ``Gateway`` selects;
5. the reader token this cluster exports (the fleet's peering stack, :mod:`components.peering`, writes
   every cluster's remote secrets from these exports; a region stack references only the trust root).

Istio CRD objects and meshed workloads wait for :attr:`MeshMember.ready`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi

from fleetkit.fleet import Fleet
from fleetkit.kube import apply_manifest, resource_name
from fleetkit.resolve import ResolvedPlacement
from fleetkit.spec import CaSpec, MeshSpec, TrustRootStackSpec
from mesh import render, topology
from mesh.control_plane import helm_release
from mesh.gateways import EastWestGateway, EastWestGatewayArgs
from mesh.remote_secrets import create_reader_token
from mesh.trust import IntermediateCa, IntermediateCaArgs
from policies.policy_set import PolicySet

if TYPE_CHECKING:
    from components.cluster import Cluster

#: Keys of :attr:`MeshMemberArgs.extra_values`, one per Helm release.
RELEASES = ("base", "istiod", "eastwest", "ingress")


@dataclass
class MeshMemberArgs:
    stack: str
    #: the stack's ``mesh`` section, cloud, region and load-balancer idle timeout (:mod:`fleetkit.resolve`)
    placement: ResolvedPlacement
    #: the stack's serving policies (the telemetry providers istiod is given)
    policies: PolicySet
    fleet: Fleet
    cluster: Cluster
    #: escape hatch: Helm values merged over the kit's, per release (keys: :data:`RELEASES`)
    extra_values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: what the gateway releases wait for besides istiod: their Services' load-balancer prerequisites
    #: (``components.lb_controller``: the AWS Load Balancer Controller, the AKS Network Contributor grant)
    gateway_depends_on: list[pulumi.Resource] = field(default_factory=list)


def ca_spec_of(fleet: Fleet, mesh: MeshSpec) -> CaSpec:
    """The CA settings of the fleet's trust-root stack (intermediate validity, key algorithm)."""
    root = fleet.stacks.get(topology.trust_root_stack_name(mesh))
    return root.spec.ca if root is not None and isinstance(root.spec, TrustRootStackSpec) else CaSpec()


class MeshMember(pulumi.ComponentResource):
    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: MeshMemberArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleetkit:mesh:MeshMember", name, None, opts)
        placement, mesh = args.placement, args.placement.mesh
        if mesh.cluster_name is None or mesh.network is None:  # the loader reports this first
            raise ValueError(f"stack {args.stack}: mesh.cluster_name and mesh.network are required")
        unknown = set(args.extra_values) - set(RELEASES)
        if unknown:
            raise ValueError(
                f"extra_values: unknown releases {sorted(unknown)} (known: {', '.join(RELEASES)})"
            )
        self.cluster_name, self.network = mesh.cluster_name, mesh.network
        version = mesh.istio_version
        extra = args.extra_values

        def after(*deps: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=list(deps))

        # 1. trust and the system namespace
        self.trust_root = pulumi.StackReference(topology.trust_root_ref(mesh), opts=after())
        self.ca = IntermediateCa(
            f"{name}-ca",
            IntermediateCaArgs(
                cluster_name=self.cluster_name,
                mesh_id=mesh.mesh_id,
                ca=ca_spec_of(args.fleet, mesh),
                root_cert_pem=self.trust_root.get_output(topology.EXPORT_ROOT_CERT),
                root_key_pem=pulumi.Output.secret(self.trust_root.get_output(topology.EXPORT_ROOT_KEY)),
            ),
            after(),
        )
        namespace = render.system_namespace(self.network)
        self.namespace = apply_manifest(resource_name(name, namespace), namespace, after())
        cacerts = render.cacerts_secret(
            self.ca.cert_pem, self.ca.key_pem, self.ca.root_cert_pem, self.ca.cert_chain_pem
        )
        cacerts["stringData"] = pulumi.Output.secret(cacerts["stringData"])
        self.cacerts = apply_manifest(resource_name(name, cacerts), cacerts, after(self.namespace))

        # 2.-3. control plane
        self.base = helm_release(
            f"{name}-istio-base", render.base_release(version), after(self.namespace), extra.get("base")
        )
        providers = args.policies.telemetry.extension_providers(
            args.policies, args.fleet.context_for(args.stack)
        )
        self.istiod = helm_release(
            f"{name}-istiod",
            render.istiod_release(mesh, self.cluster_name, self.network, providers or None),
            after(self.base, self.cacerts),
            extra.get("istiod"),
        )

        # 4. gateways
        self.east_west: EastWestGateway | None = None
        if mesh.east_west_gateway:
            self.east_west = EastWestGateway(
                f"{name}-eastwest",
                EastWestGatewayArgs(
                    placement=placement,
                    cluster_name=self.cluster_name,
                    network=self.network,
                    resource_group=args.cluster.resource_group_name,
                    depends_on=[self.istiod, *args.gateway_depends_on],
                    extra_values=extra.get("eastwest"),
                    source_ranges=topology.east_west_source_ranges(args.fleet, args.stack)[0],
                ),
                after(),
            )
        self.ingress = helm_release(
            f"{name}-ingress",
            render.ingress_release(
                version, render.ingress_annotations(placement.cloud, placement.lb_idle_seconds)
            ),
            after(self.istiod, *args.gateway_depends_on),
            extra.get("ingress"),
        )

        # 5. endpoint discovery
        self.reader = create_reader_token(name, after(self.base))

        self._cluster = args.cluster
        self._mesh = mesh
        self.ready = [self.namespace, self.cacerts, self.base, self.istiod]
        self.register_outputs(self.exports())

    def exports(self) -> dict[str, Any]:
        """Stack outputs the peers (and operators) read; ``readerToken`` is a Pulumi secret."""
        mesh = self._mesh
        out: dict[str, Any] = {
            topology.EXPORT_MESH_ID: mesh.mesh_id,
            topology.EXPORT_CLUSTER_NAME: self.cluster_name,
            topology.EXPORT_NETWORK: self.network,
            topology.EXPORT_TRUST_DOMAIN: mesh.trust_domain,
            topology.EXPORT_ISTIO_VERSION: mesh.istio_version,
            topology.EXPORT_READER_SERVER: pulumi.Output.from_input(self._cluster.endpoint).apply(
                lambda e: render.api_server_url(e) if e else None
            ),
            topology.EXPORT_READER_CA_DATA: self._cluster.ca_data,
            topology.EXPORT_READER_TOKEN: self.reader.token,
            topology.EXPORT_INTERMEDIATE_CERT: self.ca.cert_pem,
            topology.EXPORT_ROOT_CERT: self.ca.root_cert_pem,
        }
        if self.east_west is not None:
            out[topology.EXPORT_EAST_WEST_ADDRESSES] = self.east_west.addresses
            out[topology.EXPORT_EAST_WEST_ADDRESS] = self.east_west.addresses.apply(
                lambda a: a[0] if a else None
            )
        return out
