"""istioctl's DestinationRule, ServiceEntry and AuthorizationPolicy analyzers, offline.

Same logic as istio/istio ``pkg/config/analysis/analyzers``: ``destinationrule/ca-certificates.go`` (IST0128,
IST0129), ``destinationrule/subset.go`` (IST0173 subset selects no pod, IST0174 host matches no service; pod
labels augmented with the node's topology labels), ``serviceentry/protocoladdresses.go`` (IST0134),
``serviceentry/conflictingserviceentries.go`` (IST0177) and ``authz/authorizationpolicies.go`` (IST0127 no
matching in-mesh workload, IST0101 unknown source namespace). Workload templates (Deployments, StatefulSets,
...) count as pods. Checks that need Services, workloads or namespaces are skipped with an FK005 finding when
the input has none.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Iterator

from fleetkit.lint.index import NETWORKING, SECURITY, Hit, Index, Obj, as_dict, as_int, as_list, as_str
from fleetkit.lint.mesh import ALL, mesh, selector_str, selects, skipped, str_map
from fleetkit.lint.model import Severity

TLS_VERIFYING = ("SIMPLE", "MUTUAL")


def check_ca_certificates(ix: Index) -> Iterator[Hit]:
    """FK206 (IST0128) and FK207 (IST0129): originating TLS without caCertificates."""
    for dr in ix.of(NETWORKING, "DestinationRule"):
        host = as_str(dr.spec.get("host"))
        selector = bool(str_map(as_dict(dr.spec.get("workloadSelector")).get("matchLabels")))
        policy = as_dict(dr.spec.get("trafficPolicy"))
        name = f"{dr.namespace}/{dr.name}"

        def unverified(tls: dict, selector: bool = selector) -> str:
            mode = as_str(tls.get("mode"))
            if mode not in TLS_VERIFYING or as_str(tls.get("caCertificates")):
                return ""
            if as_str(tls.get("credentialName")) and selector:
                return ""  # the credential secret carries ca.crt for the selected workloads
            return mode

        tls = as_dict(policy.get("tls"))
        mode = unverified(tls)
        if mode:
            yield Hit(dr, ("spec", "trafficPolicy", "tls"), "FK206",
                      f"DestinationRule {name} in namespace {dr.namespace} has TLS mode set to {mode} but no "
                      f"caCertificates are set to validate server identity for host: {host}",
                      "set tls.caCertificates (or credentialName with a ca.crt and a workloadSelector)")  # fmt: skip
        for i, pls in enumerate(map(as_dict, as_list(policy.get("portLevelSettings")))):
            mode = unverified(as_dict(pls.get("tls")))
            if mode:
                port = as_int(as_dict(pls.get("port")).get("number"))
                yield Hit(dr, ("spec", "trafficPolicy", "portLevelSettings", i, "tls"), "FK207",
                          f"DestinationRule {name} in namespace {dr.namespace} has TLS mode set to {mode} but no "
                          f"caCertificates are set to validate server identity for host: {host} at port "
                          f"number:{port}", "set tls.caCertificates for this port")  # fmt: skip


def check_subset_workloads(ix: Index) -> Iterator[Hit]:
    """FK209 (IST0174) host matches no service; FK208 (IST0173) subset selects no pod."""
    m = mesh(ix)
    drs = ix.of(NETWORKING, "DestinationRule")
    if not drs:
        return
    if not m.has_services:
        yield skipped(drs[0], "DestinationRule hosts and subsets (IST0174, IST0173)",
                      "no Service or ServiceEntry is in the input")  # fmt: skip
        return
    pods = m.pods
    noted = False
    for dr in drs:
        host = as_str(dr.spec.get("host"))
        export = [e for e in as_list(dr.spec.get("exportTo")) if isinstance(e, str)]
        entry = m.lookup(dr.namespace, export, host)
        if entry is None:
            yield Hit(dr, ("spec", "host"), "FK209",
                      f"The host {host} defined in the DestinationRule does not match any services in the mesh.",
                      "fix the host (FQDN for another namespace), check the service's exportTo, or add a "
                      "ServiceEntry for an external host")  # fmt: skip
            continue
        subsets = [as_dict(s) for s in as_list(dr.spec.get("subsets"))]
        if not subsets:
            continue
        if not pods:
            if not noted:
                noted = True
                yield skipped(
                    dr, "Subsets selecting workloads (IST0173)", "no Pod or Deployment is in the input"
                )
            continue
        remote = _multi_network(dr)
        for i, subset in enumerate(subsets):
            selector = {**entry.workload_selector, **str_map(subset.get("labels"))}
            if not m.has_endpoints(selector):
                name = as_str(subset.get("name"))
                note = (
                    (
                        " (in this input; the DestinationRule is written for a multi-network mesh, so the pods may "
                        "run in another cluster)"
                    )
                    if remote
                    else ""
                )
                yield Hit(dr, ("spec", "subsets", i), "FK208",
                          f"The Subset {name} defined in the DestinationRule does not select any pods{note}. Which "
                          "may lead to 503 UH (NoHealthyUpstream).",
                          "fix the subset labels, deploy the workload it should select, or remove the subset",
                          Severity.WARNING if remote else None)  # fmt: skip


def _multi_network(dr: Obj) -> bool:
    """The rule ranks or pins endpoints by network/cluster: its subsets may be served by other clusters."""
    text = repr(dr.spec)
    return "topology.istio.io/network" in text or "topology.istio.io/cluster" in text


def check_service_entries(ix: Index) -> Iterator[Hit]:
    """FK507 (IST0134) and FK508 (IST0177)."""
    ses = ix.of(NETWORKING, "ServiceEntry")
    for se in ses:
        if as_list(se.spec.get("addresses")):
            continue
        for i, port in enumerate(map(as_dict, as_list(se.spec.get("ports")))):
            if as_str(port.get("protocol")).upper() in ("", "TCP"):
                yield Hit(se, ("spec", "ports", i), "FK507", "ServiceEntry addresses are required for this protocol.",
                          "add spec.addresses (a VIP or CIDR), or declare the port's protocol (HTTP, TLS, ...)")  # fmt: skip
    index: dict[tuple[str, str, int], list[tuple[str, Obj]]] = defaultdict(list)
    for se in ses:
        export = [e for e in as_list(se.spec.get("exportTo")) if isinstance(e, str)]
        scopes = {ALL} if not export or ALL in export else {se.namespace if e == "." else e for e in export}
        for scope in scopes:
            for h in (h for h in as_list(se.spec.get("hosts")) if isinstance(h, str)):
                for port in map(as_dict, as_list(se.spec.get("ports"))):
                    number = as_int(port.get("number"))
                    if number is not None:
                        index[(scope, h, number)].append((as_str(port.get("protocol")).upper(), se))
    reported: set[str] = set()
    for (scope, host, number), entries in sorted(index.items(), key=lambda kv: kv[0]):
        if scope != ALL:
            entries = entries + index.get((ALL, host, number), [])
        protocols = sorted({p for p, _ in entries})
        if len(protocols) < 2:
            continue
        names = ", ".join(sorted({f"{o.namespace}/{o.name}" for _, o in entries}))
        for _, se in entries:
            if se.ref in reported:
                continue
            reported.add(se.ref)
            yield Hit(se, ("metadata", "name"), "FK508",
                      f"ServiceEntries {names} define host {host} port {number} with conflicting protocols "
                      f"({', '.join(p or '(unset)' for p in protocols)}).",
                      "use one protocol for a host and port across all ServiceEntries")  # fmt: skip


def _namespace_matches(ns: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return ns.endswith(pattern[1:])
    if pattern.endswith("*"):
        return ns.startswith(pattern[:-1])
    return ns.lower() == pattern.lower()


def _source_namespaces(ap: Obj) -> bool:
    return any(as_dict(as_dict(src).get("source")).get(f)
               for rule in as_list(ap.spec.get("rules")) for src in as_list(as_dict(rule).get("from"))
               for f in ("namespaces", "notNamespaces"))  # fmt: skip


def check_authorization_policies(ix: Index) -> Iterator[Hit]:
    """FK509 (IST0127) and FK510 (IST0101 namespace)."""
    aps = ix.of(SECURITY, "AuthorizationPolicy")
    if not aps:
        return
    m = mesh(ix)
    meshed: dict[str, list[dict[str, str]]] = defaultdict(list)
    for pod in m.pods:
        if pod.in_mesh:
            meshed[pod.namespace].append(pod.labels)
    if not m.pods:
        yield skipped(
            aps[0], "AuthorizationPolicy workloads (IST0127)", "no Pod or Deployment is in the input"
        )
    check_namespaces = bool(m.namespaces)
    if not check_namespaces and any(_source_namespaces(ap) for ap in aps):
        yield skipped(
            aps[0], "AuthorizationPolicy source namespaces (IST0101)", "no Namespace is in the input"
        )
    for ap in aps:
        if m.pods:
            yield from _ap_workloads(ix, ap, meshed)
        if check_namespaces:
            yield from _ap_namespaces(ix, ap)


def _ap_workloads(ix: Index, ap: Obj, meshed: dict[str, list[dict[str, str]]]) -> Iterator[Hit]:
    m = mesh(ix)
    raw_selector = ap.spec.get("selector")
    selector = str_map(as_dict(raw_selector).get("matchLabels"))
    text = selector_str(selector)
    if selector and not any(k in p.labels for p in m.pods for k in selector):
        yield skipped(ap, "AuthorizationPolicy workloads (IST0127)",
                      f"no workload in the input carries any of the selector's labels ({text})")  # fmt: skip
        return
    if ap.namespace == ix.config.root_namespace:
        candidates = [labels for group in meshed.values() for labels in group]
        found = raw_selector is None or any(selects(selector, labels) for labels in candidates)
    elif raw_selector is None:
        found, text = bool(meshed.get(ap.namespace)), ""
    else:
        found = any(selects(selector, labels) for labels in meshed.get(ap.namespace, []))
    if not found:
        yield Hit(ap, ("spec", "selector") if raw_selector is not None else ("metadata", "namespace"),
                  "FK509", f"No matching workloads for this resource with the following labels: {text}",
                  "fix the selector, or apply the policy where the workloads run (in-mesh pods only)")  # fmt: skip


def _ap_namespaces(ix: Index, ap: Obj) -> Iterator[Hit]:
    known = mesh(ix).known_namespaces
    for i, rule in enumerate(map(as_dict, as_list(ap.spec.get("rules")))):
        for j, source in enumerate(map(as_dict, as_list(rule.get("from")))):
            src = as_dict(source.get("source"))
            for field in ("namespaces", "notNamespaces"):
                for k, ns in enumerate(as_list(src.get(field))):
                    if not isinstance(ns, str) or any(_namespace_matches(n, ns) for n in known):
                        continue
                    close = difflib.get_close_matches(ns, sorted(known), n=1, cutoff=0.8)
                    hint = (
                        f" (did you mean {close[0]!r}?)"
                        if close
                        else "; no namespace of that name is in the input (ignore if it exists elsewhere)"
                    )
                    yield Hit(ap, ("spec", "rules", i, "from", j, "source", field, k), "FK510",
                              f'Referenced namespace not found: "{ns}"{hint}',
                              "fix the namespace name (or lint the namespace's objects together)",
                              None if close else Severity.WARNING)  # fmt: skip


CHECKS = [check_ca_certificates, check_subset_workloads, check_service_entries, check_authorization_policies]
