"""Cluster-level reference checks of one region stack: its Terraform foundation, its EKS access
entries and the zones of its east-west gateway addresses (run by :func:`fleetkit.infra_checks.check_infra`;
the rules are listed there).

Pure: no engine, no credentials, no network.
"""

from __future__ import annotations

import re
from typing import Any

from fleetkit.errors import MISSING, Issue
from fleetkit.foundation import (
    BACKEND_SETTINGS,
    FOUNDATION_INPUTS,
    INT_SETTINGS,
    SECRET_SETTINGS,
)
from fleetkit.regions import aws_partition
from fleetkit.spec import RegionStackSpec

#: Settings a backend cannot read state without (in the order messages name them).
REQUIRED_SETTINGS: dict[str, tuple[str, ...]] = {
    "s3": ("bucket", "key"),
    "azurerm": ("storage_account_name", "container_name", "key"),
    "remote": ("organization",),
}

#: An IAM role (optionally with a path) or user ARN: what an EKS access entry's principal must be.
_IAM_PRINCIPAL = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov):iam::(?P<account>\d{12}):(?P<kind>role|user)/"
    r"(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,128}$"
)
_STS_SESSION = re.compile(r"^arn:[\w-]+:sts::(\d{12}):assumed-role/([\w+=,.@-]+)/")
_AZURE_ZONES = frozenset({"1", "2", "3"})


def zone_ok(cloud: str, region: str, zone: str) -> bool:
    """Is ``zone`` a zone of ``region``? Zone letters run a-f on AWS (us-east-1 has the most: a-f) and
    on GCP (e.g. us-central1-a, -b, -c, -f); a later letter is a typo."""
    if cloud == "aws":
        return re.fullmatch(re.escape(region) + r"[a-f]", zone) is not None
    if cloud == "gcp":
        return re.fullmatch(re.escape(region) + r"-[a-f]", zone) is not None
    return zone in _AZURE_ZONES


def zone_example(cloud: str, region: str) -> str:
    return {"aws": f"{region}a", "gcp": f"{region}-b", "azure": "1, 2 or 3"}[cloud]


def access_entry_issues(spec: RegionStackSpec) -> list[Issue]:
    entries = spec.cluster.access_entries
    if not entries:
        return []
    if spec.cloud != "aws":
        return [
            Issue(
                ("cluster", "access_entries"),
                "cluster.access-entries-eks-only",
                "access entries are EKS's; on GKE grant IAM roles (roles/container.developer) and on AKS Azure "
                "RBAC roles to your deployers outside the stack",
                sorted(entries),
            )
        ]
    out: list[Issue] = []
    partition = aws_partition(spec.region)
    seen: dict[str, str] = {}
    for key, entry in sorted(entries.items()):
        loc = ("cluster", "access_entries", key, "principal_arn")
        arn = entry.principal_arn
        match = _IAM_PRINCIPAL.match(arn)
        session = _STS_SESSION.match(arn)
        if session is not None:
            out.append(
                Issue(
                    loc,
                    "cluster.access-entry-arn",
                    "an STS assumed-role session ARN cannot be an access entry principal; give the role's IAM ARN, "
                    f"arn:{partition}:iam::{session.group(1)}:role/<path/>{session.group(2)}",
                    arn,
                )
            )
        elif match is None:
            out.append(
                Issue(
                    loc,
                    "cluster.access-entry-arn",
                    f"not an IAM role or user ARN such as arn:{partition}:iam::111122223333:role/ci-deployer "
                    "(a role's path is allowed: role/team/ci-deployer)",
                    arn,
                )
            )
        elif match.group("partition") != partition:
            out.append(
                Issue(
                    loc,
                    "cluster.access-entry-arn",
                    f"the principal is in partition {match.group('partition')!r} but {spec.region} is in "
                    f"{partition!r}: EKS cannot find it",
                    arn,
                )
            )
        if arn in seen:
            out.append(
                Issue(
                    loc,
                    "cluster.access-entry-duplicate",
                    f"also the principal of access entry {seen[arn]!r}; EKS takes one access entry per principal "
                    "(give one entry the policy it needs)",
                    arn,
                )
            )
        seen.setdefault(arn, key)
    return out


