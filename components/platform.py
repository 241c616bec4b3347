"""The top-level component of a region stack: cluster, GPU pools, mesh, model services, policies.

Build order (each step a child of the platform, dependencies explicit):

1. ``Cluster`` — creates or adopts the cluster; exposes a Kubernetes provider and peer outputs; then
   ``LoadBalancerPrerequisites`` (AWS Load Balancer Controller / AKS Network Contributor grant), which
   the gateway releases wait for.
2. ``GpuNodePool`` per pool (keyed by pool name), plus the GPU device plugin where the image needs it.
3. the model namespace (sidecar injection on).
4. ``MeshMember`` — Istio as one primary of the multi-network mesh (trust, istiod, gateways, remote secrets).
5. ``ModelService`` per model (keyed by model name) — vLLM Deployment, weight cache, observability.
6. ``PolicyManifests`` — the rendered serving policies, applied after Istio (and KEDA) are up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.addons import AddonsArgs, ClusterAddons
from components.cluster import Cluster, ClusterArgs
from components.lb_controller import LoadBalancerPrerequisites, LoadBalancerPrerequisitesArgs
from components.model_service import FleetDashboard, FleetDashboardArgs, ModelService, ModelServiceArgs
from components.node_pools import GpuNodePoolArgs, create_gpu_node_pool
from components.policy_manifests import PolicyManifests, PolicyManifestsArgs
from fleetkit import dr
from fleetkit.fleet import Fleet
from fleetkit.resolve import ResolvedStack
from mesh.member import MeshMember, MeshMemberArgs
from policies.common import metadata


@dataclass
class RegionPlatformArgs:
    stack: str
    #: the stack resolved once at load (:attr:`fleetkit.fleet.LoadedStack.resolved`): placement, pools, models
    resolved: ResolvedStack
    #: the whole fleet: the policies' render context, the mesh's peers and trust root, DR warnings
    fleet: Fleet


class RegionPlatform(pulumi.ComponentResource):
    def __init__(self, name: str, args: RegionPlatformArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleetkit:components:RegionPlatform", name, None, opts)
        resolved = args.resolved
        placement = resolved.placement
        child = pulumi.ResourceOptions(parent=self)

        self.cluster = Cluster(f"{name}-cluster", ClusterArgs(stack=args.stack, placement=placement), child)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=self.cluster.provider)
        # what gateway Services need to get an address (AWS LB Controller, AKS Network Contributor)
        self.lb = LoadBalancerPrerequisites(
            f"{name}-lb",
            LoadBalancerPrerequisitesArgs(stack=args.stack, placement=placement, cluster=self.cluster),
            k8s_opts,
        )
        mesh_args = MeshMemberArgs(
            stack=args.stack,
            placement=placement,
            policies=resolved.policies,
            fleet=args.fleet,
            cluster=self.cluster,
            gateway_depends_on=list(self.lb.ready),
        )
        self.node_pools = {
            pool_name: create_gpu_node_pool(
                f"{name}-{pool_name}",
                GpuNodePoolArgs(
                    pool=resolved.pools[pool_name], cluster=self.cluster, cluster_name=placement.cluster.name
                ),
                child,
            )
            for pool_name in sorted(resolved.pools)
        }

        ns_meta = metadata(placement.namespace, None, {"istio-injection": "enabled"})
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns-{placement.namespace}",
            metadata=k8s.meta.v1.ObjectMetaArgsDict(name=ns_meta["name"], labels=ns_meta["labels"]),
            opts=k8s_opts,
        )

        self.mesh = MeshMember(f"{name}-mesh", mesh_args, k8s_opts)

        self.addons = ClusterAddons(
            f"{name}-addons",
            AddonsArgs(
                placement=placement, node_pools=self.node_pools, cluster=self.cluster, stack=args.stack
            ),
            k8s_opts,
        )

        ctx = args.fleet.context_for(args.stack)
        self.policies = PolicyManifests(
            f"{name}-policies",
            PolicyManifestsArgs(
                manifests=resolved.policies.render(ctx),
                depends_on=[self.namespace, *self.mesh.ready, *self.addons.ready],
            ),
            k8s_opts,
        )
        self.models = {
            model_name: ModelService(
                f"{name}-{model_name}",
                ModelServiceArgs(
                    stack=args.stack,
                    resolved=resolved,
                    model_name=model_name,
                    context=ctx,
                    cluster=self.cluster,
                    # the tier's PriorityClass too: the API server rejects pods naming a missing one
                    depends_on=[
                        self.namespace,
                        *self.mesh.ready,
                        *self.addons.ready,
                        *self.policies.priority_classes.values(),
                    ],
                ),
                k8s_opts,
            )
            for model_name in sorted(resolved.models)
        }

        self.dashboard = FleetDashboard(
            f"{name}-dashboard",
            FleetDashboardArgs(namespace=placement.namespace, depends_on=[self.namespace]),
            k8s_opts,
        )

        self._warn(args.stack, resolved, args.fleet)
        self.outputs = self._outputs(resolved)
        self.register_outputs(self.outputs)

    def _warn(self, stack: str, resolved: ResolvedStack, fleet: Fleet) -> None:
        """Warnings ``pulumi preview``/``up`` (and ``fleetkit preview``) show: unreachable images, and the
        fleet's single points of failure for the services this stack runs (``fleetkit.dr``)."""
        for field_name, ref in resolved.placement.images.unreachable():
            pulumi.log.warn(
                f"{stack}: images.{field_name} {ref} is on a public registry but internet_egress is "
                "false and no mirror is set: nodes cannot pull it (push it with images/build-push.sh "
                "or set images.mirror)",
                self,
            )
        local = {f"{m.service} {m.spec.version}" for m in resolved.models.values()}
        for w in dr.warnings(fleet):
            if w.service in local:
                pulumi.log.warn(f"[{w.rule}] {w.message}", self)

    def _outputs(self, resolved: ResolvedStack) -> dict[str, Any]:
        return {
            "cloud": resolved.placement.cloud,
            "region": resolved.placement.region,
            **self.cluster.exports(),
            **self.mesh.exports(),
            "models": sorted(resolved.models),
            "nodePools": sorted(resolved.pools),
        }
