"""The east-west gateway of a cluster's network, and the public ingress gateway.

The east-west gateway is what peers in other networks dial (15443, mTLS passthrough), so its
address must not change under them. Each cloud gets a static address bound to the gateway's
LoadBalancer Service:

* **AWS** — an internet-facing NLB (AWS Load Balancer Controller, pod-IP targets) on one Elastic IP
  per AZ (``aws-load-balancer-eip-allocations``). The NLB still publishes a hostname, which istiod
  resolves (``RESOLVE_HOSTNAME_GATEWAYS``) to these fixed addresses.
* **GCP** — a regional static external address (``gcp.compute.Address``) as the Service's
  ``loadBalancerIP`` on a backend-service-based passthrough NLB (``cloud.google.com/l4-rbs``).
* **Azure** — a Standard static public IP (``azure_native.network.PublicIPAddress``) in the cluster's
  resource group, named by ``azure-load-balancer-ipv4`` + ``azure-load-balancer-resource-group``.
  The cluster's identity needs *Network Contributor* on that resource group to attach it.

The static addresses carry ``protect`` (``protection.static_ips``, default on): a released address is
not given back, and every peer dials it. The AWS zones come from ``mesh.east_west_zones`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from fleetkit.kube import apply_manifest, resource_name
from fleetkit.resolve import ResolvedPlacement
from mesh import render
from mesh.control_plane import helm_release


@dataclass
class EastWestGatewayArgs:
    #: the stack's cloud, region, account, ``mesh`` section and protection (:mod:`fleetkit.resolve`)
    placement: ResolvedPlacement
    cluster_name: str
    network: str
    #: Azure: the resource group of the static public IP (the cluster's own resource group)
    resource_group: pulumi.Input[str] | None = None
    #: what the gateway waits for (istiod: the gateway's proxy is injected and configured by it)
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    extra_values: Mapping[str, Any] | None = None
    #: CIDRs the load balancer admits (:func:`mesh.topology.east_west_source_ranges`)
    source_ranges: list[str] = field(default_factory=list)


class EastWestGateway(pulumi.ComponentResource):
    """Static address(es), the ``istio/gateway`` release with ``networkGateway``, the 15443 ``Gateway``."""

    addresses: pulumi.Output[list[str]]

    def __init__(self, name: str, args: EastWestGatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleetkit:mesh:EastWestGateway", name, None, opts)
        placement = args.placement
        # a static address is what peers dial: the engine refuses to delete or replace it while protected
        child = pulumi.ResourceOptions(parent=self, protect=placement.protection.static_ips)
        # plain keys: Azure tag names may not contain '/', GCP label keys only [a-z0-9_-]
        tags = {"fleetkit-cluster": args.cluster_name, "fleetkit-role": "istio-eastwestgateway"}
        load_balancer_ip: Any = None
        self.static_ips: list[pulumi.CustomResource]
        if placement.cloud == "aws":
            import pulumi_aws as aws

            eips = [
                aws.ec2.Eip(
                    f"{name}-eip-{zone}",
                    domain="vpc",
                    tags={**tags, "Name": f"{args.cluster_name}-eastwest-{zone}"},
                    opts=child,
                )
                for zone in render.aws_eip_zones(placement.region, placement.mesh.east_west_zones)
            ]
            self.static_ips = list(eips)
            allocations = pulumi.Output.all(*[e.allocation_id for e in eips]).apply(
                lambda ids: ",".join(str(i) for i in ids)
            )
            annotations = render.aws_nlb_annotations(allocations)
            self.addresses = pulumi.Output.all(*[e.public_ip for e in eips]).apply(list)
        elif placement.cloud == "gcp":
            import pulumi_gcp as gcp

            address = gcp.compute.Address(
                f"{name}-ip",
                region=placement.region,
                project=placement.account.gcp_project,
                address_type="EXTERNAL",
                network_tier="PREMIUM",
                description=f"east-west gateway of mesh cluster {args.cluster_name}",
                labels=tags,
                opts=child,
            )
            self.static_ips = [address]
            annotations = render.gcp_lb_annotations()
            load_balancer_ip = address.address
            self.addresses = address.address.apply(lambda a: [a] if a else [])
        else:
            import pulumi_azure_native as azure_native

            resource_group = args.resource_group or placement.account.azure_resource_group
            if resource_group is None:
                raise ValueError("the Azure east-west gateway needs the cluster's resource group")
            ip = azure_native.network.PublicIPAddress(
                f"{name}-ip",
                resource_group_name=resource_group,
                location=placement.region,
                public_ip_allocation_method="Static",
                public_ip_address_version="IPv4",
                sku=azure_native.network.PublicIPAddressSkuArgs(name="Standard", tier="Regional"),
                tags=tags,
                opts=child,
            )
            self.static_ips = [ip]
            annotations = render.azure_lb_annotations(ip.ip_address, resource_group)
            self.addresses = ip.ip_address.apply(lambda a: [a] if a else [])

        annotations = {
            **annotations,
            **render.lb_idle_annotations(placement.cloud, placement.lb_idle_seconds, render.EASTWEST_PORTS),
        }
        after = pulumi.ResourceOptions(parent=self, depends_on=[*args.depends_on, *self.static_ips])
        plan = render.eastwest_release(
            placement.mesh.istio_version, args.network, annotations, load_balancer_ip, args.source_ranges
        )
        self.release = helm_release(f"{name}-release", plan, after, args.extra_values)
        gateway = render.cross_network_gateway()
        self.gateway = apply_manifest(
            resource_name(name, gateway),
            gateway,
            pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        self.register_outputs({"addresses": self.addresses})
