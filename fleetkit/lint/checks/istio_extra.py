"""More offline istioctl analyzers: Sidecar and Telemetry workload selectors, Service port names, the proxy's
UID, and EnvoyFilter patch operations.

Same logic as istio/istio ``pkg/config/analysis/analyzers``: ``sidecar/selector.go`` and
``sidecar/defaultselector.go`` (IST0101, IST0110, IST0111) and their Telemetry twins in ``telemetry/``
(IST0101, IST0159, IST0160); ``service/portname.go`` (IST0118, IST0150; protocol from ``appProtocol`` or the
port name prefix, as ``kube.ConvertProtocol`` does); ``deployment/pod.go`` (IST0144: UID 1337 is the proxy's);
``envoyfilter/envoyfilter.go`` (IST0151-IST0155). Selector checks use Pods and workload pod templates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from fleetkit.lint.index import NETWORKING, Hit, Index, Obj, as_dict, as_int, as_list, as_str
from fleetkit.lint.mesh import Pod, mesh, selector_str, selects, skipped, str_map

TELEMETRY = "telemetry.istio.io"
PROTOCOLS = frozenset({"tcp", "udp", "grpc", "grpc-web", "http", "http_proxy", "http2", "https", "tls", "mongo",
                       "redis", "mysql"})  # fmt: skip
WELL_KNOWN_TCP_PORTS = frozenset({3306, 27017})
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "local-path-storage"})
PROXY_UID = 1337


def _selector_kinds(ix: Index) -> list[tuple[str, list[Obj], str, str, str]]:
    """(what, objects, conflicting code, no-selector code, rule-name) for Sidecar and Telemetry."""
    return [("Sidecar", ix.of(NETWORKING, "Sidecar"), "IST0110", "IST0111", "workloadSelector"),
            ("Telemetry", ix.of(TELEMETRY, "Telemetry"), "IST0159", "IST0160", "selector")]  # fmt: skip


def _selector(obj: Obj, field: str) -> dict[str, str] | None:
    raw = obj.spec.get(field)
    if not isinstance(raw, dict):
        return None
    return str_map(raw.get("labels" if field == "workloadSelector" else "matchLabels"))


def check_workload_selectors(ix: Index) -> Iterator[Hit]:
    """FK511 (IST0101 selector), FK512 (IST0110/IST0159), FK513 (IST0111/IST0160).

    Each cluster's manifests are judged on their own (``Index.cluster_of``: ``fleetkit lint out/`` holds
    several clusters, each with its own namespace-wide Telemetry). A selector is only "not found" when
    the input describes that namespace's workloads; a namespace with none in the input (the ingress
    gateway's, installed by its Helm chart) cannot be judged and is reported as skipped."""
    m = mesh(ix)
    pods_in: dict[tuple[str, str], list[Pod]] = defaultdict(list)
    for p in m.pods:
        pods_in[(ix.cluster_of(p.obj), p.namespace)].append(p)
    for what, objs, conflict_code, default_code, field in _selector_kinds(ix):
        plural = "Sidecars" if what == "Sidecar" else "Telemetries"
        no_selector: dict[tuple[str, str], list[Obj]] = defaultdict(list)
        by_pod: dict[tuple[str, str], list[Obj]] = defaultdict(list)
        for obj in sorted(objs, key=lambda o: (ix.cluster_of(o), o.namespace, o.name)):
            cluster = ix.cluster_of(obj)
            sel = _selector(obj, field)
            if sel is None:
                no_selector[(cluster, obj.namespace)].append(obj)
                continue
            if not sel:
                continue
            if not m.pods:
                yield skipped(obj, f"{what} workload selectors (IST0101, {conflict_code})",
                              "no Pod or Deployment is in the input")  # fmt: skip
                continue
            candidates = pods_in.get((cluster, obj.namespace), [])
            if not candidates:
                yield skipped(obj, f"{what} workload selectors (IST0101, {conflict_code})",
                              f"no Pod or Deployment in namespace {obj.namespace} is in the input")  # fmt: skip
                continue
            pods = [p for p in candidates if selects(sel, p.labels)]
            if not pods:
                yield Hit(obj, ("spec", field), "FK511", f'Referenced selector not found: "{selector_str(sel)}"',
                          "fix the selector so it matches the workload's pod labels", ist="IST0101")  # fmt: skip
            for p in pods:
                by_pod[(cluster, f"{p.namespace}/{p.obj.name}")].append(obj)
        yield from _same_pod(what, plural, conflict_code, field, by_pod)
        yield from _several_namespace_wide(what, plural, default_code, no_selector)


