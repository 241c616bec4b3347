"""GPU node pools: an EKS managed node group, a GKE node pool or an AKS agent pool per spec pool.

``create_gpu_node_pool`` picks the cloud implementation. Every implementation:

* labels nodes with the spec's labels plus ``fleetkit.dev/gpu-class`` and ``fleetkit.dev/pool`` (and
  ``k8s.amazonaws.com/accelerator`` on EKS, the cluster-autoscaler's GPU label);
* taints them with the spec's taints in the cloud API's spelling (``NO_SCHEDULE`` on EKS/GKE,
  ``key=value:NoSchedule`` on AKS);
* autoscales between ``min_size`` and ``max_size`` nodes (0 allowed: all three scale GPU pools to zero);
* puts the weight cache on fast local disks where the machine has them.

The pool exposes ``scheduling`` (node selector + tolerations) for the pods that must run on it.
Pure ``build_*`` helpers render the provider inputs; the classes only create resources.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_aws as aws
import pulumi_azure_native as azure_native
import pulumi_gcp as gcp

from components.cluster import GKE_OAUTH_SCOPES
from components.handles import ClusterHandle
from fleetkit.catalog import GpuInstanceType
from fleetkit.node_cache import gke_local_ssds, uses_instance_store
from fleetkit.pools import aws_ami_type, nodes_for
from fleetkit.resolve import ResolvedPool
from fleetkit.scheduling import GPU_RESOURCE, PodScheduling, aks_taints, eks_taints, gke_taints
from fleetkit.spec import NodePoolSpec

#: GKE regional node pools without explicit zones use the cluster's default locations (three zones).
GKE_DEFAULT_ZONES = 3
#: GCE machine-type prefixes that only take Hyperdisk boot disks.
HYPERDISK_ONLY = ("a3-ultragpu", "a4-")
#: Bottlerocket's OS volume (the data volume /dev/xvdb is sized by root_volume_gib).
BOTTLEROCKET_OS_GIB = 4
#: MIME boundary of AL2023 user data (any string not in the body).
_MIME_BOUNDARY = "FLEETKIT-NODEADM"


@dataclass
class GpuNodePoolArgs:
    #: the pool, resolved (:mod:`fleetkit.resolve`): catalog entry, GPU class, labels, scheduling
    pool: ResolvedPool
    #: the stack's cluster (node role and subnets on EKS, project and location on GKE, resource group on AKS)
    cluster: ClusterHandle
    #: ``cluster.name`` of the stack spec (autoscaler discovery tags, instance names)
    cluster_name: str


def _entry(pool: ResolvedPool) -> GpuInstanceType:
    if pool.instance is None:  # the loader reports pool.unknown-instance-type before any resource is built
        raise ValueError(f"{pool.instance_type!r} is not in the {pool.cloud} GPU catalog")
    return pool.instance


def initial_nodes(pool: NodePoolSpec) -> int:
    """Nodes a new pool starts with: desired_size, else min_size (the autoscaler takes over after)."""
    return pool.desired_size if pool.desired_size is not None else pool.min_size


# --------------------------------------------------------------------------- AWS
def build_eks_block_devices(pool: NodePoolSpec) -> list[aws.ec2.LaunchTemplateBlockDeviceMappingArgsDict]:
    """Launch-template disks: the AL2023 root (/dev/xvda) or Bottlerocket's OS + data (/dev/xvdb) volumes."""

    def ebs(size: int) -> aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgsDict:
        return {
            "volume_size": size,
            "volume_type": "gp3",
            "iops": 3000,
            "throughput": 250,
            "encrypted": "true",
            "delete_on_termination": "true",
        }

    if aws_ami_type(pool).startswith("BOTTLEROCKET"):
        return [
            {"device_name": "/dev/xvda", "ebs": ebs(BOTTLEROCKET_OS_GIB)},
            {"device_name": "/dev/xvdb", "ebs": ebs(pool.root_volume_gib)},
        ]
    return [{"device_name": "/dev/xvda", "ebs": ebs(pool.root_volume_gib)}]