def east_west_zone_issues(spec: RegionStackSpec) -> list[Issue]:
    zones = spec.mesh.east_west_zones
    if zones is None:
        return []
    if spec.cloud != "aws":
        return [
            Issue(
                ("mesh", "east_west_zones"),
                "mesh.east-west-zones-aws-only",
                "only the AWS east-west NLB takes one address per zone; GCP and Azure use one regional static IP",
                zones,
            )
        ]
    out: list[Issue] = []
    if not zones:
        out.append(
            Issue(
                ("mesh", "east_west_zones"),
                "mesh.east-west-zone-not-in-region",
                f"name the zones of the NLB's public subnets (e.g. [{spec.region}a, {spec.region}b]), or leave "
                "the key out for that default",
                zones,
            )
        )
    for i, zone in enumerate(zones):
        if not zone_ok("aws", spec.region, zone):
            out.append(
                Issue(
                    ("mesh", "east_west_zones", i),
                    "mesh.east-west-zone-not-in-region",
                    f"not an availability zone of {spec.region} (e.g. {zone_example('aws', spec.region)})",
                    zone,
                )
            )
        elif zone in zones[:i]:
            out.append(
                Issue(
                    ("mesh", "east_west_zones", i),
                    "mesh.east-west-zone-duplicate",
                    "named twice: the NLB takes one subnet, and one Elastic IP, per zone",
                    zone,
                )
            )
    return out


def foundation_issues(spec: RegionStackSpec) -> list[Issue]:
    fnd = spec.cluster.foundation
    assert fnd is not None
    out: list[Issue] = []

    def add(loc: tuple[Any, ...], rule: str, message: str, value: Any = MISSING) -> None:
        out.append(Issue(("cluster", "foundation", *loc), rule, message, value))

    if fnd.backend == "gcs":
        add(
            ("backend",),
            "foundation.unsupported-backend",
            "pulumi-terraform 6.x reads s3, azurerm, remote and local state only, not gcs; export the "
            "foundation outputs to a supported backend or set the ids in cluster.create",
            "gcs",
        )
        return out
    allowed = BACKEND_SETTINGS[fnd.backend]
    for key, value in sorted(fnd.config.items()):
        if key not in allowed:
            add(
                ("config", key),
                "foundation.unknown-setting",
                f"not a {fnd.backend} backend setting fleetkit can pass (known: {', '.join(sorted(allowed))})",
                key,
            )
        elif key in SECRET_SETTINGS:
            add(
                ("config", key),
                "foundation.secret-in-config",
                f"{key} is a credential: put it in a Pulumi secret and name the config key in secret_config",
                "***",
            )
        elif key in INT_SETTINGS and not value.strip().isdigit():
            add(("config", key), "foundation.bad-setting", f"{key} must be a whole number", value)
    for key in sorted(fnd.secret_config):
        if key not in allowed:
            add(
                ("secret_config", key),
                "foundation.unknown-setting",
                f"not a {fnd.backend} backend setting fleetkit can pass",
                key,
            )
    needed = REQUIRED_SETTINGS.get(fnd.backend, ())
    if not set(needed) <= set(fnd.config):
        names = " and ".join([", ".join(needed[:-1]), needed[-1]] if len(needed) > 1 else list(needed))
        add(
            ("config",),
            "foundation.missing-setting",
            f"the {fnd.backend} backend needs {names}",
            sorted(fnd.config),
        )
    known = FOUNDATION_INPUTS[spec.cloud]
    for key in sorted(fnd.outputs):
        if key not in known:
            add(
                ("outputs", key),
                "foundation.unknown-input",
                f"not a kit input on {spec.cloud} (inputs: {', '.join(sorted(known))})",
                key,
            )
    if "cluster_name" in fnd.outputs and spec.cluster.adopt is None:
        add(
            ("outputs", "cluster_name"),
            "foundation.unknown-input",
            "cluster_name from a foundation is only read when the cluster is adopted",
            "cluster_name",
        )
    if not fnd.outputs:
        add(("outputs",), "foundation.no-outputs", "name at least one Terraform output to read", {})
    return out
