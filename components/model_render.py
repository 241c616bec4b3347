"""Pure builders for one vLLM model service: plain manifest dicts, no engine, no credentials.

:func:`plan_model` resolves everything a model's objects depend on (pool, GPU class, labels, served
names, sizes, budgets) from the stack spec once; the ``build_*`` functions turn a :class:`ModelPlan`
into manifests. ``components.model_service.ModelService`` only adds the cloud identity and applies
them. Objects per model (all in the model namespace, named after the model key):

* ``ServiceAccount`` — the pod identity that may read the weights prefix (annotated per cloud);
* ``Deployment`` — ``vllm serve`` from the node-local weight cache (below);
* ``PodDisruptionBudget`` — at most one replica voluntarily evicted at a time;
* ``DaemonSet <model>-prefetch`` — ``hot`` models only: keeps the weights warm on every pool node;
* ``PodMonitor`` and ``PrometheusRule`` — vLLM metrics and alerts.

Weight cache contract
---------------------
Every GPU node has one cache directory shared by all pods on it, :data:`NODE_CACHE_DIR`
(``/var/lib/kubelet/fleetkit-cache/models``, a ``hostPath``, ``DirectoryOrCreate``, root-owned). It
sits under the kubelet root on purpose: that is the filesystem the node pools put on the fastest
local disk — the RAID0 of instance-store NVMe on EKS AL2023 (nodeadm ``localStorage: RAID0``), the
local SSDs on GKE (``ephemeral_storage_local_ssd_config``); elsewhere (Bottlerocket data volume,
AKS OS disk, types without local disks) it is the node's regular disk, which works, only slower.
Because the kubelet evicts pods when that filesystem runs low, the agent's LRU cache is capped at
60% of the local disk (40% of a network disk) — see :mod:`fleetkit.node_cache`, whose
``pool.cache-too-small`` check refuses a pool whose models do not fit. The agent
(``fleetkit-weights``, ``images/weight-cache``) owns the layout inside: ``sync`` publishes a model
at ``<cache>/<bucket>/<prefix>`` as a relative symlink to a verified, immutable copy, so the same
directory can be mounted at different paths in different containers.

A model pod runs, in order:

1. init ``weights-sync``: ``fleetkit-weights sync <weights_uri> /cache/models …`` (read-write mount),
   a no-op beyond one request when the node already holds that version; with the model's
   ``weights_digest`` set it passes ``--manifest-digest``, so a node serves exactly the pinned manifest
   (images/weight-cache/README.md, "Pinning");
2. native sidecar ``weights-lease``: ``fleetkit-weights lease /cache/models/<bucket>/<prefix>`` holds
   the model "in use" for the pod's lifetime so the agent's LRU eviction skips it;
3. ``vllm``: ``vllm serve /models/<bucket>/<prefix> …`` with the cache mounted **read-only** at
   ``/models`` and ``HF_HUB_OFFLINE=1``.

Users
-----
vLLM runs as uid 1000, non-root, read-only root filesystem, no capabilities: the upstream image
runs as root by default but needs nothing root-only at runtime; ``HOME`` (torch.compile, Triton,
FlashInfer caches) and ``/tmp`` are emptyDirs, ``USER`` is set because the image has no passwd entry
for uid 1000. The agent containers run as uid 0 because the node cache directory is root-owned,
still with every capability dropped, no privilege escalation and a read-only root filesystem.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetkit import capacity, catalog
from fleetkit.engine_args import EngineArgs
from fleetkit.node_cache import max_cache_bytes
from fleetkit.pools import gpu_class_of
from fleetkit.scheduling import pod_scheduling
from fleetkit.spec import ModelSpec, RegionStackSpec
from policies.common import (
    LABEL_APP,
    LABEL_GPU_CLASS,
    LABEL_MODEL,
    LABEL_TIER,
    LABEL_VERSION,
    MODEL_PORT,
    metadata,
    seconds,
)
from policies.context import RenderContext
from policies.qos import QosPolicy

# --------------------------------------------------------------------------- constants
#: Node directory of the shared weight cache (see the module docstring for the contract).
NODE_CACHE_ROOT = "/var/lib/kubelet/fleetkit-cache"
NODE_CACHE_DIR = f"{NODE_CACHE_ROOT}/models"
#: Where the agent containers mount the cache (read-write) and vLLM mounts it (read-only).
AGENT_CACHE_DIR = "/cache/models"
VLLM_MODELS_DIR = "/models"

LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
COMPONENT_SERVER = "vllm"
COMPONENT_PREFETCH = "weights-prefetch"
ISTIO_INJECT = "sidecar.istio.io/inject"
ANNOTATION_REVISION = "fleetkit.dev/revision"
ANNOTATION_WEIGHTS = "fleetkit.dev/weights-uri"

CONTAINER_VLLM = "vllm"
CONTAINER_SYNC = "weights-sync"
CONTAINER_LEASE = "weights-lease"
CONTAINER_WARM = "weights-warm"

VLLM_UID = 1000
#: Istio merges the app's metrics into the sidecar agent's plaintext endpoint on this port, so a
#: Prometheus outside the mesh can scrape under STRICT mTLS (Istio "metrics merging", on by default).
ISTIO_MERGED_METRICS_PORT = 15020
ISTIO_MERGED_METRICS_PATH = "/stats/prometheus"

SYNC_CONCURRENCY = 16
WARM_INTERVAL_SECONDS = 600
#: Host CPU and memory kept back from a model's share of the node for the kubelet, system and
#: DaemonSet pods, the Istio sidecar and the weight agents.
CPU_SHARE = 0.85
MEMORY_SHARE = 0.80
#: Longest a terminating replica keeps serving in-flight requests before vLLM gets SIGTERM.
MAX_DRAIN_SECONDS = 300
SHUTDOWN_SECONDS = 30
#: Alert thresholds (defaults of the kit; per-model SLOs are not typed yet).
TTFT_P95_ALERT_SECONDS = 5.0
KV_CACHE_ALERT_FRACTION = 0.95
QUEUE_ALERT_FACTOR = 2.0

DASHBOARD_FILE = Path(__file__).resolve().parent.parent / "observability" / "vllm-fleet-dashboard.json"
DASHBOARD_NAME = "fleetkit-vllm-dashboard"


# --------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class PodScheduling:
    """Node selector and tolerations that put a pod on one GPU pool's nodes."""

    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]


