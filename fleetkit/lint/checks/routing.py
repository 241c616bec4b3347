"""VirtualService routing: subsets, fault injection, retries, timeouts and destination hosts."""

from __future__ import annotations

import http
import math
from collections.abc import Iterator
from datetime import timedelta

from fleetkit.lint.durations import human, parse_duration
from fleetkit.lint.index import NETWORKING, Hit, Index, Obj, as_dict, as_int, as_list, as_str, is_ip

#: retryOn tokens Istio 1.30 accepts besides numeric HTTP status codes (supportedRetryOnPolicies).
SUPPORTED_RETRY_ON = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "envoy-ratelimited",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)

#: Why each unsafe condition may replay a generation that already started.
UNSAFE_REASONS = {
    "5xx": "any 5xx, including a 500/502/504 after vLLM started generating, and per-try timeouts",
    "gateway-error": "502/503/504, and a 504 is a per-try timeout while the generation is running",
    "reset": "the connection reset after the request was sent",
    "retriable-4xx": "409 responses, which are no retry contract of the OpenAI API",
    "retriable-headers": "any response carrying the configured headers",
    "http3-post-connect-failure": "failures after the HTTP/3 request was sent",
    "deadline-exceeded": "gRPC DEADLINE_EXCEEDED, i.e. the generation ran out of time",
    "internal": "gRPC INTERNAL errors raised mid-generation",
    "resource-exhausted": "gRPC RESOURCE_EXHAUSTED, often raised after work started",
}

SAFE_EXAMPLE = "connect-failure,refused-stream,reset-before-request"


def _http_routes(ix: Index) -> Iterator[tuple[Obj, int, dict]]:
    for vs in ix.of(NETWORKING, "VirtualService"):
        for i, route in enumerate(as_list(vs.spec.get("http"))):
            if isinstance(route, dict):
                yield vs, i, route


def _subset_names(dr: Obj) -> list[str]:
    return [as_str(as_dict(s).get("name")) for s in as_list(dr.spec.get("subsets")) if as_dict(s).get("name")]


def check_subsets(ix: Index) -> Iterator[Hit]:
    """FK101 (route to an undefined subset) and FK102 (subset no route uses)."""
    for d in ix.route_dests:
        if not d.subset:
            continue
        drs = ix.drs_for(d.fqdn)
        defined = sorted({name for dr in drs for name in _subset_names(dr)})
        if d.subset in defined:
            continue
        if drs:
            where = ", ".join(dr.ref for dr in drs)
            msg = (f"subset {d.subset!r} is not defined for host {d.fqdn} by {where} "
                   f"(defined: {', '.join(defined) or 'none'}); the route returns 503")  # fmt: skip
        else:
            msg = (f"no DestinationRule in the linted files defines subsets for host {d.fqdn}, so subset "
                   f"{d.subset!r} does not exist and the route returns 503")  # fmt: skip
        fix = f"add subset {d.subset!r} (name + labels) to the DestinationRule for {d.fqdn}, or route to a defined subset"
        yield Hit(d.vs, (*d.path, "subset"), "FK101", msg, fix)

    used = {(d.fqdn, d.subset) for d in ix.route_dests}
    for dr in ix.of(NETWORKING, "DestinationRule"):
        fq = ix.fqdn(as_str(dr.spec.get("host")), dr.namespace)
        if not fq or fq.startswith("*") or fq not in ix.dests_by_fqdn:
            continue  # nothing in the input routes to this host: cannot tell
        for i, subset in enumerate(as_list(dr.spec.get("subsets"))):
            name = as_str(as_dict(subset).get("name"))
            if name and (fq, name) not in used:
                yield Hit(dr, ("spec", "subsets", i), "FK102",
                          f"subset {name!r} of {fq} is not used by any VirtualService route",
                          "delete the subset (e.g. after a finished canary) or route to it")  # fmt: skip


def _percent(block: dict) -> float | None:
    pct = as_dict(block.get("percentage")).get("value")
    if isinstance(pct, int | float) and not isinstance(pct, bool):
        return float(pct)
    legacy = as_int(block.get("percent"))
    return float(legacy) if legacy is not None else None


def check_fault(ix: Index) -> Iterator[Hit]:
    """FK103: fault injection left on a route."""
    for vs, i, route in _http_routes(ix):
        fault = as_dict(route.get("fault"))
        parts = []
        for kind in ("abort", "delay"):
            block = fault.get(kind)
            if not isinstance(block, dict):
                continue
            pct = _percent(block)
            if pct is not None and pct <= 0:
                continue
            share = "all" if pct is None else f"{pct:g}%"
            if kind == "abort":
                status = block.get("httpStatus", block.get("grpcStatus", block.get("http2Error", "?")))
                parts.append(f"abort {status} on {share} of requests")
            else:
                delay = block.get("fixedDelay", block.get("exponentialDelay", "?"))
                parts.append(f"delay {delay} on {share} of requests")
        if parts:
            yield Hit(vs, ("spec", "http", i, "fault"), "FK103",
                      f"fault injection is active ({'; '.join(parts)}); while it is set Istio also drops this "
                      "route's retries and timeout",
                      "remove the fault block outside fault-injection tests (keep chaos tests in a separate, "
                      "short-lived VirtualService)")  # fmt: skip


