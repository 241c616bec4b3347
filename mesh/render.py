"""Pure builders for everything a mesh member applies: manifests, Helm values, Service annotations.

No ``pulumi`` import. Values that are only known at deploy time (an Elastic IP allocation id, a
peer's token) are passed in by :mod:`mesh.member` and placed as they are, so the same builders serve
unit tests (plain strings) and the component (``pulumi.Output`` values inside the dicts).

Install order per cluster (Istio multi-primary, multi-network): ``cacerts`` secret and the labelled
``istio-system`` namespace -> ``istio/base`` -> ``istio/istiod`` -> gateways and the cross-network
``Gateway`` -> remote secrets of the peers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from fleetkit.spec import MeshSpec
from policies.common import metadata

ISTIO_CHART_REPO = "https://istio-release.storage.googleapis.com/charts"
SYSTEM_NAMESPACE = "istio-system"
LABEL_NETWORK = "topology.istio.io/network"

#: The ``cacerts`` secret istiod reads its plug-in CA from, and exactly its keys.
CACERTS_NAME = "cacerts"
CACERTS_KEYS = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")

EASTWEST_NAME = "istio-eastwestgateway"
EASTWEST_SELECTOR = {"istio": "eastwestgateway"}
CROSS_NETWORK_GATEWAY_NAME = "cross-network-gateway"
CROSS_NETWORK_PORT = 15443
STATUS_PORT = 15021

#: The ingress gateway the policy layer's ``Gateway``/``AuthorizationPolicy`` select (``istio: <name>``).
INGRESS_NAME = "fleetkit-ingress"
INGRESS_SERVICE_ACCOUNT = "fleetkit-ingress"

#: Created by the ``istio/base`` chart; bound to the reader ClusterRole by ``istio/istiod``.
READER_SERVICE_ACCOUNT = "istio-reader-service-account"
READER_TOKEN_SECRET = f"{READER_SERVICE_ACCOUNT}-istio-remote-secret-token"

REMOTE_SECRET_PREFIX = "istio-remote-secret-"
REMOTE_SECRET_LABEL = "istio/multiCluster"
REMOTE_SECRET_CLUSTER_ANNOTATION = "networking.istio.io/cluster"

# Service annotations.
AWS_LB_TYPE = "service.beta.kubernetes.io/aws-load-balancer-type"
AWS_LB_TARGET_TYPE = "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"
AWS_LB_SCHEME = "service.beta.kubernetes.io/aws-load-balancer-scheme"
AWS_LB_EIPS = "service.beta.kubernetes.io/aws-load-balancer-eip-allocations"
GCP_L4_RBS = "cloud.google.com/l4-rbs"
AZURE_LB_IPV4 = "service.beta.kubernetes.io/azure-load-balancer-ipv4"
AZURE_LB_RESOURCE_GROUP = "service.beta.kubernetes.io/azure-load-balancer-resource-group"
#: AWS Load Balancer Controller: NLB listener attributes per ``<protocol>-<port>`` (TCP idle timeout
#: 60-6000 s, default 350 s — ELBv2 ``ListenerAttribute`` ``tcp.idle_timeout.seconds``).
AWS_LB_LISTENER_ATTRIBUTES = "service.beta.kubernetes.io/aws-load-balancer-listener-attributes"
AWS_NLB_IDLE_RANGE = (60, 6000)
#: Azure cloud provider: TCP idle timeout of the load-balancing rules, in minutes (4-100, default 4).
AZURE_LB_IDLE = "service.beta.kubernetes.io/azure-load-balancer-tcp-idle-timeout"
AZURE_LB_IDLE_MINUTES = (4, 100)
#: Data ports of the gateways' LoadBalancer Services (istio/gateway chart defaults; 15443 east-west).
INGRESS_PORTS = (80, 443)
EASTWEST_PORTS = (15443,)


@dataclass(frozen=True)
class HelmReleasePlan:
    """One Helm release: which chart at which version, in which namespace, with which values."""

    release: str
    chart: str
    version: str
    values: dict[str, Any] = field(default_factory=dict)
    namespace: str = SYSTEM_NAMESPACE
    #: seconds Helm waits for the release's resources (a LoadBalancer Service waits for its address)
    timeout: int = 600


# --------------------------------------------------------------------------- namespace and trust
def system_namespace(network: str) -> dict[str, Any]:
    """``istio-system`` with the network label istiod derives the cluster's network from."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": metadata(SYSTEM_NAMESPACE, None, {LABEL_NETWORK: network}),
    }


