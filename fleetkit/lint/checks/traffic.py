"""DestinationRule traffic policies: locality failover, connection pools, consistent hashing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fleetkit.lint.durations import human, parse_duration
from fleetkit.lint.index import (
    NETWORKING,
    Hit,
    Index,
    Policy,
    as_dict,
    as_int,
    as_list,
    as_str,
    effective_policy,
    traffic_policies,
)
from policies.common import is_prime

OUTLIER_EXAMPLE = "outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}"
MAGLEV_MAX = 5000011


def _top_outlier(policy: Policy) -> Any:
    return as_dict(policy.dr.spec.get("trafficPolicy")).get("outlierDetection")


def _outlier_for(policy: Policy) -> Any:
    """outlierDetection in force where ``policy`` sits: subsets inherit the top level, port level does not."""
    od = policy.body.get("outlierDetection")
    if od is None and policy.subset is not None and policy.port is None:
        od = _top_outlier(policy)
    return od


def _ejects(od: dict[str, Any]) -> bool:
    """False when every ejection trigger is explicitly off (consecutive5xxErrors defaults to 5 when unset)."""
    c5xx = od.get("consecutive5xxErrors", od.get("consecutiveErrors"))
    if c5xx is None or (as_int(c5xx) or 0) > 0:
        return True
    return bool(
        as_int(od.get("consecutiveGatewayErrors")) or as_int(od.get("consecutiveLocalOriginFailures"))
    )


def check_failover(ix: Index) -> Iterator[Hit]:
    """FK201: locality failover / failoverPriority with no outlier detection to trigger it."""
    for dr in ix.of(NETWORKING, "DestinationRule"):
        for p in traffic_policies(dr):
            lls = as_dict(as_dict(p.body.get("loadBalancer")).get("localityLbSetting"))
            if not lls or lls.get("enabled") is False:
                continue
            knobs = [k for k in ("failover", "failoverPriority") if as_list(lls.get(k))]
            if not knobs:
                continue
            od = _outlier_for(p)
            where = (*p.path, "loadBalancer", "localityLbSetting")
            note = " (port-level settings do not inherit the top-level outlierDetection)" if p.port else ""
            if not isinstance(od, dict):
                yield Hit(dr, where, "FK201",
                          f"{' and '.join(knobs)} configured without outlierDetection in the same traffic policy"
                          f"{note}: unhealthy endpoints are never ejected, so traffic never fails over",
                          f"add {OUTLIER_EXAMPLE} next to this loadBalancer")  # fmt: skip
            elif not _ejects(od):
                yield Hit(dr, where, "FK201",
                          f"{' and '.join(knobs)} configured, but outlierDetection disables every ejection trigger "
                          "(consecutive5xxErrors: 0, no gateway/local-origin errors): failover never happens",
                          "set consecutive5xxErrors (e.g. 5) or consecutiveGatewayErrors")  # fmt: skip


def check_connection_pools(ix: Index) -> Iterator[Hit]:
    """FK202: connection-pool limits that queue, reject or churn normal LLM traffic."""
    cfg = ix.config
    for dr in ix.of(NETWORKING, "DestinationRule"):
        for p in traffic_policies(dr):
            pool = as_dict(p.body.get("connectionPool"))
            if not pool:
                continue
            base = (*p.path, "connectionPool")
            tcp, http_ = as_dict(pool.get("tcp")), as_dict(pool.get("http"))
            per_proxy = "per client proxy (each sidecar or gateway pod)"
            max_conn = as_int(tcp.get("maxConnections"))
            if max_conn is not None and max_conn < cfg.min_concurrency:
                yield Hit(dr, (*base, "tcp", "maxConnections"), "FK202",
                          f"maxConnections {max_conn} {per_proxy} is below {cfg.min_concurrency}; every streaming "
                          "generation holds an HTTP/1.1 connection, so requests beyond it queue or fail with 503 UO",
                          f"raise maxConnections to at least {cfg.min_concurrency} (vLLM batches hundreds of "
                          "sequences per replica), or leave it unset")  # fmt: skip
            h2_max = as_int(http_.get("http2MaxRequests"))
            if h2_max is not None and h2_max < cfg.min_concurrency:
                yield Hit(dr, (*base, "http", "http2MaxRequests"), "FK202",
                          f"http2MaxRequests {h2_max} caps concurrent requests {per_proxy} below "
                          f"{cfg.min_concurrency}; further requests fail with 503 UO",
                          f"raise http2MaxRequests to at least {cfg.min_concurrency}, or leave it unset")  # fmt: skip
            pending = as_int(http_.get("http1MaxPendingRequests"))
            if pending is not None and pending < cfg.min_pending_requests:
                yield Hit(dr, (*base, "http", "http1MaxPendingRequests"), "FK202",
                          f"http1MaxPendingRequests {pending} leaves almost no queue: a short burst beyond the "
                          "connection limit is rejected with 503 instead of waiting for a slot",
                          f"raise it to at least {cfg.min_pending_requests}, or leave it unset")  # fmt: skip
            if as_int(http_.get("maxRequestsPerConnection")) == 1:
                yield Hit(dr, (*base, "http", "maxRequestsPerConnection"), "FK202",
                          "maxRequestsPerConnection 1 disables keep-alive: every request pays a new TCP + mTLS "
                          "handshake (cross-cluster: through the east-west gateway)",
                          "remove maxRequestsPerConnection (0 = unlimited)")  # fmt: skip
            connect = parse_duration(as_str(tcp.get("connectTimeout")))
            if connect is not None and connect < cfg.min_connect_timeout:
                yield Hit(dr, (*base, "tcp", "connectTimeout"), "FK202",
                          f"connectTimeout {human(connect)} is below {human(cfg.min_connect_timeout)}; cross-region "
                          "connects through an east-west gateway can take longer and fail spuriously",
                          f"use at least {human(cfg.min_connect_timeout)} (Istio default 10s)")  # fmt: skip
            tcp_idle = parse_duration(as_str(tcp.get("idleTimeout")))
            if tcp_idle is not None and 0 < tcp_idle.total_seconds() and tcp_idle < cfg.min_timeout:
                yield Hit(dr, (*base, "tcp", "idleTimeout"), "FK202",
                          f"tcp.idleTimeout {human(tcp_idle)} is shorter than the generation budget "
                          f"{human(cfg.min_timeout)}; traffic proxied as TCP is cut while a non-streaming "
                          "generation sends no bytes",
                          f"raise it to at least {human(cfg.min_timeout)} (Istio default 1h)")  # fmt: skip
            http_idle = parse_duration(as_str(http_.get("idleTimeout")))
            if (
                http_idle is not None
                and 0 < http_idle.total_seconds()
                and http_idle < cfg.min_http_idle_timeout
            ):
                yield Hit(dr, (*base, "http", "idleTimeout"), "FK202",
                          f"http.idleTimeout {human(http_idle)} closes pooled connections between requests, so "
                          "most requests pay a new connection + mTLS handshake",
                          f"use at least {human(cfg.min_http_idle_timeout)} (Istio default 1h)")  # fmt: skip


def _hash(lb: dict[str, Any]) -> dict[str, Any] | None:
    ch = lb.get("consistentHash")
    return ch if isinstance(ch, dict) else None


def check_hashing(ix: Index) -> Iterator[Hit]:
    """FK203 (hash affinity defeated) and FK204 (maglev table size)."""
    gateway_hosts = {
        d.fqdn
        for d in ix.route_dests
        if any(isinstance(g, str) and g != "mesh" for g in as_list(d.vs.spec.get("gateways")))
    }
    for dr in ix.of(NETWORKING, "DestinationRule"):
        host = ix.fqdn(as_str(dr.spec.get("host")), dr.namespace)
        for p in traffic_policies(dr):
            lb = as_dict(p.body.get("loadBalancer"))
            ch = _hash(lb)
            if ch is None:
                continue
            path = (*p.path, "loadBalancer", "consistentHash")
            if isinstance(ch.get("maglev"), dict):
                size = ch["maglev"].get("tableSize")
                if size is None:
                    yield Hit(dr, (*path, "maglev"), "FK204", "maglev.tableSize is not set; Istio rejects it",
                              "set maglev.tableSize to a prime such as 65537")  # fmt: skip
                elif not isinstance(size, int) or not is_prime(size) or size >= MAGLEV_MAX:
                    yield Hit(dr, (*path, "maglev", "tableSize"), "FK204",
                              f"maglev.tableSize {size!r} must be a prime below {MAGLEV_MAX}",
                              "use a prime such as 65537 (or 16381 for small pools)")  # fmt: skip
            lls = as_dict(lb.get("localityLbSetting"))
            active = [k for k in ("distribute", "failover", "failoverPriority") if as_list(lls.get(k))]
            if lls.get("enabled") is False:
                pass
            elif active or lls.get("enabled") is True:
                what = ", ".join(active) or "enabled: true"
                yield Hit(dr, path, "FK203",
                          f"consistent hashing together with locality load balancing ({what}): hashing only "
                          "holds while all clients are in one locality; clients in other regions/clusters map "
                          "the same key to different pods",
                          "drop the locality settings (localityLbSetting: {enabled: false}) or the hash")  # fmt: skip
            elif isinstance(_outlier_for(p), dict):
                yield Hit(dr, path, "FK203",
                          "consistent hashing with outlierDetection but no localityLbSetting: Istio's default "
                          "locality load balancing becomes active, so the hash only holds within one locality",
                          "add loadBalancer.localityLbSetting: {enabled: false} to keep one hash ring mesh-wide")  # fmt: skip
            if ch.get("useSourceIp") is True and host in gateway_hosts:
                yield Hit(dr, (*path, "useSourceIp"), "FK203",
                          f"{host} is reached through a gateway, where the source IP is the load balancer's or "
                          "NAT address (and downstream of it the gateway pod's), so most users hash to one pod",
                          "hash on a header (httpHeaderName: x-session-id) or a cookie (httpCookie)")  # fmt: skip
    yield from _weighted_splits(ix)


def _weighted_splits(ix: Index) -> Iterator[Hit]:
    for vs in ix.of(NETWORKING, "VirtualService"):
        for i, route in enumerate(as_list(vs.spec.get("http"))):
            entries = [as_dict(e) for e in as_list(as_dict(route).get("route"))]
            live = []
            for e in entries:
                weight = as_int(e.get("weight"))
                if len(entries) > 1 and (weight is None or weight <= 0):
                    continue
                dest = as_dict(e.get("destination"))
                host = as_str(dest.get("host"))
                if host:
                    live.append((ix.fqdn(host, vs.namespace), as_str(dest.get("subset")),
                                 as_int(as_dict(dest.get("port")).get("number"))))  # fmt: skip
            if len({(h, s) for h, s, _ in live}) < 2:
                continue
            hashed = sorted({f"{h}{'/' + s if s else ''}" for h, s, port in live if _hashes(ix, h, s, port)})
            if hashed:
                yield Hit(vs, ("spec", "http", i, "route"), "FK203",
                          f"weighted split across {len(live)} destinations while {', '.join(hashed)} use consistent "
                          "hashing: the split picks a destination per request before the hash applies, so one "
                          "session lands on several destinations",
                          "split by a header/cookie match instead of weights, or accept losing affinity during "
                          "the rollout")  # fmt: skip


def _hashes(ix: Index, host: str, subset: str, port: int | None) -> bool:
    for dr in ix.drs_for(host):
        lb = as_dict(effective_policy(dr, subset, port).get("loadBalancer"))
        if _hash(lb) is not None:
            return True
    return False


CHECKS = [check_failover, check_connection_pools, check_hashing]
