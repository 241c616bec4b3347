"""Plausible AWS outputs: IAM roles, EKS cluster and node groups, launch templates, lookups.

Values are derived from the stack and resource names only (deterministic); the account id is fake
(:func:`fake_account`) and the region comes from the stack's ``aws:region`` config.
"""

from __future__ import annotations

from typing import Any

from fleetkit.mocks.registry import MockResource, digest, fake_account, fake_ca_data, invoke, resource_outputs


def _region() -> str:
    import pulumi

    return pulumi.Config("aws").get("region") or "us-east-1"


def _named(r: MockResource, key: str = "name") -> str:
    """The physical name: the given one, else Pulumi-style auto-name (``<name>-<7 hex>``)."""
    given = r.inputs.get(key)
    if given:
        return str(given)
    prefix = r.inputs.get(f"{key}Prefix")
    if prefix:
        return f"{prefix}{digest(r.stack, r.type, r.name, length=20)}"
    return f"{r.name}-{digest(r.stack, r.type, r.name, length=7)}"


def eks_endpoint(stack: str, cluster: str, region: str) -> str:
    return f"https://{digest('eks', stack, cluster, length=32).upper()}.gr7.{region}.eks.amazonaws.com"


def eks_issuer(stack: str, cluster: str, region: str) -> str:
    return f"https://oidc.eks.{region}.amazonaws.com/id/{digest('oidc', stack, cluster, length=32).upper()}"


def _hex17(*parts: str) -> str:
    return digest(*parts, length=17)


# --------------------------------------------------------------------------- IAM
@resource_outputs("aws:iam/role:Role")
def _role(r: MockResource) -> dict[str, Any]:
    """Every IAM role of the stack (EKS cluster/node roles, model IRSA roles)."""
    name = _named(r)
    return {
        "id": name,
        "name": name,
        "arn": f"arn:aws:iam::{fake_account(r.stack)}:role{r.inputs.get('path', '/')}{name}",
        "uniqueId": "AROA" + digest("role", r.stack, r.name, length=17).upper(),
        "createDate": "2026-01-01T00:00:00Z",
    }


@resource_outputs("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
def _attachment(r: MockResource) -> dict[str, Any]:
    return {"id": f"{r.inputs.get('role', r.name)}-{digest(r.stack, r.name, length=20)}"}


@resource_outputs("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
def _oidc_provider(r: MockResource) -> dict[str, Any]:
    host = str(r.inputs.get("url", "")).removeprefix("https://")
    arn = f"arn:aws:iam::{fake_account(r.stack)}:oidc-provider/{host}"
    return {"id": arn, "arn": arn}


# --------------------------------------------------------------------------- EKS
@resource_outputs("aws:eks/cluster:Cluster")
def _eks_cluster(r: MockResource) -> dict[str, Any]:
    name = _named(r)
    region = _region()
    vpc = dict(r.inputs.get("vpcConfig") or {})
    vpc.update(
        {
            "vpcId": f"vpc-{_hex17('vpc', r.stack)}",
            "clusterSecurityGroupId": f"sg-{_hex17('sg', r.stack, name)}",
        }
    )
    return {
        "id": name,
        "name": name,
        "arn": f"arn:aws:eks:{region}:{fake_account(r.stack)}:cluster/{name}",
        "endpoint": eks_endpoint(r.stack, name, region),
        "certificateAuthority": {"data": fake_ca_data("eks", r.stack, name)},
        "identities": [{"oidcs": [{"issuer": eks_issuer(r.stack, name, region)}]}],
        "vpcConfig": vpc,
        "platformVersion": "eks.1",
        "status": "ACTIVE",
        "clusterId": digest("eks-id", r.stack, name, length=8)
        + "-"
        + digest("eks-id2", r.stack, name, length=4),
    }


@resource_outputs("aws:eks/nodeGroup:NodeGroup")
def _node_group(r: MockResource) -> dict[str, Any]:
    cluster = str(r.inputs.get("clusterName", "cluster"))
    name = _named(r, "nodeGroupName")
    uid = digest("ng", r.stack, r.name, length=32)
    uuid = f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:32]}"
    region = _region()
    return {
        "id": f"{cluster}:{name}",
        "nodeGroupName": name,
        "arn": f"arn:aws:eks:{region}:{fake_account(r.stack)}:nodegroup/{cluster}/{name}/{uuid}",
        "resources": [
            {"autoscalingGroups": [{"name": f"eks-{name}-{uuid}"}], "remoteAccessSecurityGroupId": ""}
        ],
        "status": "ACTIVE",
        "version": "1.33",
        "releaseVersion": "1.33.0-20260801",
    }


@resource_outputs("aws:ec2/launchTemplate:LaunchTemplate")
def _launch_template(r: MockResource) -> dict[str, Any]:
    lt_id = f"lt-{_hex17('lt', r.stack, r.name)}"
    return {
        "id": lt_id,
        "name": _named(r),
        "arn": f"arn:aws:ec2:{_region()}:{fake_account(r.stack)}:launch-template/{lt_id}",
        "latestVersion": 1,
        "defaultVersion": 1,
    }


@resource_outputs("aws:autoscaling/tag:Tag")
def _asg_tag(r: MockResource) -> dict[str, Any]:
    tag = r.inputs.get("tag") or {}
    return {"id": f"{r.inputs.get('autoscalingGroupName', '')},{tag.get('key', r.name)}"}


