"""An Envoy bootstrap equivalent to what istiod gives the ingress gateway for the kit's objects.

istiod cannot run here, so this module does, for the handful of fields the kit renders, what istiod
does (``pilot/pkg/networking/core``) — and nothing is retyped: the HTTP filters are the exact
``patch.value`` objects of the rendered ``EnvoyFilter``, applied with its operations.

* **HTTP filters**: ``jwt_authn`` from the ``RequestAuthentication`` (one provider per jwtRule:
  issuer, audiences, ``outputClaimToHeaders`` → ``claim_to_headers``, ``payload_in_metadata`` the
  issuer, as istiod sets it; the JWKS is inline because ``jwksUri`` is not reachable offline; a
  missing/invalid token is refused by the provider requirement where Istio pairs the filter with the
  rendered ``requestPrincipals: ["*"]`` AuthorizationPolicy — the same outcome), then the router.
  The EnvoyFilter's ``INSERT_FIRST`` patches go to the front, ``INSERT_BEFORE`` router patches in
  order just before the router.
* **Routes** from the ``VirtualService``: one virtual host for the VS hosts, each ``http`` entry in
  order → a route named like it, one per match block, as istiod names them (header ``exact``/``prefix``/``regex`` and ``uri.prefix`` matches, a cluster or
  weighted clusters named ``outbound|<port>|<subset>|<host>`` as istiod names them, ``timeout``,
  ``retries`` → ``retry_policy`` with ``perTryTimeout`` only when set, ``mirror`` →
  ``request_mirror_policies``). The edge filter's ``VIRTUAL_HOST`` ``MERGE`` patches merge into that
  virtual host; the fallback filter's (``policies.fallback``) ``CLUSTER`` ``ADD`` adds its aggregate
  clusters and its ``HTTP_ROUTE`` ``MERGE`` (matched by route name) points routes at them.
* **Clusters**: every cluster a route names, with the ``DestinationRule`` subset's connection pool
  as circuit-breaker thresholds, pointing at a local backend for its Service.
* **Tracing**: the OpenTelemetry tracer toward a local OTLP/HTTP receiver, with the ``Telemetry``
  object's sampling percentage (istiod builds the same tracer from the mesh's extension provider).
* **Usage access log**: the ``Telemetry`` with ``accessLogging`` selecting the gateway, and the
  ``envoyOtelAls`` extension provider it names, become what istiod builds from them
  (``pilot/pkg/model/telemetry_logging.go``): an ``envoy.access_loggers.open_telemetry`` on the HCM
  whose log-record attributes are the provider's ``logFormat.labels`` and body its ``logFormat.text``,
  behind the ``filter.expression`` as a CEL access-log filter
  (``envoy.access_loggers.extension_filters.cel``). istiod sends it over gRPC to the collector; here
  it goes to the local receiver over OTLP/HTTP (``http_service``, the same message), flushed every
  0.2 s instead of Envoy's default 1 s so the tests wait less.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from policies.common import parse_duration

JWT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
OTEL_TYPE = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"
OTEL_ALS_TYPE = (
    "type.googleapis.com/envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig"
)
CEL_FILTER_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter"


@dataclass(frozen=True)
class Backend:
    host: str
    port: int


def _kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o.get("kind") == kind]


def _one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = _kind(objs, kind)
    if len(found) != 1:
        raise ValueError(f"expected exactly one {kind} in the rendered objects, found {len(found)}")
    return found[0]


def _seconds(value: str) -> str:
    return f"{parse_duration(value).total_seconds():g}s"


def jwt_filter(request_auth: dict[str, Any], jwks: dict[str, Any]) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    for i, rule in enumerate(request_auth["spec"]["jwtRules"]):
        provider: dict[str, Any] = {
            "issuer": rule["issuer"],
            "local_jwks": {"inline_string": json.dumps(jwks)},
            "payload_in_metadata": rule["issuer"],
            "forward": bool(rule.get("forwardOriginalToken", False)),
        }
        if rule.get("audiences"):
            provider["audiences"] = list(rule["audiences"])
        if rule.get("outputClaimToHeaders"):
            provider["claim_to_headers"] = [
                {"header_name": c["header"], "claim_name": c["claim"]} for c in rule["outputClaimToHeaders"]
            ]
        providers[f"origins-{i}"] = provider
    requires: dict[str, Any]
    if len(providers) == 1:
        requires = {"provider_name": next(iter(providers))}
    else:
        requires = {"requires_any": {"requirements": [{"provider_name": p} for p in providers]}}
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": JWT_TYPE,
            "providers": providers,
            "rules": [{"match": {"prefix": "/"}, "requires": requires}],
        },
    }


def apply_filter_patches(base: list[dict[str, Any]], envoy_filter: dict[str, Any]) -> list[dict[str, Any]]:
    """The EnvoyFilter's HTTP_FILTER patches applied to a filter chain ending in the router."""
    chain = copy.deepcopy(base)
    for patch in envoy_filter["spec"]["configPatches"]:
        if patch["applyTo"] != "HTTP_FILTER":
            continue
        op, value = patch["patch"]["operation"], copy.deepcopy(patch["patch"]["value"])
        if op == "INSERT_FIRST":
            chain.insert(0, value)
        elif op == "INSERT_BEFORE":
            target = patch["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"]
            index = next(i for i, f in enumerate(chain) if f["name"] == target)
            chain.insert(index, value)
        else:
            raise ValueError(f"unsupported EnvoyFilter operation {op!r}")
    return chain


