"""Run a ModelService on the shared recording mock runtime and record what it registers.

Outputs come from the registry the offline preview uses (``fleetkit.mocks``), so these tests also
prove the mocks cover every resource type a model service creates. Recorded inputs keep Pulumi's
secret wrapper (:func:`fleetkit.mocks.runtime.is_secret`), so a test can tell a secret from a plain value.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pulumi
from model_fixtures import demo_fleet, spec_of

from components.model_service import ModelService, ModelServiceArgs
from fleetkit.mocks.runtime import ProgramRun, RecordingMocks, is_secret, run_program
from fleetkit.regions import PROVIDER_REGION_KEY
from fleetkit.resolve import resolve
from fleetkit.spec import RegionStackSpec

__all__ = ["fake_cluster", "is_secret", "run_model_service"]


def fake_cluster(spec: RegionStackSpec) -> SimpleNamespace:
    """What ModelService reads from ``components.cluster.Cluster`` (created inside the program)."""
    issuer = {
        "aws": "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE0123456789",
        "gcp": "https://container.googleapis.com/v1/projects/p/locations/l/clusters/c",
        "azure": "https://eastus.oic.prod-aks.azure.com/tenant/cluster/",
    }[spec.cloud]
    ns = SimpleNamespace(
        oidc_issuer=pulumi.Output.from_input(issuer), oidc_provider_arn=None, resource_group_name=None
    )
    if spec.cloud == "aws":
        ns.oidc_provider_arn = pulumi.Output.from_input(
            f"arn:aws:iam::123456789012:oidc-provider/{issuer.removeprefix('https://')}"
        )
    if spec.cloud == "azure":
        ns.resource_group_name = pulumi.Output.from_input(spec.account.azure_resource_group or "rg")
    return ns


def run_model_service(
    stack: str, model: str, *, config: dict[str, str] | None = None, secret_keys: list[str] | None = None
) -> tuple[ProgramRun, dict[str, Any]]:
    spec = spec_of(stack)

    def program() -> dict[str, Any]:
        svc = ModelService(
            f"{stack}-{model}",
            ModelServiceArgs(
                stack=stack,
                resolved=resolve(spec),
                model_name=model,
                context=demo_fleet().context_for(stack),
                cluster=fake_cluster(spec),
                depends_on=[],
            ),
        )
        return {"deployment": svc.deployment_name, **svc.identity}

    run = run_program(
        stack,
        program,
        RecordingMocks(stack),
        config={PROVIDER_REGION_KEY[spec.cloud]: spec.region, **(config or {})},
        secret_keys=secret_keys,
        preview=False,
    )
    assert run.calls == [], f"a model service makes no provider calls, got {run.tokens()}"
    return run, run.outputs