@dataclass(frozen=True)
class WeightsLocation:
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


def scheduling_for(spec: RegionStackSpec, pool: str) -> PodScheduling:
    """The pool's node selector and tolerations, from the node-pools layer's pure function."""
    s = pod_scheduling(spec, pool)
    return PodScheduling(dict(s.node_selector), [dict(t) for t in s.tolerations])


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


def weights_gib(model: ModelSpec) -> float:
    return capacity.weights_gib(
        capacity.ModelSize(
            params_billion=model.params_billion, dtype=model.dtype, weights_bytes=model.weights_bytes
        )
    )


def budgets(model: ModelSpec, route_timeout_seconds: int) -> Budgets:
    """Startup budget grows with the weights: 10 min + 15 s per GiB, 15 min to 2 h (70B bf16: ~43 min).

    The rollout deadline adds the time to sync the weights from the bucket on a cold node (5 min +
    6 s per GiB). A terminating replica keeps serving in-flight requests for the route timeout (at
    most :data:`MAX_DRAIN_SECONDS`) before vLLM is stopped.
    """
    gib = weights_gib(model)
    startup = int(min(7200, max(900, 600 + 15 * gib)))
    sync = int(300 + 6 * gib)
    drain = min(MAX_DRAIN_SECONDS, max(5, route_timeout_seconds))
    return Budgets(
        startup=startup, progress_deadline=startup + sync, drain=drain, grace=drain + SHUTDOWN_SECONDS
    )


