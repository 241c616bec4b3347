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
* **Usage — requests**: the same mesh-wide ``Telemetry`` (one per root namespace: Istio allows a
  single selector-less Telemetry there) adds ``fleetkit_tenant``, ``fleetkit_model`` and
  ``fleetkit_tier`` labels (from the headers the edge derives from verified claims and the body) to
  ``istio_requests_total`` and ``istio_request_duration_milliseconds``; the gateway's series
  (``reporter="source"``, scraped by the ``fleetkit-ingress-usage`` PodMonitor from the gateway's
  ``http-envoy-prom`` port) count requests per tenant and model.
* **Usage — tokens per tenant**: vLLM's ``vllm:prompt_tokens_total`` / ``vllm:generation_tokens_total``
  are per model only. The edge's Lua filter reads each answer's OpenAI ``usage`` object as the body
  streams through (non-streaming answers; streams whose client asked for
  ``stream_options.include_usage``) into dynamic metadata ``fleetkit.usage``. A ``Telemetry`` on the
  ingress gateway sends one OpenTelemetry access-log record per answered request (Istio's
  ``envoyOtelAls`` extension provider: tenant, model, tier and the two token counts as attributes)
  to the collector, whose ``signaltometrics`` connector sums the counts per tenant, model and tier
  (``deltatocumulative`` then the ``prometheus`` exporter, scraped by the ``fleetkit-otel-collector``
  PodMonitor): ``fleetkit_gateway_prompt_tokens_total`` and ``fleetkit_gateway_completion_tokens_total``.
  The contrib ``sum`` connector is not used: it adds each value once per grouping attribute
  (its test data, as read for this change, expects 2 x 2.1 = 4.2 for one record with two attributes). Recording rules
  ``fleetkit:gateway_*:rate5m`` and the dashboard's "Usage by tenant" row read them.

References: Istio Telemetry API (``tracing[].providers``, ``randomSamplingPercentage``,
``metrics[].overrides[].tagOverrides`` with CEL ``request.headers[...]``, ``accessLogging[].filter``),
Istio ``MeshConfig.ExtensionProvider.OpenTelemetryTracingProvider`` (``service``, ``port``) and
``EnvoyOpenTelemetryLogProvider`` (``logName``, ``logFormat.labels`` — Envoy command operators such as
``%REQ(...)%`` and ``%DYNAMIC_METADATA(ns:key)%``); Envoy ``envoy.access_loggers.open_telemetry``; vLLM
``--otlp-traces-endpoint`` (``vllm/tracing``); OpenTelemetry collector-contrib ``signaltometrics``
connector (``logs[].sum.value`` OTTL, ``attributes[].default_value``), ``deltatocumulative``
processor and ``prometheus`` exporter (monotonic sums get ``_total``), all in the ``otelcol-contrib``
distribution.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml
from pydantic import Field

from policies.common import Rows, StrictModel, metadata, service_host
from policies.edge import USAGE_NAMESPACE

if TYPE_CHECKING:
    from policies.context import RenderContext
    from policies.policy_set import PolicySet

COLLECTOR_NAME = "fleetkit-otel-collector"
#: the contrib distribution: the core one has no signaltometrics connector nor prometheus exporter
COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib:0.139.0"
PROVIDER_NAME = "fleetkit-otel"
USAGE_PROVIDER_NAME = "fleetkit-usage"
USAGE_TELEMETRY_NAME = "fleetkit-usage"
USAGE_RULES_NAME = "fleetkit-usage"
GATEWAY_MONITOR_NAME = "fleetkit-ingress-usage"
OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318
METRICS_PORT = 9464
#: the labels usage series carry, on Istio's metrics and the collector's token counters alike
USAGE_LABELS = ("fleetkit_tenant", "fleetkit_model", "fleetkit_tier")
#: usage attribute -> (the collector's OTel metric, its Prometheus name: dots -> underscores, + _total)
TOKEN_METRICS = {
    "prompt_tokens": ("fleetkit.gateway.prompt_tokens", "fleetkit_gateway_prompt_tokens_total"),
    "completion_tokens": ("fleetkit.gateway.completion_tokens", "fleetkit_gateway_completion_tokens_total"),
}
#: a usage-log record without one of the label attributes gets this value (Envoy itself writes "-" for
#: a missing header, e.g. no tenant claim; this covers a record that lacks the attribute altogether)
NO_VALUE = "none"


class TracingPolicy(StrictModel):
    enabled: bool = True
    sampling_percent: float = Field(default=1.0, ge=0, le=100, description="share of requests traced")
    export_endpoint: str | None = Field(
        default=None,
        description="OTLP gRPC endpoint the collector forwards to (host:port); unset: debug exporter",
    )

    def describe(self) -> str:
        """``1% of requests to otel.example.com:4317`` (or ``off``)."""
        rows = self.describe_rows()
        if not self.enabled:
            return "off"
        return f"{rows['trace sampling']} of requests to {rows['trace export']}"

    def describe_rows(self) -> Rows:
        return {
            "tracing": "on" if self.enabled else "off",
            "trace sampling": f"{self.sampling_percent:g}%",
            "trace export": self.export_endpoint or "the collector's debug exporter",
        }