def _tokens(retry_on: str) -> list[str]:
    return [t.strip() for t in retry_on.split(",") if t.strip()]


def _valid_token(token: str) -> bool:
    if token.isdigit():
        try:
            http.HTTPStatus(int(token))
        except ValueError:
            return False
        return True
    return token in SUPPORTED_RETRY_ON


def check_retries(ix: Index) -> Iterator[Hit]:
    """FK104 (retries exceed the route timeout), FK105 (unsafe conditions), FK106 (policy Istio rejects)."""
    safe = ix.config.safe_retry_on
    for vs, i, route in _http_routes(ix):
        if not isinstance(route.get("retries"), dict):
            continue
        retries = route["retries"]
        path = ("spec", "http", i, "retries")
        attempts = as_int(retries.get("attempts")) or 0
        retry_on = as_str(retries.get("retryOn"))
        tokens = _tokens(retry_on)
        if attempts < 0:
            yield Hit(vs, (*path, "attempts"), "FK106", f"attempts is negative ({attempts})",
                      "use attempts: 0 to disable retries, or a positive count")  # fmt: skip
        configured = [k for k in ("perTryTimeout", "retryOn", "retryRemoteLocalities") if k in retries]
        if attempts == 0 and configured:
            yield Hit(vs, path, "FK106",
                      f"{', '.join(configured)} set while attempts is 0 (retries disabled); Istio rejects this policy",
                      "to disable retries keep only 'attempts: 0'; to retry, set attempts >= 1")  # fmt: skip
        bad = [t for t in tokens if not _valid_token(t)]
        if bad:
            yield Hit(vs, (*path, "retryOn"), "FK106",
                      f"retryOn {', '.join(repr(t) for t in bad)} is not a retry condition Istio accepts",
                      f"use conditions such as {SAFE_EXAMPLE} or numeric status codes")  # fmt: skip
        if attempts <= 0:
            continue
        unsafe = [t for t in tokens if _valid_token(t) and t not in safe]
        if unsafe:
            why = "; ".join(f"{t}: {UNSAFE_REASONS.get(t, 'fires after the request reached the model server')}"
                            for t in unsafe)  # fmt: skip
            keep = [t for t in tokens if t in safe] or _tokens(SAFE_EXAMPLE)
            yield Hit(vs, (*path, "retryOn"), "FK105",
                      f"retryOn {','.join(unsafe)} can replay a POST whose generation already started ({why})",
                      f"retryOn: {','.join(keep)} (conditions that fire before vLLM saw the request), or attempts: 0")  # fmt: skip
        timeout = parse_duration(as_str(route.get("timeout")))
        per_try = parse_duration(as_str(retries.get("perTryTimeout")))
        if timeout and per_try and timeout.total_seconds() > 0 and per_try.total_seconds() > 0:
            tries = attempts + 1
            if per_try * tries > timeout:
                fit = max(1, math.floor(timeout / per_try))
                yield Hit(vs, path, "FK104",
                          f"{tries} tries x perTryTimeout {human(per_try)} = {human(per_try * tries)} exceed the "
                          f"route timeout {human(timeout)}; only {fit} tr{'y' if fit == 1 else 'ies'} can run",
                          f"raise timeout to at least {human(per_try * tries)}, or lower attempts/perTryTimeout")  # fmt: skip


def check_timeouts(ix: Index) -> Iterator[Hit]:
    """FK107: timeouts below the LLM generation budget."""
    cfg = ix.config
    for vs, i, route in _http_routes(ix):
        if "route" not in route:
            continue  # redirects, direct responses and delegations generate nothing
        path = ("spec", "http", i)
        timeout = parse_duration(as_str(route.get("timeout")))
        if timeout is not None and timeout.total_seconds() > 0 and timeout < cfg.min_timeout:
            yield Hit(vs, (*path, "timeout"), "FK107",
                      f"route timeout {human(timeout)} is below the generation budget {human(cfg.min_timeout)}; "
                      "long completions are cut off with 504",
                      f"set timeout to at least {human(cfg.min_timeout)} (or remove it: Istio's default is no "
                      "timeout), or lower the budget with --min-timeout")  # fmt: skip
        retries = as_dict(route.get("retries"))
        per_try = parse_duration(as_str(retries.get("perTryTimeout")))
        retrying = (as_int(retries.get("attempts")) or 0) > 0
        if retrying and per_try is not None and timedelta(0) < per_try < cfg.min_per_try_timeout:
            yield Hit(vs, (*path, "retries", "perTryTimeout"), "FK107",
                      f"perTryTimeout {human(per_try)} is below {human(cfg.min_per_try_timeout)}; a slow "
                      "generation times out and is retried from scratch",
                      f"set perTryTimeout to at least {human(cfg.min_per_try_timeout)} or drop it")  # fmt: skip