def _same_pod(
    what: str, plural: str, code: str, field: str, by_pod: dict[tuple[str, str], list[Obj]]
) -> Iterator[Hit]:
    """FK512: several selectors pick one pod (per cluster)."""
    for (_, pod), group in sorted(by_pod.items()):
        if len(group) < 2:
            continue
        names = " ".join(o.name for o in group)
        ns, _, name = pod.partition("/")
        for obj in group:
            yield Hit(obj, ("spec", field), "FK512",
                      f'The {plural} [{names}] in namespace "{ns}" select the same workload pod "{name}", which '
                      "can lead to undefined behavior.",
                      f"keep one {what} per workload (merge them or make the selectors disjoint)",
                      ist=code)  # fmt: skip


def _several_namespace_wide(
    what: str, plural: str, code: str, no_selector: dict[tuple[str, str], list[Obj]]
) -> Iterator[Hit]:
    """FK513: more than one selector-less object in one namespace of one cluster."""
    for (_, ns), group in sorted(no_selector.items()):
        if len(group) < 2:
            continue
        names = " ".join(o.name for o in group)
        for obj in group:
            yield Hit(obj, ("metadata", "name"), "FK513",
                      f'The {plural} [{names}] in namespace "{ns}" have no workload selector, which can lead to '
                      "undefined behavior.",
                      f"keep one namespace-wide {what} per namespace; give the others a selector",
                      ist=code)  # fmt: skip


def port_protocol(port: dict) -> str:
    """Istio's protocol for a Service port (``kube.ConvertProtocol``); ``""`` when unsupported."""
    if as_str(port.get("protocol")) == "UDP":
        return "udp"
    name = as_str(port.get("appProtocol")) or as_str(port.get("name"))
    if name in ("kubernetes.io/h2c",):
        return "http2"
    if name in ("kubernetes.io/ws", "kubernetes.io/wss"):
        return "http"
    if name.lower().startswith("grpc-web"):
        return "grpc-web"
    prefix = name.split("-", 1)[0].lower()
    if prefix in PROTOCOLS:
        return prefix
    return "tcp" if as_int(port.get("port")) in WELL_KNOWN_TCP_PORTS else ""


def check_port_names(ix: Index) -> Iterator[Hit]:
    """FK514 (IST0118, info) and FK515 (IST0150 for ExternalName Services)."""
    for svc in ix.of("", "Service"):
        labels = str_map(svc.labels)
        if (
            svc.namespace in SYSTEM_NAMESPACES
            or labels.get("app") == "istiod"
            or labels.get("istio") == "pilot"
        ):
            continue
        external = as_str(svc.spec.get("type")) == "ExternalName"
        for i, port in enumerate(map(as_dict, as_list(svc.spec.get("ports")))):
            name = as_str(port.get("name"))
            if port_protocol(port) and not (external and name == "tcp"):
                continue
            path = ("spec", "ports", i)
            if external:
                yield Hit(svc, path, "FK515",
                          "Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and "
                          "unmatched traffic for ports serving TCP protocol from being forwarded correctly",
                          "name the port after its protocol (http-, https-, tls-, grpc-), not plain 'tcp'")  # fmt: skip
            else:
                target = port.get("targetPort", "")
                yield Hit(svc, path, "FK514",
                          f"Port name {name} (port: {as_int(port.get('port'))}, targetPort: {target}) doesn't follow "
                          "the naming convention of Istio port.",
                          "name the port <protocol>[-<suffix>] (http-, grpc-, tcp-, ...) or set appProtocol; "
                          "otherwise Istio sniffs the protocol")  # fmt: skip


def _uid_paths(pod_spec: dict, base: tuple[str | int, ...]) -> Iterator[tuple[str | int, ...]]:
    if as_int(as_dict(pod_spec.get("securityContext")).get("runAsUser")) == PROXY_UID:
        yield (*base, "securityContext", "runAsUser")
    for section in ("containers", "initContainers"):
        for i, c in enumerate(map(as_dict, as_list(pod_spec.get(section)))):
            if c.get("name") == "istio-proxy":
                continue
            if as_int(as_dict(c.get("securityContext")).get("runAsUser")) == PROXY_UID:
                yield (*base, section, i, "securityContext", "runAsUser")


