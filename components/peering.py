"""``MeshPeering``: the peering stack — every cluster's remote secrets, written into every cluster.

Multi-primary endpoint discovery needs, in each cluster, one remote secret per peer (a kubeconfig for
the peer's ``istio-reader-service-account``; Istio docs, "Install Multi-Primary on different
networks", ``istioctl create-remote-secret``). If each region stack held its peers' secrets, it
would need a ``pulumi.StackReference`` to every peer — and a reference to a stack that does not
exist yet is a hard error the program cannot catch (pulumi/pulumi#11275), so a first bring-up would
need every region twice. Here the region stacks reference only the trust root and export their
reader credentials; this one stack reads every region stack and writes:

* per region stack: one ``StackReference`` (named by :func:`mesh.topology.stack_ref`) and one
  Kubernetes provider for its cluster — EKS and GKE through the same exec-plugin kubeconfigs the
  region stack uses (``aws eks get-token``, ``gke-gcloud-auth-plugin``), AKS through
  ``listManagedClusterUserCredentials``, an adopted cluster through its ``kubeconfig_secret``
  (set the same ``fleetkit-secrets:`` key on this stack);
* in every cluster, for every peer (``mesh.peers`` or every other region):
  Secret ``istio-system/istio-remote-secret-<peer>`` shaped exactly as ``istioctl
  create-remote-secret --name <peer>`` emits it; istiod picks it up without a restart.

Bring-up: trust root, then each region once (any order), then this stack. A new region: its own
``pulumi up``, then this stack's. A region not up yet has no reader credentials: its secrets stay
empty with a warning naming it (the offline preview reports that as an error).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native as azure_native
import pulumi_kubernetes as k8s

from components.cluster import build_eks_kubeconfig, build_gke_kubeconfig, secret_config_output
from fleetkit.fleet import Fleet
from fleetkit.kube import apply_manifest, resource_name
from fleetkit.resolve import ResolvedPlacement
from fleetkit.spec import PeeringStackSpec
from mesh import render, topology

#: Outputs of a region stack the peering stack reads (besides the mesh reader exports).
EXPORT_CLOUD_NAME = "cloudClusterName"
EXPORT_RESOURCE_GROUP = "resourceGroup"


@dataclass
class MeshPeeringArgs:
    spec: PeeringStackSpec
    fleet: Fleet


def _kubeconfig(
    placement: ResolvedPlacement, ref: pulumi.StackReference, parent: pulumi.Resource
) -> pulumi.Output[str]:
    """A kubeconfig for the region's cluster, built from its exports; always a secret."""
    adopt = placement.cluster.adopt
    if adopt is not None and adopt.kubeconfig_secret:
        return secret_config_output(adopt.kubeconfig_secret)
    name = ref.get_output(EXPORT_CLOUD_NAME).apply(lambda n: n or placement.cluster.name)
    server = ref.get_output(topology.EXPORT_READER_SERVER)
    ca = ref.get_output(topology.EXPORT_READER_CA_DATA)
    if placement.cloud == "aws":
        out = pulumi.Output.all(name, server, ca).apply(
            lambda a: build_eks_kubeconfig(a[0], a[1] or "", a[2] or "", placement.region)
        )
    elif placement.cloud == "gcp":
        out = pulumi.Output.all(name, server, ca).apply(
            lambda a: build_gke_kubeconfig(a[0], a[1] or "", a[2] or "")
        )
    else:
        group = ref.get_output(EXPORT_RESOURCE_GROUP).apply(
            lambda g: (
                g
                or (adopt.resource_group if adopt else None)
                or placement.account.azure_resource_group
                or f"rg-{placement.cluster.name}"
            )
        )
        creds = azure_native.containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=group, resource_name=name, opts=pulumi.InvokeOutputOptions(parent=parent)
        )
        out = creds.kubeconfigs.apply(lambda ks: base64.b64decode(ks[0].value).decode())
    return pulumi.Output.secret(out)


class MeshPeering(pulumi.ComponentResource):
    """One reference and one provider per region; ``n × (n − 1)`` remote secrets (``peers`` lists permitting)."""

    def __init__(self, name: str, args: MeshPeeringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleetkit:components:MeshPeering", name, None, opts)
        fleet, mesh = args.fleet, args.spec.mesh
        regions = {n: st.resolved.placement for n, st in sorted(fleet.region_stacks().items())}
        self.references: dict[str, pulumi.StackReference] = {}
        providers: dict[str, k8s.Provider] = {}
        for stack, placement in regions.items():
            # the resource name is the reference name: what the engine (and the offline preview) resolves
            ref = pulumi.StackReference(
                topology.stack_ref(stack, mesh), opts=pulumi.ResourceOptions(parent=self)
            )
            self.references[stack] = ref
            providers[stack] = k8s.Provider(
                f"{name}-{stack}-k8s",
                kubeconfig=_kubeconfig(placement, ref, self),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.secrets: dict[str, pulumi.CustomResource] = {}
        for stack, placement in regions.items():
            holder = placement.mesh.cluster_name or stack
            for peer in topology.peers_of(fleet, stack):
                ref = self.references[peer.stack]
                obj = render.remote_secret(peer.cluster_name, None)
                obj["stringData"] = pulumi.Output.secret(
                    pulumi.Output.all(
                        ref.get_output(topology.EXPORT_READER_SERVER),
                        ref.get_output(topology.EXPORT_READER_CA_DATA),
                        ref.get_output(topology.EXPORT_READER_TOKEN),
                        ref.get_output(topology.EXPORT_CLUSTER_NAME),
                    ).apply(lambda v, p=peer: remote_secret_data(p, *v))  # type: ignore[misc]
                )
                rname = resource_name(f"{name}-{holder}", obj)
                self.secrets[rname] = apply_manifest(
                    rname,
                    obj,
                    pulumi.ResourceOptions(
                        parent=self,
                        provider=providers[stack],
                        additional_secret_outputs=["stringData", "data"],
                    ),
                )
        self.outputs: dict[str, Any] = {
            topology.EXPORT_MESH_ID: mesh.mesh_id,
            "remoteSecrets": sorted(self.secrets),
            "peeredStacks": sorted(regions),
        }
        self.register_outputs(self.outputs)


def remote_secret_data(
    peer: topology.Peer, server: str | None, ca_data: str | None, token: str | None, exported_name: str | None
) -> dict[str, str]:
    """``stringData`` of the peer's remote secret; empty (with a warning) until the peer is up."""
    if exported_name is not None and exported_name != peer.cluster_name:
        pulumi.log.warn(
            f"stack {peer.ref} exports mesh cluster name {exported_name!r} but the fleet names it "
            f"{peer.cluster_name!r}; run `pulumi up` on {peer.stack} so both agree"
        )
    if not (server and ca_data and token):
        pulumi.log.warn(
            f"stack {peer.ref} has not exported its mesh reader credentials yet; the remote secret for "
            f"{peer.cluster_name} stays empty until `pulumi up` of {peer.stack} and then of this stack"
        )
        return {}
    data: dict[str, str] = render.remote_secret(
        peer.cluster_name, render.remote_kubeconfig(peer.cluster_name, server, ca_data, token)
    )["stringData"]
    return data
