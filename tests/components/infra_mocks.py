"""A small recording mock runtime for the infrastructure component tests.

Records the type, name and inputs of every resource registered and every provider call made, and
answers with the outputs :mod:`fleetkit.mocks` registers (the same registry the offline preview
uses), so the tests also prove the mocks cover every resource type and call the components use.
An invoke with no mock is an error; tests may override one (e.g. a Terraform state).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pulumi

import fleetkit.mocks as registry
from fleetkit.loader import Fleet, load_fleet
from fleetkit.mocks.registry import MockResource, digest
from fleetkit.spec import RegionStackSpec

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "fleetkit"

#: Provider config a stack file sets, per cloud (what the mocks read for regions).
_PROVIDER_CONFIG = {"aws": "aws:region", "gcp": "gcp:region", "azure": "azure-native:location"}


_SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's special signature key


def unwrap_secrets(value: Any) -> Any:
    """Plain values for Pulumi secret envelopes (``{sig: secret, value: x}``), recursively."""
    if isinstance(value, dict):
        if _SECRET_SIG in value and "value" in value:
            return unwrap_secrets(value["value"])
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


@dataclass
class Recorded:
    type: str
    name: str
    inputs: dict[str, Any]
    custom: bool


@dataclass
class InfraMocks(pulumi.runtime.Mocks):
    stack: str
    invokes: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = field(default_factory=dict)
    resources: list[Recorded] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = unwrap_secrets(json.loads(json.dumps(dict(args.inputs), default=str)))
        self.resources.append(Recorded(args.typ, args.name, inputs, bool(args.custom)))
        if not args.custom:
            return None, {}
        fn = registry.RESOURCE_OUTPUTS.get(args.typ)
        extra = fn(MockResource(args.typ, args.name, inputs, self.stack, PROJECT)) if fn else {}
        state = {**inputs, **extra}
        rid = state.pop("id", None) or f"{args.name}-{digest(self.stack, args.typ, args.name, length=8)}"
        return str(rid), state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        call_args = json.loads(json.dumps(dict(args.args), default=str))
        self.calls.append((args.token, call_args))
        fn = self.invokes.get(args.token) or registry.INVOKES.get(args.token)
        if fn is None:
            raise RuntimeError(f"no mock for provider function {args.token!r}")
        return fn(call_args, self.stack)

    # ------------------------------------------------------------------ queries
    def of_type(self, type_token: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name_suffix: str = "") -> Recorded:
        found = [r for r in self.of_type(type_token) if r.name.endswith(name_suffix)]
        assert len(found) == 1, f"{type_token} *{name_suffix}: {[r.name for r in found]}"
        return found[0]

    def types(self) -> list[str]:
        return sorted({r.type for r in self.resources if r.custom})

    def tokens(self) -> list[str]:
        return sorted({t for t, _ in self.calls})


@lru_cache(maxsize=1)
def demo_fleet() -> Fleet:
    return load_fleet(ROOT)


def demo_spec(stack: str) -> RegionStackSpec:
    spec = demo_fleet().stacks[stack].spec
    assert isinstance(spec, RegionStackSpec)
    return spec


def with_changes(spec: RegionStackSpec, **changes: Any) -> RegionStackSpec:
    """A copy of a spec with top-level fields replaced (re-validated)."""
    data = spec.model_dump()
    data.update(changes)
    return RegionStackSpec.model_validate(data)


def run(
    stack: str,
    spec: RegionStackSpec,
    build: Callable[[], dict[str, Any]],
    *,
    config: dict[str, str] | None = None,
    secret_keys: list[str] | None = None,
    invokes: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] | None = None,
) -> tuple[InfraMocks, dict[str, Any]]:
    """Run ``build`` as a Pulumi program under the recording mocks; return them and the resolved outputs."""
    all_config = {_PROVIDER_CONFIG[spec.cloud]: spec.region, **(config or {})}
    pulumi.runtime.set_all_config(all_config, secret_keys or [])
    mocks = InfraMocks(stack=stack, invokes=dict(invokes or {}))
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    resolved: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> Any:
        outputs = build()
        return pulumi.Output.all(**outputs).apply(resolved.update) if outputs else None

    program()
    return mocks, resolved


def build_infra(
    stack: str, spec: RegionStackSpec, extra: Callable[[Any], dict[str, Any]] | None = None
) -> Callable[[], dict[str, Any]]:
    """A program building the stack's Cluster, GPU pools and Addons (as the platform does)."""

    def program() -> dict[str, Any]:
        from components.addons import Addons, AddonsArgs
        from components.cluster import Cluster, ClusterArgs
        from components.node_pools import GpuNodePoolArgs, create_gpu_node_pool
        from fleetkit.resolve import resolve

        cluster = Cluster(f"{stack}-cluster", ClusterArgs(stack=stack, spec=spec))
        resolved = resolve(spec)
        pools = {
            name: create_gpu_node_pool(
                f"{stack}-{name}",
                GpuNodePoolArgs(pool=resolved.pools[name], cluster=cluster, cluster_name=spec.cluster.name),
            )
            for name in sorted(spec.node_pools)
        }
        Addons(
            f"{stack}-addons",
            AddonsArgs(spec=spec, node_pools=pools, cluster=cluster, stack=stack),
            pulumi.ResourceOptions(provider=cluster.provider),
        )
        outs = dict(cluster.exports())
        if extra is not None:
            outs.update(extra(cluster))
        return outs

    return program
