"""Pure mesh builders: manifests, Helm values, PKI parameters, stack references (no engine)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from fleetkit.schema import validate_object
from fleetkit.spec import CaSpec, MeshSpec
from mesh import pki, render, topology


def _mesh(**kw: object) -> MeshSpec:
    return MeshSpec(mesh_id="m1", cluster_name="c1", network="n1", **kw)  # type: ignore[arg-type]


def test_pure_modules_do_not_import_pulumi(project_root) -> None:
    code = "import sys, mesh.render, mesh.pki, mesh.topology; sys.exit('pulumi' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=project_root, check=False).returncode == 0


# --------------------------------------------------------------------------- remote secrets
def test_remote_secret_has_the_istioctl_shape() -> None:
    kubeconfig = render.remote_kubeconfig("gcp-euw4", "203.0.113.7", "Q0EtREFUQQ==", "tok")
    obj = render.remote_secret("gcp-euw4", kubeconfig)
    assert obj == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "istio-remote-secret-gcp-euw4",
            "namespace": "istio-system",
            "annotations": {"networking.istio.io/cluster": "gcp-euw4"},
            "labels": {"istio/multiCluster": "true"},
        },
        "stringData": {"gcp-euw4": kubeconfig},
    }
    assert validate_object(obj) == []


def test_remote_kubeconfig_names_everything_after_the_cluster() -> None:
    cfg = yaml.safe_load(render.remote_kubeconfig("aws-use1", "https://api.example", "Q0E=", "t0k"))
    assert cfg == {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "aws-use1",
                "cluster": {"certificate-authority-data": "Q0E=", "server": "https://api.example"},
            }
        ],
        "contexts": [{"name": "aws-use1", "context": {"cluster": "aws-use1", "user": "aws-use1"}}],
        "current-context": "aws-use1",
        "preferences": {},
        "users": [{"name": "aws-use1", "user": {"token": "t0k"}}],
    }


def test_remote_secret_without_peer_credentials_is_empty_not_broken() -> None:
    obj = render.remote_secret("azure-eus", None)
    assert obj["stringData"] == {} and obj["metadata"]["name"] == "istio-remote-secret-azure-eus"


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("203.0.113.9", "https://203.0.113.9"),
        ("https://x.eks.amazonaws.com", "https://x.eks.amazonaws.com"),
        ("https://aks.example:443", "https://aks.example:443"),
    ],
)
def test_api_server_url(endpoint: str, url: str) -> None:
    assert render.api_server_url(endpoint) == url


def test_reader_token_secret() -> None:
    obj = render.reader_token_secret()
    assert obj["type"] == "kubernetes.io/service-account-token"
    assert obj["metadata"]["name"] == "istio-reader-service-account-istio-remote-secret-token"
    assert obj["metadata"]["annotations"] == {
        "kubernetes.io/service-account.name": "istio-reader-service-account"
    }
    assert validate_object(obj) == []


# --------------------------------------------------------------------------- trust
def test_cacerts_has_exactly_the_plugin_ca_keys() -> None:
    obj = render.cacerts_secret("INT", "KEY", "ROOT", pki.cert_chain("INT", "ROOT"))
    assert obj["metadata"]["name"] == "cacerts" and obj["metadata"]["namespace"] == "istio-system"
    assert list(obj["stringData"]) == ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"]
    assert obj["stringData"]["cert-chain.pem"] == "INT\nROOT\n"
    assert validate_object(obj) == []


def test_pki_parameters() -> None:
    assert pki.key_params(CaSpec()) == {"algorithm": "ECDSA", "ecdsa_curve": "P256"}
    assert pki.key_params(CaSpec(key_algorithm="RSA")) == {"algorithm": "RSA", "rsa_bits": 4096}
    subject = pki.intermediate_subject(CaSpec(organization="acme"), "m1", "aws-use1")
    assert "aws-use1" in subject["common_name"] and subject["locality"] == "aws-use1"
    assert set(pki.INTERMEDIATE_USES) == {
        "cert_signing",
        "crl_signing",
        "digital_signature",
        "key_encipherment",
    }
    assert pki.intermediate_early_renewal_hours(CaSpec(intermediate_validity_hours=17520)) == 720
    assert pki.intermediate_early_renewal_hours(CaSpec(intermediate_validity_hours=240)) == 24


# --------------------------------------------------------------------------- control plane
def test_istiod_values_carry_mesh_identity_and_defaults() -> None:
    values = render.istiod_values(_mesh(trust_domain="example.org"), "c1", "n1")
    assert values["global"] == {"meshID": "m1", "multiCluster": {"clusterName": "c1"}, "network": "n1"}
    assert values["meshConfig"]["trustDomain"] == "example.org"
    assert values["meshConfig"]["localityLbSetting"] == {"enabled": True}
    assert "proxyMetadata" not in values["meshConfig"]["defaultConfig"]
    assert all(isinstance(v, str) for v in values["env"].values()) and "pilot" not in values


def test_dns_capture_only_when_asked() -> None:
    values = render.istiod_values(_mesh(dns_capture=True), "c1", "n1")
    assert values["meshConfig"]["defaultConfig"]["proxyMetadata"] == {"ISTIO_META_DNS_CAPTURE": "true"}


def test_releases_are_pinned_to_the_spec_version() -> None:
    mesh = _mesh(istio_version="1.30.3")
    plans = [
        render.base_release("1.30.3"),
        render.istiod_release(mesh, "c1", "n1"),
        render.eastwest_release("1.30.3", "n1", {}),
        render.ingress_release("1.30.3", {}),
    ]
    assert {(p.chart, p.release) for p in plans} == {
        ("base", "istio-base"),
        ("istiod", "istiod"),
        ("gateway", "istio-eastwestgateway"),
        ("gateway", "fleetkit-ingress"),
    }
    assert {p.version for p in plans} == {"1.30.3"} and {p.namespace for p in plans} == {"istio-system"}


# --------------------------------------------------------------------------- gateways
def test_eastwest_values_expose_only_status_and_cross_network_ports() -> None:
    values = render.eastwest_values("n1", {"a": "b"}, load_balancer_ip="203.0.113.1")
    assert values["networkGateway"] == "n1"
    assert values["labels"] == {"istio": "eastwestgateway", "topology.istio.io/network": "n1"}
    assert {k: p["port"] for k, p in values["networkGatewayPorts"].items()} == {
        "status-port": 15021,
        "tls": 15443,
    }
    assert values["service"] == {"annotations": {"a": "b"}, "loadBalancerIP": "203.0.113.1"}
    restricted = render.eastwest_values("n1", {}, source_ranges=["198.51.100.16/29"])
    assert restricted["service"]["loadBalancerSourceRanges"] == ["198.51.100.16/29"]


def test_cross_network_gateway_is_valid_istio() -> None:
    gw = render.cross_network_gateway()
    assert validate_object(gw) == []
    assert gw["spec"]["selector"] == {"istio": "eastwestgateway"}
    assert gw["spec"]["servers"] == [
        {
            "port": {"number": 15443, "name": "tls", "protocol": "TLS"},
            "tls": {"mode": "AUTO_PASSTHROUGH"},
            "hosts": ["*.local"],
        }
    ]


def test_ingress_values_match_the_policy_layer_selector() -> None:
    from policies.context import RenderContext

    ctx = RenderContext(namespace="llm", services={})
    values = render.ingress_values({})
    assert values["labels"] == {"istio": ctx.ingress_gateway_name}
    assert values["serviceAccount"] == {"name": ctx.ingress_service_account}


def test_cloud_annotations() -> None:
    aws = render.aws_nlb_annotations("eipalloc-1,eipalloc-2")
    assert aws == {
        "service.beta.kubernetes.io/aws-load-balancer-type": "external",
        "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
        "service.beta.kubernetes.io/aws-load-balancer-eip-allocations": "eipalloc-1,eipalloc-2",
    }
    assert render.gcp_lb_annotations() == {"cloud.google.com/l4-rbs": "enabled"}
    assert render.azure_lb_annotations("203.0.113.5", "rg") == {
        "service.beta.kubernetes.io/azure-load-balancer-ipv4": "203.0.113.5",
        "service.beta.kubernetes.io/azure-load-balancer-resource-group": "rg",
    }
    assert render.ingress_annotations("gcp", 900) == {} and "aws-load-balancer-eip-allocations" not in str(
        render.ingress_annotations("aws", 900)
    )


def test_lb_idle_timeouts_cover_the_longest_route_timeout() -> None:
    aws = render.lb_idle_annotations("aws", 900, render.INGRESS_PORTS)
    assert aws == {
        f"service.beta.kubernetes.io/aws-load-balancer-listener-attributes.TCP-{p}": "tcp.idle_timeout.seconds=900"
        for p in (80, 443)
    }
    assert render.lb_idle_annotations("azure", 900, render.EASTWEST_PORTS) == {
        "service.beta.kubernetes.io/azure-load-balancer-tcp-idle-timeout": "15"
    }
    assert render.lb_idle_annotations("azure", 61, render.EASTWEST_PORTS) == {
        "service.beta.kubernetes.io/azure-load-balancer-tcp-idle-timeout": "4"
    }  # the Azure minimum
    assert render.lb_idle_annotations("gcp", 900, render.INGRESS_PORTS) == {}
    assert (
        render.ingress_annotations("aws", 900)[
            "service.beta.kubernetes.io/aws-load-balancer-listener-attributes.TCP-443"
        ]
        == "tcp.idle_timeout.seconds=900"
    )


def test_aws_eip_zones() -> None:
    assert render.aws_eip_zones("us-east-1", ["us-east-1b", "us-east-1a", "us-east-1b"]) == [
        "us-east-1a",
        "us-east-1b",
    ]
    assert render.aws_eip_zones("us-west-2", None) == ["us-west-2a", "us-west-2b"]


# --------------------------------------------------------------------------- stack references
def test_stack_reference_prefix_precedence() -> None:
    bare, qualified = _mesh(), _mesh(trust_root_stack="acme/fleetkit/mesh-root")
    assert topology.stack_ref("aws-us-east-1", bare, env={}) == "aws-us-east-1"
    assert topology.trust_root_ref(bare, env={}) == "mesh-root"
    # the prefix written in trust_root_stack applies to every reference
    assert topology.stack_ref("aws-us-east-1", qualified, env={}) == "acme/fleetkit/aws-us-east-1"
    # the environment wins over the files
    env = {topology.STACK_REF_PREFIX_ENV: "other/fleetkit"}
    assert topology.stack_ref("aws-us-east-1", qualified, env=env) == "other/fleetkit/aws-us-east-1"
    assert topology.trust_root_ref(qualified, env=env) == "other/fleetkit/mesh-root"
    assert topology.trust_root_stack_name(qualified) == "mesh-root"


@pytest.mark.parametrize(
    ("ref", "ok"),
    [
        ("mesh-root", True),
        ("acme/fleetkit/mesh-root", True),
        ("acme/mesh-root", False),
        ("a//b", False),
        ("", False),
    ],
)
def test_stack_reference_syntax(ref: str, ok: bool) -> None:
    assert (topology.ref_syntax_problem(ref) is None) is ok