class TelemetryPolicy(StrictModel):
    tracing: TracingPolicy = TracingPolicy()
    usage_metrics: bool = Field(default=True, description="tenant/model/tier labels on the gateway's metrics")

    def describe(self) -> str:
        """``tracing 1% of requests to the collector's debug exporter; usage metrics per tenant, model and tier``."""
        return f"tracing {self.tracing.describe()}; usage metrics {self.describe_rows()['usage metrics']}"

    def describe_rows(self) -> Rows:
        """The tracing rows, then whether the gateway counts usage per tenant, model and tier."""
        usage = "per tenant, model and tier" if self.usage_metrics else "off"
        return {**self.tracing.describe_rows(), "usage metrics": usage}

    def collector_host(self, ctx: RenderContext) -> str:
        return service_host(COLLECTOR_NAME, ctx.monitoring_namespace, ctx.cluster_domain)

    def otlp_endpoint(self, ctx: RenderContext) -> str | None:
        """What vLLM's ``--otlp-traces-endpoint`` gets (OTLP gRPC)."""
        return f"http://{self.collector_host(ctx)}:{OTLP_GRPC_PORT}" if self.tracing.enabled else None

    def collector_enabled(self) -> bool:
        return self.tracing.enabled or self.usage_metrics

    def extension_provider(self, ctx: RenderContext) -> dict[str, Any] | None:
        """The ``meshConfig.extensionProviders`` entry istiod needs for the tracing ``Telemetry``."""
        if not self.tracing.enabled:
            return None
        return {
            "name": PROVIDER_NAME,
            "opentelemetry": {"service": self.collector_host(ctx), "port": OTLP_GRPC_PORT},
        }

    def usage_log_provider(self, policies: PolicySet, ctx: RenderContext) -> dict[str, Any] | None:
        """The ``envoyOtelAls`` provider: one OTLP log record per answered request, usage as attributes."""
        if not self.usage_metrics:
            return None
        h = policies.routing.headers
        labels = {
            "fleetkit_tenant": f"%REQ({h.tenant})%",
            "fleetkit_model": f"%REQ({h.model})%",
            "fleetkit_tier": f"%REQ({h.tier})%",
            "prompt_tokens": f"%DYNAMIC_METADATA({USAGE_NAMESPACE}:prompt_tokens)%",
            "completion_tokens": f"%DYNAMIC_METADATA({USAGE_NAMESPACE}:completion_tokens)%",
            "response_code": "%RESPONSE_CODE%",
        }
        return {
            "name": USAGE_PROVIDER_NAME,
            "envoyOtelAls": {
                "service": self.collector_host(ctx),
                "port": OTLP_GRPC_PORT,
                "logName": USAGE_PROVIDER_NAME,
                "logFormat": {"text": "%REQ(:PATH)% %RESPONSE_CODE%", "labels": labels},
            },
        }

    def extension_providers(self, policies: PolicySet, ctx: RenderContext) -> list[dict[str, Any]]:
        """Every ``meshConfig.extensionProviders`` entry the rendered ``Telemetry`` objects name."""
        found = [self.extension_provider(ctx), self.usage_log_provider(policies, ctx)]
        return [p for p in found if p is not None]

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
        if self.collector_enabled():
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
        if self.usage_metrics:
            out += self._usage(policies, ctx)
        return out

    def _usage(self, policies: PolicySet, ctx: RenderContext) -> list[dict[str, Any]]:
        """Token accounting at the ingress gateway, its scraping and its recording rules."""
        h = policies.routing.headers
        gateway = {"istio": ctx.ingress_gateway_name.removeprefix("istio-")}
        keep = "istio_requests_total|istio_request_duration_milliseconds_.+"
        return [
            {
                "apiVersion": "telemetry.istio.io/v1",
                "kind": "Telemetry",
                "metadata": metadata(USAGE_TELEMETRY_NAME, ctx.system_namespace),
                "spec": {
                    "selector": {"matchLabels": dict(gateway)},
                    "accessLogging": [
                        {
                            "providers": [{"name": USAGE_PROVIDER_NAME}],
                            # answered OpenAI body requests only (the edge sets the model header)
                            "filter": {
                                "expression": f"response.code == 200 && '{h.model}' in request.headers"
                            },
                        }
                    ],
                },
            },
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PodMonitor",
                "metadata": metadata(GATEWAY_MONITOR_NAME, ctx.system_namespace),
                "spec": {
                    "selector": {"matchLabels": dict(gateway)},
                    "podMetricsEndpoints": [
                        {
                            "port": "http-envoy-prom",
                            "path": "/stats/prometheus",
                            "interval": "30s",
                            "metricRelabelings": [
                                {"action": "keep", "sourceLabels": ["__name__"], "regex": keep}
                            ],
                        }
                    ],
                },
            },
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PrometheusRule",
                "metadata": metadata(USAGE_RULES_NAME, ctx.monitoring_namespace),
                "spec": {"groups": [{"name": "fleetkit-usage", "rules": usage_recording_rules()}]},
            },
        ]

    def collector_config(self) -> dict[str, Any]:
        """The collector's configuration: traces out to a backend; usage logs in, token counters out."""
        exporters: dict[str, Any] = {}
        processors: dict[str, Any] = {"batch": {}}
        connectors: dict[str, Any] = {}
        pipelines: dict[str, Any] = {}
        if self.tracing.enabled:
            trace_exporter = "otlp" if self.tracing.export_endpoint else "debug"
            exporters[trace_exporter] = (
                {"endpoint": self.tracing.export_endpoint}
                if self.tracing.export_endpoint
                else {"verbosity": "basic"}
            )
            pipelines["traces"] = {
                "receivers": ["otlp"],
                "processors": ["batch"],
                "exporters": [trace_exporter],
            }
        if self.usage_metrics:
            connectors["signaltometrics"] = {
                "logs": [
                    {
                        "name": otel_name,
                        "description": f"{key.replace('_', ' ')} of answered requests, from the response's "
                        "OpenAI usage, counted at the ingress gateway",
                        "conditions": [f'IsMatch(attributes["{key}"], "^[0-9]+$")'],
                        "attributes": [{"key": k, "default_value": NO_VALUE} for k in USAGE_LABELS],
                        "sum": {"value": f'Int(attributes["{key}"])'},
                    }
                    for key, (otel_name, _) in TOKEN_METRICS.items()
                ]
            }
            processors["deltatocumulative"] = {}
            exporters["prometheus"] = {"endpoint": f"0.0.0.0:{METRICS_PORT}"}
            pipelines["logs/usage"] = {"receivers": ["otlp"], "exporters": ["signaltometrics"]}
            pipelines["metrics/usage"] = {
                "receivers": ["signaltometrics"],
                "processors": ["deltatocumulative"],
                "exporters": ["prometheus"],
            }
        config: dict[str, Any] = {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"0.0.0.0:{OTLP_GRPC_PORT}"},
                        "http": {"endpoint": f"0.0.0.0:{OTLP_HTTP_PORT}"},
                    }
                }
            },
            "processors": processors,
            "exporters": exporters,
            "service": {"pipelines": pipelines},
        }
        if connectors:
            config["connectors"] = connectors
        return config

    def _collector(self, ctx: RenderContext) -> list[dict[str, Any]]:
        ns = ctx.monitoring_namespace
        labels = {"app": COLLECTOR_NAME}
        config = self.collector_config()
        ports = [
            {"name": "grpc-otlp", "port": OTLP_GRPC_PORT, "targetPort": OTLP_GRPC_PORT, "protocol": "TCP"},
            {"name": "http-otlp", "port": OTLP_HTTP_PORT, "targetPort": OTLP_HTTP_PORT, "protocol": "TCP"},
        ]
        if self.usage_metrics:
            ports.append(
                {"name": "http-metrics", "port": METRICS_PORT, "targetPort": METRICS_PORT, "protocol": "TCP"}
            )
        monitor: list[dict[str, Any]] = []
        if self.usage_metrics:
            monitor.append(
                {
                    "apiVersion": "monitoring.coreos.com/v1",
                    "kind": "PodMonitor",
                    "metadata": metadata(COLLECTOR_NAME, ns, labels),
                    "spec": {
                        "selector": {"matchLabels": dict(labels)},
                        "podMetricsEndpoints": [
                            {"port": "http-metrics", "path": "/metrics", "interval": "30s"}
                        ],
                    },
                }
            )
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
        ] + monitor


def usage_recording_rules() -> list[dict[str, Any]]:
    """Per tenant, model and tier: request rate at the gateway (Istio) and token rates (the edge's usage)."""
    by = ", ".join(USAGE_LABELS)
    rules = [
        {
            "record": "fleetkit:gateway_requests:rate5m",
            "expr": f'sum by ({by}) (rate(istio_requests_total{{reporter="source",'
            f'fleetkit_model!~"|unknown"}}[5m]))',
        }
    ]
    rules += [
        {
            "record": f"fleetkit:gateway_{key}:rate5m",
            "expr": f"sum by ({by}) (rate({metric}[5m]))",
        }
        for key, (_, metric) in TOKEN_METRICS.items()
    ]
    return rules
