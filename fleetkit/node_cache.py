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

Rule ``pool.cache-too-small`` (:func:`check_cache_fit`): the weights of every model placed on a
pool — all versions, since a node may hold all of them at once (the prefetch DaemonSet of a
``hot`` model warms every node; a canary or a rollout puts the next version beside the current one)
— must fit the pool's cache. Otherwise ``weights-sync`` fails with "not enough cache space" and
the model can never start. The message offers the fixes: instance-store RAID0 on AL2023 where the
instance type has NVMe, or the ``root_volume_gib`` that would fit.
"""

from __future__ import annotations

import math

from fleetkit import capacity, catalog
from fleetkit.errors import Issue
from fleetkit.pools import gce_bundled_local_ssds
from fleetkit.spec import ModelSpec, RegionStackSpec

#: Share of a local NVMe/SSD kubelet filesystem, and of a network boot/data disk, the cache may use.
LOCAL_DISK_SHARE = 0.6
NETWORK_DISK_SHARE = 0.4
#: GiB of one GCE Local SSD.
GCE_LOCAL_SSD_GIB = 375

RULE_CACHE_TOO_SMALL = "pool.cache-too-small"

_GIB = 2**30


def local_cache_disk_bytes(spec: RegionStackSpec, pool: str, instance: catalog.GpuInstanceType) -> int:
    """Bytes of local NVMe/SSD under the kubelet root of the pool's nodes (0 = a network disk).

    Mirrors the node pools: EKS RAID0s instance-store NVMe on AL2023 unless
    ``aws.instance_store_cache: false``; GKE puts ``gcp.local_ssd_count`` (else the bundled) local
    SSDs under ephemeral storage; AKS pools keep the kubelet on the OS disk.
    """
    p = spec.node_pools[pool]
    if spec.cloud == "aws":
        ami = p.aws.ami_type if p.aws else "AL2023_x86_64_NVIDIA"
        wanted = p.aws.instance_store_cache if p.aws else None  # None: on when the type has NVMe
        return instance.local_nvme_gb * 10**9 if ami.startswith("AL2023") and wanted is not False else 0
    if spec.cloud == "gcp":
        configured = p.gcp.local_ssd_count if p.gcp else None
        count = configured if configured is not None else gce_bundled_local_ssds(instance)
        return count * GCE_LOCAL_SSD_GIB * _GIB
    return 0


def max_cache_bytes(spec: RegionStackSpec, pool: str, instance: catalog.GpuInstanceType) -> int:
    """The agent's cache capacity (``--max-cache-bytes``) on the pool's nodes (see the module docstring)."""
    local = local_cache_disk_bytes(spec, pool, instance)
    if local:
        return int(local * LOCAL_DISK_SHARE)
    return int(spec.node_pools[pool].root_volume_gib * _GIB * NETWORK_DISK_SHARE)


def model_weights_bytes(model: ModelSpec) -> int:
    size = capacity.ModelSize(
        params_billion=model.params_billion, dtype=model.dtype, weights_bytes=model.weights_bytes
    )
    return math.ceil(capacity.weights_gib(size) * _GIB)


def _disk_words(spec: RegionStackSpec, pool: str, instance: catalog.GpuInstanceType) -> str:
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


def _fixes(spec: RegionStackSpec, pool: str, instance: catalog.GpuInstanceType, need: int) -> str:
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


def check_cache_fit(spec: RegionStackSpec) -> list[Issue]:
    """Rule ``pool.cache-too-small`` for every pool of a region stack that has models."""
    out: list[Issue] = []
    by_pool: dict[str, list[str]] = {}
    for name, model in sorted(spec.models.items()):
        if model.pool in spec.node_pools:
            by_pool.setdefault(model.pool, []).append(name)
    for pool, names in sorted(by_pool.items()):
        instance = catalog.lookup(spec.cloud, spec.node_pools[pool].instance_type)
        if instance is None:
            continue  # reported as pool.unknown-instance-type
        need = sum(model_weights_bytes(spec.models[n]) for n in names)
        cap = max_cache_bytes(spec, pool, instance)
        if need <= cap:
            continue
        each = ", ".join(f"{n} {model_weights_bytes(spec.models[n]) / _GIB:,.1f} GiB" for n in names)
        out.append(
            Issue(
                ("node_pools", pool),
                RULE_CACHE_TOO_SMALL,
                f"the weights of the models on pool '{pool}' ({each}; {need / _GIB:,.1f} GiB together, all may share "
                f"a node) exceed its node cache of {cap / _GIB:,.1f} GiB ({_disk_words(spec, pool, instance)}): "
                f"weights-sync would fail and the model never start; fix: {_fixes(spec, pool, instance, need)}",
                spec.node_pools[pool].instance_type,
            )
        )
    return out
