"""The resolve step: a validated region stack, resolved once into the facts every reader needs.

The stack's placement (:class:`ResolvedPlacement`: cloud, region, account, the ``cluster``,
``addons``, ``mesh``, ``images`` and ``protection`` sections, the load balancers' idle timeout, the
device plugin's placement and the pools' zones), which the cluster, add-on, load-balancer, identity
and mesh components take as their arguments instead of the whole spec. A pool's catalog entry, GPU
class, GPUs per node, local disk and weight-cache capacity, its node labels and the pod scheduling
that lands on it; a model's weights location, its ``vllm serve`` arguments
(:class:`fleetkit.engine_args.EngineArgs`), size, GPUs per pod, weight bytes and its fit on its
pool — each computed here, from the one function that owns it (:mod:`fleetkit.pools`,
:mod:`fleetkit.scheduling`, :mod:`fleetkit.node_cache`, :mod:`fleetkit.capacity`), and read by the
checks (:mod:`fleetkit.capacity_checks`, :mod:`fleetkit.model_checks`,
:mod:`fleetkit.infra_checks`), the capacity plan, the components (node pools,
model services), the report and the fleet-wide views (:meth:`fleetkit.fleet.LoadedStack.resolved`
caches one :class:`ResolvedStack` per loaded stack). Nothing downstream looks a pool's instance type
up in the catalog again or rebuilds a :class:`~fleetkit.capacity.ModelSize` from a model spec.

Total over any stack that passed the typed validation: an unknown instance type resolves to a pool
with ``instance=None`` (the check reports ``pool.unknown-instance-type``), a model on a pool that
does not exist to ``pool=None``, and a fit that cannot be judged to the issues that say why, and ``extra_args`` that the engine
arguments refuse to ``engine=None`` with the reason (the ``model.engine-arg-*`` checks report it). Issue
paths stay tuples relative to the model entry (``("tensor_parallel",)``, ``("pool",)``) until a
check puts them under ``("models", <name>)`` and the loader locates them to a file.

The pattern is pulumi-eks' ``createManagedNodeGroup`` (resolve the args once, then build) and
cdk8s-plus' constructs (defaults resolved in the constructor, rendering reads only resolved state).
One engine argument is not resolved here: ``--otlp-traces-endpoint`` is the telemetry collector's
address, which the render context names (its monitoring namespace and cluster domain);
``components.model_plan.plan_model`` adds it to :attr:`ResolvedModel.engine`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetkit import capacity, catalog, node_cache
from fleetkit.catalog import GpuInstanceType
from fleetkit.engine_args import EngineArgs
from fleetkit.errors import Issue
from fleetkit.pools import gpu_class_of
from fleetkit.scheduling import (
    PodScheduling,
    device_plugin_scheduling,
    needs_device_plugin,
    node_labels,
    pod_scheduling,
)
from fleetkit.spec import (
    Addons,
    Cloud,
    CloudAccount,
    ClusterSpec,
    ImagesSpec,
    MeshSpec,
    ModelSpec,
    NodePoolSpec,
    Protection,
    RegionStackSpec,
)
from policies.context import UNKNOWN_GPU_CLASS  # a pool with an unknown instance type, a model with no pool
from policies.policy_set import PolicySet

_GIB = 2**30
#: Where the vLLM container mounts the node's weight cache, read-only (the mount itself is rendered by
#: ``components.model_render``): a model's weights are at ``<this>/<bucket>/<prefix>``.
VLLM_MODELS_DIR = "/models"


@dataclass(frozen=True)
class WeightsLocation:
    """The bucket and prefix of a model's ``weights_uri`` (``s3://bucket/prefix``)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> WeightsLocation:
        if not uri.startswith("s3://"):
            raise ValueError(f"not an S3 URI: {uri!r}")
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        return cls(bucket, prefix.strip("/"))

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def cache_relpath(self) -> str:
        """Where the agent publishes the model under its cache directory."""
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket


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
    #: the weights' bucket and prefix (``weights_uri``, an ``s3://`` URI by the spec's own validation)
    weights: WeightsLocation
    #: the ``vllm serve`` arguments the spec determines: the weights' path, every typed flag, priority
    #: scheduling (``policies.qos``), ``extra_args``. The OTLP traces endpoint is not among them: it is the
    #: telemetry collector's address in the render context, added by ``components.model_plan``. None when
    #: ``extra_args`` has a problem (``engine_problem`` says which; the ``model.engine-arg-*`` checks report it)
    engine: EngineArgs | None
    #: what :func:`fleetkit.capacity.check_fit` found, paths relative to the model entry
    fit: tuple[Issue, ...] = field(default=())
    #: why ``engine`` is None (the engine arguments' validation message), else None
    engine_problem: str | None = None

    @property
    def gpu_class(self) -> str:
        return self.pool.gpu_class if self.pool is not None else UNKNOWN_GPU_CLASS

    @property
    def weights_gib(self) -> float:
        return capacity.weights_gib(self.size)