def vhost_merges(envoy_filter: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for patch in envoy_filter["spec"]["configPatches"]:
        if patch["applyTo"] == "VIRTUAL_HOST" and patch["patch"]["operation"] == "MERGE":
            out.update(copy.deepcopy(patch["patch"]["value"]))
    return out


def cluster_name(destination: dict[str, Any]) -> str:
    return f"outbound|{destination['port']['number']}|{destination.get('subset', '')}|{destination['host']}"


def _header_match(name: str, match: dict[str, str]) -> dict[str, Any]:
    ((kind, value),) = match.items()
    key = {"exact": "exact", "prefix": "prefix", "regex": "safe_regex"}[kind]
    string_match: dict[str, Any] = {key: {"regex": value} if kind == "regex" else value}
    return {"name": name, "string_match": string_match}


def _route_matches(http: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = http.get("match") or [{}]
    out = []
    for block in blocks:
        m: dict[str, Any] = {"prefix": block.get("uri", {}).get("prefix", "/")}
        headers = [_header_match(k, v) for k, v in sorted(block.get("headers", {}).items())]
        if headers:
            m["headers"] = headers
        out.append(m)
    return out


def _route_action(http: dict[str, Any]) -> dict[str, Any]:
    dests = http["route"]
    action: dict[str, Any] = {}
    if len(dests) == 1:
        action["cluster"] = cluster_name(dests[0]["destination"])
    else:
        action["weighted_clusters"] = {
            "clusters": [
                {"name": cluster_name(d["destination"]), "weight": d.get("weight", 100)} for d in dests
            ]
        }
    if "timeout" in http:
        action["timeout"] = _seconds(http["timeout"])
    retries = http.get("retries") or {}
    if retries.get("attempts", 0) > 0:
        policy: dict[str, Any] = {"retry_on": retries.get("retryOn", ""), "num_retries": retries["attempts"]}
        if "perTryTimeout" in retries:
            policy["per_try_timeout"] = _seconds(retries["perTryTimeout"])
        action["retry_policy"] = policy
    if "mirror" in http:
        pct = http.get("mirrorPercentage", {}).get("value", 100.0)
        action["request_mirror_policies"] = [
            {
                "cluster": cluster_name(http["mirror"]),
                "runtime_fraction": {
                    "default_value": {"numerator": round(pct * 10_000), "denominator": "MILLION"}
                },
            }
        ]
    return action


def routes(virtual_service: dict[str, Any]) -> list[dict[str, Any]]:
    """Envoy routes for the VS's ``http`` list: one Envoy route per match block, in order."""
    out = []
    for http in virtual_service["spec"]["http"]:
        action = _route_action(http)
        for match in _route_matches(http):
            out.append({"name": http["name"], "match": match, "route": copy.deepcopy(action)})
    return out


def apply_route_patches(
    route_list: list[dict[str, Any]], envoy_filter: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The fallback EnvoyFilter: aggregate clusters added, chain routes merged onto them."""
    added: list[dict[str, Any]] = []
    if envoy_filter is None:
        return added
    for patch in envoy_filter["spec"]["configPatches"]:
        op = patch["patch"]["operation"]
        if patch["applyTo"] == "CLUSTER" and op == "ADD":
            added.append(copy.deepcopy(patch["patch"]["value"]))
        elif patch["applyTo"] == "HTTP_ROUTE" and op == "MERGE":
            name = patch["match"]["routeConfiguration"]["vhost"]["route"]["name"]
            for r in route_list:
                if r["name"] == name:
                    # a oneof: setting route.cluster replaces weighted_clusters
                    r["route"].pop("weighted_clusters", None)
                    r["route"].update(copy.deepcopy(patch["patch"]["value"]["route"]))
    return added


def referenced_clusters(route_list: list[dict[str, Any]], aggregates: list[dict[str, Any]]) -> list[str]:
    names: set[str] = {m for a in aggregates for m in a["cluster_type"]["typed_config"]["clusters"]}
    aggregate_names = {a["name"] for a in aggregates}
    for r in route_list:
        action = r["route"]
        if "cluster" in action:
            names.add(action["cluster"])
        for wc in action.get("weighted_clusters", {}).get("clusters", []):
            names.add(wc["name"])
        for m in action.get("request_mirror_policies", []):
            names.add(m["cluster"])
    return sorted(names - aggregate_names)


def _subset_pools(destination_rules: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for dr in destination_rules:
        spec = dr["spec"]
        top = spec.get("trafficPolicy", {}).get("connectionPool", {})
        out[(spec["host"], "")] = top
        for subset in spec.get("subsets", []):
            # Istio merges per field group: a subset connectionPool replaces the top-level one whole
            pool = subset.get("trafficPolicy", {}).get("connectionPool", top)
            out[(spec["host"], subset["name"])] = pool
    return out


def cluster(name: str, backend: Backend, pool: dict[str, Any]) -> dict[str, Any]:
    thresholds: dict[str, Any] = {}
    tcp, http = pool.get("tcp", {}), pool.get("http", {})
    if "maxConnections" in tcp:
        thresholds["max_connections"] = tcp["maxConnections"]
    if "http1MaxPendingRequests" in http:
        thresholds["max_pending_requests"] = http["http1MaxPendingRequests"]
    if "http2MaxRequests" in http:
        thresholds["max_requests"] = http["http2MaxRequests"]
    out: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": _seconds(tcp.get("connectTimeout", "10s")),
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": backend.host, "port_value": backend.port}
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }
    if thresholds:
        out["circuit_breakers"] = {"thresholds": [thresholds]}
    if "idleTimeout" in http:
        out["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "common_http_protocol_options": {"idle_timeout": _seconds(http["idleTimeout"])},
                "explicit_http_config": {"http_protocol_options": {}},
            }
        }
    return out


def usage_access_logs(
    objs: list[dict[str, Any]], providers: list[dict[str, Any]], otlp: Backend
) -> list[dict[str, Any]]:
    """The OpenTelemetry access loggers the gateway's ``Telemetry`` ``accessLogging`` asks for."""
    by_name = {p["name"]: p for p in providers}
    out = []
    for t in _kind(objs, "Telemetry"):
        if not t["spec"].get("selector"):
            continue  # the mesh-wide Telemetry has no access logging
        for entry in t["spec"].get("accessLogging", []):
            for ref in entry.get("providers", []):
                als = by_name[ref["name"]]["envoyOtelAls"]
                fmt = als.get("logFormat", {})
                config: dict[str, Any] = {
                    "@type": OTEL_ALS_TYPE,
                    "log_name": als.get("logName", ref["name"]),
                    "http_service": {
                        "http_uri": {
                            "uri": f"http://{otlp.host}:{otlp.port}/v1/logs",
                            "cluster": "otlp",
                            "timeout": "2s",
                        }
                    },
                    "body": {"string_value": fmt.get("text", "")},
                    "attributes": {
                        "values": [
                            {"key": k, "value": {"string_value": v}}
                            for k, v in sorted(fmt.get("labels", {}).items())
                        ]
                    },
                    "buffer_flush_interval": "0.2s",
                }
                log: dict[str, Any] = {"name": "envoy.access_loggers.open_telemetry", "typed_config": config}
                expression = entry.get("filter", {}).get("expression")
                if expression:
                    log["filter"] = {
                        "extension_filter": {
                            "name": "envoy.access_loggers.extension_filters.cel",
                            "typed_config": {"@type": CEL_FILTER_TYPE, "expression": expression},
                        }
                    }
                out.append(log)
    return out


def bootstrap(
    objs: list[dict[str, Any]],
    *,
    providers: list[dict[str, Any]] | None = None,
    listen_port: int,
    admin_port: int,
    backends: dict[str, Backend],
    jwks: dict[str, Any],
    otlp: Backend | None = None,
    access_log: str | None = None,
) -> dict[str, Any]:
    """The bootstrap: ``backends`` maps a Service host (FQDN) to a local address."""
    vs = _one(objs, "VirtualService")
    filters = {o["metadata"]["name"]: o for o in _kind(objs, "EnvoyFilter")}
    edge = filters["fleetkit-edge"]
    request_auth = _one(objs, "RequestAuthentication")
    router = {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}
    http_filters = apply_filter_patches([jwt_filter(request_auth, jwks), router], edge)
    route_list = routes(vs)
    aggregates = apply_route_patches(route_list, filters.get("fleetkit-fallback"))
    vhost: dict[str, Any] = {"name": "fleetkit-ingress", "domains": ["*"], "routes": route_list}
    vhost.update(vhost_merges(edge))
    pools = _subset_pools(_kind(objs, "DestinationRule"))
    clusters = []
    for name in referenced_clusters(route_list, aggregates):
        _, _, subset, host = name.split("|")
        clusters.append(cluster(name, backends[host], pools.get((host, subset), {})))
    clusters += aggregates
    hcm: dict[str, Any] = {
        "@type": HCM_TYPE,
        "stat_prefix": "fleetkit_ingress",
        "route_config": {"name": "fleetkit-ingress", "virtual_hosts": [vhost]},
        "http_filters": http_filters,
        "generate_request_id": True,
        "stream_idle_timeout": "0s",
    }
    if access_log is not None:  # test instrumentation: which route and cluster served each request
        hcm["access_log"] = [
            {
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": access_log,
                    "log_format": {
                        "text_format_source": {
                            "inline_string": "%REQ(X-E2E-ID)% %ROUTE_NAME% %UPSTREAM_CLUSTER% %RESPONSE_CODE%\n"
                        }
                    },
                },
            }
        ]
    if otlp is not None:
        hcm.setdefault("access_log", []).extend(usage_access_logs(objs, providers or [], otlp))
        telemetry = _kind(objs, "Telemetry")
        sampling = 100.0
        for t in telemetry:
            for tr in t["spec"].get("tracing", []):
                sampling = tr.get("randomSamplingPercentage", sampling)
        hcm["tracing"] = {
            "random_sampling": {"value": sampling},
            "provider": {
                "name": "envoy.tracers.opentelemetry",
                "typed_config": {
                    "@type": OTEL_TYPE,
                    "service_name": "fleetkit-ingress",
                    "http_service": {
                        "http_uri": {
                            "uri": f"http://{otlp.host}:{otlp.port}/v1/traces",
                            "cluster": "otlp",
                            "timeout": "2s",
                        }
                    },
                },
            },
        }
        clusters.append(cluster("otlp", otlp, {}))
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "fleetkit-ingress",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                            ]
                        }
                    ],
                }
            ],
            "clusters": clusters,
        },
    }
