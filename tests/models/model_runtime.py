"""Run a ModelService under Pulumi's mock runtime and record what it registers.

Outputs come from the registry the offline preview uses (``fleetkit.mocks``), so these tests also
prove the mocks cover every resource type a model service creates. Secret inputs are recorded as
the wire-format secret envelope, so a test can tell a secret from a plain value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pulumi
from model_fixtures import demo_fleet, spec_of
from pulumi.runtime import rpc

import fleetkit.mocks as registry
from fleetkit.mocks.registry import MockResource, digest
from fleetkit.resolve import resolve
from fleetkit.spec import RegionStackSpec

SECRET_SIG = rpc._special_sig_key
SECRET_VALUE = rpc._special_secret_sig
PROVIDER_CONFIG = {"aws": "aws:region", "gcp": "gcp:region", "azure": "azure-native:location"}


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE


def _plain(value: Any) -> Any:
    if is_secret(value):
        return _plain(value["value"])
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass
class Recorded:
    type: str
    name: str
    inputs: dict[str, Any]  # as received: secrets still wrapped


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    stack: str
    resources: list[Recorded] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        raw = dict(args.inputs)
        self.resources.append(Recorded(args.typ, args.name, raw))
        if not args.custom:
            return None, {}
        inputs = _plain(raw)
        fn = registry.RESOURCE_OUTPUTS.get(args.typ)
        extra = fn(MockResource(args.typ, args.name, inputs, self.stack, "fleetkit")) if fn else {}
        state = {**inputs, **extra}
        rid = state.pop("id", None) or f"{args.name}-{digest(self.stack, args.typ, args.name, length=8)}"
        return str(rid), state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        raise AssertionError(f"a model service makes no provider calls, got {args.token}")

    def of_type(self, token: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == token]

    def one(self, token: str) -> Recorded:
        found = self.of_type(token)
        assert len(found) == 1, (token, [r.name for r in found])
        return found[0]

    def kube(self, kind: str, name: str) -> dict[str, Any]:
        """The plain inputs of one Kubernetes object (typed class or CustomResource)."""
        for r in self.resources:
            if r.type.startswith("kubernetes:") and r.type.endswith(f":{kind}"):
                md = _plain(r.inputs.get("metadata", {}))
                if md.get("name") == name:
                    return _plain(r.inputs)
        raise AssertionError(f"no {kind} {name}: {[r.name for r in self.resources]}")


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
) -> tuple[RecordingMocks, dict[str, Any]]:
    from components.model_service import ModelService, ModelServiceArgs

    spec = spec_of(stack)
    pulumi.runtime.set_all_config(
        {PROVIDER_CONFIG[spec.cloud]: spec.region, **(config or {})}, secret_keys or []
    )
    mocks = RecordingMocks(stack=stack)
    pulumi.runtime.set_mocks(mocks, project="fleetkit", stack=stack, preview=False)
    resolved: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> Any:
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
        return pulumi.Output.all(deployment=svc.deployment_name, **svc.identity).apply(resolved.update)

    program()
    return mocks, resolved
