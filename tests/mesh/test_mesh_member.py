"""The demo fleet's mesh under Pulumi's mock runtime: 1 trust root + 4 clusters on 3 clouds."""

from __future__ import annotations

import itertools
from typing import Any

import pulumi
import pytest
import yaml

from fleetkit.loader import load_fleet
from fleetkit.schema import validate_object
from fleetkit.spec import RegionStackSpec
from mesh import pki, render, topology
from mesh.member import MeshMember, MeshMemberArgs
from tests.mesh.mesh_mocks import FakeCluster, StackRun, plain, public_strings, run_mesh_program, run_stack

ROOT_STACK = "mesh-root"
PEERING_STACK = "mesh-peering"
SECRET = "kubernetes:core/v1:Secret"
RELEASE = "kubernetes:helm.sh/v3:Release"


def _regions(run: dict[str, StackRun]) -> dict[str, StackRun]:
    return {k: v for k, v in run.items() if k not in (ROOT_STACK, PEERING_STACK)}


def _one(run: StackRun, type_: str, name_suffix: str = "") -> object:
    found = [r for r in run.of_type(type_) if r.name.endswith(name_suffix)]
    assert len(found) == 1, (type_, name_suffix, [r.name for r in found])
    return found[0]


def _release(run: StackRun, release: str):  # type: ignore[no-untyped-def]
    found = [r for r in run.of_type(RELEASE) if r.inputs.get("name") == release]
    assert len(found) == 1, release
    return found[0]


def _secrets(run: StackRun, prefix: str) -> list:  # type: ignore[type-arg]
    return [r for r in run.of_type(SECRET) if plain(r.inputs)["metadata"]["name"].startswith(prefix)]


def test_the_fleet_has_one_root_and_four_regions(fleet_run) -> None:
    assert set(_regions(fleet_run)) == {"aws-us-east-1", "aws-us-west-2", "azure-eastus", "gcp-europe-west4"}
    root = fleet_run[ROOT_STACK]
    assert [r.type for r in root.resources if r.custom] == [
        "tls:index/privateKey:PrivateKey",
        "tls:index/selfSignedCert:SelfSignedCert",
    ]
    cert = root.of_type("tls:index/selfSignedCert:SelfSignedCert")[0].inputs
    assert cert["isCaCertificate"] is True and cert["maxPathLength"] == 1
    assert {"cert_signing", "crl_signing"} <= set(cert["allowedUses"])
    assert root.secret_outputs == {topology.EXPORT_ROOT_KEY}


def test_every_cluster_has_its_own_intermediate_signed_by_the_one_root(fleet_run, demo_fleet) -> None:
    root_cert = fleet_run[ROOT_STACK].outputs[topology.EXPORT_ROOT_CERT]
    intermediates = set()
    for name, run in _regions(fleet_run).items():
        spec = demo_fleet.stacks[name].spec
        assert isinstance(spec, RegionStackSpec)
        assert len(run.of_type("tls:index/privateKey:PrivateKey")) == 1
        csr = _one(run, "tls:index/certRequest:CertRequest").inputs  # type: ignore[attr-defined]
        assert spec.mesh.cluster_name in csr["subject"]["commonName"]
        signed = _one(run, "tls:index/locallySignedCert:LocallySignedCert").inputs  # type: ignore[attr-defined]
        assert signed["isCaCertificate"] is True and signed["maxPathLength"] == 0
        assert set(signed["allowedUses"]) == set(pki.INTERMEDIATE_USES)
        assert (
            signed["validityPeriodHours"] == demo_fleet.stacks[ROOT_STACK].spec.ca.intermediate_validity_hours
        )
        assert signed["caCertPem"] == root_cert
        assert public_strings(signed["caPrivateKeyPem"]) == [], (
            "the root key must reach the signer as a secret"
        )
        assert run.outputs[topology.EXPORT_ROOT_CERT] == root_cert
        intermediates.add(run.outputs[topology.EXPORT_INTERMEDIATE_CERT])
    assert len(intermediates) == 4