@dataclass(frozen=True)
class ResolvedPlacement:
    """Where a region stack runs, and the stack-level sections that shape its cluster.

    The cloud, region and account; the ``cluster`` section (created or adopted, access, foundation);
    the add-ons, the stack's mesh membership, the images and the protection options, as typed
    sections; and what follows from them and the pools: the load balancers' idle timeout, where the
    NVIDIA device plugin runs, the zones the pools name. The cluster, add-ons, load-balancer,
    workload-identity and mesh components read this, never the whole stack spec.
    """

    cloud: Cloud
    region: str
    account: CloudAccount
    cluster: ClusterSpec
    mesh: MeshSpec
    addons: Addons
    images: ImagesSpec
    protection: Protection
    #: the namespace of the model services
    namespace: str
    #: the load balancers' idle timeout, seconds (``mesh.lb_idle_timeout``, else the longest route timeout)
    lb_idle_seconds: int
    #: node selector and tolerations of the NVIDIA device plugin DaemonSet: every pool that needs the
    #: plugin (``addons.nvidia_device_plugin``); None when the stack does not install it
    device_plugin: PodScheduling | None
    #: every zone the stack's pools name, sorted (EKS picks a created cluster's default subnets in these)
    pool_zones: tuple[str, ...]


@dataclass(frozen=True)
class ResolvedStack:
    """A region stack's spec with its placement and every pool and model resolved (keyed and sorted by name)."""

    spec: RegionStackSpec
    placement: ResolvedPlacement
    pools: Mapping[str, ResolvedPool]
    models: Mapping[str, ResolvedModel]

    @property
    def cloud(self) -> str:
        return self.placement.cloud

    @property
    def policies(self) -> PolicySet:
        """The stack's serving policies (rendered with the fleet's context by the platform and the mesh)."""
        return self.spec.policies

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


def resolve_engine(
    model: ModelSpec, weights: WeightsLocation, *, priority_scheduling: bool
) -> tuple[EngineArgs | None, str | None]:
    """The model's ``vllm serve`` arguments without the OTLP endpoint, or None and why not."""
    try:
        engine = EngineArgs.from_spec(
            model,
            model_path=f"{VLLM_MODELS_DIR}/{weights.cache_relpath}",
            priority_scheduling=priority_scheduling,
        )
    except ValueError as err:  # extra_args (pydantic's ValidationError is a ValueError)
        return None, str(err)
    return engine, None


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
    location = WeightsLocation.parse(model.weights_uri)
    # only the model's own name is served: a fallback model never answers to another model's name (issue 13)
    engine, engine_problem = resolve_engine(
        model, location, priority_scheduling=spec.policies.qos is not None
    )
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
        weights=location,
        engine=engine,
        fit=fit,
        engine_problem=engine_problem,
    )


def resolve_placement(spec: RegionStackSpec) -> ResolvedPlacement:
    """Resolve the stack-level sections of ``spec`` (:class:`ResolvedPlacement`)."""
    return ResolvedPlacement(
        cloud=spec.cloud,
        region=spec.region,
        account=spec.account,
        cluster=spec.cluster,
        mesh=spec.mesh,
        addons=spec.addons,
        images=spec.images,
        protection=spec.protection,
        namespace=spec.namespace,
        lb_idle_seconds=spec.lb_idle_seconds(),
        device_plugin=device_plugin_scheduling(spec) if needs_device_plugin(spec) else None,
        pool_zones=tuple(sorted({z for p in spec.node_pools.values() for z in p.zones})),
    )


def resolve(spec: RegionStackSpec) -> ResolvedStack:
    """Resolve the placement and every pool and model of a (validated) region stack."""
    pools = {name: resolve_pool(spec, name) for name in sorted(spec.node_pools)}
    models = {name: resolve_model(spec, name, pools) for name in sorted(spec.models)}
    return ResolvedStack(spec=spec, placement=resolve_placement(spec), pools=pools, models=models)
