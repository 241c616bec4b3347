"""A typed catalog of the GPU instance types fleetkit knows how to size.

Pure data and lookups: no engine, no credentials, no network. The capacity check
(:mod:`fleetkit.capacity`), the stack-spec validation and the ``plan-capacity`` CLI read it.

The tables themselves — GPU figures, machine types and regional offerings, each with its source and
the units and trust convention of the figures — are :mod:`fleetkit.catalog_data`; this module holds
the lookups, the fit arithmetic and :func:`offered_in`, and re-exports the record types.

Regional offerings
------------------
:func:`offered_in` answers "is this type offered in that region?" from a deliberately small table
(``REGIONAL_OFFERINGS``) of facts stated with reasonable confidence but **not verified** against a
live provider listing. Each row names regions where an offering key (a family such as ``g6e`` or a
machine-type prefix such as ``a3-highgpu``) is known to be offered and, separately, regions where
the whole family is known to be absent. The answer is ``True`` only for a listed offered region,
``False`` only for a listed absent region, and ``None`` ("unknown") for everything else, including
regions and types the table does not mention. A caller must treat ``None`` as "do not reject":
the table exists to catch the obvious mistake (an H100 machine type in a region known to have no
H100s), never to gate deployments on incomplete knowledge. Offered regions are listed per machine
type prefix where variants of a family roll out separately (``a3-highgpu`` vs ``a3-ultragpu``);
absence is listed per family, because a region without the family has none of its variants.
"""

from __future__ import annotations

import difflib

from fleetkit.catalog_data import CATALOG as _CATALOG
from fleetkit.catalog_data import (
    CLOUDS,
    GCE_LOCAL_SSD_GIB,
    REGIONAL_OFFERINGS,
    Cloud,
    GpuClass,
    GpuInstanceType,
    RegionalOffering,
)

__all__ = [
    "CLOUDS",
    "GCE_LOCAL_SSD_GIB",
    "REGIONAL_OFFERINGS",
    "Cloud",
    "GpuClass",
    "GpuInstanceType",
    "RegionalOffering",
    "fits",
    "instance_types",
    "lookup",
    "min_tensor_parallel",
    "offered_in",
    "replica_need_gib",
    "smallest_fitting",
    "suggest",
    "usable_gib",
]

_BY_KEY: dict[tuple[str, str], GpuInstanceType] = {(t.cloud, t.name.lower()): t for t in _CATALOG}


# --------------------------------------------------------------------------------------------------
# Lookups
# --------------------------------------------------------------------------------------------------


def _norm_cloud(cloud: str) -> str:
    return cloud.strip().lower()


def lookup(cloud: str, name: str) -> GpuInstanceType | None:
    """The catalog entry for ``name`` on ``cloud``, or None when fleetkit does not know the type.

    Names match case-insensitively (Azure sizes are case-insensitive; AWS and GCP names are lower
    case anyway). No other normalisation: ``NC24ads_A100_v4`` without ``Standard_`` is not found,
    and :func:`suggest` proposes the full name.
    """
    return _BY_KEY.get((_norm_cloud(cloud), name.strip().lower()))


def instance_types(cloud: str | None = None) -> list[GpuInstanceType]:
    """All entries, or those of one cloud, in catalog order (AWS, GCP, Azure; small to large)."""
    if cloud is None:
        return list(_CATALOG)
    wanted = _norm_cloud(cloud)
    return [t for t in _CATALOG if t.cloud == wanted]


def suggest(cloud: str, name: str, limit: int = 3) -> list[str]:
    """Catalog names on ``cloud`` close to ``name``, best first, for "did you mean" messages."""
    names = [t.name for t in instance_types(cloud)]
    if not names:
        return []
    folded = {n.lower(): n for n in names}
    probe = name.strip().lower()
    out: list[str] = []
    # A bare Azure size without the ``Standard_`` prefix, or a GCE type missing its suffix.
    for low, real in folded.items():
        if probe and (low.endswith(probe) or low.startswith(probe)) and low != probe:
            out.append(real)
    for low in difflib.get_close_matches(probe, list(folded), n=limit + len(out), cutoff=0.6):
        if folded[low] not in out:
            out.append(folded[low])
    return out[:limit]


