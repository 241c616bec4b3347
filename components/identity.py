"""Per-cloud workload identity of a model's pods: read-only access to exactly its weights prefix.

The weights live in S3 (``models.<name>.weights_uri``), so what a pod needs differs per cloud:

* **AWS (EKS)** — IRSA. An ``aws.iam.Role`` trusts the cluster's OIDC provider for exactly
  ``system:serviceaccount:<namespace>:<model>`` (``sub``) with audience ``sts.amazonaws.com``; its
  inline policy allows ``s3:GetObject`` on ``<bucket>/<prefix>/*`` and ``s3:ListBucket`` only under
  that prefix. The ServiceAccount carries ``eks.amazonaws.com/role-arn``; no key exists anywhere.
* **GCP (GKE)** and **Azure (AKS)** — a pod there cannot assume an AWS role without an extra OIDC
  federation set up on the AWS side, so the agent reads S3 with static, read-only keys from a
  Kubernetes Secret (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, optional
  ``AWS_ENDPOINT_URL_S3``/``AWS_REGION`` — e.g. GCS HMAC keys and ``https://storage.googleapis.com``
  for a bucket mirrored to GCS). The Secret is ``<model>-weights-s3``, created from Pulumi secret
  config (``fleetkit-weights:s3AccessKeyId``, ``fleetkit-weights:s3SecretAccessKey``, optional
  ``fleetkit-weights:s3EndpointUrl``, ``fleetkit-weights:s3Region``) when set, otherwise the pods
  reference ``fleetkit-weights-s3``, created out of band (External Secrets, ``kubectl``). The pods
  still get their cloud-native identity, bound to the same ServiceAccount, for cloud APIs and a
  future native mirror: a GCP service account with ``roles/iam.workloadIdentityUser`` for
  ``<project>.svc.id.goog[<namespace>/<model>]`` (annotation ``iam.gke.io/gcp-service-account``), or
  an Azure user-assigned identity with a federated credential on the cluster's OIDC issuer
  (annotation ``azure.workload.identity/client-id``, pod label ``azure.workload.identity/use``).

See ``docs/weights-access.md``. The policy documents and names are pure functions, tested without
an engine; :func:`create_weights_identity` creates the cloud resources. Cloud names (IAM role, GCP
service account id, Azure identity) carry the mesh cluster name, never the stack name, so
``pulumi stack rename`` replaces none of them (:func:`identity_scope`); tags and descriptions, which
update in place, still name the stack.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.handles import ClusterHandle
from components.model_plan import WorkloadIdentity
from components.model_render import s3_env_from_secret
from fleetkit.regions import aws_partition
from fleetkit.resolve import ResolvedPlacement, WeightsLocation
from policies.common import metadata

CONFIG_NAMESPACE = "fleetkit-weights"
EXTERNAL_SECRET = "fleetkit-weights-s3"
IRSA_AUDIENCE = "sts.amazonaws.com"
AZURE_AUDIENCE = "api://AzureADTokenExchange"
GKE_WORKLOAD_IDENTITY_ROLE = "roles/iam.workloadIdentityUser"

ANNOTATION_IRSA = "eks.amazonaws.com/role-arn"
ANNOTATION_GKE = "iam.gke.io/gcp-service-account"
ANNOTATION_AZURE = "azure.workload.identity/client-id"
LABEL_AZURE_USE = "azure.workload.identity/use"


# --------------------------------------------------------------------------- pure: names, documents
def _digest(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def bounded_name(base: str, limit: int, *salt: str) -> str:
    """``base`` if it fits in ``limit`` characters, else a truncated base plus a stable hash suffix."""
    if len(base) <= limit:
        return base
    suffix = _digest(base, *salt)
    return f"{base[: limit - len(suffix) - 1].rstrip('-_')}-{suffix}"


def identity_scope(placement: ResolvedPlacement) -> str:
    """What makes a model identity's cloud name unique, without the stack name: the mesh cluster name.

    ``mesh.cluster_name`` is unique across the fleet (``mesh.duplicate-cluster-name``) and survives
    ``pulumi stack rename``; a name with the stack in it would change, and IAM role names, GCP service
    account ids and Azure identity names cannot change in place (the provider replaces the resource).
    """
    return placement.mesh.cluster_name or f"{placement.cluster.name}-{placement.region}"


def iam_role_name(scope: str, model: str) -> str:
    """IAM role names are at most 64 characters and unique per account: cluster (scope) and model count."""
    return bounded_name(f"fleetkit-{scope}-{model}-weights", 64, scope, model)


def gcp_account_id(scope: str, model: str) -> str:
    """6–30 characters, ``[a-z][-a-z0-9]*[a-z0-9]``, unique per (scope, model) inside one project."""
    short = re.sub(r"[^a-z0-9-]", "-", model.lower())[:19].strip("-") or "m"
    return f"fkw-{short}-{_digest(scope, model, length=6)}"


def azure_identity_name(scope: str, model: str) -> str:
    return bounded_name(f"fleetkit-{scope}-{model}-weights", 128, scope, model)


def service_account_subject(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def gke_workload_member(project: str, namespace: str, service_account: str) -> str:
    return f"serviceAccount:{project}.svc.id.goog[{namespace}/{service_account}]"


def irsa_trust_policy(
    oidc_provider_arn: str, issuer_url: str, namespace: str, service_account: str
) -> dict[str, Any]:
    """Web-identity trust for exactly one Kubernetes ServiceAccount of one cluster."""
    issuer = issuer_url.removeprefix("https://")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AssumeFromServiceAccount",
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": service_account_subject(namespace, service_account),
                        f"{issuer}:aud": IRSA_AUDIENCE,
                    }
                },
            }
        ],
    }


def s3_read_policy(location: WeightsLocation, partition: str = "aws") -> dict[str, Any]:
    """Read one prefix: get its objects, list only under it. Nothing else in the bucket."""
    bucket_arn = f"arn:{partition}:s3:::{location.bucket}"
    prefix = location.prefix
    objects = f"{bucket_arn}/{prefix}/*" if prefix else f"{bucket_arn}/*"
    listing: dict[str, Any] = {
        "Sid": "ListWeightsPrefix",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": bucket_arn,
    }
    if prefix:
        listing["Condition"] = {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadWeights", "Effect": "Allow", "Action": "s3:GetObject", "Resource": objects},
            listing,
        ],
    }


def managed_secret_name(model: str) -> str:
    return f"{model}-weights-s3"


# --------------------------------------------------------------------------- resources
@dataclass
class WeightsIdentityArgs:
    stack: str
    #: the stack's cloud, region, account and mesh cluster name (:mod:`fleetkit.resolve`)
    placement: ResolvedPlacement
    model_name: str
    namespace: str
    service_account: str
    weights: WeightsLocation
    #: the stack's cluster: ``oidc_provider_arn`` and ``oidc_issuer`` on AWS, ``oidc_issuer`` and
    #: ``resource_group_name`` on Azure
    cluster: ClusterHandle


@dataclass
class WeightsIdentity:
    workload: WorkloadIdentity
    #: cloud resources the pods should wait for (role, policy, bindings)
    resources: list[pulumi.Resource] = field(default_factory=list)
    #: Kubernetes Secret manifest to apply (GCP/Azure with keys in Pulumi config), else None
    secret: dict[str, Any] | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


def _cluster_output(cluster: ClusterHandle, attr: str, cloud: str) -> Any:
    value = getattr(cluster, attr, None)
    if value is None:
        raise ValueError(f"{cloud}: the cluster component exposes no {attr!r}, needed for workload identity")
    return value


def create_weights_identity(
    name: str, args: WeightsIdentityArgs, opts: pulumi.ResourceOptions
) -> WeightsIdentity:
    cloud = args.placement.cloud
    if cloud == "aws":
        return _aws(name, args, opts)
    if cloud == "gcp":
        return _gcp(name, args, opts)
    return _azure(name, args, opts)


def _aws(name: str, args: WeightsIdentityArgs, opts: pulumi.ResourceOptions) -> WeightsIdentity:
    import pulumi_aws as aws

    provider_arn = _cluster_output(args.cluster, "oidc_provider_arn", "aws")
    issuer = _cluster_output(args.cluster, "oidc_issuer", "aws")
    trust = pulumi.Output.all(provider_arn, issuer).apply(
        lambda v: json.dumps(
            irsa_trust_policy(v[0], v[1], args.namespace, args.service_account), sort_keys=True
        )
    )
    role = aws.iam.Role(
        f"{name}-role",
        name=iam_role_name(identity_scope(args.placement), args.model_name),
        description=f"fleetkit {args.stack}: read {args.weights.uri} for {args.namespace}/{args.service_account}",
        assume_role_policy=trust,
        max_session_duration=3600,
        tags={"fleetkit.dev/stack": args.stack, "fleetkit.dev/model": args.model_name},
        opts=opts,
    )
    policy = aws.iam.RolePolicy(
        f"{name}-read",
        name="read-weights",
        role=role.id,
        policy=json.dumps(s3_read_policy(args.weights, aws_partition(args.placement.region)), sort_keys=True),
        opts=opts,
    )
    workload = WorkloadIdentity(
        service_account=args.service_account,
        service_account_annotations={
            ANNOTATION_IRSA: role.arn,
            "eks.amazonaws.com/sts-regional-endpoints": "true",
        },
        agent_env=[{"name": "AWS_REGION", "value": args.placement.region}],
    )
    return WeightsIdentity(workload, [role, policy], None, {"weightsRoleArn": role.arn})


def _s3_secret(args: WeightsIdentityArgs) -> tuple[str, dict[str, Any] | None]:
    """(Secret name the pods read, Secret manifest to create or None when it is managed out of band)."""
    cfg = pulumi.Config(CONFIG_NAMESPACE)
    key_id = cfg.get_secret("s3AccessKeyId")
    secret_key = cfg.get_secret("s3SecretAccessKey")
    if (key_id is None) != (secret_key is None):
        raise pulumi.RunError(
            f"{CONFIG_NAMESPACE}: set both s3AccessKeyId and s3SecretAccessKey (as secrets), or neither "
            f"to use the out-of-band Secret {EXTERNAL_SECRET!r}"
        )
    if key_id is None:
        return EXTERNAL_SECRET, None
    data: dict[str, Any] = {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret_key}
    for key, env in (("s3EndpointUrl", "AWS_ENDPOINT_URL_S3"), ("s3Region", "AWS_REGION")):
        value = cfg.get(key)
        if value:
            data[env] = value
    name = managed_secret_name(args.model_name)
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(name, args.namespace, {"fleetkit.dev/model": args.model_name}),
        "type": "Opaque",
        "stringData": data,
    }
    return name, manifest


def _gcp(name: str, args: WeightsIdentityArgs, opts: pulumi.ResourceOptions) -> WeightsIdentity:
    import pulumi_gcp as gcp

    project = args.placement.account.gcp_project
    if not project:
        raise pulumi.RunError("account.gcp_project is required for GKE workload identity")
    account = gcp.serviceaccount.Account(
        f"{name}-gsa",
        account_id=gcp_account_id(identity_scope(args.placement), args.model_name),
        display_name=f"fleetkit {args.model_name} ({args.stack})"[:100],
        description=f"Pods of {args.namespace}/{args.service_account}; weights read from {args.weights.uri}",
        project=project,
        opts=opts,
    )
    binding = gcp.serviceaccount.IAMMember(
        f"{name}-wi",
        service_account_id=account.name,
        role=GKE_WORKLOAD_IDENTITY_ROLE,
        member=gke_workload_member(project, args.namespace, args.service_account),
        opts=opts,
    )
    secret_name, secret = _s3_secret(args)
    workload = WorkloadIdentity(
        service_account=args.service_account,
        service_account_annotations={ANNOTATION_GKE: account.email},
        agent_env=s3_env_from_secret(secret_name),
    )
    return WeightsIdentity(
        workload,
        [account, binding],
        secret,
        {"gcpServiceAccount": account.email, "weightsSecret": secret_name},
    )


def _azure(name: str, args: WeightsIdentityArgs, opts: pulumi.ResourceOptions) -> WeightsIdentity:
    import pulumi_azure_native as azure_native

    # the cluster's resource group (created, adopted, from the foundation or account.azure_resource_group)
    rg = getattr(args.cluster, "resource_group_name", None) or args.placement.account.azure_resource_group
    if rg is None:
        raise pulumi.RunError(
            "no Azure resource group for the model identity: set account.azure_resource_group"
        )
    issuer = _cluster_output(args.cluster, "oidc_issuer", "azure")
    identity = azure_native.managedidentity.UserAssignedIdentity(
        f"{name}-uami",
        resource_group_name=rg,
        location=args.placement.region,
        resource_name_=azure_identity_name(identity_scope(args.placement), args.model_name),
        tags={"fleetkit.dev-stack": args.stack, "fleetkit.dev-model": args.model_name},
        opts=opts,
    )
    credential = azure_native.managedidentity.FederatedIdentityCredential(
        f"{name}-fic",
        resource_group_name=rg,
        resource_name_=identity.name,
        federated_identity_credential_resource_name=bounded_name(
            f"{args.namespace}-{args.service_account}", 120, identity_scope(args.placement)
        ),
        issuer=issuer,
        subject=service_account_subject(args.namespace, args.service_account),
        audiences=[AZURE_AUDIENCE],
        opts=opts,
    )
    secret_name, secret = _s3_secret(args)
    workload = WorkloadIdentity(
        service_account=args.service_account,
        service_account_annotations={ANNOTATION_AZURE: identity.client_id},
        pod_labels={LABEL_AZURE_USE: "true"},
        agent_env=s3_env_from_secret(secret_name),
    )
    return WeightsIdentity(
        workload,
        [identity, credential],
        secret,
        {"azureClientId": identity.client_id, "weightsSecret": secret_name},
    )
