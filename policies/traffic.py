"""Composes routing, load balancing, resilience, QoS and failover into Istio traffic objects.

Rendered per cluster (stack): every object here is applied to one cluster's istiod, so a route's
destinations are chosen for the endpoints that exist *there*. A route destination is resolved in a
fixed order:

1. a whole model (no version, no GPU class) that has a fallback chain goes to the primary's chain
   version, and the route is pointed at an Envoy aggregate cluster over the chain members
   (:mod:`policies.fallback`: the primary anywhere in the mesh first, then each fallback model);
2. a destination without ``gpu_class`` whose model has ``gpu_weights`` is split into one weighted
   destination per GPU class **this cluster always runs** (a local Deployment with
   ``replicas.min >= 1``). Each subset is its own Envoy cluster; a weighted destination whose subset
   has no endpoints answers 503 for its share (istio/istio#27092), and a VirtualService cannot fail
   over from one subset to another (istio/istio#41787). So a GPU class that exists only in another
   cluster, or that may scale to zero here, never gets a weight. With fewer than two such classes
   the destination is the whole model (or version), whose endpoints fail over across the mesh;
3. the subset is named ``<version>-<gpu_class>`` (either part optional) and selects pods by the
   ``version`` / ``fleetkit.dev/gpu-class`` labels;
4. with QoS tiers, every route is emitted once per tier (matching the tier header; the default tier
   also catches requests without it) toward ``<subset>-<tier>`` subsets that carry the tier's
   connection-pool limits. Istio merges a subset's ``trafficPolicy`` over the top-level one per
   field group (``MergeTrafficPolicy`` in ``pilot/pkg/networking/core/cluster_traffic_policy.go``):
   a subset ``connectionPool`` replaces the top-level one *whole*, so the tier's subset renders the
   complete pool — the circuit breaker's ``maxConnections``, ``connectTimeout`` and ``idleTimeout``
   with the tier's request limits over it.

A mirror is rendered only in a cluster where its target has a local Deployment with
``replicas.min >= 1``: Envoy mirrors to the target cluster's endpoints wherever they are, so a mirror
toward a version that runs elsewhere would duplicate the most expensive requests across clouds.

Every subset a route references is defined on its DestinationRule, and no other subset is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from policies.common import LABEL_APP, LABEL_GPU_CLASS, LABEL_VERSION, MODEL_PORT, format_duration, metadata
from policies.context import RenderContext
from policies.fallback import ChainRoute, istio_cluster_name, render_envoy_filter
from policies.routing import Destination, Mirror, Route

if TYPE_CHECKING:
    from policies.policy_set import PolicySet

ROUTES_NAME = "fleetkit-routes"


def weighted_gpu_classes(
    policies: PolicySet, ctx: RenderContext, model: str, version: str | None
) -> list[tuple[str, int]]:
    """(GPU class, weight) pairs a destination is split over in this cluster (see the module docstring)."""
    gpu_weights = policies.load_balancing.for_model(model).gpu_weights
    info = ctx.services.get(model)
    if not gpu_weights or info is None:
        return []
    always_on = {v.gpu_class for v in info.always_on(ctx.stack, version)}
    split = [(g, w) for g, w in sorted(gpu_weights.items()) if g in always_on]
    return split if len(split) >= 2 else []


def mirror_is_local(mirror: Mirror, ctx: RenderContext) -> bool:
    """The mirror target has a Deployment in this cluster that never scales below one replica."""
    info = ctx.services.get(mirror.model)
    if info is None:
        return False
    return any(mirror.gpu_class in (None, v.gpu_class) for v in info.always_on(ctx.stack, mirror.version))


@dataclass(frozen=True)
class Target:
    """A resolved destination: the Service it goes to and the subset (name + labels) if any."""

    service: str
    subset: str | None
    labels: tuple[tuple[str, str], ...]
    weight: int = 100
    #: fallback models after this one, in chain order (whole-model destinations with a chain)
    chain: tuple[Target, ...] = field(default=())


def _resolve(dest: Destination | Mirror, policies: PolicySet, ctx: RenderContext) -> list[Target]:
    model = dest.model
    weight = getattr(dest, "weight", 100)
    res = policies.resilience
    if dest.version is None and dest.gpu_class is None and model in res.fallback:
        members = tuple(_target(m, None, None, 100) for m in res.fallback[model])
        return [replace(_target(model, res.chain_version(model), None, weight), chain=members)]
    if isinstance(dest, Destination) and dest.gpu_class is None:
        split = weighted_gpu_classes(policies, ctx, model, dest.version)
        if split:
            return [_target(model, dest.version, g, weight * w) for g, w in split]
    return [_target(model, dest.version, dest.gpu_class, weight)]


def _target(model: str, version: str | None, gpu_class: str | None, weight: int) -> Target:
    labels: list[tuple[str, str]] = []
    if version:
        labels.append((LABEL_VERSION, version))
    if gpu_class:
        labels.append((LABEL_GPU_CLASS, gpu_class))
    name = "-".join(x for x in (version, gpu_class) if x) or None
    return Target(model, name, tuple(labels), weight)


def _with_tier(t: Target, tier: str) -> Target:
    labels = t.labels or ((LABEL_APP, t.service),)
    return Target(
        t.service,
        f"{t.subset}-{tier}" if t.subset else tier,
        labels,
        t.weight,
        tuple(_with_tier(m, tier) for m in t.chain),
    )


class _Collector:
    """Remembers every subset referenced, per Service, so DestinationRules define exactly those."""

    def __init__(self) -> None:
        self.subsets: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {}
        self.tier_of: dict[tuple[str, str], str] = {}
        self.chains: list[ChainRoute] = []

    def use(self, t: Target, tier: str | None = None) -> dict[str, Any]:
        dest: dict[str, Any] = {"host": "", "port": {"number": MODEL_PORT}}
        if t.subset:
            self.subsets.setdefault(t.service, {})[t.subset] = t.labels
            if tier:
                self.tier_of[(t.service, t.subset)] = tier
            dest["subset"] = t.subset
        self.subsets.setdefault(t.service, {})
        return dest


def _destination(t: Target, ctx: RenderContext, col: _Collector, tier: str | None) -> dict[str, Any]:
    d = col.use(t, tier)
    d["host"] = ctx.host(t.service)
    return dict(sorted(d.items()))


def _http_route(
    name: str,
    matches: list[dict[str, Any]] | None,
    targets: list[Target],
    mirror: tuple[Target, float] | None,
    primary_model: str,
    policies: PolicySet,
    ctx: RenderContext,
    col: _Collector,
    tier: str | None,
) -> dict[str, Any]:
    res = policies.resilience.for_model(primary_model)
    route: dict[str, Any] = {"name": name}
    if matches:
        route["match"] = matches
    route["route"] = [{"destination": _destination(t, ctx, col, tier), "weight": t.weight} for t in targets]
    if len(targets) == 1 and targets[0].chain:
        members = [targets[0], *targets[0].chain]
        for m in members[1:]:
            _destination(m, ctx, col, tier)  # defines the member's subset, so istiod builds its cluster
        col.chains.append(
            ChainRoute(name, tuple(istio_cluster_name(ctx.host(m.service), m.subset) for m in members))
        )
    route["timeout"] = format_duration(res.timeout)
    route["retries"] = res.retries.render()
    if mirror is not None:
        mt, pct = mirror
        route["mirror"] = _destination(mt, ctx, col, None)
        route["mirrorPercentage"] = {"value": pct}
    return route


def _tier_header_match(policies: PolicySet, tier: str) -> dict[str, Any]:
    return {"headers": {policies.routing.headers.tier: {"exact": tier}}}


def _merge_match(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    if "headers" in extra:
        out["headers"] = dict(sorted({**base.get("headers", {}), **extra["headers"]}.items()))
    return out


def render_virtual_service(policies: PolicySet, ctx: RenderContext, col: _Collector) -> dict[str, Any]:
    routing = policies.routing
    qos = policies.qos
    http: list[dict[str, Any]] = []
    entries: list[tuple[str, list[dict[str, Any]] | None, list[Destination], Mirror | None]] = [
        (r.name, [routing.match_blocks(m) for m in r.match], r.to, r.mirror) for r in routing.routes
    ]
    entries.append(("default", None, routing.default.to, routing.default.mirror))
    for name, matches, dests, mirror in entries:
        targets = [t for d in dests for t in _resolve(d, policies, ctx)]
        local_mirror = mirror is not None and mirror_is_local(mirror, ctx)
        mirror_t = (_resolve(mirror, policies, ctx)[0], mirror.percent) if mirror and local_mirror else None
        primary = dests[0].model
        if qos is None:
            http.append(_http_route(name, matches, targets, mirror_t, primary, policies, ctx, col, None))
            continue
        for tier, _ in qos.ordered():
            tier_match = _tier_header_match(policies, tier)
            tm = [_merge_match(m, tier_match) for m in matches] if matches else [tier_match]
            tiered = [_with_tier(t, tier) for t in targets]
            http.append(
                _http_route(f"{name}-{tier}", tm, tiered, mirror_t, primary, policies, ctx, col, tier)
            )
        # requests without a tier header get the default tier
        tiered = [_with_tier(t, qos.default_tier) for t in targets]
        http.append(
            _http_route(
                f"{name}-untiered", matches, tiered, mirror_t, primary, policies, ctx, col, qos.default_tier
            )
        )
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": metadata(ROUTES_NAME, ctx.namespace),
        "spec": {
            "hosts": sorted(routing.hosts),
            "gateways": [ctx.gateway_ref],
            "http": http,
        },
    }


def render_gateway(policies: PolicySet, ctx: RenderContext) -> dict[str, Any]:
    routing = policies.routing
    if routing.tls_credential:
        server = {
            "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
            "tls": {"mode": "SIMPLE", "credentialName": routing.tls_credential},
            "hosts": sorted(routing.hosts),
        }
    else:
        server = {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": sorted(routing.hosts)}
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": metadata(ctx.ingress_gateway_name, ctx.system_namespace),
        "spec": {
            "selector": {"istio": ctx.ingress_gateway_name.removeprefix("istio-")},
            "servers": [server],
        },
    }


def _traffic_policy(policies: PolicySet, model: str) -> dict[str, Any]:
    lb = policies.load_balancing.for_model(model).render()
    cb = policies.resilience.for_model(model).circuit_breaker
    if policies.failover is not None:
        lb["localityLbSetting"] = policies.failover.locality_lb_setting()
    return {
        "connectionPool": cb.connection_pool(),
        "loadBalancer": lb,
        "outlierDetection": cb.outlier_detection(),
    }


def merged_pool(base: dict[str, Any], tier: dict[str, Any]) -> dict[str, Any]:
    """The default connection pool with the tier's limits over it, per group (tcp, http)."""
    out: dict[str, Any] = {}
    for group in sorted(set(base) | set(tier)):
        out[group] = dict(sorted({**base.get(group, {}), **tier.get(group, {})}.items()))
    return out


