"""The resolve step: a validated region stack, resolved once into the facts every reader needs.

A pool's catalog entry, GPU class, GPUs per node, local disk and weight-cache capacity, its node
labels and the pod scheduling that lands on it; a model's size, GPUs per pod, weight bytes and its
fit on its pool — each computed here, from the one function that owns it (:mod:`fleetkit.pools`,
:mod:`fleetkit.scheduling`, :mod:`fleetkit.node_cache`, :mod:`fleetkit.capacity`), and read by the
checks (:mod:`fleetkit.capacity_checks`, :mod:`fleetkit.model_checks`,
:mod:`fleetkit.infra_checks`), the capacity plan, the components (node pools,
model services), the report and the fleet-wide views (:meth:`fleetkit.fleet.LoadedStack.resolved`
caches one :class:`ResolvedStack` per loaded stack). Nothing downstream looks a pool's instance type
up in the catalog again or rebuilds a :class:`~fleetkit.capacity.ModelSize` from a model spec.

Total over any stack that passed the typed validation: an unknown instance type resolves to a pool
with ``instance=None`` (the check reports ``pool.unknown-instance-type``), a model on a pool that
does not exist to ``pool=None``, and a fit that cannot be judged to the issues that say why. Issue
paths stay tuples relative to the model entry (``("tensor_parallel",)``, ``("pool",)``) until a
check puts them under ``("models", <name>)`` and the loader locates them to a file.

The pattern is pulumi-eks' ``createManagedNodeGroup`` (resolve the args once, then build) and
cdk8s-plus' constructs (defaults resolved in the constructor, rendering reads only resolved state).
The model's engine command line is resolved with the render context it depends on (the telemetry
collector's address) by ``components.model_plan.plan_model``, from :class:`ResolvedModel`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetkit import capacity, catalog, node_cache
from fleetkit.catalog import GpuInstanceType
from fleetkit.errors import Issue
from fleetkit.pools import gpu_class_of
from fleetkit.scheduling import PodScheduling, node_labels, pod_scheduling
from fleetkit.spec import ModelSpec, NodePoolSpec, RegionStackSpec
from policies.context import UNKNOWN_GPU_CLASS  # a pool with an unknown instance type, a model with no pool

_GIB = 2**30


@dataclass(frozen=True)
class ResolvedPool:
    """One GPU node pool of a stack with its catalog facts resolved."""

    name: str
    spec: NodePoolSpec
    cloud: str
    #: the catalog entry; None for an instance type fleetkit does not know
    instance: GpuInstanceType | None
    #: ``l4``, ``h100`` … (``unknown`` without a catalog entry)
    gpu_class: str
    gpus_per_node: int
    #: bytes of local NVMe/SSD under the kubelet root (0: the cache lives on a network disk)
    local_disk_bytes: int
    #: the weight-cache agent's ``--max-cache-bytes`` on this pool's nodes (0 without a catalog entry)
    cache_bytes: int
    #: labels every node of the pool carries (the spec's own, then the kit's)
    node_labels: Mapping[str, str]
    #: node selector and tolerations that put a pod on this pool only
    scheduling: PodScheduling

    @property
    def instance_type(self) -> str:
        return self.spec.instance_type


@dataclass(frozen=True)
class ResolvedModel:
    """One model of a stack with its size and its fit on its pool resolved."""

    name: str
    spec: ModelSpec
    #: the mesh service it serves as (``service``, default its key)
    service: str
    #: the pool it is placed on; None when ``pool`` names no pool of the stack
    pool: ResolvedPool | None
    size: capacity.ModelSize
    #: GPUs one pod takes: tensor_parallel x pipeline_parallel
    gpus_per_pod: int
    #: bytes of the weights (declared, else params x dtype); None when the size cannot be computed
    weights_bytes: int | None
    #: GPU memory one replica needs and may use on its pool, GiB (nan when not computable)
    needed_gib: float
    available_gib: float
    #: what :func:`fleetkit.capacity.check_fit` found, paths relative to the model entry
    fit: tuple[Issue, ...] = field(default=())

    @property
    def gpu_class(self) -> str:
        return self.pool.gpu_class if self.pool is not None else UNKNOWN_GPU_CLASS

    @property
    def weights_gib(self) -> float:
        return capacity.weights_gib(self.size)


@dataclass(frozen=True)
class ResolvedStack:
    """A region stack's spec with every pool and model resolved (both keyed and sorted by name)."""

    spec: RegionStackSpec
    pools: Mapping[str, ResolvedPool]
    models: Mapping[str, ResolvedModel]

    @property
    def cloud(self) -> str:
        return self.spec.cloud

    def models_on(self, pool: str) -> list[ResolvedModel]:
        """The models placed on ``pool``, sorted by name."""
        return [m for m in self.models.values() if m.pool is not None and m.pool.name == pool]


