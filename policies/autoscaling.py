"""Autoscaling model deployments on vLLM's own metrics.

GPU utilisation and memory say nothing useful about vLLM load (memory is pre-allocated), and CPU is
not the bottleneck; the signals are the request queue (``vllm:num_requests_waiting``) and KV-cache
pressure (``vllm:kv_cache_usage_perc``, a 0–1 fraction).

* ``engine: keda`` renders a ``keda.sh/v1alpha1`` ScaledObject with Prometheus triggers. KEDA's
  default ``AverageValue`` metric type divides the query result by the threshold, so the queries
  return the pool **sum** and the threshold is per replica (≈5 waiting requests per replica).
  ``minReplicaCount`` is always rendered (KEDA defaults it to 0, i.e. scale-to-zero).
  The queries select the series of **one Deployment** by ``fleetkit_model="<deployment>"``, the
  target label the model's PodMonitor sets (``components.model_render.build_pod_monitor``).
  ``model_name`` (the served name) is not enough: two versions of a service serve the same name
  (v1 would scale on v2's canary and mirror load), and so do one model's Deployments on two GPU
  classes (a10g would wake on l4's queue). The guardrail ``autoscaler-selects-one-deployment``
  refuses a query that does not pin one Deployment.
* ``engine: hpa`` renders an ``autoscaling/v2`` HorizontalPodAutoscaler on the per-pod custom metric
  ``vllm_num_requests_waiting`` served by prometheus-adapter (for clusters without KEDA).

Replica bounds come from the model (``models.<name>.replicas``), one source of truth.

**Scheduled capacity** (``schedule``, KEDA only): each :class:`CapacityWindow` adds a KEDA ``cron``
trigger (KEDA scaler docs, "Cron": ``timezone``, ``start``, ``end``, ``desiredReplicas``) that holds
at least ``min_replicas`` between ``start - prewarm`` and ``end``. KEDA takes the maximum over
triggers, so the queue and KV-cache triggers still scale beyond it. The lead time ``prewarm`` covers
what a cold replica needs before its window: a node from the node autoscaler, the weight sync into
the node cache (a scheduled model always gets the prefetch DaemonSet, which fills the cache of every
node as it joins, ``components.model_render.build_prefetch_daemonset``) and the engine start.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from policies.common import (
    Duration,
    FieldError,
    Name,
    Rows,
    StrictModel,
    format_duration,
    metadata,
    seconds,
    words,
)
from policies.merge import merged_model

HPA_QUEUE_METRIC = "vllm_num_requests_waiting"
#: Prometheus target label the model PodMonitor sets to the Deployment name (unique per Deployment).
DEPLOYMENT_LABEL = "fleetkit_model"


Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_CRON_DAY = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_ORDER: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class CapacityWindow(StrictModel):
    """Hold at least ``min_replicas`` from ``start - prewarm`` to ``end`` on ``days``, in ``timezone``."""

    name: Name
    timezone: str = Field(description="IANA time zone, e.g. America/New_York (KEDA cron 'timezone')")
    days: list[Day] = Field(default_factory=lambda: list(_ORDER), min_length=1)
    start: time = Field(description="window start, HH:MM local time")
    end: time = Field(description="window end, HH:MM local time, after start on the same day")
    min_replicas: int = Field(ge=1)
    prewarm: Duration = Field(
        default=timedelta(minutes=30),
        description="lead time before start: node, weight sync and engine start",
    )

    @field_validator("start", "end", mode="before")
    @classmethod
    def _quoted_time(cls, v: object) -> object:
        if isinstance(v, int) and not isinstance(v, bool):
            # YAML 1.1 reads an unquoted 08:00 as the base-60 number 480, which pydantic would take as seconds
            raise ValueError(
                f'write the time in quotes ("{v // 60:02d}:{v % 60:02d}"): YAML reads an unquoted HH:MM as a number'
            )
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not an IANA time zone such as Europe/Amsterdam") from None
        return v

    @model_validator(mode="after")
    def _order(self) -> CapacityWindow:
        if self.end <= self.start:
            raise FieldError(
                f"end {self.end:%H:%M} must be after start {self.start:%H:%M} (same day)",
                ("end", f"{self.end:%H:%M}"),
                ("start", f"{self.start:%H:%M}"),
            )
        if len(set(self.days)) != len(self.days):
            raise FieldError("days lists a day twice", ("days", self.days))
        lead = datetime.combine(datetime.min.date(), self.start) - datetime.min
        if self.prewarm > lead:
            raise FieldError(
                f"prewarm {self.prewarm} reaches before midnight of the start day; start later or "
                "split the window",
                ("prewarm", str(self.prewarm)),
            )
        return self

    @property
    def warm_from(self) -> time:
        return (datetime.combine(datetime.min.date(), self.start) - self.prewarm).time()

    def describe(self) -> str:
        """``at least 4 replicas mon, tue 08:00–18:00 America/New_York (warm from 07:30, prewarm 1800s)``."""
        days = ", ".join(sorted(self.days, key=_ORDER.index))
        return (
            f"at least {self.min_replicas} replicas {days} {self.start:%H:%M}–{self.end:%H:%M} {self.timezone} "
            f"(warm from {self.warm_from:%H:%M}, prewarm {format_duration(self.prewarm)})"
        )

    def trigger(self) -> dict[str, object]:
        """The KEDA ``cron`` trigger (minute hour * * days)."""
        days = ",".join(str(_CRON_DAY[d]) for d in sorted(self.days, key=_ORDER.index))
        return {
            "type": "cron",
            "name": f"window-{self.name}",
            "metadata": {
                "timezone": self.timezone,
                "start": f"{self.warm_from.minute} {self.warm_from.hour} * * {days}",
                "end": f"{self.end.minute} {self.end.hour} * * {days}",
                "desiredReplicas": str(self.min_replicas),
            },
        }


class AutoscalerSpec(StrictModel):
    engine: Literal["keda", "hpa", "none"] = "keda"
    queue_per_replica: float = Field(
        default=5, gt=0, description="waiting requests per replica before scaling out"
    )
    kv_cache_target: float | None = Field(
        default=0.8, gt=0, le=1, description="KV-cache usage fraction per replica; null disables the trigger"
    )
    polling_interval: Duration = timedelta(seconds=15)
    cooldown: Duration = Field(default=timedelta(seconds=300), description="idle time before scaling to zero")
    scale_down_window: Duration = Field(
        default=timedelta(seconds=300), description="stabilisation before scale-in"
    )
    prometheus_url: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090", pattern=r"^https?://"
    )
    fallback_replicas: int | None = Field(default=None, ge=1, description="KEDA fallback when metrics fail")
    schedule: list[CapacityWindow] = Field(
        default_factory=list,
        description="scheduled capacity: raise min replicas ahead of known busy windows (KEDA)",
    )

    @model_validator(mode="after")
    def _engine(self) -> AutoscalerSpec:
        if self.schedule and self.engine != "keda":
            raise FieldError(
                "schedule renders KEDA cron triggers; it needs engine: keda",
                ("engine", self.engine),
                ("schedule", [w.name for w in self.schedule]),
            )
        names = [w.name for w in self.schedule]
        if len(set(names)) != len(names):
            twice = next(j for j, n in enumerate(names) if n in names[:j])
            raise FieldError(
                "schedule window names must be unique", (("schedule", twice, "name"), names[twice])
            )
        if (
            self.engine == "hpa"
            and self.kv_cache_target is not None
            and "kv_cache_target" in self.model_fields_set
        ):
            raise ValueError(
                "kv_cache_target is a KEDA trigger; with engine hpa only the queue metric is used"
            )
        return self

    def replica_bounds(self, min_replicas: int, max_replicas: int) -> tuple[int, int]:
        """The (min, max) replicas the rendered autoscaler holds a model's Deployment between: the
        model's bounds under KEDA (``minReplicaCount`` may be 0), at least one under an HPA (its
        ``minReplicas`` must be ≥ 1 unless the alpha ``HPAScaleToZero`` feature gate is on — Kubernetes
        HorizontalPodAutoscaler reference), and ``replicas: min`` fixed without an autoscaler."""
        if self.engine == "none":
            return min_replicas, min_replicas
        if self.engine == "hpa":
            return max(min_replicas, 1), max_replicas
        return min_replicas, max_replicas

    def describe(self) -> str:
        """``keda: 5 waiting/replica, KV cache 0.8`` (the KV-cache trigger is KEDA's only)."""
        rows = self.describe_rows()
        kv = f", KV cache {rows['KV-cache target']}" if self.engine == "keda" and self.kv_cache_target else ""
        return f"{rows['engine']}: {rows['queue per replica']}{kv}"

    def describe_rows(self) -> Rows:
        """Every setting in words; one ``window <name>`` row per scheduled-capacity window."""
        rows: Rows = {
            "engine": self.engine,
            "queue per replica": f"{self.queue_per_replica:g} waiting/replica",
            "KV-cache target": words(self.kv_cache_target),
            "polling interval": format_duration(self.polling_interval),
            "cooldown": format_duration(self.cooldown),
            "scale-down window": format_duration(self.scale_down_window),
            "Prometheus": self.prometheus_url,
            "fallback replicas": words(self.fallback_replicas),
        }
        rows.update({f"window {w.name}": w.describe() for w in self.schedule})
        return rows


class AutoscalingPolicy(StrictModel):
    default: AutoscalerSpec = AutoscalerSpec()
    models: dict[Name, AutoscalerSpec] = Field(default_factory=dict)

    def for_model(self, model: str) -> AutoscalerSpec:
        return merged_model(AutoscalerSpec, self.default, self.models.get(model))

    def describe(self) -> str:
        """The default autoscaler in words (``keda: 5 waiting/replica, KV cache 0.8``)."""
        return self.default.describe()

    def render_for(
        self,
        *,
        model: str,
        deployment: str,
        namespace: str,
        served_name: str,
        min_replicas: int,
        max_replicas: int,
    ) -> list[dict[str, object]]:
        spec = self.for_model(model)
        labels = {"fleetkit.dev/model": model}
        # one Deployment's series: the PodMonitor's fleetkit_model target label (see module docstring);
        # served_name is shared by versions and GPU classes, so it never selects alone
        selector = f'{DEPLOYMENT_LABEL}="{deployment}",namespace="{namespace}"'
        if spec.engine == "none":
            return []
        min_replicas, max_replicas = spec.replica_bounds(min_replicas, max_replicas)
        if spec.engine == "hpa":
            return [
                {
                    "apiVersion": "autoscaling/v2",
                    "kind": "HorizontalPodAutoscaler",
                    "metadata": metadata(deployment, namespace, labels),
                    "spec": {
                        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
                        "minReplicas": min_replicas,
                        "maxReplicas": max_replicas,
                        "metrics": [
                            {
                                "type": "Pods",
                                "pods": {
                                    "metric": {"name": HPA_QUEUE_METRIC},
                                    "target": {
                                        "type": "AverageValue",
                                        "averageValue": _qty(spec.queue_per_replica),
                                    },
                                },
                            }
                        ],
                        "behavior": {
                            "scaleDown": {"stabilizationWindowSeconds": seconds(spec.scale_down_window)},
                        },
                    },
                }
            ]
        triggers: list[dict[str, object]] = [
            {
                "type": "prometheus",
                "name": "queue",
                "metadata": {
                    "serverAddress": spec.prometheus_url,
                    "query": f"sum(vllm:num_requests_waiting{{{selector}}})",
                    "threshold": _qty(spec.queue_per_replica),
                    "activationThreshold": "0",
                    "ignoreNullValues": "false",
                },
            }
        ]
        if spec.kv_cache_target is not None:
            triggers.append(
                {
                    "type": "prometheus",
                    "name": "kv-cache",
                    "metadata": {
                        "serverAddress": spec.prometheus_url,
                        "query": f"sum(vllm:kv_cache_usage_perc{{{selector}}})",
                        "threshold": _qty(spec.kv_cache_target),
                        "ignoreNullValues": "false",
                    },
                }
            )
        triggers += [w.trigger() for w in spec.schedule]
        so_spec: dict[str, object] = {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "pollingInterval": seconds(spec.polling_interval),
            "cooldownPeriod": seconds(spec.cooldown),
            "minReplicaCount": min_replicas,
            "maxReplicaCount": max_replicas,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": seconds(spec.scale_down_window)}}
                }
            },
            "triggers": triggers,
        }
        if spec.fallback_replicas is not None:
            so_spec["fallback"] = {"failureThreshold": 3, "replicas": spec.fallback_replicas}
        return [
            {
                "apiVersion": "keda.sh/v1alpha1",
                "kind": "ScaledObject",
                "metadata": metadata(deployment, namespace, labels),
                "spec": so_spec,
            }
        ]


def _qty(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