def test_mesh_identity_same_mesh_id_unique_cluster_names(fleet_run, demo_fleet) -> None:
    names, mesh_ids = [], set()
    for name, run in _regions(fleet_run).items():
        spec = demo_fleet.stacks[name].spec
        values = _release(run, "istiod").inputs["values"]
        mesh_ids.add(values["global"]["meshID"])
        names.append(values["global"]["multiCluster"]["clusterName"])
        assert values["global"]["multiCluster"]["clusterName"] == spec.mesh.cluster_name
        assert values["global"]["network"] == spec.mesh.network
        ns = _one(run, "kubernetes:core/v1:Namespace").inputs  # type: ignore[attr-defined]
        assert ns["metadata"]["name"] == "istio-system"
        assert ns["metadata"]["labels"][render.LABEL_NETWORK] == spec.mesh.network
        assert run.outputs[topology.EXPORT_MESH_ID] == "fleetkit-mesh"
    assert mesh_ids == {"fleetkit-mesh"}
    assert len(set(names)) == 4


def test_twelve_remote_secrets_with_the_exact_istioctl_shape(fleet_run) -> None:
    regions = _regions(fleet_run)
    by_cluster = {run.outputs[topology.EXPORT_CLUSTER_NAME]: run for run in regions.values()}
    peering = fleet_run[PEERING_STACK]
    pairs = set()
    for secret in _secrets(peering, render.REMOTE_SECRET_PREFIX):
        holder = secret.name.removeprefix("peering-").split("-secret-")[0]
        assert public_strings(secret.inputs["stringData"]) == [], "the kubeconfig must be a Pulumi secret"
        obj = plain(secret.inputs)
        peer = obj["metadata"]["name"].removeprefix(render.REMOTE_SECRET_PREFIX)
        assert peer != holder
        pairs.add((holder, peer))
        assert obj["metadata"] == {
            "name": f"istio-remote-secret-{peer}",
            "namespace": "istio-system",
            "annotations": {"networking.istio.io/cluster": peer},
            "labels": {"istio/multiCluster": "true"},
        }
        assert set(obj) == {"apiVersion", "kind", "metadata", "stringData"} and list(obj["stringData"]) == [
            peer
        ]
        assert validate_object(obj) == []
        source = by_cluster[peer].outputs
        cfg = yaml.safe_load(obj["stringData"][peer])
        assert cfg["current-context"] == peer
        assert cfg["clusters"] == [
            {
                "name": peer,
                "cluster": {
                    "server": source[topology.EXPORT_READER_SERVER],
                    "certificate-authority-data": source[topology.EXPORT_READER_CA_DATA],
                },
            }
        ]
        assert cfg["contexts"] == [{"name": peer, "context": {"cluster": peer, "user": peer}}]
        assert cfg["users"] == [{"name": peer, "user": {"token": source[topology.EXPORT_READER_TOKEN]}}]
        assert cfg["clusters"][0]["cluster"]["server"].startswith("https://")
    assert pairs == set(itertools.permutations(by_cluster, 2))
    assert len(pairs) == 12
    assert peering.missing_refs == set()


def test_one_pass_bring_up_regions_reference_only_the_trust_root(fleet_run) -> None:
    """Each region comes up once, in any order: it never references another region (pulumi/pulumi#11275)."""
    for name, run in _regions(fleet_run).items():
        refs = sorted(r.inputs.get("name") for r in run.of_type("pulumi:pulumi:StackReference"))
        assert refs == [ROOT_STACK], (name, refs)
        assert run.missing_refs == set()
        assert _secrets(run, render.REMOTE_SECRET_PREFIX) == []