def plan_model(
    spec: RegionStackSpec,
    model_name: str,
    ctx: RenderContext,
    *,
    stack: str,
    scheduling: PodScheduling | None = None,
) -> ModelPlan:
    """Resolve one model of a (validated) region stack into a :class:`ModelPlan`."""
    model = spec.models[model_name]
    pool = model.pool or ""
    instance = catalog.lookup(spec.cloud, spec.node_pools[pool].instance_type)
    if instance is None:  # the loader reports this as pool.unknown-instance-type first
        raise ValueError(f"models.{model_name}: pool {pool!r} has no catalog instance type")
    service = spec.service_of(model_name)
    policies = spec.policies
    weights = WeightsLocation.parse(model.weights_uri)
    # only the model's own name: a fallback model never answers to another model's name (issue 13)
    engine = EngineArgs.from_spec(
        model,
        model_path=f"{VLLM_MODELS_DIR}/{weights.cache_relpath}",
        priority_scheduling=policies.qos is not None,
        otlp_traces_endpoint=policies.telemetry.otlp_endpoint(ctx),
    )
    gpu_class = gpu_class_of(spec, pool)
    selector = {LABEL_MODEL: model_name, LABEL_COMPONENT: COMPONENT_SERVER}
    labels = {
        LABEL_APP: service,
        LABEL_VERSION: model.version,
        LABEL_GPU_CLASS: gpu_class,
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
        cloud=spec.cloud,
        region=spec.region,
        cluster_name=spec.mesh.cluster_name or spec.cluster.name,
        namespace=spec.namespace,
        name=model_name,
        model=model,
        service=service,
        pool=pool,
        gpu_class=gpu_class,
        instance=instance,
        scheduling=scheduling if scheduling is not None else scheduling_for(spec, pool),
        engine=engine,
        weights=weights,
        size=pod_size(instance, model.tensor_parallel * model.pipeline_parallel),
        budgets=budgets(model, timeout),
        labels=dict(sorted(labels.items())),
        selector=selector,
        priority_class=QosPolicy.priority_class_name(model.tier) if model.tier else None,
        autoscaled=autoscaler.engine != "none",
        queue_per_replica=autoscaler.queue_per_replica,
        max_cache_bytes=max_cache_bytes(spec, pool, instance),
        vllm_image=spec.images.vllm.reference(spec.images.mirror),
        agent_image=spec.images.weights_agent.reference(spec.images.mirror),
        prefetch=model.hot or bool(autoscaler.schedule),
    )


# --------------------------------------------------------------------------- helpers
def _gi(n: int) -> str:
    return f"{n}Gi"


def _object_labels(plan: ModelPlan, component: str) -> dict[str, str]:
    return {
        LABEL_APP: plan.service,
        LABEL_VERSION: plan.model.version,
        LABEL_MODEL: plan.name,
        LABEL_GPU_CLASS: plan.gpu_class,
        LABEL_NAME: "vllm",
        LABEL_INSTANCE: plan.name,
        LABEL_COMPONENT: component,
    }


def _hardened(run_as_user: int, *, non_root: bool) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsUser": run_as_user,
        "runAsGroup": run_as_user,
        "runAsNonRoot": non_root,
    }
    return ctx


def _cache_volume() -> dict[str, Any]:
    return {"name": "weights-cache", "hostPath": {"path": NODE_CACHE_DIR, "type": "DirectoryOrCreate"}}


def agent_sync_args(plan: ModelPlan) -> list[str]:
    """``fleetkit-weights sync`` for the init container (exact CLI of images/weight-cache)."""
    return [
        "fleetkit-weights",
        "sync",
        plan.weights.uri,
        AGENT_CACHE_DIR,
        "--concurrency",
        str(SYNC_CONCURRENCY),
        "--max-cache-bytes",
        str(plan.max_cache_bytes),
        # the node's copy still serves if the bucket is unreachable (cross-cloud outages)
        "--allow-stale",
        *_pin_args(plan),
    ]


