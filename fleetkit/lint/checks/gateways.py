"""Istio Gateway analyzers, offline: selector without workload (IST0101), gateway port not on the gateway
Service (IST0162), credentialName secret missing (IST0101) or invalid (IST0161), conflicting gateways (IST0145)
and one certificate on several gateways (IST0138).

Same logic as istio/istio ``pkg/config/analysis/analyzers/gateway`` (``gateway.go``, ``secret.go``,
``conflictinggateway.go``, ``certificate.go``); message texts from ``pkg/config/analysis/msg/messages.yaml``.
Pods and workload pod templates (Deployments etc.) both count as gateway workloads; without any in the input
the workload checks are skipped with an FK005 finding. Certificates are parsed with ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from datetime import UTC, datetime

from cryptography import x509

from fleetkit.lint.index import Hit, Index, Obj, as_dict, as_int, as_list, as_str
from fleetkit.lint.mesh import (
    Pod,
    gateways,
    host_matches,
    mesh,
    selector_str,
    selects,
    short_or_full,
    skipped,
    str_map,
)

CERT_KEYS = (("tls.crt", "tls.key"), ("cert", "key"))


def _servers(gw: Obj) -> list[dict]:
    return [as_dict(s) for s in as_list(gw.spec.get("servers"))]


def _selected(ix: Index, gw: Obj) -> list[Pod]:
    selector = str_map(gw.spec.get("selector"))
    return [p for p in mesh(ix).pods if selects(selector, p.labels)]


def check_gateway_workloads(ix: Index) -> Iterator[Hit]:
    """FK501 (IST0101 selector) and FK502 (IST0162)."""
    m = mesh(ix)
    has_pods = any(not p.template for p in m.pods)
    noted = False
    for gw in gateways(ix).values():
        if not has_pods and not m.pods_by_namespace.get(gw.namespace):
            if not noted:
                noted = True
                yield skipped(gw, "Gateway selectors and ports (IST0101, IST0162)",
                              f"no Pod, and no Deployment in namespace {gw.namespace}, is in the input")  # fmt: skip
            continue
        selector = str_map(gw.spec.get("selector"))
        pods = _selected(ix, gw)
        if not pods:
            yield Hit(gw, ("spec", "selector"), "FK501", f'Referenced selector not found: "{selector_str(selector)}"',
                      "fix the selector so it matches the gateway deployment's pod labels")  # fmt: skip
            continue
        ports: set[int] = set()
        for pod in pods:
            for svc in ix.of("", "Service"):
                if svc.namespace != pod.namespace:
                    continue
                if not selects(str_map(svc.spec.get("selector")), pod.labels):
                    continue
                for p in map(as_dict, as_list(svc.spec.get("ports"))):
                    if (as_str(p.get("protocol")) or "TCP") != "TCP":
                        continue
                    target = as_int(p.get("targetPort"))
                    number = target if target else as_int(p.get("port"))
                    if number is not None:
                        ports.add(number)
        for i, server in enumerate(_servers(gw)):
            number = as_int(as_dict(server.get("port")).get("number"))
            if number is not None and number not in ports:
                yield Hit(gw, ("spec", "servers", i, "port", "number"), "FK502",
                          f"The gateway is listening on a target port (port {number}) that is not defined in the "
                          f"Service associated with its workload instances (Pod selector {selector_str(selector)}). "
                          "If you need to access the gateway port through the gateway Service, it will not be "
                          "available.",
                          "add the port (as targetPort) to the gateway's Service, or listen on a port it exposes")  # fmt: skip


def _secret_problem(secret: Obj) -> str | None:
    data = as_dict(secret.raw.get("data"))
    for cert_key, key_key in CERT_KEYS:
        if cert_key in data or key_key in data:
            break
    else:
        return "it has neither tls.crt/tls.key nor cert/key"
    try:
        cert = base64.b64decode(as_str(data.get(cert_key)), validate=True)
        key = base64.b64decode(as_str(data.get(key_key)), validate=True)
    except (binascii.Error, ValueError):
        return f"{cert_key} or {key_key} is not valid base64"
    if not cert or not key:
        return f"{cert_key} or {key_key} is empty"
    try:
        certs = x509.load_pem_x509_certificates(cert)
    except ValueError:
        return f"{cert_key} holds no parsable PEM certificate"
    now = datetime.now(UTC)
    for c in certs:
        if c.not_valid_after_utc < now:
            return f"the certificate expired on {c.not_valid_after_utc:%Y-%m-%d}"
        if c.not_valid_before_utc > now:
            return f"the certificate is not valid before {c.not_valid_before_utc:%Y-%m-%d}"
    return None


def check_gateway_secrets(ix: Index) -> Iterator[Hit]:
    """FK503 (IST0101 credentialName) and FK504 (IST0161), when Secrets are in the input."""
    secrets = {(s.namespace, s.name): s for s in ix.of("", "Secret")}
    noted = False
    for gw in gateways(ix).values():
        named = [(i, as_str(as_dict(s.get("tls")).get("credentialName"))) for i, s in enumerate(_servers(gw))]
        named = [(i, n) for i, n in named if n]
        if not named:
            continue
        pods = _selected(ix, gw)
        if not secrets or not pods:
            if not noted:
                noted = True
                why = (
                    "no Secret is in the input"
                    if not secrets
                    else "no gateway Pod/Deployment is in the input"
                )
                yield skipped(gw, "Gateway credentialName secrets (IST0101, IST0161)", why)
            continue
        namespace = sorted(p.namespace for p in pods if not p.template) or sorted(p.namespace for p in pods)
        for i, name in named:
            path = ("spec", "servers", i, "tls", "credentialName")
            secret = secrets.get(short_or_full(namespace[0], name))
            if secret is None:
                yield Hit(gw, path, "FK503", f'Referenced credentialName not found: "{name}"',
                          f"create Secret {name} (tls.crt/tls.key) in {namespace[0]}, the gateway workload's "
                          "namespace")  # fmt: skip
                continue
            problem = _secret_problem(secret)
            if problem:
                yield Hit(gw, path, "FK504",
                          f"The credential referenced by the Gateway {gw.name} in namespace {namespace[0]} is "
                          f"invalid, which can cause the traffic not to work as expected ({secret.ref}: {problem}).",
                          "store a current PEM certificate chain in tls.crt and its key in tls.key")  # fmt: skip


def check_conflicting_gateways(ix: Index) -> Iterator[Hit]:
    """FK505 (IST0145): same selector and port, overlapping hosts."""
    table: dict[tuple[str, int], dict[str, list[str]]] = {}
    gws = list(gateways(ix).values())
    for gw in gws:
        sel = selector_str(str_map(gw.spec.get("selector")))
        for server in _servers(gw):
            number = as_int(as_dict(server.get("port")).get("number"))
            if number is not None:
                hosts = [h for h in as_list(server.get("hosts")) if isinstance(h, str)]
                table.setdefault((sel, number), {})[f"{gw.namespace}/{gw.name}"] = hosts
    for gw in gws:
        me = f"{gw.namespace}/{gw.name}"
        sel = selector_str(str_map(gw.spec.get("selector")))
        for i, server in enumerate(_servers(gw)):
            number = as_int(as_dict(server.get("port")).get("number"))
            if number is None:
                continue
            hosts = [h for h in as_list(server.get("hosts")) if isinstance(h, str)]
            others = sorted(name for name, theirs in table.get((sel, number), {}).items()
                            if name != me and any(host_matches(h, t) for h in hosts for t in theirs))  # fmt: skip
            if others:
                yield Hit(gw, ("spec", "servers", i), "FK505",
                          f"Conflict with gateways {','.join(others)} (workload selector {sel}, port {number}, "
                          f"hosts {','.join(hosts)}).",
                          "serve each host on one Gateway per workload and port (merge the servers)")  # fmt: skip


def _same_cert(a: dict, b: dict) -> bool:
    ca, cb = as_str(a.get("credentialName")), as_str(b.get("credentialName"))
    if ca and cb:
        return ca == cb
    if not ca and not cb:
        sa, sb = as_str(a.get("serverCertificate")), as_str(b.get("serverCertificate"))
        pa, pb = as_str(a.get("privateKey")), as_str(b.get("privateKey"))
        return bool(sa and sb and sa == sb and pa and pb and pa == pb)
    return False


def check_duplicate_certificates(ix: Index) -> Iterator[Hit]:
    """FK506 (IST0138): gateways on overlapping workloads sharing a certificate."""
    gws = list(gateways(ix).values())
    for gw in gws:
        sel = str_map(gw.spec.get("selector"))
        for other in gws:
            if other is gw or not selects(sel, str_map(other.spec.get("selector"))):
                continue
            for mine in _servers(gw):
                for theirs in _servers(other):
                    a, b = mine.get("tls"), theirs.get("tls")
                    if isinstance(a, dict) and isinstance(b, dict) and _same_cert(a, b):
                        yield Hit(gw, ("metadata", "name"), "FK506",
                                  f"Duplicate certificate in multiple gateways [{gw.namespace}/{gw.name} "
                                  f"{other.namespace}/{other.name}] may cause 404s if clients re-use HTTP2 "
                                  "connections.",
                                  "use one Gateway for the hosts sharing the certificate, or separate certificates")  # fmt: skip


CHECKS = [
    check_gateway_workloads,
    check_gateway_secrets,
    check_conflicting_gateways,
    check_duplicate_certificates,
]