def cacerts_secret(ca_cert: Any, ca_key: Any, root_cert: Any, cert_chain: Any) -> dict[str, Any]:
    """The plug-in CA secret: intermediate cert and key, the shared root, and intermediate + root chain."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(CACERTS_NAME, SYSTEM_NAMESPACE),
        "type": "Opaque",
        "stringData": dict(zip(CACERTS_KEYS, (ca_cert, ca_key, root_cert, cert_chain), strict=True)),
    }


# --------------------------------------------------------------------------- control plane
def base_release(version: str) -> HelmReleasePlan:
    """``istio/base``: CRDs (templated, so upgrades upgrade them) and the reader service account."""
    return HelmReleasePlan(release="istio-base", chart="base", version=version, values={})


def istiod_values(
    mesh: MeshSpec, cluster_name: str, network: str, extension_providers: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """istiod as one primary of a multi-network mesh.

    * ``global.meshID`` is the same in every cluster, ``global.multiCluster.clusterName`` is unique and
      equals the name of this cluster's remote secret in its peers, ``global.network`` matches the
      namespace label.
    * ``meshConfig.localityLbSetting.enabled``: locality-aware load balancing, which the failover
      policies (DestinationRule ``failoverPriority``) build on. mTLS STRICT is the policy layer's
      PeerAuthentication, not a mesh default here.
    * ``holdApplicationUntilProxyStarts``: model pods reach object storage for weights at start-up.
    * ``env`` (istiod's environment; the 1.30 ``istiod`` chart has no ``pilot`` key — ``pilot.env`` is
      the IstioOperator layout and the chart silently ignores it, see ``fleetkit/charts/README.md``):
      ``AUTO_RELOAD_PLUGIN_CERTS`` lets istiod pick up a rotated intermediate without a restart (on by
      default since Istio 1.18, istio/istio#43104, kept explicit because rotation depends on it);
      ``RESOLVE_HOSTNAME_GATEWAYS`` (default true in ``pilot/pkg/features``, made explicit) lets istiod
      use EKS load balancers, which publish hostnames. Both are still registered feature flags.
    * DNS capture only when ``mesh.dns_capture``: the policy layer already creates every model
      Service in every cluster (namespace sameness), so Kubernetes DNS resolves remote-only models.
    * ``meshConfig.extensionProviders``: the OpenTelemetry tracing provider and the usage access-log
      provider (``envoyOtelAls``) the policy layer's ``Telemetry`` objects name (``policies.telemetry``).
    """
    default_config: dict[str, Any] = {"holdApplicationUntilProxyStarts": True}
    if mesh.dns_capture:
        default_config["proxyMetadata"] = {"ISTIO_META_DNS_CAPTURE": "true"}
    mesh_config: dict[str, Any] = {
        "trustDomain": mesh.trust_domain,
        "localityLbSetting": {"enabled": True},
        "defaultConfig": default_config,
    }
    if extension_providers:
        mesh_config["extensionProviders"] = [dict(p) for p in extension_providers]
    return {
        "global": {
            "meshID": mesh.mesh_id,
            "multiCluster": {"clusterName": cluster_name},
            "network": network,
        },
        "meshConfig": mesh_config,
        "env": {"AUTO_RELOAD_PLUGIN_CERTS": "true", "RESOLVE_HOSTNAME_GATEWAYS": "true"},
    }


def istiod_release(
    mesh: MeshSpec, cluster_name: str, network: str, extension_providers: list[dict[str, Any]] | None = None
) -> HelmReleasePlan:
    return HelmReleasePlan(
        release="istiod",
        chart="istiod",
        version=mesh.istio_version,
        values=istiod_values(mesh, cluster_name, network, extension_providers),
    )


# --------------------------------------------------------------------------- gateways
def eastwest_values(
    network: str,
    service_annotations: dict[str, Any],
    load_balancer_ip: Any = None,
    source_ranges: list[str] | None = None,
) -> dict[str, Any]:
    """``istio/gateway`` as this network's east-west gateway.

    ``networkGateway`` labels the Service and pods with the network (how istiod finds the gateway)
    and sets ``ISTIO_META_REQUESTED_NETWORK_VIEW``. ``networkGatewayPorts`` is a **mapping keyed by
    port name** in the 1.30 chart (its ``values.schema.json``; ``templates/service.yaml`` reads
    ``index .ports "status-port"``): the status port and 15443 (cross-network mTLS,
    AUTO_PASSTHROUGH) are set explicitly. The chart's defaults also hold ``tls-istiod`` (15012) and
    ``tls-webhook`` (15017), which Helm's merge keeps, so the load balancer admits only
    ``source_ranges`` (the peers' egress addresses, :func:`mesh.topology.east_west_source_ranges`).
    """
    service: dict[str, Any] = {"annotations": dict(service_annotations)}
    if load_balancer_ip is not None:
        service["loadBalancerIP"] = load_balancer_ip
    if source_ranges:
        service["loadBalancerSourceRanges"] = list(source_ranges)
    return {
        "name": EASTWEST_NAME,
        "networkGateway": network,
        "labels": {**EASTWEST_SELECTOR, LABEL_NETWORK: network},
        "networkGatewayPorts": {
            "status-port": {"port": STATUS_PORT, "targetPort": STATUS_PORT, "protocol": "TCP"},
            "tls": {"port": CROSS_NETWORK_PORT, "targetPort": CROSS_NETWORK_PORT, "protocol": "TCP"},
        },
        "service": service,
    }


def eastwest_release(
    version: str,
    network: str,
    service_annotations: dict[str, Any],
    load_balancer_ip: Any = None,
    source_ranges: list[str] | None = None,
) -> HelmReleasePlan:
    return HelmReleasePlan(
        release=EASTWEST_NAME,
        chart="gateway",
        version=version,
        timeout=900,
        values=eastwest_values(network, service_annotations, load_balancer_ip, source_ranges),
    )


def ingress_values(service_annotations: dict[str, Any]) -> dict[str, Any]:
    """``istio/gateway`` as the public ingress: pods labelled ``istio: fleetkit-ingress``, its own SA."""
    return {
        "name": INGRESS_NAME,
        "serviceAccount": {"name": INGRESS_SERVICE_ACCOUNT},
        "labels": {"istio": INGRESS_NAME},
        "service": {"annotations": dict(service_annotations)},
    }


def ingress_release(version: str, service_annotations: dict[str, Any]) -> HelmReleasePlan:
    return HelmReleasePlan(
        release=INGRESS_NAME,
        chart="gateway",
        version=version,
        timeout=900,
        values=ingress_values(service_annotations),
    )


def cross_network_gateway() -> dict[str, Any]:
    """Expose every ``*.local`` service of this network on 15443 to the other networks (mTLS passthrough)."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": metadata(CROSS_NETWORK_GATEWAY_NAME, SYSTEM_NAMESPACE),
        "spec": {
            "selector": dict(EASTWEST_SELECTOR),
            "servers": [
                {
                    "port": {"number": CROSS_NETWORK_PORT, "name": "tls", "protocol": "TLS"},
                    "tls": {"mode": "AUTO_PASSTHROUGH"},
                    "hosts": ["*.local"],
                }
            ],
        },
    }


def aws_nlb_annotations(eip_allocations: Any = None) -> dict[str, Any]:
    """An internet-facing NLB (AWS Load Balancer Controller) targeting pod IPs.

    ``eip_allocations`` is the comma-separated allocation ids, one per subnet/AZ of the NLB, so the
    gateway's addresses stay fixed for the peers that dial them.
    """
    out: dict[str, Any] = {
        AWS_LB_TYPE: "external",
        AWS_LB_TARGET_TYPE: "ip",
        AWS_LB_SCHEME: "internet-facing",
    }
    if eip_allocations is not None:
        out[AWS_LB_EIPS] = eip_allocations
    return out


def aws_eip_zones(region: str, east_west_zones: list[str] | None) -> list[str]:
    """The AZs that get one Elastic IP each for the east-west NLB: ``mesh.east_west_zones``.

    The AWS Load Balancer Controller needs exactly one allocation per NLB subnet, so these must be
    the AZs of the public subnets the NLB lands in. They come from the mesh config alone, never from
    the node pools (editing a pool's zones must not add or release an address peers dial); unset,
    the region's ``a`` and ``b`` zones (tag public subnets ``kubernetes.io/role/elb=1`` in those AZs).
    """
    return sorted(set(east_west_zones)) if east_west_zones else [f"{region}a", f"{region}b"]


def lb_idle_annotations(cloud: str, idle_seconds: int, ports: tuple[int, ...]) -> dict[str, str]:
    """Load-balancer idle timeout annotations so a long, silent generation keeps its connection.

    AWS NLB and Azure LB close idle TCP flows (350 s and 4 min by default) — shorter than a
    non-streaming 70B generation. GCP's passthrough Network Load Balancer is not a proxy and has no
    idle-timeout Service parameter (GKE "LoadBalancer Service parameters"), so nothing is rendered
    there. Values are clamped to what each cloud accepts; the loader reports a route timeout above
    the maximum (``mesh.lb-idle-below-route-timeout``).
    """
    if cloud == "aws":
        lo, hi = AWS_NLB_IDLE_RANGE
        value = f"tcp.idle_timeout.seconds={min(hi, max(lo, idle_seconds))}"
        return {f"{AWS_LB_LISTENER_ATTRIBUTES}.TCP-{port}": value for port in ports}
    if cloud == "azure":
        lo, hi = AZURE_LB_IDLE_MINUTES
        return {AZURE_LB_IDLE: str(min(hi, max(lo, -(-idle_seconds // 60))))}
    return {}


def lb_idle_limit_seconds(cloud: str) -> int | None:
    """The longest idle timeout the cloud's load balancer accepts (None: no LB idle timeout applies)."""
    if cloud == "aws":
        return AWS_NLB_IDLE_RANGE[1]
    if cloud == "azure":
        return AZURE_LB_IDLE_MINUTES[1] * 60
    return None


def gcp_lb_annotations() -> dict[str, Any]:
    """A backend-service-based external passthrough Network Load Balancer."""
    return {GCP_L4_RBS: "enabled"}


def ingress_annotations(cloud: str, idle_seconds: int) -> dict[str, Any]:
    """Service annotations of the public ingress gateway's load balancer (no static address needed)."""
    base = aws_nlb_annotations() if cloud == "aws" else {}
    return {**base, **lb_idle_annotations(cloud, idle_seconds, INGRESS_PORTS)}


def azure_lb_annotations(ip_address: Any, resource_group: Any) -> dict[str, Any]:
    """Bind the Service to a pre-created static public IP that lives in ``resource_group``."""
    return {AZURE_LB_IPV4: ip_address, AZURE_LB_RESOURCE_GROUP: resource_group}


# --------------------------------------------------------------------------- endpoint discovery
def reader_token_secret() -> dict[str, Any]:
    """A long-lived token for ``istio-reader-service-account`` (what ``istioctl create-remote-secret`` makes)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(
            READER_TOKEN_SECRET,
            SYSTEM_NAMESPACE,
            annotations={"kubernetes.io/service-account.name": READER_SERVICE_ACCOUNT},
        ),
        "type": "kubernetes.io/service-account-token",
    }


def api_server_url(endpoint: str) -> str:
    """An API endpoint as a kubeconfig ``server`` URL (GKE reports a bare IP, EKS/AKS a URL)."""
    return endpoint if "://" in endpoint else f"https://{endpoint}"


def remote_kubeconfig(cluster_name: str, server: str, ca_data: str, token: str) -> str:
    """The kubeconfig of a remote secret: one cluster, context and user, all named after the cluster."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"certificate-authority-data": ca_data, "server": api_server_url(server)},
            }
        ],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "preferences": {},
        "users": [{"name": cluster_name, "user": {"token": token}}],
    }
    return yaml.safe_dump(config, sort_keys=True, default_flow_style=False)


def remote_secret_name(cluster_name: str) -> str:
    return f"{REMOTE_SECRET_PREFIX}{cluster_name}"


def remote_secret(cluster_name: str, kubeconfig: Any) -> dict[str, Any]:
    """A remote secret exactly as ``istioctl create-remote-secret --name <cluster>`` emits it.

    ``kubeconfig`` ``None`` (the peer has not exported its reader credentials yet) gives the same
    object with no data: istiod's secret controller then has no cluster to add, and the next
    ``pulumi up`` after the peer is up fills it in.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": remote_secret_name(cluster_name),
            "namespace": SYSTEM_NAMESPACE,
            "annotations": {REMOTE_SECRET_CLUSTER_ANNOTATION: cluster_name},
            "labels": {REMOTE_SECRET_LABEL: "true"},
        },
        "stringData": {} if kubeconfig is None else {cluster_name: kubeconfig},
    }