def test_cacerts_keys_and_creation_before_istiod(fleet_run) -> None:
    for run in _regions(fleet_run).values():
        [cacerts] = _secrets(run, "cacerts")
        assert public_strings(cacerts.inputs["stringData"]) == []
        data = plain(cacerts.inputs)["stringData"]
        assert set(data) == set(render.CACERTS_KEYS)
        assert data["ca-cert.pem"] == run.outputs[topology.EXPORT_INTERMEDIATE_CERT]
        assert data["root-cert.pem"] == run.outputs[topology.EXPORT_ROOT_CERT]
        assert data["cert-chain.pem"] == pki.cert_chain(data["ca-cert.pem"], data["root-cert.pem"])
        assert "PRIVATE KEY" in data["ca-key.pem"]
        istiod, base = _release(run, "istiod"), _release(run, "istio-base")
        namespace = _one(run, "kubernetes:core/v1:Namespace")
        assert {cacerts.urn, base.urn, namespace.urn} <= run.depends_on(istiod)  # type: ignore[attr-defined]
        assert namespace.urn in run.depends_on(cacerts)  # type: ignore[attr-defined]
        for gateway in ("istio-eastwestgateway", "fleetkit-ingress"):
            assert istiod.urn in run.depends_on(_release(run, gateway))
        reader = _secrets(run, render.READER_TOKEN_SECRET)[0]
        assert base.urn in run.depends_on(reader)


def test_gateways_valid_and_cloud_specific(fleet_run, demo_fleet) -> None:
    for name, run in _regions(fleet_run).items():
        spec = demo_fleet.stacks[name].spec
        assert isinstance(spec, RegionStackSpec)
        gateway = plain(_one(run, "kubernetes:networking.istio.io/v1:Gateway").inputs)  # type: ignore[attr-defined]
        assert validate_object(gateway) == []
        assert gateway["spec"]["servers"][0]["tls"] == {"mode": "AUTO_PASSTHROUGH"}
        values = _release(run, "istio-eastwestgateway").inputs["values"]
        assert values["networkGateway"] == spec.mesh.network
        assert values["labels"] == {
            "istio": "eastwestgateway",
            "topology.istio.io/network": spec.mesh.network,
        }
        annotations = values["service"]["annotations"]
        addresses = run.outputs[topology.EXPORT_EAST_WEST_ADDRESSES]
        if spec.cloud == "aws":
            eips = sorted(run.of_type("aws:ec2/eip:Eip"), key=lambda e: e.name)  # one per zone, in zone order
            zones = render.aws_eip_zones(spec.region, spec.mesh.east_west_zones)
            assert len(eips) == len(zones) == len(addresses)
            allocations = annotations[render.AWS_LB_EIPS].split(",")
            assert allocations == [e.outputs["allocationId"] for e in eips]
            assert annotations[render.AWS_LB_SCHEME] == "internet-facing"
        elif spec.cloud == "gcp":
            [address] = run.of_type("gcp:compute/address:Address")
            assert values["service"]["loadBalancerIP"] == address.outputs["address"] == addresses[0]
            assert annotations == {render.GCP_L4_RBS: "enabled"}
        else:
            [ip] = run.of_type("azure-native:network:PublicIPAddress")
            assert (
                ip.inputs["publicIPAllocationMethod"] == "Static" and ip.inputs["sku"]["name"] == "Standard"
            )
            assert annotations[render.AZURE_LB_IPV4] == ip.outputs["ipAddress"] == addresses[0]
            assert annotations[render.AZURE_LB_RESOURCE_GROUP] == spec.account.azure_resource_group
        assert run.outputs[topology.EXPORT_EAST_WEST_ADDRESS] == addresses[0]
        ingress = _release(run, "fleetkit-ingress").inputs["values"]
        assert (
            ingress["labels"] == {"istio": "fleetkit-ingress"}
            and ingress["serviceAccount"]["name"] == "fleetkit-ingress"
        )


def test_helm_releases_come_from_the_istio_repo_pinned(fleet_run) -> None:
    for run in _regions(fleet_run).values():
        releases = run.of_type(RELEASE)
        assert sorted(r.inputs["name"] for r in releases) == [
            "fleetkit-ingress",
            "istio-base",
            "istio-eastwestgateway",
            "istiod",
        ]
        for r in releases:
            assert r.inputs["repositoryOpts"] == {"repo": render.ISTIO_CHART_REPO}
            assert r.inputs["version"] == "1.30.3" and r.inputs["namespace"] == "istio-system"