@resource_outputs("aws:eks/accessEntry:AccessEntry")
def _access_entry(r: MockResource) -> dict[str, Any]:
    """An EKS access entry: id ``<cluster>:<principal ARN>`` (the provider's import id)."""
    cluster = str(r.inputs.get("clusterName", "cluster"))
    principal = str(r.inputs.get("principalArn", ""))
    uid = digest("access", r.stack, cluster, principal, length=32)
    return {
        "id": f"{cluster}:{principal}",
        "accessEntryArn": f"arn:aws:eks:{_region()}:{fake_account(r.stack)}:access-entry/{cluster}/{uid}",
        "kubernetesGroups": [],
        "userName": principal,
        "createdAt": "2026-01-01T00:00:00Z",
        "modifiedAt": "2026-01-01T00:00:00Z",
    }


@resource_outputs("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
def _access_policy(r: MockResource) -> dict[str, Any]:
    """An access policy association: id ``<cluster>#<principal ARN>#<policy ARN>``."""
    keys = ("clusterName", "principalArn", "policyArn")
    return {"id": "#".join(str(r.inputs.get(k, "")) for k in keys), "associatedAt": "2026-01-01T00:00:00Z"}


# --------------------------------------------------------------------------- invokes
@invoke("aws:eks/getCluster:getCluster")
def _get_cluster(args: dict[str, Any], stack: str) -> dict[str, Any]:
    name = str(args.get("name") or "cluster")
    region = _region()
    return {
        "id": name,
        "name": name,
        "arn": f"arn:aws:eks:{region}:{fake_account(stack)}:cluster/{name}",
        "endpoint": eks_endpoint(stack, name, region),
        "certificateAuthorities": [{"data": fake_ca_data("eks", stack, name)}],
        "identities": [{"oidcs": [{"issuer": eks_issuer(stack, name, region)}]}],
        "vpcConfig": {
            "vpcId": f"vpc-{_hex17('vpc', stack)}",
            "subnetIds": [f"subnet-{_hex17('subnet', stack, z)}" for z in "abc"],
            "securityGroupIds": [],
            "clusterSecurityGroupId": f"sg-{_hex17('sg', stack, name)}",
            "endpointPrivateAccess": True,
            "endpointPublicAccess": True,
            "publicAccessCidrs": ["0.0.0.0/0"],
        },
        "version": "1.33",
        "platformVersion": "eks.1",
        "status": "ACTIVE",
        "roleArn": f"arn:aws:iam::{fake_account(stack)}:role/{name}-cluster",
        "tags": {},
    }


@invoke("aws:ec2/getVpc:getVpc")
def _get_vpc(args: dict[str, Any], stack: str) -> dict[str, Any]:
    vpc = f"vpc-{_hex17('vpc', stack)}"
    return {
        "id": vpc,
        "arn": f"arn:aws:ec2:{_region()}:{fake_account(stack)}:vpc/{vpc}",
        "cidrBlock": "172.31.0.0/16",
        "default": bool(args.get("default", False)),
        "state": "available",
    }


def _filter(args: dict[str, Any], name: str) -> list[str] | None:
    for f in args.get("filters") or []:
        if f.get("name") == name:
            return [str(v) for v in f.get("values") or []]
    return None


@invoke("aws:ec2/getSubnets:getSubnets")
def _get_subnets(args: dict[str, Any], stack: str) -> dict[str, Any]:
    """Subnets per filter: one per requested zone; among given ids, a stable pick per zone."""
    region = _region()
    zones = _filter(args, "availability-zone")
    given = _filter(args, "subnet-id")
    if given:
        if zones:
            ids = sorted({given[int(digest(stack, z, length=6), 16) % len(given)] for z in zones})
        else:
            ids = list(given)
    else:
        zones = zones or [f"{region}{z}" for z in "abc"]
        ids = [f"subnet-{_hex17('subnet', stack, z[-1])}" for z in zones]
    return {"id": region, "ids": ids, "filters": args.get("filters") or []}


@invoke("aws:index/getCallerIdentity:getCallerIdentity")
def _caller(args: dict[str, Any], stack: str) -> dict[str, Any]:
    account = fake_account(stack)
    return {
        "id": account,
        "accountId": account,
        "arn": f"arn:aws:iam::{account}:user/fleetkit-preview",
        "userId": "AIDA" + digest("user", stack, length=17).upper(),
    }


@invoke("tls:index/getCertificate:getCertificate")
def _certificate(args: dict[str, Any], stack: str) -> dict[str, Any]:
    url = str(args.get("url") or args.get("content") or "")
    return {
        "id": digest("cert", url, length=40),
        "url": url,
        "certificates": [
            {
                "certPem": "-----BEGIN CERTIFICATE-----\n(fleetkit preview)\n-----END CERTIFICATE-----\n",
                "isCa": True,
                "issuer": "CN=Amazon Root CA 1,O=Amazon,C=US",
                "subject": "CN=Amazon Root CA 1,O=Amazon,C=US",
                "maxPathLength": 0,
                "notAfter": "2038-01-17T00:00:00Z",
                "notBefore": "2015-05-26T00:00:00Z",
                "publicKeyAlgorithm": "RSA",
                "serialNumber": "143266978916655856878034712317230054538369994",
                "sha1Fingerprint": digest("thumbprint", url, length=40),
                "signatureAlgorithm": "SHA256-RSA",
                "version": 3,
            }
        ],
    }
