"""ModelService under Pulumi mocks, per cloud: identity resources, Kubernetes objects, secrets."""

from __future__ import annotations

import json

import pytest
from model_runtime import is_secret, run_model_service

from fleetkit.schema import validate_objects

K8S_KINDS = {
    "ServiceAccount",
    "Deployment",
    "PodDisruptionBudget",
    "DaemonSet",
    "PodMonitor",
    "PrometheusRule",
}


def _kinds(mocks) -> set[str]:
    return {r.type.rsplit(":", 1)[1] for r in mocks.resources if r.type.startswith("kubernetes:")}


def test_aws_irsa_role_trusts_exactly_the_model_service_account():
    mocks, out = run_model_service("aws-us-east-1", "llama-3-8b")
    role = mocks.one("aws:iam/role:Role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    cond = trust["Statement"][0]["Condition"]["StringEquals"]
    assert (
        cond["oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE0123456789:sub"]
        == "system:serviceaccount:llm:llama-3-8b"
    )
    assert cond["oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE0123456789:aud"] == "sts.amazonaws.com"
    assert trust["Statement"][0]["Principal"]["Federated"].endswith("/id/EXAMPLE0123456789")
    policy = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    resources = {s["Action"]: s["Resource"] for s in policy["Statement"]}
    assert resources["s3:GetObject"] == "arn:aws:s3:::fleetkit-demo-models/meta-llama/Llama-3.1-8B-Instruct/*"
    sa = mocks.kube("ServiceAccount", "llama-3-8b")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == out["weightsRoleArn"]
    assert out["weightsRoleArn"].startswith("arn:aws:iam::") and out["deployment"] == "llama-3-8b"
    assert _kinds(mocks) == K8S_KINDS
    dep = mocks.kube("Deployment", "llama-3-8b")
    sync = dep["spec"]["template"]["spec"]["initContainers"][0]
    assert sync["env"] == [{"name": "AWS_REGION", "value": "us-east-1"}]  # IRSA: no keys anywhere
    assert not mocks.of_type("kubernetes:core/v1:Secret")


def test_gcp_workload_identity_binding_and_out_of_band_s3_secret():
    mocks, out = run_model_service("gcp-europe-west4", "llama-3-8b")
    account = mocks.one("gcp:serviceaccount/account:Account")
    assert account.inputs["project"] == "fleetkit-demo"
    member = mocks.one("gcp:serviceaccount/iAMMember:IAMMember")
    assert member.inputs["role"] == "roles/iam.workloadIdentityUser"
    assert member.inputs["member"] == "serviceAccount:fleetkit-demo.svc.id.goog[llm/llama-3-8b]"
    assert member.inputs["serviceAccountId"].endswith(
        f"{account.inputs['accountId']}@fleetkit-demo.iam.gserviceaccount.com"
    )
    sa = mocks.kube("ServiceAccount", "llama-3-8b")
    assert sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == out["gcpServiceAccount"]
    assert out["weightsSecret"] == "fleetkit-weights-s3"
    assert not mocks.of_type("kubernetes:core/v1:Secret")
    sync = mocks.kube("Deployment", "llama-3-8b")["spec"]["template"]["spec"]["initContainers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in sync["env"]}
    assert refs["AWS_ACCESS_KEY_ID"] == {"name": "fleetkit-weights-s3", "key": "AWS_ACCESS_KEY_ID"}
    assert refs["AWS_ENDPOINT_URL_S3"]["optional"] is True


def test_gcp_keys_from_pulumi_config_become_a_secret_that_is_never_plain():
    config = {
        "fleetkit-weights:s3AccessKeyId": "GOOG1EXAMPLEKEY",
        "fleetkit-weights:s3SecretAccessKey": "hunter2hunter2",
        "fleetkit-weights:s3EndpointUrl": "https://storage.googleapis.com",
    }
    mocks, out = run_model_service(
        "gcp-europe-west4",
        "llama-3-8b",
        config=config,
        secret_keys=["fleetkit-weights:s3AccessKeyId", "fleetkit-weights:s3SecretAccessKey"],
    )
    secret = mocks.one("kubernetes:core/v1:Secret")
    # the whole map travels as a Pulumi secret (state, previews and diffs show "[secret]")
    assert is_secret(secret.inputs["stringData"])
    data = mocks.kube("Secret", "llama-3-8b-weights-s3")["stringData"]
    assert set(data) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3"}
    assert data["AWS_ENDPOINT_URL_S3"] == "https://storage.googleapis.com"
    assert out["weightsSecret"] == "llama-3-8b-weights-s3"
    # the secret values appear nowhere else in plain text
    for r in mocks.resources:
        if r is secret:
            continue
        text = json.dumps(r.inputs, default=str)
        assert "hunter2hunter2" not in text and "GOOG1EXAMPLEKEY" not in text, r.name
    sync = mocks.kube("Deployment", "llama-3-8b")["spec"]["template"]["spec"]["initContainers"][0]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in sync["env"]} == {"llama-3-8b-weights-s3"}


def test_gcp_half_configured_keys_are_an_error():
    with pytest.raises(Exception, match="s3SecretAccessKey"):
        run_model_service(
            "gcp-europe-west4",
            "llama-3-8b",
            config={"fleetkit-weights:s3AccessKeyId": "x"},
            secret_keys=["fleetkit-weights:s3AccessKeyId"],
        )


def test_azure_federated_credential_on_the_cluster_issuer():
    mocks, out = run_model_service("azure-eastus", "llama-3-8b")
    uami = mocks.one("azure-native:managedidentity:UserAssignedIdentity")
    assert uami.inputs["resourceGroupName"] == "fleetkit-eastus" and uami.inputs["location"] == "eastus"
    fic = mocks.one("azure-native:managedidentity:FederatedIdentityCredential")
    assert fic.inputs["issuer"] == "https://eastus.oic.prod-aks.azure.com/tenant/cluster/"
    assert fic.inputs["subject"] == "system:serviceaccount:llm:llama-3-8b"
    assert fic.inputs["audiences"] == ["api://AzureADTokenExchange"]
    assert fic.inputs["resourceName"] == uami.inputs["resourceName"]
    sa = mocks.kube("ServiceAccount", "llama-3-8b")
    assert sa["metadata"]["annotations"]["azure.workload.identity/client-id"] == out["azureClientId"]
    dep = mocks.kube("Deployment", "llama-3-8b")
    assert dep["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    ds = mocks.kube("DaemonSet", "llama-3-8b-prefetch")
    assert ds["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"


def test_cold_canary_has_no_prefetch_and_objects_are_valid():
    mocks, _ = run_model_service("aws-us-east-1", "llama-3-70b-v2")
    assert _kinds(mocks) == K8S_KINDS - {"DaemonSet"}
    objs = []
    for kind, api in (
        ("ServiceAccount", "v1"),
        ("Deployment", "apps/v1"),
        ("PodDisruptionBudget", "policy/v1"),
        ("PodMonitor", "monitoring.coreos.com/v1"),
        ("PrometheusRule", "monitoring.coreos.com/v1"),
    ):
        body = mocks.kube(kind, "llama-3-70b-v2")
        body.pop("apiVersion", None)
        body.pop("kind", None)
        objs.append({"apiVersion": api, "kind": kind, **body})
    assert validate_objects(objs) == []
    comp = [r for r in mocks.resources if r.type == "fleetkit:components:ModelService"]
    assert [r.name for r in comp] == ["aws-us-east-1-llama-3-70b-v2"]