def check_proxy_uid(ix: Index) -> Iterator[Hit]:
    """FK516 (IST0144): an application container running as UID 1337, which the sidecar reserves."""
    targets: list[tuple[Obj, dict[str, Any], tuple[str | int, ...]]] = [
        (o, o.spec, ("spec",)) for o in ix.of("", "Pod")
    ]
    for kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        for o in ix.of("apps", kind):
            targets.append(
                (o, as_dict(as_dict(o.spec.get("template")).get("spec")), ("spec", "template", "spec"))
            )
    for obj, spec, base in targets:
        for path in _uid_paths(spec, base):
            yield Hit(obj, path, "FK516", "User ID (UID) 1337 is reserved for the sidecar proxy.",
                      "run the application as another UID; iptables exempts UID 1337 from redirection, so its "
                      "traffic bypasses the mesh")  # fmt: skip


RELATIVE = ("INSERT_BEFORE", "INSERT_AFTER", "REPLACE", "REMOVE")
ROUTE_TARGETS = ("ROUTE_CONFIGURATION", "HTTP_ROUTE")


def check_envoy_filters(ix: Index) -> Iterator[Hit]:
    """FK517 (IST0151/IST0155 relative operation without priority) and FK518 (IST0152-IST0154)."""
    with_version: list[str] = []
    for ef in sorted(ix.of(NETWORKING, "EnvoyFilter"), key=lambda o: (o.namespace, o.name)):
        priority = as_int(ef.spec.get("priority")) or 0
        for i, patch in enumerate(map(as_dict, as_list(ef.spec.get("configPatches")))):
            body = patch.get("patch")
            if not isinstance(body, dict):
                break
            match = as_dict(patch.get("match"))
            value = as_dict(body.get("value"))
            name = as_str(value.get("name")) or as_str(
                as_dict(as_dict(as_dict(match.get("listener")).get("filterChain")).get("filter")).get("name")
            )
            op, apply_to = as_str(body.get("operation")), as_str(patch.get("applyTo"))
            path = ("spec", "configPatches", i)
            wrong = ""
            if op == "ADD" and apply_to in ROUTE_TARGETS:
                wrong, code = (
                    "The ADD operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.",
                    "IST0153",
                )
            elif op == "REMOVE" and apply_to in ROUTE_TARGETS:
                wrong, code = (
                    "The REMOVE operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.",
                    "IST0154",
                )
            elif op == "REPLACE" and apply_to not in ("NETWORK_FILTER", "HTTP_FILTER"):
                wrong, code = (
                    "The REPLACE operation is only valid for HTTP_FILTER and NETWORK_FILTER.",
                    "IST0152",
                )
            if wrong:
                yield Hit(ef, path, "FK518", wrong, "use an operation valid for this applyTo", ist=code)
            elif op in RELATIVE and priority == 0:
                versioned = name in with_version
                yield Hit(ef, path, "FK517",
                          "This EnvoyFilter does not have a priority and has a relative patch operation"
                          + (" (NSTERT_BEFORE/AFTER, REPLACE, MERGE, DELETE) and proxyVersion set which can cause the "
                             "EnvoyFilter not to be applied during an upgrade." if versioned else
                             " set which can cause the EnvoyFilter not to be applied.")
                          + " Using the INSERT_FIRST or ADD option or setting the priority may help in ensuring the "
                          "EnvoyFilter is applied correctly.",
                          "set spec.priority, or use INSERT_FIRST/ADD", ist="IST0155" if versioned else "IST0151")  # fmt: skip
            if as_str(as_dict(match.get("proxy")).get("proxyVersion")):
                with_version.append(name)


GATEWAY_NAME_LABELS = ("gateway.networking.k8s.io/gateway-name", "istio.io/gateway-name")
SELECTOR_POLICIES = (("security.istio.io", "AuthorizationPolicy"), ("security.istio.io", "RequestAuthentication"),
                     (TELEMETRY, "Telemetry"), ("extensions.istio.io", "WasmPlugin"))  # fmt: skip


def check_selector_on_k8s_gateway(ix: Index) -> Iterator[Hit]:
    """FK519 (IST0166): a policy selects the pods of a Kubernetes Gateway (Gateway API) by labels; such policies
    must use targetRef (k8sgateway/workloadselector.go)."""
    m = mesh(ix)
    gateway_pods = [p for p in m.pods if any(k in p.labels for k in GATEWAY_NAME_LABELS)]
    if not gateway_pods:
        return
    for group, kind in SELECTOR_POLICIES:
        for obj in ix.of(group, kind):
            if obj.spec.get("targetRef") or obj.spec.get("targetRefs"):
                continue
            raw = obj.spec.get("selector")
            if not isinstance(raw, dict):
                continue
            sel = str_map(raw.get("matchLabels"))
            for p in gateway_pods:
                if p.namespace == obj.namespace and selects(sel, p.labels):
                    name = next(p.labels[k] for k in GATEWAY_NAME_LABELS if k in p.labels)
                    yield Hit(obj, ("spec", "selector"), "FK519",
                              f"Ineffective selector on Kubernetes Gateway {name}. Use the TargetRef field instead.",
                              f"replace selector with targetRef: {{group: gateway.networking.k8s.io, kind: Gateway, "
                              f"name: {name}}}")  # fmt: skip
                    break


