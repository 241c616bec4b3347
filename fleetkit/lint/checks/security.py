"""mTLS: DestinationRule client TLS mode against the PeerAuthentication the server workload gets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fleetkit.lint.index import (
    NETWORKING,
    SECURITY,
    Hit,
    Index,
    Obj,
    as_dict,
    as_int,
    as_list,
    as_str,
    traffic_policies,
)


@dataclass(frozen=True)
class _Peer:
    obj: Obj
    selector: dict[str, str]
    mode: str  # UNSET when not set
    ports: dict[int, str]


def _peers(ix: Index) -> list[_Peer]:
    out = []
    for pa in sorted(ix.of(SECURITY, "PeerAuthentication"), key=lambda o: (o.namespace, o.name)):
        spec = pa.spec
        selector = {
            k: v
            for k, v in as_dict(as_dict(spec.get("selector")).get("matchLabels")).items()
            if isinstance(v, str)
        }
        mode = as_str(as_dict(spec.get("mtls")).get("mode")) or "UNSET"
        ports = {}
        for key, value in as_dict(spec.get("portLevelMtls")).items():
            port = int(key) if isinstance(key, int) or (isinstance(key, str) and key.isdigit()) else None
            pmode = as_str(as_dict(value).get("mode"))
            if port is not None and pmode and pmode != "UNSET":
                ports[port] = pmode
        out.append(_Peer(pa, selector, mode, ports))
    return out


def effective_mtls(
    ix: Index, peers: list[_Peer], namespace: str, pods: list[dict[str, str]], port: int | None
) -> tuple[str, Obj | None]:
    """Server-side mTLS mode for workloads with ``pods`` labels in ``namespace`` on target ``port``:
    workload policy (port level first) > namespace policy > mesh policy (root namespace) > PERMISSIVE."""
    for peer in peers:
        if peer.obj.namespace != namespace or not peer.selector:
            continue
        if not any(peer.selector.items() <= labels.items() for labels in pods):
            continue
        if port is not None and port in peer.ports:
            return peer.ports[port], peer.obj
        if peer.mode != "UNSET":
            return peer.mode, peer.obj
    for ns in (namespace, ix.config.root_namespace):
        for peer in peers:
            if peer.obj.namespace == ns and not peer.selector and peer.mode != "UNSET":
                return peer.mode, peer.obj
    return "PERMISSIVE", None


def _target_port(ix: Index, namespace: str, service: str, port: int | None) -> int | None:
    svc = ix.services.get((namespace, service))
    if svc is None or port is None:
        return port
    for p in as_list(svc.spec.get("ports")):
        p = as_dict(p)
        if as_int(p.get("port")) == port:
            target = as_int(p.get("targetPort"))
            return target if target is not None else port
    return port


def check_mtls(ix: Index) -> Iterator[Hit]:
    """FK205: DISABLE toward a STRICT workload, ISTIO_MUTUAL toward a DISABLE workload."""
    peers = _peers(ix)
    if not peers:
        return
    for dr in ix.of(NETWORKING, "DestinationRule"):
        fq = ix.fqdn(as_str(dr.spec.get("host")), dr.namespace)
        parts = ix.split_fqdn(fq)
        if parts is None:
            continue
        service, namespace = parts
        tls_policies = [
            p
            for p in traffic_policies(dr)
            if as_str(as_dict(p.body.get("tls")).get("mode")) in ("DISABLE", "ISTIO_MUTUAL")
        ]
        if not tls_policies:
            continue
        base_pods = ix.workload_labels_for_service(namespace, service)
        subsets = {
            as_str(as_dict(s).get("name")): {
                k: v for k, v in as_dict(as_dict(s).get("labels")).items() if isinstance(v, str)
            }
            for s in as_list(dr.spec.get("subsets"))
        }
        for p in tls_policies:
            mode = as_str(as_dict(p.body.get("tls")).get("mode"))
            pods = base_pods
            if p.subset is not None:
                extra = subsets.get(p.subset, {})
                pods = [{**labels, **extra} for labels in base_pods] or ([extra] if extra else [])
            server, source = effective_mtls(
                ix, peers, namespace, pods, _target_port(ix, namespace, service, p.port)
            )
            origin = source.ref if source else "the mesh default"
            path = (*p.path, "tls", "mode")
            if mode == "DISABLE" and server == "STRICT":
                yield Hit(dr, path, "FK205",
                          f"tls.mode DISABLE sends plaintext to {fq}, but {origin} requires STRICT mTLS there: "
                          "every connection is rejected",
                          "remove the tls block (auto mTLS) or use ISTIO_MUTUAL; or make the server PERMISSIVE")  # fmt: skip
            elif mode == "ISTIO_MUTUAL" and server == "DISABLE":
                yield Hit(dr, path, "FK205",
                          f"tls.mode ISTIO_MUTUAL sends Istio mTLS to {fq}, but {origin} disables mTLS there: the "
                          "server sidecar expects plaintext and connections fail",
                          "remove the tls block (auto mTLS follows the server), or set the server to "
                          "PERMISSIVE/STRICT")  # fmt: skip


CHECKS = [check_mtls]
