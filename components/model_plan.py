"""The plan of one vLLM model service: every fact its objects depend on, in one frozen object.

:func:`plan_model` takes a model of a resolved stack (:mod:`fleetkit.resolve`: pool, GPU class,
catalog entry, scheduling, size, cache capacity, weights location, ``vllm serve`` arguments) and adds
what depends on the render context and the policies — the telemetry collector's address as
``--otlp-traces-endpoint``, labels, time budgets, images. The builders of :mod:`components.model_render` and
:mod:`components.model_observability` read only the :class:`ModelPlan` (cdk8s-plus style: defaults
resolved once, rendering reads resolved state). Pure: no engine, no credentials.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetkit import catalog
from fleetkit.engine_args import EngineArgs
from fleetkit.resolve import VLLM_MODELS_DIR, ResolvedStack, WeightsLocation
from fleetkit.scheduling import PodScheduling
from fleetkit.spec import ModelSpec
from policies.common import LABEL_APP, LABEL_GPU_CLASS, LABEL_MODEL, LABEL_TIER, LABEL_VERSION, seconds
from policies.context import RenderContext
from policies.qos import QosPolicy

# --------------------------------------------------------------------------- constants
#: Node directory of the shared weight cache (the contract: :mod:`components.model_render`).
NODE_CACHE_ROOT = "/var/lib/kubelet/fleetkit-cache"
NODE_CACHE_DIR = f"{NODE_CACHE_ROOT}/models"
#: Where the agent containers mount the cache (read-write); vLLM mounts it read-only at
#: :data:`fleetkit.resolve.VLLM_MODELS_DIR` (its engine arguments, resolved with the model, name that path).
AGENT_CACHE_DIR = "/cache/models"

LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
COMPONENT_SERVER = "vllm"
COMPONENT_PREFETCH = "weights-prefetch"
ISTIO_INJECT = "sidecar.istio.io/inject"

CONTAINER_VLLM = "vllm"
CONTAINER_SYNC = "weights-sync"
CONTAINER_LEASE = "weights-lease"
CONTAINER_WARM = "weights-warm"

#: Host CPU and memory kept back from a model's share of the node for the kubelet, system and
#: DaemonSet pods, the Istio sidecar and the weight agents.
CPU_SHARE = 0.85
MEMORY_SHARE = 0.80
#: Longest a terminating replica keeps serving in-flight requests before vLLM gets SIGTERM.
MAX_DRAIN_SECONDS = 300
SHUTDOWN_SECONDS = 30


# --------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class PodSize:
    gpus: int
    cpu: int
    memory_gib: int
    shm_gib: int


@dataclass(frozen=True)
class Budgets:
    """Seconds: startup (load + compile), rollout deadline, drain and grace."""

    startup: int
    progress_deadline: int
    drain: int
    grace: int


@dataclass(frozen=True)
class WorkloadIdentity:
    """What the cloud identity adds to the pod. Values may be Pulumi outputs in the component."""

    service_account: str
    service_account_annotations: Mapping[str, Any] = field(default_factory=dict)
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    #: env of the containers that talk to the object store (sync, warm)
    agent_env: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ModelPlan:
    stack: str
    cloud: str
    region: str
    cluster_name: str
    namespace: str
    name: str  # model key: Deployment, ServiceAccount, PDB, monitor names
    model: ModelSpec
    service: str
    pool: str
    gpu_class: str
    instance: catalog.GpuInstanceType
    scheduling: PodScheduling
    engine: EngineArgs
    weights: WeightsLocation
    size: PodSize
    budgets: Budgets
    labels: dict[str, str]  # pod labels
    selector: dict[str, str]
    priority_class: str | None
    autoscaled: bool
    queue_per_replica: float
    max_cache_bytes: int
    #: pull references from ``images`` (registry, repository, tag, digest; the mirror applied)
    vllm_image: str = ""
    agent_image: str = ""
    #: the prefetch DaemonSet runs: a hot model, or one with scheduled capacity (its windows warm new nodes)
    prefetch: bool = True

    @property
    def served_names(self) -> list[str]:
        return list(self.engine.served_model_names)

    @property
    def cache_path(self) -> str:
        return f"{AGENT_CACHE_DIR}/{self.weights.cache_relpath}"

    @property
    def model_path(self) -> str:
        return f"{VLLM_MODELS_DIR}/{self.weights.cache_relpath}"

    @property
    def prefetch_name(self) -> str:
        return f"{self.name}-prefetch"


def pod_size(instance: catalog.GpuInstanceType, gpus: int) -> PodSize:
    """CPU and memory in proportion to the GPUs the pod takes of the node, minus a reserve.

    ``/dev/shm`` (a memory emptyDir, counted against the pod's memory) gets 2 GiB for one GPU and up
    to 16 GiB when several GPU workers exchange tensors through it.
    """
    share = min(1.0, gpus / instance.gpu_count)
    cpu = max(1, math.floor(instance.vcpu * share * CPU_SHARE))
    memory = max(8, math.floor(instance.ram_gib * share * MEMORY_SHARE))
    shm = 2 if gpus == 1 else max(2, min(16, memory // 4))
    return PodSize(gpus=gpus, cpu=cpu, memory_gib=memory, shm_gib=shm)


def budgets(weights_gib: float, route_timeout_seconds: int) -> Budgets:
    """Startup budget grows with the weights: 10 min + 15 s per GiB, 15 min to 2 h (70B bf16: ~43 min).

    The rollout deadline adds the time to sync the weights from the bucket on a cold node (5 min +
    6 s per GiB). A terminating replica keeps serving in-flight requests for the route timeout (at
    most :data:`MAX_DRAIN_SECONDS`) before vLLM is stopped.
    """
    gib = weights_gib
    startup = int(min(7200, max(900, 600 + 15 * gib)))
    sync = int(300 + 6 * gib)
    drain = min(MAX_DRAIN_SECONDS, max(5, route_timeout_seconds))
    return Budgets(
        startup=startup, progress_deadline=startup + sync, drain=drain, grace=drain + SHUTDOWN_SECONDS
    )


def plan_model(
    resolved: ResolvedStack,
    model_name: str,
    ctx: RenderContext,
    *,
    stack: str,
    scheduling: PodScheduling | None = None,
) -> ModelPlan:
    """Plan one model of a resolved region stack (:mod:`fleetkit.resolve`) into a :class:`ModelPlan`.

    Pool, GPU class, catalog entry, scheduling, size, cache capacity, weights location and engine
    arguments come resolved; this adds what depends on the render context and the policies (the OTLP
    traces endpoint, labels, budgets, images).
    """
    placement = resolved.placement
    rm = resolved.models[model_name]
    model = rm.spec
    pool = rm.pool
    if pool is None or pool.instance is None:  # the loader reports both before anything renders
        raise ValueError(f"models.{model_name}: pool {model.pool!r} has no catalog instance type")
    if rm.engine is None:  # extra_args: the loader's model.engine-arg-* checks report it first
        raise ValueError(rm.engine_problem or "invalid engine arguments")
    service = rm.service
    policies = resolved.policies
    weights = rm.weights
    # resolved with the model; the collector's address comes from the render context
    engine = rm.engine.model_copy(update={"otlp_traces_endpoint": policies.telemetry.otlp_endpoint(ctx)})
    selector = {LABEL_MODEL: model_name, LABEL_COMPONENT: COMPONENT_SERVER}
    labels = {
        LABEL_APP: service,
        LABEL_VERSION: model.version,
        LABEL_GPU_CLASS: pool.gpu_class,
        LABEL_NAME: "vllm",
        LABEL_INSTANCE: model_name,
        ISTIO_INJECT: "true",
        **selector,
    }
    if model.tier is not None:
        labels[LABEL_TIER] = model.tier
    autoscaler = policies.autoscaling.for_model(model_name)
    timeout = seconds(policies.resilience.for_model(service).timeout)
    return ModelPlan(
        stack=stack,
        cloud=placement.cloud,
        region=placement.region,
        cluster_name=placement.mesh.cluster_name or placement.cluster.name,
        namespace=placement.namespace,
        name=model_name,
        model=model,
        service=service,
        pool=pool.name,
        gpu_class=pool.gpu_class,
        instance=pool.instance,
        scheduling=scheduling if scheduling is not None else pool.scheduling,
        engine=engine,
        weights=weights,
        size=pod_size(pool.instance, rm.gpus_per_pod),
        budgets=budgets(rm.weights_gib, timeout),
        labels=dict(sorted(labels.items())),
        selector=selector,
        priority_class=QosPolicy.priority_class_name(model.tier) if model.tier else None,
        autoscaled=autoscaler.engine != "none",
        queue_per_replica=autoscaler.queue_per_replica,
        max_cache_bytes=pool.cache_bytes,
        vllm_image=placement.images.vllm.reference(placement.images.mirror),
        agent_image=placement.images.weights_agent.reference(placement.images.mirror),
        prefetch=model.hot or bool(autoscaler.schedule),
    )


def object_labels(plan: ModelPlan, component: str) -> dict[str, str]:
    """The labels of every object of the model (not its pods): app, version, model, GPU class, component."""
    return {
        LABEL_APP: plan.service,
        LABEL_VERSION: plan.model.version,
        LABEL_MODEL: plan.name,
        LABEL_GPU_CLASS: plan.gpu_class,
        LABEL_NAME: "vllm",
        LABEL_INSTANCE: plan.name,
        LABEL_COMPONENT: component,
    }