def test_no_private_key_material_outside_secrets(fleet_run) -> None:
    seen_secret_key = False
    for run in fleet_run.values():
        tokens = (
            [run.outputs.get(topology.EXPORT_READER_TOKEN)]
            if topology.EXPORT_READER_TOKEN in run.outputs
            else []
        )
        for res in run.resources:
            for text in public_strings(res.inputs) + public_strings(res.outputs):
                assert "PRIVATE KEY" not in text, (run.stack, res.type, res.name)
                assert not any(t and t in text for t in tokens), (run.stack, res.name)
            seen_secret_key = seen_secret_key or "PRIVATE KEY" in str(plain(res.inputs))
        for key, value in run.outputs.items():
            if key not in run.secret_outputs:
                assert "PRIVATE KEY" not in str(value), (run.stack, key)
    assert seen_secret_key, "the check must see key material inside secrets, or it proves nothing"
    for run in _regions(fleet_run).values():
        assert run.secret_outputs == {topology.EXPORT_READER_TOKEN}


def test_exports_peers_need(fleet_run) -> None:
    for run in _regions(fleet_run).values():
        assert {
            topology.EXPORT_MESH_ID,
            topology.EXPORT_CLUSTER_NAME,
            topology.EXPORT_NETWORK,
            topology.EXPORT_READER_SERVER,
            topology.EXPORT_READER_CA_DATA,
            topology.EXPORT_READER_TOKEN,
            topology.EXPORT_INTERMEDIATE_CERT,
            topology.EXPORT_EAST_WEST_ADDRESS,
        } <= set(run.outputs)
        assert run.outputs[topology.EXPORT_READER_TOKEN]


def test_a_region_not_up_yet_leaves_its_remote_secrets_empty(demo_fleet, fleet_run) -> None:
    up = {n: r for n, r in fleet_run.items() if n != "aws-us-east-1"}
    run = run_stack(demo_fleet, PEERING_STACK, up)
    assert run.missing_refs == {"aws-us-east-1"}
    empty = [s for s in _secrets(run, render.REMOTE_SECRET_PREFIX) if plain(s.inputs)["stringData"] == {}]
    assert sorted(plain(s.inputs)["metadata"]["name"] for s in empty) == ["istio-remote-secret-aws-use1"] * 3


def test_a_cluster_without_east_west_gateway(tmp_project, fleet_run) -> None:
    # aws-us-west-2 joins aws-us-east-1's network and relies on its east-west gateway
    path = tmp_project / "stacks/Pulumi.aws-us-west-2.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["fleetkit:mesh"].update(network="net-aws-use1", east_west_gateway=False)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    run = run_stack(load_fleet(tmp_project), "aws-us-west-2", fleet_run)
    assert (
        run.of_type("aws:ec2/eip:Eip") == []
        and run.of_type("kubernetes:networking.istio.io/v1:Gateway") == []
    )
    assert sorted(r.inputs["name"] for r in run.of_type(RELEASE)) == [
        "fleetkit-ingress",
        "istio-base",
        "istiod",
    ]
    assert topology.EXPORT_EAST_WEST_ADDRESS not in run.outputs


def test_extra_helm_values_merge_over_the_kits(demo_fleet, fleet_run) -> None:
    spec = demo_fleet.stacks["gcp-europe-west4"].spec

    def build(extra: dict[str, Any]) -> Any:
        def inner() -> dict[str, Any]:
            cluster = FakeCluster("gcp-europe-west4", spec)  # type: ignore[arg-type]
            args = MeshMemberArgs(
                stack="gcp-europe-west4",
                placement=demo_fleet.stacks["gcp-europe-west4"].resolved.placement,
                policies=spec.policies,
                fleet=demo_fleet,
                cluster=cluster,  # type: ignore[arg-type]
                extra_values=extra,
            )
            return MeshMember(
                "gcp-europe-west4-mesh", args, pulumi.ResourceOptions(provider=cluster.provider)
            ).exports()

        return inner

    run = run_mesh_program(
        "gcp-europe-west4", build({"istiod": {"env": {"PILOT_TRACE_SAMPLING": "1"}}}), fleet_run
    )
    env = _release(run, "istiod").inputs["values"]["env"]
    assert env["PILOT_TRACE_SAMPLING"] == "1" and env["AUTO_RELOAD_PLUGIN_CERTS"] == "true"
    with pytest.raises(ValueError, match="unknown releases"):
        run_mesh_program("gcp-europe-west4", build({"istio-ingress": {}}), fleet_run)
