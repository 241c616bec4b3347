"""GPU node-pool facts derived from the catalog: GPUs per node, GPU class, bundled local SSDs, nodes per zone.

Pure domain helpers read by the checks, the components and the capacity plan, so each fact has one
owner. GCE local SSDs are ``catalog.GCE_LOCAL_SSD_GIB`` each.
"""

from __future__ import annotations

import math

from fleetkit import catalog
from fleetkit.spec import AwsPoolOptions, NodePoolSpec, RegionStackSpec
from policies.context import UNKNOWN_GPU_CLASS

#: The EKS options a pool without an ``aws:`` block gets (their field defaults).
_AWS_DEFAULTS = AwsPoolOptions()


def gpu_class_of(stack: RegionStackSpec, pool: str) -> str:
    """The GPU class (``l4``, ``h100`` …) of a pool of the stack; ``unknown`` for an unknown pool or type."""
    p = stack.node_pools.get(pool)
    if p is None:
        return UNKNOWN_GPU_CLASS
    entry = catalog.lookup(stack.cloud, p.instance_type)
    return entry.gpu_class if entry else UNKNOWN_GPU_CLASS


def aws_ami_type(pool: NodePoolSpec) -> str:
    """The pool's EKS AMI type: ``aws.ami_type``, or that field's default without an ``aws:`` block."""
    return (pool.aws or _AWS_DEFAULTS).ami_type


def gce_bundled_local_ssds(entry: catalog.GpuInstanceType) -> int:
    """Local SSDs (``catalog.GCE_LOCAL_SSD_GIB`` each) a GCE machine type bundles; 0 when it only accepts optional ones."""
    if entry.cloud != "gcp" or entry.local_nvme_gb == 0:
        return 0
    return round(entry.local_nvme_gb / (catalog.GCE_LOCAL_SSD_GIB * 2**30 / 1e9))


def nodes_for(total: int, zones: int) -> int:
    """Nodes per zone for ``total`` nodes spread over ``zones`` zones (rounded up)."""
    return math.ceil(total / max(zones, 1))
