"""Pure identity documents and names: IRSA trust, prefix-scoped S3 policy, GCP/Azure names."""

from __future__ import annotations

import re

from components.identity import (
    aws_partition,
    azure_identity_name,
    bounded_name,
    gcp_account_id,
    gke_workload_member,
    iam_role_name,
    irsa_trust_policy,
    s3_read_policy,
    service_account_subject,
)
from fleetkit.resolve import WeightsLocation


def test_irsa_trust_is_scoped_to_one_service_account():
    doc = irsa_trust_policy(
        "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC",
        "https://oidc.eks.us-east-1.amazonaws.com/id/ABC",
        "llm",
        "llama-3-8b",
    )
    (stmt,) = doc["Statement"]
    assert stmt["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert stmt["Principal"] == {
        "Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
    }
    assert stmt["Condition"] == {
        "StringEquals": {
            "oidc.eks.us-east-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:llm:llama-3-8b",
            "oidc.eks.us-east-1.amazonaws.com/id/ABC:aud": "sts.amazonaws.com",
        }
    }
    assert "StringLike" not in stmt["Condition"]  # no wildcard service accounts


def test_s3_policy_reads_exactly_the_prefix():
    loc = WeightsLocation.parse("s3://fleetkit-demo-models/meta-llama/Llama-3.1-8B-Instruct/")
    assert loc.prefix == "meta-llama/Llama-3.1-8B-Instruct"
    get, listing = s3_read_policy(loc)["Statement"]
    assert get["Action"] == "s3:GetObject"
    assert get["Resource"] == "arn:aws:s3:::fleetkit-demo-models/meta-llama/Llama-3.1-8B-Instruct/*"
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Resource"] == "arn:aws:s3:::fleetkit-demo-models"
    assert listing["Condition"] == {
        "StringLike": {
            "s3:prefix": ["meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct/*"]
        }
    }
    actions = {s["Action"] for s in s3_read_policy(loc)["Statement"]}
    assert actions == {"s3:GetObject", "s3:ListBucket"}  # read-only
    whole = s3_read_policy(WeightsLocation.parse("s3://bucket"))["Statement"]
    assert whole[0]["Resource"] == "arn:aws:s3:::bucket/*" and "Condition" not in whole[1]


def test_partitions():
    assert aws_partition("us-east-1") == "aws"
    assert aws_partition("cn-north-1") == "aws-cn"
    assert aws_partition("us-gov-west-1") == "aws-us-gov"
    loc = WeightsLocation.parse("s3://b/p")
    assert s3_read_policy(loc, "aws-cn")["Statement"][0]["Resource"] == "arn:aws-cn:s3:::b/p/*"


def test_names_fit_provider_limits_and_stay_unique():
    long_model = "m" * 63
    role = iam_role_name("gcp-europe-west4-production", long_model)
    assert len(role) <= 64 and role != iam_role_name("gcp-europe-west4-staging", long_model)
    assert iam_role_name("aws-us-east-1", "llama-3-8b") == "fleetkit-aws-us-east-1-llama-3-8b-weights"
    for stack, model in (("gcp-europe-west4", "llama-3-70b"), ("s", "a"), ("x", long_model)):
        gid = gcp_account_id(stack, model)
        assert re.fullmatch(r"[a-z][-a-z0-9]{4,28}[a-z0-9]", gid), gid
    assert gcp_account_id("a", "m") != gcp_account_id("b", "m")
    assert len(azure_identity_name("s", long_model * 3)) <= 128
    assert bounded_name("short", 10) == "short"


def test_subjects():
    assert service_account_subject("llm", "m") == "system:serviceaccount:llm:m"
    assert gke_workload_member("proj", "llm", "m") == "serviceAccount:proj.svc.id.goog[llm/m]"