def _pin_args(plan: ModelPlan) -> list[str]:
    """The model's pinned manifest digest: the agent refuses a manifest with any other digest."""
    return ["--manifest-digest", plan.model.weights_digest] if plan.model.weights_digest else []


def agent_warm_args(plan: ModelPlan) -> list[str]:
    return [
        "fleetkit-weights",
        "warm",
        plan.weights.uri,
        AGENT_CACHE_DIR,
        "--interval",
        str(WARM_INTERVAL_SECONDS),
        "--concurrency",
        str(SYNC_CONCURRENCY),
        "--max-cache-bytes",
        str(plan.max_cache_bytes),
        *_pin_args(plan),
    ]


def agent_lease_args(plan: ModelPlan) -> list[str]:
    return ["fleetkit-weights", "lease", plan.cache_path]


# --------------------------------------------------------------------------- objects
def build_service_account(plan: ModelPlan, identity: WorkloadIdentity) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(
            identity.service_account,
            plan.namespace,
            _object_labels(plan, COMPONENT_SERVER),
            dict(identity.service_account_annotations) or None,
        ),
        # no Kubernetes API access is needed; Istio and the cloud identity webhooks project their own tokens
        "automountServiceAccountToken": False,
    }


def _vllm_container(plan: ModelPlan) -> dict[str, Any]:
    size, b = plan.size, plan.budgets

    def health(**timing: int) -> dict[str, Any]:
        return {"httpGet": {"path": "/health", "port": "http"}, **timing}

    resources = {
        "requests": {"cpu": str(size.cpu), "memory": _gi(size.memory_gib), "nvidia.com/gpu": str(size.gpus)},
        "limits": {"memory": _gi(size.memory_gib), "nvidia.com/gpu": str(size.gpus)},
    }
    env = [
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
        {"name": "HOME", "value": "/home/vllm"},
        {"name": "USER", "value": "vllm"},
    ]
    return {
        "name": CONTAINER_VLLM,
        "image": plan.vllm_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["vllm", "serve"],
        "args": plan.engine.argv(),
        "env": env,
        "ports": [{"name": "http", "containerPort": MODEL_PORT, "protocol": "TCP"}],
        "resources": resources,
        # the engine is loading weights and compiling: give it the whole budget, then hand over
        "startupProbe": health(
            periodSeconds=10, timeoutSeconds=5, failureThreshold=math.ceil(b.startup / 10)
        ),
        # out of the endpoints within ~15 s when the engine stops answering; back as soon as it does
        "readinessProbe": health(periodSeconds=5, timeoutSeconds=3, failureThreshold=3, successThreshold=1),
        # restart only after a minute of a dead engine (busy engines still answer /health)
        "livenessProbe": health(periodSeconds=15, timeoutSeconds=10, failureThreshold=4),
        # keep serving in-flight requests while the endpoint is withdrawn, then stop
        "lifecycle": {"preStop": {"sleep": {"seconds": b.drain}}},
        "volumeMounts": [
            {"name": "weights-cache", "mountPath": VLLM_MODELS_DIR, "readOnly": True},
            {"name": "shm", "mountPath": "/dev/shm"},
            {"name": "home", "mountPath": "/home/vllm"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": _hardened(VLLM_UID, non_root=True),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _agent_container(
    name: str,
    args: list[str],
    identity: WorkloadIdentity,
    *,
    image: str,
    cpu: str,
    memory: str,
    memory_limit: str,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": args[:1],
        "args": args[1:],
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}},
        "volumeMounts": [
            {"name": "weights-cache", "mountPath": AGENT_CACHE_DIR},
            {"name": "agent-tmp", "mountPath": "/tmp"},
        ],
        "securityContext": _hardened(0, non_root=False),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if identity.agent_env:
        container["env"] = [dict(e) for e in identity.agent_env]
    return container


def build_deployment(plan: ModelPlan, identity: WorkloadIdentity) -> dict[str, Any]:
    b = plan.budgets
    sync = _agent_container(
        CONTAINER_SYNC,
        agent_sync_args(plan),
        identity,
        image=plan.agent_image,
        cpu="2",
        memory="1Gi",
        memory_limit="2Gi",
    )
    lease = _agent_container(
        CONTAINER_LEASE,
        agent_lease_args(plan),
        WorkloadIdentity(identity.service_account),
        image=plan.agent_image,
        cpu="10m",
        memory="48Mi",
        memory_limit="96Mi",
    )
    lease["restartPolicy"] = "Always"  # a native sidecar: runs for the pod's lifetime, stops after vllm
    pod_labels = dict(sorted({**plan.labels, **identity.pod_labels}.items()))
    pod_annotations = {
        ANNOTATION_REVISION: plan.model.revision,
        ANNOTATION_WEIGHTS: plan.weights.uri,
        "kubectl.kubernetes.io/default-container": CONTAINER_VLLM,
        # Istio's proxy as a native sidecar: up before the sync init container needs the network,
        # down only after vllm has drained
        "sidecar.istio.io/nativeSidecar": "true",
        # Istio metrics merging: the sidecar serves vLLM's /metrics on its plaintext port 15020
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(MODEL_PORT),
        "prometheus.io/path": "/metrics",
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": identity.service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": b.grace,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "nodeSelector": dict(sorted(plan.scheduling.node_selector.items())),
        "tolerations": list(plan.scheduling.tolerations),
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": dict(plan.selector)},
                "matchLabelKeys": ["pod-template-hash"],
            }
        ],
        "initContainers": [sync, lease],
        "containers": [_vllm_container(plan)],
        "volumes": [
            _cache_volume(),
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": _gi(plan.size.shm_gib)}},
            {"name": "home", "emptyDir": {"sizeLimit": "20Gi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "10Gi"}},
            {"name": "agent-tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    if plan.priority_class:
        pod_spec["priorityClassName"] = plan.priority_class
    spec: dict[str, Any] = {
        "selector": {"matchLabels": dict(plan.selector)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "minReadySeconds": 10,
        "progressDeadlineSeconds": b.progress_deadline,
        "revisionHistoryLimit": 5,
        "template": {
            "metadata": {"labels": pod_labels, "annotations": dict(sorted(pod_annotations.items()))},
            "spec": pod_spec,
        },
    }
    if not plan.autoscaled:
        # with an autoscaler the replica count is the autoscaler's field: leaving it out keeps
        # `pulumi up` (server-side apply) from resetting it
        spec["replicas"] = plan.model.replicas.min
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(
            plan.name,
            plan.namespace,
            _object_labels(plan, COMPONENT_SERVER),
            {
                # `pulumi up` waits for the rollout as long as Kubernetes itself does
                "pulumi.com/timeoutSeconds": str(b.progress_deadline + 300),
            },
        ),
        "spec": spec,
    }


def build_pdb(plan: ModelPlan) -> dict[str, Any]:
    """One replica at a time may be evicted voluntarily (node drains, upgrades, consolidation).

    ``maxUnavailable: 1`` rather than a ``minAvailable`` so a single-replica model never blocks a
    node drain forever; replicas that are not ready (still loading, crash-looping) can always be
    evicted (``AlwaysAllow``), so a broken pod never holds a node hostage.
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(plan.name, plan.namespace, _object_labels(plan, COMPONENT_SERVER)),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": dict(plan.selector)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def build_prefetch_daemonset(plan: ModelPlan, identity: WorkloadIdentity) -> dict[str, Any] | None:
    """``hot`` models: the agent's warm mode on every node of the pool (None for other models).

    A node that joins the pool fetches the weights before a replica is scheduled on it, so scale-out
    waits for the engine start only. It uses the model's own read-only identity; it has no Istio
    sidecar (it talks only to the object store) and carries neither ``app`` nor ``version``, so no
    Service selects it.
    """
    if not plan.prefetch:
        return None
    selector = {LABEL_MODEL: plan.name, LABEL_COMPONENT: COMPONENT_PREFETCH}
    labels = {
        **selector,
        LABEL_NAME: "fleetkit-weights",
        LABEL_INSTANCE: plan.name,
        ISTIO_INJECT: "false",
        **identity.pod_labels,
    }
    warm = _agent_container(
        CONTAINER_WARM,
        agent_warm_args(plan),
        identity,
        image=plan.agent_image,
        cpu="500m",
        memory="512Mi",
        memory_limit="2Gi",
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": metadata(
            plan.prefetch_name,
            plan.namespace,
            {
                LABEL_MODEL: plan.name,
                LABEL_COMPONENT: COMPONENT_PREFETCH,
                LABEL_NAME: "fleetkit-weights",
                LABEL_INSTANCE: plan.name,
            },
        ),
        "spec": {
            "selector": {"matchLabels": selector},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}},
            "template": {
                "metadata": {
                    "labels": dict(sorted(labels.items())),
                    "annotations": {
                        ANNOTATION_WEIGHTS: plan.weights.uri,
                        ANNOTATION_REVISION: plan.model.revision,
                    },
                },
                "spec": {
                    "serviceAccountName": identity.service_account,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    # the agent checkpoints a download in flight on SIGTERM
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "nodeSelector": dict(sorted(plan.scheduling.node_selector.items())),
                    "tolerations": list(plan.scheduling.tolerations),
                    "containers": [warm],
                    "volumes": [_cache_volume(), {"name": "agent-tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
                },
            },
        },
    }


# --------------------------------------------------------------------------- observability
#: Target labels every vLLM series gets (Grafana variables and alert grouping use them).
TARGET_LABELS = ("fleetkit_model", "service", "version", "gpu_class", "region", "cloud", "cluster")


def target_labels(plan: ModelPlan) -> dict[str, str]:
    return {
        "fleetkit_model": plan.name,
        "service": plan.service,
        "version": plan.model.version,
        "gpu_class": plan.gpu_class,
        "region": plan.region,
        "cloud": plan.cloud,
        "cluster": plan.cluster_name,
    }


def build_pod_monitor(plan: ModelPlan) -> dict[str, Any]:
    """Scrape vLLM through Istio's merged-metrics endpoint (plaintext :15020, works under STRICT mTLS).

    The target is chosen by the pod's ``http`` port (one target per pod), then its address is moved
    to the Istio agent port. Static target labels carry the model, GPU class and region so one
    Prometheus (or a global query layer) can tell every deployment of the fleet apart.
    """
    relabel: list[dict[str, Any]] = [
        {
            "action": "replace",
            "sourceLabels": ["__meta_kubernetes_pod_ip"],
            "regex": "(.+)",
            "targetLabel": "__address__",
            "replacement": f"$1:{ISTIO_MERGED_METRICS_PORT}",
        },
    ]
    relabel += [
        {"action": "replace", "targetLabel": k, "replacement": v} for k, v in target_labels(plan).items()
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": metadata(plan.name, plan.namespace, _object_labels(plan, COMPONENT_SERVER)),
        "spec": {
            "selector": {"matchLabels": dict(plan.selector)},
            "podMetricsEndpoints": [
                {
                    "port": "http",
                    "path": ISTIO_MERGED_METRICS_PATH,
                    "interval": "15s",
                    "scrapeTimeout": "10s",
                    "relabelings": relabel,
                    # keep vLLM's own series and Istio's request metrics, drop Envoy internals
                    "metricRelabelings": [
                        {
                            "action": "keep",
                            "sourceLabels": ["__name__"],
                            "regex": "vllm:.+|istio_requests_total|istio_request_duration_milliseconds_.+",
                        },
                    ],
                }
            ],
        },
    }


#: The alphabet Kubernetes uses for pod-template hashes and generated name suffixes (no vowels).
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"


def _pod_regex(deployment: str) -> str:
    # Deployment pods are <deployment>-<pod-template-hash>-<5 chars>, both from the vowel-free safe
    # alphabet and without '-': model "a" never matches the pods of model "a-v2" nor of "a-prefetch"
    return f"{deployment}-{_SAFE}+-{_SAFE}{{5}}"


def alert_rules(plan: ModelPlan) -> list[dict[str, Any]]:
    """Alerts of one model. Only current vLLM metric names (``kv_cache_usage_perc``, a 0–1 fraction)."""
    ns, m = plan.namespace, plan.name
    vsel = f'namespace="{ns}",fleetkit_model="{m}"'
    pods = f'namespace="{ns}",pod=~"{_pod_regex(m)}"'
    by = "namespace, fleetkit_model"
    queue = plan.queue_per_replica * QUEUE_ALERT_FACTOR
    common = {"fleetkit_model": m, "service": plan.service, "region": plan.region}
    runbook = "runbooks/cold-starts.md"

    def rule(
        alert: str, expr: str, for_: str, severity: str, summary: str, description: str, rb: str | None = None
    ) -> dict[str, Any]:
        ann = {"summary": summary, "description": description}
        if rb:
            ann["runbook"] = rb
        out: dict[str, Any] = {"alert": alert, "expr": expr}
        if for_:
            out["for"] = for_
        return {**out, "labels": {**common, "severity": severity}, "annotations": ann}

    rules = [
        rule(
            "FleetkitModelQueueBacklog",
            f"sum by ({by}) (vllm:num_requests_waiting{{{vsel}}})\n"
            f"  / count by ({by}) (count by ({by}, pod) (vllm:num_requests_waiting{{{vsel}}}))\n"
            f"  > {queue:g}",
            "10m",
            "warning",
            f"{m}: more than {queue:g} requests waiting per replica",
            "Requests queue in vLLM faster than the autoscaler adds replicas (max replicas reached, "
            'or no GPU capacity for new ones). Value: {{ $value | printf "%.1f" }} waiting per replica.',
        ),
        rule(
            "FleetkitModelTTFTHigh",
            f"histogram_quantile(0.95, sum by (le, {by}, model_name) "
            f"(rate(vllm:time_to_first_token_seconds_bucket{{{vsel}}}[5m])))\n  > {TTFT_P95_ALERT_SECONDS:g}",
            "10m",
            "warning",
            f"{m}: p95 time to first token above {TTFT_P95_ALERT_SECONDS:g}s",
            "p95 TTFT over 5m is {{ $value | humanizeDuration }} for {{ $labels.model_name }}.",
        ),
        rule(
            "FleetkitModelKvCacheFull",
            f"max by ({by}, pod) (vllm:kv_cache_usage_perc{{{vsel}}}) > {KV_CACHE_ALERT_FRACTION:g}",
            "10m",
            "warning",
            f"{m}: KV cache above {KV_CACHE_ALERT_FRACTION:.0%} on {{{{ $labels.pod }}}}",
            "The KV cache is nearly full; vLLM will preempt requests. Scale out, lower max_num_seqs "
            "or raise gpu_memory_utilization.",
        ),
        rule(
            "FleetkitModelCrashLooping",
            f"max by (namespace, pod, container) (kube_pod_container_status_waiting_reason{{{pods},"
            f'reason="CrashLoopBackOff"}}) == 1',
            "5m",
            "critical",
            f"{m}: {{{{ $labels.pod }}}} container {{{{ $labels.container }}}} is crash-looping",
            "kubectl logs --previous -c {{ $labels.container }} shows why.",
            runbook,
        ),
        rule(
            "FleetkitModelRestarting",
            f'increase(kube_pod_container_status_restarts_total{{{pods},container="{CONTAINER_VLLM}"}}[30m]) > 2',
            "",
            "warning",
            f"{m}: vLLM restarted more than twice in 30 minutes on {{{{ $labels.pod }}}}",
            "Liveness failures, OOM kills or engine crashes; check the previous container's logs.",
            runbook,
        ),
        rule(
            "FleetkitWeightSyncFailing",
            f"(max by (namespace, pod) (kube_pod_init_container_status_last_terminated_reason{{{pods},"
            f'container="{CONTAINER_SYNC}",reason!="Completed"}}) == 1)\n'
            f"  unless on (namespace, pod)\n"
            f"(max by (namespace, pod) (kube_pod_init_container_status_terminated_reason{{{pods},"
            f'container="{CONTAINER_SYNC}",reason="Completed"}}) == 1)',
            "5m",
            "critical",
            f"{m}: weight sync failing on {{{{ $labels.pod }}}}",
            f"The {CONTAINER_SYNC} init container failed and has not completed since "
            f"(bucket access, disk space, integrity). kubectl logs -c {CONTAINER_SYNC}.",
            runbook,
        ),
        rule(
            "FleetkitModelUnavailable",
            f'kube_deployment_status_replicas_available{{namespace="{ns}",deployment="{m}"}} == 0\n'
            f'  and on (namespace, deployment) kube_deployment_spec_replicas{{namespace="{ns}",deployment="{m}"}} > 0',
            "15m",
            "critical",
            f"{m}: no replica available for 15 minutes",
            "Pods are pending (no GPU capacity), syncing weights or loading. kubectl describe pods.",
            runbook,
        ),
    ]
    if plan.prefetch:
        rules.append(
            rule(
                "FleetkitWeightPrefetchCrashLooping",
                f'max by (namespace, pod) (kube_pod_container_status_waiting_reason{{namespace="{ns}",'
                f'pod=~"{plan.prefetch_name}-{_SAFE}{{5}}",container="{CONTAINER_WARM}",reason="CrashLoopBackOff"}}) == 1',
                "15m",
                "warning",
                f"{m}: weight prefetch crash-looping on {{{{ $labels.pod }}}}",
                "New nodes of the pool will start cold (the init container still syncs).",
                runbook,
            )
        )
    return rules


def build_prometheus_rule(plan: ModelPlan) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(plan.name, plan.namespace, _object_labels(plan, COMPONENT_SERVER)),
        "spec": {"groups": [{"name": f"fleetkit-model-{plan.name}", "rules": alert_rules(plan)}]},
    }


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def build_dashboard_configmap(namespace: str) -> dict[str, Any]:
    """The fleet dashboard (all models, all regions) for Grafana's dashboard sidecar."""
    body = json.dumps(load_dashboard(), indent=1, sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            DASHBOARD_NAME, namespace, {"grafana_dashboard": "1"}, {"grafana_folder": "fleetkit"}
        ),
        "data": {"fleetkit-vllm.json": body},
    }


# --------------------------------------------------------------------------- all objects
def render_model(plan: ModelPlan, identity: WorkloadIdentity) -> list[dict[str, Any]]:
    """Every Kubernetes object of one model, in apply order (identity first)."""
    objs = [build_service_account(plan, identity), build_deployment(plan, identity), build_pdb(plan)]
    ds = build_prefetch_daemonset(plan, identity)
    if ds is not None:
        objs.append(ds)
    objs += [build_pod_monitor(plan), build_prometheus_rule(plan)]
    return objs


def s3_env_from_secret(secret: str) -> list[dict[str, Any]]:
    """Agent env for S3 access outside AWS: static read-only keys from a Kubernetes Secret.

    ``AWS_ENDPOINT_URL_S3`` (e.g. ``https://storage.googleapis.com`` for a GCS interoperability mirror)
    and ``AWS_REGION`` are optional keys of the same Secret.
    """

    def ref(key: str, optional: bool) -> dict[str, Any]:
        sel: dict[str, Any] = {"name": secret, "key": key}
        if optional:
            sel["optional"] = True
        return {"name": key, "valueFrom": {"secretKeyRef": sel}}

    return [
        ref("AWS_ACCESS_KEY_ID", False),
        ref("AWS_SECRET_ACCESS_KEY", False),
        ref("AWS_ENDPOINT_URL_S3", True),
        ref("AWS_REGION", True),
    ]