def build_nodeadm_user_data(raid0: bool) -> str | None:
    """AL2023 user data (MIME multi-part with a nodeadm ``NodeConfig``), base64; None when not needed.

    EKS merges the cluster part of the NodeConfig in for managed node groups, so only the kit's
    settings are given: ``localStorage.strategy: RAID0`` puts kubelet and containerd state (and so
    emptyDir weight caches and image layers) on a RAID0 of the instance-store NVMe disks.
    """
    if not raid0:
        return None
    node_config = (
        "---\n"
        "apiVersion: node.eks.aws/v1alpha1\n"
        "kind: NodeConfig\n"
        "spec:\n"
        "  instance:\n"
        "    localStorage:\n"
        "      strategy: RAID0"
    )
    body = "\n".join(
        [
            "MIME-Version: 1.0",
            f'Content-Type: multipart/mixed; boundary="{_MIME_BOUNDARY}"',
            "",
            f"--{_MIME_BOUNDARY}",
            "Content-Type: application/node.eks.aws",
            "",
            node_config,
            "",
            f"--{_MIME_BOUNDARY}--",
            "",
        ]
    )
    return base64.b64encode(body.encode()).decode()


def build_autoscaler_tags(
    cluster_name: str, labels: dict[str, str], pool: NodePoolSpec, gpus: int
) -> dict[str, str]:
    """Cluster-autoscaler tags for the node group's ASG: discovery, and node templates for scale-from-zero.

    With zero nodes the autoscaler learns a group's labels, taints and GPUs from these tags.
    """
    prefix = "k8s.io/cluster-autoscaler"
    tags = {f"{prefix}/enabled": "true", f"{prefix}/{cluster_name}": "owned"}
    for key, value in labels.items():
        tags[f"{prefix}/node-template/label/{key}"] = value
    for t in pool.taints:
        tags[f"{prefix}/node-template/taint/{t.key}"] = f"{t.value}:{t.effect}"
    tags[f"{prefix}/node-template/resources/{GPU_RESOURCE}"] = str(gpus)
    return dict(sorted(tags.items()))


def build_eks_node_group(resolved: ResolvedPool) -> dict[str, Any]:
    """The static inputs of ``aws.eks.NodeGroup`` (cluster, role, subnets and template are added later)."""
    pool = resolved.spec
    return {
        "node_group_name_prefix": f"{resolved.name}-",
        "ami_type": aws_ami_type(pool),
        "instance_types": [pool.instance_type],
        "capacity_type": "SPOT" if pool.spot else "ON_DEMAND",
        "scaling_config": {
            "min_size": pool.min_size,
            "desired_size": initial_nodes(pool),
            "max_size": pool.max_size,
        },
        "labels": dict(resolved.node_labels),
        "taints": eks_taints(pool.taints),
        "update_config": {"max_unavailable": 1},
    }


# --------------------------------------------------------------------------- GCP
def gke_disk_type(machine_type: str) -> str:
    return "hyperdisk-balanced" if machine_type.startswith(HYPERDISK_ONLY) else "pd-balanced"


def build_gke_node_config(resolved: ResolvedPool) -> dict[str, Any]:
    """``node_config`` of a GKE GPU node pool (service account added by the component)."""
    pool = resolved.spec
    entry = _entry(resolved)
    driver = pool.gcp.gpu_driver_version if pool.gcp else "LATEST"
    config: dict[str, Any] = {
        "machine_type": pool.instance_type,
        "guest_accelerators": [
            {
                "type": entry.gke_accelerator,
                "count": entry.gpu_count,
                # unset means GKE installs no driver at all: always say which one
                "gpu_driver_installation_config": {"gpu_driver_version": driver},
            }
        ],
        "spot": pool.spot,
        "disk_size_gb": pool.root_volume_gib,
        "disk_type": gke_disk_type(pool.instance_type),
        "image_type": "COS_CONTAINERD",
        "gvnic": {"enabled": True},
        "labels": dict(resolved.node_labels),
        "taints": gke_taints(pool.taints),
        "oauth_scopes": list(GKE_OAUTH_SCOPES),
        "metadata": {"disable-legacy-endpoints": "true"},
        "workload_metadata_config": {"mode": "GKE_METADATA"},
        # GKE-installed drivers are signed; drivers the GPU Operator builds are not
        "shielded_instance_config": {
            "enable_secure_boot": driver != "INSTALLATION_DISABLED",
            "enable_integrity_monitoring": True,
        },
    }
    ssds = gke_local_ssds(pool, entry)
    if ssds:
        config["ephemeral_storage_local_ssd_config"] = {"local_ssd_count": ssds}
    return config


def build_gke_autoscaling(pool: NodePoolSpec) -> gcp.container.NodePoolAutoscalingArgsDict:
    """Whole-pool bounds (``total_*``: GKE's plain min/max are per zone); ANY finds scarce GPUs."""
    return {
        "total_min_node_count": pool.min_size,
        "total_max_node_count": pool.max_size,
        "location_policy": "ANY",
    }


