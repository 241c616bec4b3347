"""Pure builders for one vLLM model service: plain manifest dicts, no engine, no credentials.

:func:`components.model_plan.plan_model` gathers everything a model's objects depend on (from the
resolved stack, :mod:`fleetkit.resolve`) into a :class:`~components.model_plan.ModelPlan`; the
``build_*`` functions here turn it into manifests, and :mod:`components.model_observability` adds the
PodMonitor, the alert rules and the fleet dashboard. ``components.model_service.ModelService`` only adds the cloud identity and applies
them. Objects per model (all in the model namespace, named after the model key):

* ``ServiceAccount`` — the pod identity that may read the weights prefix (annotated per cloud);
* ``Deployment`` — ``vllm serve`` from the node-local weight cache (below);
* ``PodDisruptionBudget`` — at most one replica voluntarily evicted at a time;
* ``DaemonSet <model>-prefetch`` — ``hot`` models only: keeps the weights warm on every pool node;
* ``PodMonitor`` and ``PrometheusRule`` — vLLM metrics and alerts.

Weight cache contract
---------------------
Every GPU node has one cache directory shared by all pods on it, ``model_plan.NODE_CACHE_DIR``
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

import math
from typing import Any

from components.model_observability import build_pod_monitor, build_prometheus_rule
from components.model_plan import (
    AGENT_CACHE_DIR,
    COMPONENT_PREFETCH,
    COMPONENT_SERVER,
    CONTAINER_LEASE,
    CONTAINER_SYNC,
    CONTAINER_VLLM,
    CONTAINER_WARM,
    ISTIO_INJECT,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_NAME,
    NODE_CACHE_DIR,
    VLLM_MODELS_DIR,
    ModelPlan,
    WorkloadIdentity,
    object_labels,
)
from policies.common import LABEL_MODEL, MODEL_PORT, metadata

ANNOTATION_REVISION = "fleetkit.dev/revision"
ANNOTATION_WEIGHTS = "fleetkit.dev/weights-uri"
VLLM_UID = 1000
SYNC_CONCURRENCY = 16
WARM_INTERVAL_SECONDS = 600


def _gi(n: int) -> str:
    return f"{n}Gi"


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


def build_service_account(plan: ModelPlan, identity: WorkloadIdentity) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(
            identity.service_account,
            plan.namespace,
            object_labels(plan, COMPONENT_SERVER),
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
            object_labels(plan, COMPONENT_SERVER),
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
        "metadata": metadata(plan.name, plan.namespace, object_labels(plan, COMPONENT_SERVER)),
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
