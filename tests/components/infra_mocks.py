"""The infrastructure component tests' program runner, on the shared recording mock runtime.

:mod:`fleetkit.mocks.runtime` records every resource registered and every provider call made, and
answers with the outputs :mod:`fleetkit.mocks` registers (the same registry the offline preview
uses), so the tests also prove the mocks cover every resource type and call the components use.
An invoke with no mock is an error; tests may override one (e.g. a Terraform state).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import pulumi

from components.addons import AddonsArgs, ClusterAddons
from components.cluster import Cluster, ClusterArgs
from components.node_pools import GpuNodePoolArgs, create_gpu_node_pool
from fleetkit.loader import Fleet, load_fleet
from fleetkit.mocks.registry import InvokeFn
from fleetkit.mocks.runtime import ProgramRun, RecordingMocks, run_program
from fleetkit.regions import PROVIDER_REGION_KEY
from fleetkit.resolve import resolve
from fleetkit.spec import RegionStackSpec

ROOT = Path(__file__).resolve().parents[2]


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
    invokes: dict[str, InvokeFn] | None = None,
) -> tuple[ProgramRun, dict[str, Any]]:
    """Run ``build`` as a Pulumi program on the recording runtime; return the run and its resolved outputs."""
    all_config = {PROVIDER_REGION_KEY[spec.cloud]: spec.region, **(config or {})}
    mocks = RecordingMocks(stack, invokes=invokes)
    result = run_program(stack, build, mocks, config=all_config, secret_keys=secret_keys, preview=False)
    return result, result.outputs


def build_infra(
    stack: str, spec: RegionStackSpec, extra: Callable[[Any], dict[str, Any]] | None = None
) -> Callable[[], dict[str, Any]]:
    """A program building the stack's Cluster, GPU pools and ClusterAddons (as the platform does)."""

    def program() -> dict[str, Any]:
        resolved = resolve(spec)
        cluster = Cluster(f"{stack}-cluster", ClusterArgs(stack=stack, placement=resolved.placement))
        pools = {
            name: create_gpu_node_pool(
                f"{stack}-{name}",
                GpuNodePoolArgs(pool=resolved.pools[name], cluster=cluster, cluster_name=spec.cluster.name),
            )
            for name in sorted(spec.node_pools)
        }
        ClusterAddons(
            f"{stack}-addons",
            AddonsArgs(placement=resolved.placement, node_pools=pools, cluster=cluster, stack=stack),
            pulumi.ResourceOptions(provider=cluster.provider),
        )
        outs = dict(cluster.exports())
        if extra is not None:
            outs.update(extra(cluster))
        return outs

    return program