def model_size(model: ModelSpec) -> capacity.ModelSize:
    """The sizing inputs of a model spec (the one place a spec becomes a :class:`~fleetkit.capacity.ModelSize`)."""
    return capacity.ModelSize(
        params_billion=model.params_billion,
        dtype=model.dtype,
        weights_bytes=model.weights_bytes,
        kv_cache_gib=model.kv_cache_gib,
        max_model_len=model.max_model_len,
    )


def resolve_pool(spec: RegionStackSpec, name: str) -> ResolvedPool:
    """Resolve one node pool of ``spec``."""
    pool = spec.node_pools[name]
    entry = catalog.lookup(spec.cloud, pool.instance_type)
    return ResolvedPool(
        name=name,
        spec=pool,
        cloud=spec.cloud,
        instance=entry,
        gpu_class=gpu_class_of(spec, name),
        gpus_per_node=entry.gpu_count if entry else 0,
        local_disk_bytes=node_cache.local_cache_disk_bytes(spec, name, entry) if entry else 0,
        cache_bytes=node_cache.max_cache_bytes(spec, name, entry) if entry else 0,
        node_labels=node_labels(spec, name),
        scheduling=pod_scheduling(spec, name),
    )


def resolve_model(spec: RegionStackSpec, name: str, pools: Mapping[str, ResolvedPool]) -> ResolvedModel:
    """Resolve one model of ``spec`` against the already resolved ``pools``."""
    model = spec.models[name]
    pool = pools.get(model.pool or "")
    size = model_size(model)
    try:
        weights: int | None = math.ceil(capacity.weights_gib(size) * _GIB)
    except ValueError:
        weights = None
    needed = available = math.nan
    fit: tuple[Issue, ...] = ()
    if pool is not None and pool.instance is not None:
        fit = tuple(
            capacity.check_fit(
                model=name,
                pool=pool.name,
                cloud=spec.cloud,
                instance=pool.instance,
                tensor_parallel=model.tensor_parallel,
                size=size,
                gpu_memory_utilization=model.gpu_memory_utilization,
            )
        )
        tp = max(model.tensor_parallel, 1)
        available = capacity.available_gib(pool.instance, tp, model.gpu_memory_utilization)
        if weights is not None:
            needed = capacity.required_gib(size, tp)
    return ResolvedModel(
        name=name,
        spec=model,
        service=spec.service_of(name),
        pool=pool,
        size=size,
        gpus_per_pod=model.tensor_parallel * model.pipeline_parallel,
        weights_bytes=weights,
        needed_gib=needed,
        available_gib=available,
        fit=fit,
    )


def resolve(spec: RegionStackSpec) -> ResolvedStack:
    """Resolve every pool and model of a (validated) region stack."""
    pools = {name: resolve_pool(spec, name) for name in sorted(spec.node_pools)}
    models = {name: resolve_model(spec, name, pools) for name in sorted(spec.models)}
    return ResolvedStack(spec=spec, pools=pools, models=models)
