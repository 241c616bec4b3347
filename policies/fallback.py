"""Fallback chains as Envoy aggregate clusters: the primary model anywhere in the mesh comes first.

``resilience.fallback: {llama-3-70b: [llama-3-8b]}`` means: serve "llama-3-70b" requests with the
70B wherever it is healthy in the mesh, and only when no 70B endpoint anywhere can take the request,
with the 8B. The 8B serves only its own name; an inbound filter on its pods rewrites a failed-over
request's ``model`` to it (:func:`policies.fallback_rewrite.render_fallback_rewrites`), so no pod advertises
another model's name and the reply says which model answered.

Why not one Service over both models with a custom ``failoverPriority`` label (the kit's first
design)? In a multi-network mesh istiod replaces every remote network's endpoints by one endpoint
per east-west gateway, built with only the cluster and network labels
(``labelutil.AugmentLabels(nil, gw.Cluster, "", gw.Network)`` in ``EndpointsByNetworkFilter``,
istio/istio ``pilot/pkg/xds/endpoints/ep_filters.go``). A ``failoverPriority`` whose first label is
a custom pod label therefore never matches a remote endpoint: the remote 70B sorts to the lowest
priority, below the local 8B, and a cluster without a local 70B sends "llama-3-70b" traffic to the
8B while the 70B is healthy elsewhere. Subsets cannot fail over to each other either: each subset is
its own Envoy cluster and a VirtualService only weights between them (istio/istio#41787).

The mechanism here only uses what the east-west gateway preserves:

* each chain member stays an ordinary Istio cluster, ``outbound|8000|<subset>|<host>``, with the
  stack's topology ``failoverPriority`` (network, cluster, region, zone) — labels the gateway
  endpoints do carry — so within one model, local endpoints come before remote ones;
* an Envoy **aggregate cluster** lists the members in chain order. Envoy linearizes the priority
  levels of the listed clusters (all of the first cluster's levels, then all of the second's …) and
  moves to a later level only as the earlier ones become unhealthy (Envoy docs, "Aggregate Cluster",
  "Linearize Priority Set"). So the order is exactly:

  1. the primary's endpoints in the caller's network (then cluster, region, zone, by
     ``failoverPriority``),
  2. the primary's other networks, through their east-west gateways,
  3. the first fallback model, local network first, then remote networks,
  4. the next fallback model, and so on.

  Unhealthy means ejected by the member's outlier detection (the DestinationRule's
  ``consecutive5xxErrors``/``consecutiveGatewayErrors``) or absent (scaled to zero, no endpoints).
  As in any Envoy priority failover, traffic spills over gradually as a level's healthy share drops
  below 100 % / overprovisioning factor (1.4), not at one instant. A member's ejections reach the
  aggregate asynchronously: in ``tests/mesh/test_fallback_envoy.py`` (a real Envoy 1.40 fed these
  patches) requests sent in the first moments after the last 70B is ejected still fail, then the
  8B takes over; the route's retries cover that window.
* an ``EnvoyFilter`` adds the aggregate cluster to the ingress gateway (``applyTo: CLUSTER``,
  ``operation: ADD``, type ``envoy.clusters.aggregate`` with
  ``envoy.extensions.clusters.aggregate.v3.ClusterConfig``, ``lb_policy: CLUSTER_PROVIDED``) and
  points each chain route at it (``applyTo: HTTP_ROUTE`` matched by the VirtualService route name,
  which Istio copies to the Envoy route, ``operation: MERGE`` of ``route.cluster``). The route keeps
  its timeout, retries and mirror; the members' subsets stay defined on their DestinationRules, so
  istiod keeps their clusters on the gateway.

The VirtualService is bound only to the ingress gateway, so this is where the chain applies. Pure:
plain manifest dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.common import MODEL_PORT, metadata

ENVOY_FILTER_NAME = "fleetkit-fallback"
AGGREGATE_CLUSTER_TYPE = "envoy.clusters.aggregate"
AGGREGATE_CONFIG_TYPE = "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig"
#: connect timeout of the aggregate itself (Envoy requires one; members keep their own)
AGGREGATE_CONNECT_TIMEOUT = "10s"


def istio_cluster_name(host: str, subset: str | None, port: int = MODEL_PORT) -> str:
    """The Envoy cluster istiod builds for a host/subset: ``outbound|<port>|<subset>|<host>``."""
    return f"outbound|{port}|{subset or ''}|{host}"


def aggregate_cluster_name(primary_cluster: str) -> str:
    """``fleetkit-fallback|<primary subset>|<primary host>``: one aggregate per primary cluster."""
    _, _, subset, host = primary_cluster.split("|", 3)
    return f"{ENVOY_FILTER_NAME}|{subset or 'all'}|{host}"


@dataclass(frozen=True)
class ChainRoute:
    """A VirtualService route whose single destination is a fallback chain, members in order."""

    route: str
    clusters: tuple[str, ...]

    @property
    def aggregate(self) -> str:
        return aggregate_cluster_name(self.clusters[0])


def aggregate_cluster(name: str, members: tuple[str, ...]) -> dict[str, Any]:
    """The Envoy ``Cluster`` of an aggregate over ``members`` (first = preferred)."""
    return {
        "name": name,
        "connect_timeout": AGGREGATE_CONNECT_TIMEOUT,
        "lb_policy": "CLUSTER_PROVIDED",
        "cluster_type": {
            "name": AGGREGATE_CLUSTER_TYPE,
            "typed_config": {"@type": AGGREGATE_CONFIG_TYPE, "clusters": list(members)},
        },
    }


def render_envoy_filter(
    chains: list[ChainRoute], *, namespace: str, gateway_selector: dict[str, str]
) -> dict[str, Any] | None:
    """One EnvoyFilter on the ingress gateway: the aggregate clusters, then the route patches."""
    if not chains:
        return None
    clusters: dict[str, tuple[str, ...]] = {}
    for c in chains:
        if clusters.setdefault(c.aggregate, c.clusters) != c.clusters:
            raise ValueError(f"aggregate {c.aggregate} is used with two member lists")
    patches: list[dict[str, Any]] = [
        {
            "applyTo": "CLUSTER",
            "match": {"context": "GATEWAY"},
            "patch": {"operation": "ADD", "value": aggregate_cluster(name, members)},
        }
        for name, members in sorted(clusters.items())
    ]
    patches += [
        {
            "applyTo": "HTTP_ROUTE",
            "match": {"context": "GATEWAY", "routeConfiguration": {"vhost": {"route": {"name": c.route}}}},
            "patch": {"operation": "MERGE", "value": {"route": {"cluster": c.aggregate}}},
        }
        for c in sorted(chains, key=lambda c: c.route)
    ]
    return {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": metadata(ENVOY_FILTER_NAME, namespace),
        "spec": {"workloadSelector": {"labels": dict(gateway_selector)}, "configPatches": patches},
    }