#: IMDSv2 response hop limit of GPU nodes: 1 keeps IMDS (and the node role) out of pods' reach.
IMDS_HOP_LIMIT = 1


# --------------------------------------------------------------------------- Azure
def build_aks_agent_pool(resolved: ResolvedPool) -> dict[str, Any]:
    """The static inputs of ``containerservice.AgentPool`` (resource group/cluster/subnet added later)."""
    pool = resolved.spec
    opts = pool.azure
    args: dict[str, Any] = {
        "agent_pool_name": resolved.name,
        "mode": "User",
        "os_type": "Linux",
        "os_sku": "Ubuntu",
        "type": "VirtualMachineScaleSets",
        "vm_size": pool.instance_type,
        "count": initial_nodes(pool),
        "enable_auto_scaling": True,
        "min_count": pool.min_size,
        "max_count": pool.max_size,
        "os_disk_size_gb": pool.root_volume_gib,
        "os_disk_type": "Managed",
        "node_labels": dict(resolved.node_labels),
        "node_taints": aks_taints(pool.taints),
        "gpu_profile": {"driver": opts.gpu_driver if opts else "Install"},
        "scale_set_priority": "Spot" if pool.spot else "Regular",
    }
    if pool.zones:
        args["availability_zones"] = list(pool.zones)
    if pool.spot:
        args["scale_set_eviction_policy"] = opts.spot_eviction_policy if opts else "Delete"
        args["spot_max_price"] = opts.spot_max_price if opts else -1
    if opts is not None and opts.mig_profile is not None:
        args["gpu_instance_profile"] = opts.mig_profile
    return args


# --------------------------------------------------------------------------- components
class GpuNodePool(pulumi.ComponentResource):
    """One GPU node pool; ``scheduling`` places pods on it, ``gpu_class`` names its GPU."""

    gpu_class: str
    scheduling: PodScheduling
    gpus_per_node: int
    #: the cloud resource (node group / node pool / agent pool) pods wait for
    resource: pulumi.CustomResource

    def __init__(
        self, type_token: str, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None
    ):
        super().__init__(type_token, name, None, opts)
        _entry(args.pool)
        self.pool_name = args.pool.name
        self.gpu_class = args.pool.gpu_class
        self.gpus_per_node = args.pool.gpus_per_node
        self.scheduling = args.pool.scheduling
        self._child = pulumi.ResourceOptions(parent=self)

    def _finish(self) -> None:
        self.register_outputs(
            {
                "gpuClass": self.gpu_class,
                "gpusPerNode": self.gpus_per_node,
                "nodeSelector": self.scheduling.node_selector,
                "tolerations": self.scheduling.tolerations,
                "resourceId": self.resource.id,
            }
        )


class AwsGpuNodePool(GpuNodePool):
    """EKS managed node group with an NVIDIA AMI, a launch template for disks, and autoscaler tags."""

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleetkit:components:AwsGpuNodePool", name, args, opts)
        pool, cluster, pool_name = args.pool.spec, args.cluster, args.pool.name
        entry = _entry(args.pool)
        if cluster.node_role_arn is None or cluster.subnet_ids is None:
            raise ValueError("aws: the cluster exposes no node role or subnets for the node group")
        tags = {**cluster.tags, "fleetkit-pool": pool_name}
        metadata_options: aws.ec2.LaunchTemplateMetadataOptionsArgsDict = {
            "http_endpoint": "enabled",
            "http_tokens": "required",
            # 1: a pod's packets to IMDS take a second hop, so pods cannot read the node role's
            # credentials and must use their IRSA identity (EKS best practices, "Restrict access
            # to the instance profile assigned to the worker node")
            "http_put_response_hop_limit": IMDS_HOP_LIMIT,
        }
        tag_specifications: list[aws.ec2.LaunchTemplateTagSpecificationArgsDict] = [
            {"resource_type": "instance", "tags": {**tags, "Name": f"{args.cluster_name}-{pool_name}"}},
            {"resource_type": "volume", "tags": tags},
        ]
        template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"fleetkit GPU pool {pool_name} ({pool.instance_type})",
            block_device_mappings=build_eks_block_devices(pool),
            user_data=build_nodeadm_user_data(uses_instance_store(pool, entry)),
            metadata_options=metadata_options,
            tag_specifications=tag_specifications,
            update_default_version=True,
            tags=tags,
            opts=self._child,
        )
        subnets: pulumi.Input[list[str]] = cluster.subnet_ids
        if pool.zones:
            filters: list[aws.ec2.GetSubnetsFilterArgsDict] = [
                # an Output is fine here: the *_output invoke resolves its inputs first (the dict type is the plain invoke's)
                {"name": "subnet-id", "values": cluster.subnet_ids},  # type: ignore[typeddict-item]
                {"name": "availability-zone", "values": list(pool.zones)},
            ]
            subnets = aws.ec2.get_subnets_output(
                filters=filters,
                opts=pulumi.InvokeOutputOptions(parent=self),
            ).ids
        static = build_eks_node_group(args.pool)
        group = aws.eks.NodeGroup(
            f"{name}-ng",
            cluster_name=cluster.cloud_name,
            node_role_arn=cluster.node_role_arn,
            subnet_ids=subnets,
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            tags=tags,
            **static,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["scalingConfig.desiredSize"]),
        )
        asg = group.resources.apply(_autoscaling_group_name)
        labels = static["labels"]
        for key, value in build_autoscaler_tags(args.cluster_name, labels, pool, entry.gpu_count).items():
            aws.autoscaling.Tag(
                f"{name}-asg-{_tag_suffix(key)}",
                autoscaling_group_name=asg,
                tag={"key": key, "value": value, "propagate_at_launch": False},
                opts=self._child,
            )
        self.launch_template = template
        self.resource = group
        self._finish()


