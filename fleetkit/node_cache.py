"""The node-local weight cache of a GPU pool: its capacity, and whether the pool's models fit in it.

Every GPU node keeps one cache directory under the kubelet root (``components.model_render``
documents the contract). Its capacity, the agent's ``--max-cache-bytes``, is a share of the disk
that holds the kubelet root, because the kubelet evicts pods when that filesystem runs low
(``evictionHard`` ``nodefs.available<10%`` by default, Kubernetes "Node-pressure Eviction"):

* **local NVMe / SSD** — 60 %: EKS AL2023 RAID0s the instance-store NVMe with nodeadm
  ``localStorage: {strategy: RAID0}`` (EKS user guide, "Amazon EKS optimized AL2023 AMIs" /
  nodeadm ``NodeConfig.spec.instance.localStorage``); GKE puts ``local_ssd_count`` Local SSDs (375
  GiB each) under ephemeral storage (``ephemeral_storage_local_ssd_config``).
* **a network disk** — 40 % of ``root_volume_gib``: the Bottlerocket data volume (``/dev/xvdb``
  holds ``/var/lib`` on Bottlerocket), the AL2023 root volume without instance store, the AKS OS disk.

The rule that the weights of a pool's models fit its cache, ``pool.cache-too-small``, is
:func:`fleetkit.capacity_checks.check_cache_fit`; it words the disk and the fixes with
:func:`disk_words` and :func:`cache_fixes`.
"""

from __future__ import annotations

import math

from fleetkit import catalog
from fleetkit.pools import aws_ami_type, gce_bundled_local_ssds
from fleetkit.spec import NodePoolSpec, RegionStackSpec

#: Share of a local NVMe/SSD kubelet filesystem, and of a network boot/data disk, the cache may use.
LOCAL_DISK_SHARE = 0.6
NETWORK_DISK_SHARE = 0.4

_GIB = 2**30


def uses_instance_store(pool: NodePoolSpec, instance: catalog.GpuInstanceType) -> bool:
    """Does an EKS pool RAID0 its instance-store NVMe (nodeadm ``localStorage``)? AL2023 AMIs only;
    ``aws.instance_store_cache`` None (the default) means on when the type has NVMe."""
    if not aws_ami_type(pool).startswith("AL2023") or instance.local_nvme_gb == 0:
        return False
    wanted = pool.aws.instance_store_cache if pool.aws else None
    return wanted is not False


def gke_local_ssds(pool: NodePoolSpec, instance: catalog.GpuInstanceType) -> int:
    """Local SSDs under a GKE pool's ephemeral storage: ``gcp.local_ssd_count``, else what the type bundles."""
    configured = pool.gcp.local_ssd_count if pool.gcp else None
    return configured if configured is not None else gce_bundled_local_ssds(instance)


def local_cache_disk_bytes(spec: RegionStackSpec, pool: str, instance: catalog.GpuInstanceType) -> int:
    """Bytes of local NVMe/SSD under the kubelet root of the pool's nodes (0 = a network disk).

    Mirrors the node pools: EKS RAID0s instance-store NVMe on AL2023 unless
    ``aws.instance_store_cache: false``; GKE puts ``gcp.local_ssd_count`` (else the bundled) local
    SSDs under ephemeral storage; AKS pools keep the kubelet on the OS disk.
    """
    p = spec.node_pools[pool]
    if spec.cloud == "aws":
        return instance.local_nvme_gb * 10**9 if uses_instance_store(p, instance) else 0
    if spec.cloud == "gcp":
        return gke_local_ssds(p, instance) * catalog.GCE_LOCAL_SSD_GIB * _GIB
    return 0


def max_cache_bytes(spec: RegionStackSpec, pool: str, instance: catalog.GpuInstanceType) -> int:
    """The agent's cache capacity (``--max-cache-bytes``) on the pool's nodes (see the module docstring)."""
    local = local_cache_disk_bytes(spec, pool, instance)
    if local:
        return int(local * LOCAL_DISK_SHARE)
    return int(spec.node_pools[pool].root_volume_gib * _GIB * NETWORK_DISK_SHARE)


def disk_words(spec: RegionStackSpec, pool: str, instance: catalog.GpuInstanceType) -> str:
    """The disk the pool's cache lives on and the share it may use, in words (for messages)."""
    p = spec.node_pools[pool]
    local = local_cache_disk_bytes(spec, pool, instance)
    if local:
        return f"{LOCAL_DISK_SHARE:.0%} of {local / _GIB:,.0f} GiB local NVMe/SSD"
    if spec.cloud == "aws" and p.aws is not None and p.aws.ami_type.startswith("BOTTLEROCKET"):
        disk = "Bottlerocket data volume"
    elif spec.cloud == "azure":
        disk = "OS disk"
    else:
        disk = "root volume"
    return f"{NETWORK_DISK_SHARE:.0%} of the {p.root_volume_gib} GiB {disk}, root_volume_gib"


def cache_fixes(spec: RegionStackSpec, pool: str, instance: catalog.GpuInstanceType, need: int) -> str:
    """The changes that give the pool a cache of ``need`` bytes, cheapest first (for messages)."""
    fixes = []
    if local_cache_disk_bytes(spec, pool, instance) == 0 and instance.local_nvme_gb:
        nvme_cap = instance.local_nvme_gb * 10**9 * LOCAL_DISK_SHARE
        if nvme_cap >= need:
            if spec.cloud == "aws":
                fixes.append(
                    f"aws.ami_type: AL2023_x86_64_NVIDIA with instance-store RAID0 ({instance.name} has "
                    f"{instance.local_nvme_gb:,} GB NVMe: cache {nvme_cap / _GIB:,.0f} GiB)"
                )
            elif spec.cloud == "gcp":
                fixes.append(
                    f"gcp.local_ssd_count: {gce_bundled_local_ssds(instance) or 1}+ (local SSD cache)"
                )
    volume = math.ceil(need / NETWORK_DISK_SHARE / _GIB)
    if volume <= 16384:
        fixes.append(f"root_volume_gib: {volume} or more")
    fixes.append("or place the versions on separate pools")
    return "; ".join(fixes)