def check_httproute_timeouts(ix: Index) -> Iterator[Hit]:
    """FK107 for Gateway API HTTPRoutes (also what Istio uses to route to InferencePools)."""
    cfg = ix.config
    for route in ix.of("gateway.networking.k8s.io", "HTTPRoute"):
        for i, rule in enumerate(as_list(route.spec.get("rules"))):
            timeouts = as_dict(as_dict(rule).get("timeouts"))
            for key in ("request", "backendRequest"):
                value = parse_duration(as_str(timeouts.get(key)))
                if value is not None and timedelta(0) < value < cfg.min_timeout:
                    yield Hit(route, ("spec", "rules", i, "timeouts", key), "FK107",
                              f"timeouts.{key} {human(value)} is below the generation budget "
                              f"{human(cfg.min_timeout)}; long completions are cut off",
                              f"set it to at least {human(cfg.min_timeout)}, or remove it")  # fmt: skip


def check_hosts(ix: Index) -> Iterator[Hit]:
    """FK108: destination hosts that match no service in a multi-cluster mesh."""
    for d in ix.route_dests:
        problem = _host_problem(ix, d.host, d.vs)
        if problem:
            msg, fix = problem
            yield Hit(d.vs, (*d.path, "host"), "FK108", msg, fix)


def _host_problem(ix: Index, host: str, vs: Obj) -> tuple[str, str] | None:
    domain = ix.domain
    if host in ix.service_entry_hosts:
        return None
    svc_fqdn = f"<service>.<namespace>.svc.{domain}"
    if host.startswith("*"):
        return (f"wildcard {host!r} as a route destination matches no single service",
                f"route to a concrete host ({svc_fqdn}); wildcards belong in spec.hosts")  # fmt: skip
    if is_ip(host):
        loop = host.startswith("127.") or host.strip("[]") == "::1"
        what = (
            "a loopback address (the client's own pod)"
            if loop
            else "an IP address, which names one cluster's network"
        )
        return (f"destination host {host} is {what}; it is not a mesh service and not portable across clusters",
                f"route to the Service FQDN ({svc_fqdn}), or declare the address in a ServiceEntry")  # fmt: skip
    if host == "localhost" or host.endswith(".localhost"):
        return (f"destination host {host!r} is the client's own pod, not a mesh service",
                f"route to the Service FQDN ({svc_fqdn})")  # fmt: skip
    if "." not in host:
        fq = ix.fqdn(host, vs.namespace)
        others = sorted(ix.service_namespaces.get(host, set()) - {vs.namespace})
        if (vs.namespace, host) not in ix.services and others and not ix.drs_for(fq):
            return ((f"short name {host!r} resolves to {fq} (the VirtualService's namespace), but Service {host!r} "
                    f"exists only in namespace(s) {', '.join(others)}"),
                    f"use the FQDN {ix.service_fqdn(host, others[0])}")  # fmt: skip
        return None
    labels = host.split(".")
    if ".svc." in f"{host}." or host.endswith(".svc"):
        at = labels.index("svc")
        tail = ".".join(labels[at + 1 :])
        if tail != domain:
            if not tail:
                return ((f"{host!r} lacks the cluster domain; Istio expands only names without dots, so it matches "
                        "no service"),
                        f"write {host}.{domain}")  # fmt: skip
            return ((f"{host!r} uses cluster domain {tail!r} but the mesh uses {domain!r}; every cluster of a "
                    "multi-cluster mesh must share one domain and Istio knows the service only by that FQDN"),
                    f"use {'.'.join(labels[: at + 1])}.{domain}")  # fmt: skip
        if at != 2:
            return (f"{host!r} is not <service>.<namespace>.svc.{domain}", f"use {svc_fqdn}")
        return None
    if host.endswith(f".{domain}"):
        return (f"{host!r} is not a Service FQDN ({svc_fqdn})", f"use {svc_fqdn}")
    if len(labels) == 2 and labels[1] in ix.namespaces:
        return ((f"{host!r} looks like <service>.<namespace>, but Istio does not expand names that contain a dot, "
                "so it matches no service"),
                f"use {host}.svc.{domain}")  # fmt: skip
    return None


CHECKS = [check_subsets, check_fault, check_retries, check_timeouts, check_httproute_timeouts, check_hosts]