def _autoscaling_group_name(resources: Sequence[aws.eks.outputs.NodeGroupResource] | None) -> str:
    """The Auto Scaling group EKS created for a managed node group (it reports exactly one)."""
    groups = (resources[0].autoscaling_groups if resources else None) or []
    if not groups or groups[0].name is None:
        raise ValueError("EKS reported no Auto Scaling group for the node group")
    return groups[0].name


def _tag_suffix(key: str) -> str:
    short = key.removeprefix("k8s.io/cluster-autoscaler/").replace("node-template/", "")
    return "".join(c if c.isalnum() else "-" for c in short).strip("-").lower()


class GcpGpuNodePool(GpuNodePool):
    """GKE node pool with guest accelerators (driver version explicit), spot, local SSD and autoscaling."""

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleetkit:components:GcpGpuNodePool", name, args, opts)
        pool, cluster = args.pool.spec, args.cluster
        node_config = build_gke_node_config(args.pool)
        node_config["service_account"] = cluster.node_service_account
        node_config["resource_labels"] = {**cluster.tags, "fleetkit-pool": args.pool.name}
        zones = len(pool.zones) or GKE_DEFAULT_ZONES
        self.resource = gcp.container.NodePool(
            f"{name}-np",
            name_prefix=f"{args.pool.name}-",
            cluster=cluster.cloud_name,
            project=cluster.gcp_project,
            location=cluster.location,
            node_locations=list(pool.zones) or None,
            initial_node_count=nodes_for(initial_nodes(pool), zones),
            autoscaling=build_gke_autoscaling(pool),
            management={"auto_repair": True, "auto_upgrade": True},
            # the builder's plain dict is the provider's node_config input (checked by the golden files)
            node_config=cast("gcp.container.NodePoolNodeConfigArgsDict", node_config),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["initialNodeCount"]),
        )
        self._finish()


class AzureGpuNodePool(GpuNodePool):
    """AKS user agent pool: GPU VM size, autoscaling, Spot, MIG and GPU driver profile."""

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fleetkit:components:AzureGpuNodePool", name, args, opts)
        cluster = args.cluster
        inputs = build_aks_agent_pool(args.pool)
        if cluster.vnet_subnet_id is not None:
            inputs["vnet_subnet_id"] = cluster.vnet_subnet_id
        self.resource = azure_native.containerservice.AgentPool(
            f"{name}-pool",
            resource_group_name=cluster.resource_group_name,
            resource_name_=cluster.cloud_name,
            tags={**cluster.tags, "fleetkit-pool": args.pool.name},
            **inputs,
            # AKS pool names are fixed (no prefixes): a replacement must delete the old pool first;
            # the autoscaler owns the node count
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True, ignore_changes=["count"]),
        )
        self._finish()


_BY_CLOUD: dict[str, type[GpuNodePool]] = {
    "aws": AwsGpuNodePool,
    "gcp": GcpGpuNodePool,
    "azure": AzureGpuNodePool,
}


def create_gpu_node_pool(
    name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None
) -> GpuNodePool:
    """The node pool component of the stack's cloud."""
    cls = _BY_CLOUD[args.pool.cloud]
    return cls(name, args, opts)  # type: ignore[call-arg]
