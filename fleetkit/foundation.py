"""Terraform foundation backends: the settings fleetkit passes to ``pulumi_terraform.state`` readers.

Domain facts shared by the spec checks (:mod:`fleetkit.infra_checks`) and the cluster component.
Settings are the scalar parameters of ``get_<backend>_reference`` in the pulumi-terraform 6.x Python
SDK (``pulumi_terraform/state/get_*_reference.py``; checked against the SDK in a unit test).
"""

from __future__ import annotations

from typing import Any

#: Backend settings fleetkit passes to the ``pulumi_terraform.state`` reader of each backend (the
#: scalar parameters of ``get_<backend>_reference``; checked against the SDK in a unit test).
BACKEND_SETTINGS: dict[str, frozenset[str]] = {
    "s3": frozenset(
        {
            "assume_role_duration_seconds",
            "bucket",
            "encrypt",
            "endpoint",
            "external_id",
            "force_path_style",
            "iam_endpoint",
            "key",
            "kms_key_id",
            "max_retries",
            "profile",
            "region",
            "role_arn",
            "session_name",
            "shared_credentials_file",
            "skip_credentials_validation",
            "skip_metadata_api_check",
            "skip_region_validation",
            "sts_endpoint",
            "workspace_key_prefix",
            # credentials: only through secret_config
            "access_key",
            "secret_key",
            "token",
            "sse_customer_key",
        }
    ),
    "azurerm": frozenset(
        {
            "client_certificate_path",
            "client_id",
            "container_name",
            "endpoint",
            "environment",
            "key",
            "metadata_host",
            "msi_endpoint",
            "oidc_request_url",
            "oidc_token_file_path",
            "resource_group_name",
            "storage_account_name",
            "subscription_id",
            "tenant_id",
            "use_azuread_auth",
            "use_msi",
            "use_oidc",
            "access_key",
            "client_certificate_password",
            "client_secret",
            "oidc_request_token",
            "oidc_token",
            "sas_token",
        }
    ),
    "remote": frozenset({"hostname", "organization", "token"}),
    "local": frozenset({"path", "workspace_dir"}),
}
#: Settings that are credentials: never in the stack file, only via ``secret_config``.
SECRET_SETTINGS = frozenset(
    {
        "access_key",
        "secret_key",
        "token",
        "sse_customer_key",
        "client_certificate_password",
        "client_secret",
        "oidc_request_token",
        "oidc_token",
        "sas_token",
    }
)
#: Settings typed bool / int in the SDK (the spec carries strings).
BOOL_SETTINGS = frozenset(
    {
        "encrypt",
        "force_path_style",
        "skip_credentials_validation",
        "skip_metadata_api_check",
        "skip_region_validation",
        "use_azuread_auth",
        "use_msi",
        "use_oidc",
    }
)
INT_SETTINGS = frozenset({"assume_role_duration_seconds", "max_retries"})
#: Kit inputs a foundation output may feed, per cloud.
FOUNDATION_INPUTS: dict[str, frozenset[str]] = {
    "aws": frozenset({"vpc_id", "subnet_ids", "cluster_name"}),
    "gcp": frozenset({"vpc_id", "subnet_ids", "cluster_name", "pods_range_name", "services_range_name"}),
    "azure": frozenset({"vpc_id", "subnet_ids", "cluster_name", "resource_group"}),
}


def coerce_backend_setting(key: str, value: str) -> Any:
    """A backend setting as the SDK types it (``"true"`` -> True for bool settings...)."""
    if key in BOOL_SETTINGS:
        return value.strip().lower() in ("1", "true", "yes", "on")
    if key in INT_SETTINGS:
        return int(value)
    return value