def check_ingress_subsets(ix: Index) -> Iterator[Hit]:
    """FK123 (IST0140): a gateway VirtualService routes to a host without subset while a mesh VirtualService for
    that host splits it by subset: gateway requests skip the subset routing (virtualservice/destinationhosts.go)."""
    vss = ix.of(NETWORKING, "VirtualService")
    by_host: dict[str, list[Obj]] = defaultdict(list)
    for vs in vss:
        hosts = [h for h in as_list(vs.spec.get("hosts")) if isinstance(h, str)]
        for route in map(as_dict, as_list(vs.spec.get("http"))):
            for e in map(as_dict, as_list(route.get("route"))):
                d = as_dict(e.get("destination"))
                host = as_str(d.get("host"))
                if as_str(d.get("subset")) and host in hosts and vs not in by_host[host]:
                    by_host[host].append(vs)
    for vs in vss:
        if not as_list(vs.spec.get("gateways")):
            continue
        for i, route in enumerate(map(as_dict, as_list(vs.spec.get("http")))):
            for j, e in enumerate(map(as_dict, as_list(route.get("route")))):
                d = as_dict(e.get("destination"))
                if as_str(d.get("subset")):
                    continue
                for other in by_host.get(as_str(d.get("host")), []):
                    yield Hit(vs, ("spec", "http", i, "route", j, "destination", "host"), "FK123",
                              f"Subset in virtual service {other.namespace}/{other.name} has no effect on ingress "
                              f"gateway {vs.namespace}/{vs.name} requests",
                              "route the gateway to the subsets itself, or bind the subset VirtualService to the "
                              "gateway too")  # fmt: skip


def check_service_association(ix: Index) -> Iterator[Hit]:
    """FK520 (IST0116): Services selecting one in-mesh Deployment give a port different protocols; FK521
    (IST0137): they map one targetPort from different ports (deployment/services.go)."""
    m = mesh(ix)
    services = defaultdict(list)
    for svc in ix.of("", "Service"):
        sel = str_map(svc.spec.get("selector"))
        if sel:
            services[svc.namespace].append((svc, sel))
    for pod in m.pods:
        if pod.obj.kind != "Deployment" or not pod.in_mesh:
            continue
        matching = [svc for svc, sel in services.get(pod.namespace, []) if selects(sel, pod.labels)]
        if len(matching) < 2:
            continue
        protocols: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        targets: dict[str, dict[int, str]] = defaultdict(dict)
        for svc in matching:
            for port in map(as_dict, as_list(svc.spec.get("ports"))):
                number = as_int(port.get("port"))
                if number is None:
                    continue
                name = f"{svc.namespace}/{svc.name}"
                protocols[number][as_str(port.get("protocol")) or "TCP"].append(name)
                target = port.get("targetPort")
                key = str(target) if target not in (None, 0, "", "0") else str(number)
                targets[key][number] = name
        name = pod.obj.name
        for number, by_protocol in sorted(protocols.items()):
            if len(by_protocol) > 1:
                names = " ".join(sorted(n for group in by_protocol.values() for n in group))
                yield Hit(pod.obj, ("metadata", "name"), "FK520",
                          f"This deployment {name} is associated with multiple services using port {number} but "
                          f"different protocols: [{names}]",
                          "use one protocol per port across the Services that select these pods")  # fmt: skip
        for target, by_port in sorted(targets.items()):
            if len(by_port) > 1:
                names = " ".join(sorted(set(by_port.values())))
                ports = " ".join(str(p) for p in sorted(by_port))
                yield Hit(pod.obj, ("metadata", "name"), "FK521",
                          f'This deployment {name} is associated with multiple services [{names}] using targetPort '
                          f'"{target}" but different ports: [{ports}].',
                          "give the Services that reach one targetPort the same port number")  # fmt: skip


CHECKS = [check_workload_selectors, check_port_names, check_proxy_uid, check_envoy_filters,
          check_selector_on_k8s_gateway, check_ingress_subsets, check_service_association]  # fmt: skip
