"""One trace per request and per-tenant usage: Istio's Telemetry API, an OpenTelemetry collector, vLLM spans.

* **Collector**: the kit runs an OpenTelemetry collector (``otel/opentelemetry-collector``) in the
  monitoring namespace — OTLP gRPC 4317 and HTTP 4318 in, the ``debug`` exporter out unless
  ``export_endpoint`` names an OTLP backend (Tempo, Jaeger, a vendor).
* **Gateway and sidecars**: istiod's ``meshConfig.extensionProviders`` gets an ``opentelemetry``
  provider for that collector (``mesh.render.istiod_values``) and a mesh-wide ``Telemetry`` in the
  root namespace turns tracing on with ``randomSamplingPercentage``. Envoy starts the trace at the
  gateway and propagates W3C ``traceparent`` to the model pod.
* **Engine**: every vLLM gets ``--otlp-traces-endpoint`` (the collector's gRPC port); vLLM continues
  the incoming ``traceparent``, so the gateway's and the engine's spans share one trace id — where
  a request stalls (gateway, queue, prefill, decode) is visible in one trace.
* **Usage**: the same mesh-wide ``Telemetry`` (one per root namespace: Istio allows a single
  selector-less Telemetry there) adds ``fleetkit_tenant``, ``fleetkit_model`` and ``fleetkit_tier``
  labels (from the headers the edge derives from verified claims and the body) to
  ``istio_requests_total`` and ``istio_request_duration_milliseconds``; the gateway's series
  (``reporter="source"``) count requests per tenant and model. Tokens per model are vLLM's own ``vllm:prompt_tokens_total`` /
  ``vllm:generation_tokens_total`` (labelled ``model_name``); the dashboard shows both.

References: Istio Telemetry API (``tracing[].providers``, ``randomSamplingPercentage``,
``metrics[].overrides[].tagOverrides`` with CEL ``request.headers[...]``), Istio
``MeshConfig.ExtensionProvider.OpenTelemetryTracingProvider`` (``service``, ``port``); vLLM
``--otlp-traces-endpoint`` (``vllm/tracing``); OpenTelemetry collector configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml
from pydantic import Field

from policies.common import StrictModel, metadata, service_host

if TYPE_CHECKING:
    from policies.context import RenderContext
    from policies.policy_set import PolicySet

COLLECTOR_NAME = "fleetkit-otel-collector"
COLLECTOR_IMAGE = "otel/opentelemetry-collector:0.139.0"
PROVIDER_NAME = "fleetkit-otel"
OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318


class TracingPolicy(StrictModel):
    enabled: bool = True
    sampling_percent: float = Field(default=1.0, ge=0, le=100, description="share of requests traced")
    export_endpoint: str | None = Field(
        default=None,
        description="OTLP gRPC endpoint the collector forwards to (host:port); unset: debug exporter",
    )


class TelemetryPolicy(StrictModel):
    tracing: TracingPolicy = TracingPolicy()
    usage_metrics: bool = Field(default=True, description="tenant/model/tier labels on the gateway's metrics")

    def collector_host(self, ctx: RenderContext) -> str:
        return service_host(COLLECTOR_NAME, ctx.monitoring_namespace, ctx.cluster_domain)

    def otlp_endpoint(self, ctx: RenderContext) -> str | None:
        """What vLLM's ``--otlp-traces-endpoint`` gets (OTLP gRPC)."""
        return f"http://{self.collector_host(ctx)}:{OTLP_GRPC_PORT}" if self.tracing.enabled else None

    def extension_provider(self, ctx: RenderContext) -> dict[str, Any] | None:
        """The ``meshConfig.extensionProviders`` entry istiod needs for the tracing ``Telemetry``."""
        if not self.tracing.enabled:
            return None
        return {
            "name": PROVIDER_NAME,
            "opentelemetry": {"service": self.collector_host(ctx), "port": OTLP_GRPC_PORT},
        }

    def render(self, policies: PolicySet, ctx: RenderContext) -> list[dict[str, Any]]:
        spec: dict[str, Any] = {}
        out: list[dict[str, Any]] = []
        if self.tracing.enabled:
            spec["tracing"] = [
                {
                    "providers": [{"name": PROVIDER_NAME}],
                    "randomSamplingPercentage": self.tracing.sampling_percent,
                }
            ]
            out += self._collector(ctx)
        if self.usage_metrics:
            h = policies.routing.headers
            tags = {
                "fleetkit_model": {"value": f"request.headers['{h.model}']"},
                "fleetkit_tenant": {"value": f"request.headers['{h.tenant}']"},
                "fleetkit_tier": {"value": f"request.headers['{h.tier}']"},
            }
            spec["metrics"] = [
                {
                    "providers": [{"name": "prometheus"}],
                    "overrides": [
                        {"match": {"metric": metric, "mode": "CLIENT_AND_SERVER"}, "tagOverrides": tags}
                        for metric in ("REQUEST_COUNT", "REQUEST_DURATION")
                    ],
                }
            ]
        if spec:
            out.append(
                {
                    "apiVersion": "telemetry.istio.io/v1",
                    "kind": "Telemetry",
                    "metadata": metadata("mesh-default", ctx.system_namespace),
                    "spec": spec,
                }
            )
        return out

    def _collector(self, ctx: RenderContext) -> list[dict[str, Any]]:
        ns = ctx.monitoring_namespace
        labels = {"app": COLLECTOR_NAME}
        exporter: dict[str, Any]
        if self.tracing.export_endpoint:
            exporter = {"otlp": {"endpoint": self.tracing.export_endpoint}}
        else:
            exporter = {"debug": {"verbosity": "basic"}}
        config = {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"0.0.0.0:{OTLP_GRPC_PORT}"},
                        "http": {"endpoint": f"0.0.0.0:{OTLP_HTTP_PORT}"},
                    }
                }
            },
            "processors": {"batch": {}},
            "exporters": exporter,
            "service": {
                "pipelines": {
                    "traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": list(exporter)}
                }
            },
        }
        ports = [
            {"name": "grpc-otlp", "port": OTLP_GRPC_PORT, "targetPort": OTLP_GRPC_PORT, "protocol": "TCP"},
            {"name": "http-otlp", "port": OTLP_HTTP_PORT, "targetPort": OTLP_HTTP_PORT, "protocol": "TCP"},
        ]
        return [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata(COLLECTOR_NAME, ns, labels),
                "data": {"config.yaml": yaml.safe_dump(config, sort_keys=True)},
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata(COLLECTOR_NAME, ns, labels),
                "spec": {"selector": dict(labels), "ports": ports, "type": "ClusterIP"},
            },
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": metadata(COLLECTOR_NAME, ns, labels),
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": dict(labels)},
                    "template": {
                        "metadata": {"labels": dict(labels)},
                        "spec": {
                            "containers": [
                                {
                                    "name": "otel-collector",
                                    "image": COLLECTOR_IMAGE,
                                    "args": ["--config=/conf/config.yaml"],
                                    "ports": [{"name": p["name"], "containerPort": p["port"]} for p in ports],
                                    "resources": {
                                        "requests": {"cpu": "100m", "memory": "128Mi"},
                                        "limits": {"memory": "512Mi"},
                                    },
                                    "securityContext": {
                                        "runAsNonRoot": True,
                                        "runAsUser": 10001,
                                        "allowPrivilegeEscalation": False,
                                        "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]},
                                    },
                                    "volumeMounts": [{"name": "config", "mountPath": "/conf"}],
                                }
                            ],
                            "volumes": [{"name": "config", "configMap": {"name": COLLECTOR_NAME}}],
                        },
                    },
                },
            },
        ]