def render_destination_rules(
    policies: PolicySet, ctx: RenderContext, col: _Collector
) -> list[dict[str, Any]]:
    out = []
    for service in sorted(set(ctx.services) | set(col.subsets)):
        spec: dict[str, Any] = {
            "host": ctx.host(service),
            "trafficPolicy": _traffic_policy(policies, service),
        }
        subsets = []
        for name, labels in sorted(col.subsets.get(service, {}).items()):
            subset: dict[str, Any] = {"name": name, "labels": dict(sorted(labels))}
            tier = col.tier_of.get((service, name))
            if tier and policies.qos is not None:
                base = policies.resilience.for_model(service).circuit_breaker.connection_pool()
                subset["trafficPolicy"] = {
                    "connectionPool": merged_pool(base, policies.qos.connection_pool(tier))
                }
            subsets.append(subset)
        if subsets:
            spec["subsets"] = subsets
        out.append(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": metadata(service, ctx.namespace),
                "spec": spec,
            }
        )
    return out


def render_services(policies: PolicySet, ctx: RenderContext) -> list[dict[str, Any]]:
    """A Service for every model service of the fleet in every cluster (namespace sameness).

    Kubernetes DNS only resolves Services that exist locally, so a cluster that does not run a model
    still gets its Service (with no local endpoints); Istio merges the endpoints of all clusters.
    """
    port = {
        "name": "http",
        "port": MODEL_PORT,
        "targetPort": MODEL_PORT,
        "protocol": "TCP",
        "appProtocol": "http",
    }
    out = []
    selectors: dict[str, dict[str, str]] = {s: {LABEL_APP: s} for s in ctx.services}
    for name, selector in sorted(selectors.items()):
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata(name, ctx.namespace, {LABEL_APP: name}),
                "spec": {"selector": selector, "ports": [dict(port)], "type": "ClusterIP"},
            }
        )
    return out


def render_traffic(policies: PolicySet, ctx: RenderContext) -> list[dict[str, Any]]:
    col = _Collector()
    vs = render_virtual_service(policies, ctx, col)
    out = [
        render_gateway(policies, ctx),
        vs,
        *render_destination_rules(policies, ctx, col),
        *render_services(policies, ctx),
    ]
    envoy_filter = render_envoy_filter(
        col.chains,
        namespace=ctx.system_namespace,
        gateway_selector={"istio": ctx.ingress_gateway_name.removeprefix("istio-")},
    )
    if envoy_filter is not None:
        out.append(envoy_filter)
    return out


def route_by_name(policies: PolicySet, name: str) -> Route | None:
    return next((r for r in policies.routing.routes if r.name == name), None)