def fits(
    instance: GpuInstanceType,
    required_gib: float,
    tensor_parallel: int,
    *,
    per_gpu_overhead_gib: float = 0.0,
    gpu_memory_utilization: float = 1.0,
) -> bool:
    """Whether ``required_gib`` (+ overhead per GPU) fits ``tensor_parallel`` GPUs of ``instance``.

    ``tensor_parallel`` must divide the machine's GPU count; the usable memory is
    ``gpu_memory_gib * tensor_parallel * gpu_memory_utilization``.
    """
    if tensor_parallel < 1 or instance.gpu_count % tensor_parallel:
        return False
    needed = replica_need_gib(required_gib, tensor_parallel, per_gpu_overhead_gib)
    return needed <= usable_gib(instance, tensor_parallel, gpu_memory_utilization)


def replica_need_gib(required_gib: float, tensor_parallel: int, per_gpu_overhead_gib: float = 0.0) -> float:
    """GPU memory one replica needs over its GPUs: ``required_gib`` plus the overhead of each GPU.

    The one place the fit formula's left side is written (``fleetkit.capacity`` sizes
    ``required_gib`` as weights + KV cache and passes its per-GPU overhead).
    """
    return required_gib + per_gpu_overhead_gib * max(tensor_parallel, 1)


def usable_gib(instance: GpuInstanceType, tensor_parallel: int, gpu_memory_utilization: float = 1.0) -> float:
    """GPU memory a replica may use on ``tensor_parallel`` GPUs of ``instance``: the formula's right side."""
    return instance.gpu_memory_gib * tensor_parallel * gpu_memory_utilization


def min_tensor_parallel(
    instance: GpuInstanceType,
    required_gib: float,
    *,
    per_gpu_overhead_gib: float = 0.0,
    gpu_memory_utilization: float = 1.0,
) -> int | None:
    """The smallest tensor-parallel size on ``instance`` that fits, or None if none does."""
    for tp in instance.tensor_parallel_options():
        if fits(
            instance,
            required_gib,
            tp,
            per_gpu_overhead_gib=per_gpu_overhead_gib,
            gpu_memory_utilization=gpu_memory_utilization,
        ):
            return tp
    return None


def _size_order(t: GpuInstanceType) -> tuple[float, int, int, str]:
    return (t.total_gpu_memory_gib, t.gpu_count, t.vcpu, t.name)


def smallest_fitting(
    cloud: str,
    required_gpu_gib_per_replica: float,
    tensor_parallel: int | None = None,
    *,
    per_gpu_overhead_gib: float = 0.0,
    gpu_memory_utilization: float = 1.0,
) -> GpuInstanceType | None:
    """The smallest entry on ``cloud`` whose GPUs hold one replica, or None.

    Smallest means least total GPU memory, then fewest GPUs, then fewest vCPUs (the smaller host of
    the same GPUs, e.g. ``g5.xlarge`` before ``g5.2xlarge``), then name. ``required_gpu_gib_per_replica``
    is the GPU memory one replica needs across all its GPUs. With ``tensor_parallel`` given, the
    machine must have a multiple of that many GPUs and that many must hold the replica; with None,
    any tensor-parallel size that divides the machine's GPU count may be used (see
    :func:`min_tensor_parallel` for which). ``per_gpu_overhead_gib`` is added once per GPU used and
    ``gpu_memory_utilization`` scales the usable memory (both neutral by default).
    """
    for t in sorted(instance_types(cloud), key=_size_order):
        if tensor_parallel is None:
            ok = (
                min_tensor_parallel(
                    t,
                    required_gpu_gib_per_replica,
                    per_gpu_overhead_gib=per_gpu_overhead_gib,
                    gpu_memory_utilization=gpu_memory_utilization,
                )
                is not None
            )
        else:
            ok = fits(
                t,
                required_gpu_gib_per_replica,
                tensor_parallel,
                per_gpu_overhead_gib=per_gpu_overhead_gib,
                gpu_memory_utilization=gpu_memory_utilization,
            )
        if ok:
            return t
    return None


def _norm_region(cloud: str, region: str) -> str:
    text = region.strip().lower()
    # Azure display names ("East US") and ARM names ("eastus") are the same location.
    return text.replace(" ", "") if cloud == "azure" else text


def offered_in(cloud: str, name: str, region: str) -> bool | None:
    """True/False when fleetkit knows whether ``name`` is offered in ``region``; None when it does not.

    Conservative by design: False only for a region listed as lacking the whole family, True only
    for a region listed as offering the type's family or machine-type prefix, None otherwise
    (unknown types, unknown regions, zones instead of regions). Never reject on None.
    """
    t = lookup(cloud, name)
    if t is None:
        return None
    where = _norm_region(t.cloud, region)
    rows = [row for row in REGIONAL_OFFERINGS if row.applies_to(t)]
    if any(where in row.absent for row in rows):
        return False
    if any(where in row.offered for row in rows):
        return True
    return None
