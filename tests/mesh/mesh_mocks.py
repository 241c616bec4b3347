"""Run the mesh components for a whole fleet on the shared recording mock runtime.

Each stack is one program run: the trust-root stack builds a ``TrustRoot``; a region stack builds a
``MeshMember`` on a small fake ``Cluster`` (provider, endpoint, CA data, kubeconfig, resource group).
Resource outputs come from the registry the offline preview uses (:mod:`fleetkit.mocks`), so these
tests also prove the mesh's mock outputs exist. StackReferences resolve to the previously run stacks'
exports (secret exports stay secret). Recorded inputs keep Pulumi's secret wrappers
(:func:`fleetkit.mocks.runtime.plain` / ``public_strings`` tell secret values from plain ones), and
each record carries its dependencies.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.peering import MeshPeering, MeshPeeringArgs
from fleetkit.loader import Fleet
from fleetkit.mocks.registry import fake_ca_data, fake_ip
from fleetkit.mocks.runtime import ProgramRun, RecordingMocks, plain, public_strings, run_program
from fleetkit.spec import PeeringStackSpec, RegionStackSpec, TrustRootStackSpec
from mesh.member import MeshMember, MeshMemberArgs
from mesh.trust import TrustRoot, TrustRootArgs

__all__ = ["FakeCluster", "StackRun", "plain", "public_strings", "run_fleet", "run_mesh_program", "run_stack"]

#: one stack's run: resources, exports (``outputs``/``secret_outputs``), missing StackReferences
StackRun = ProgramRun
#: the only provider function the mesh reaches: the peering stack reads AKS user credentials
MESH_CALLS = {"azure-native:containerservice:listManagedClusterUserCredentials"}


class FakeCluster:
    """What ``MeshMember`` reads from ``components.cluster.Cluster``."""

    def __init__(self, stack: str, spec: RegionStackSpec):
        self.provider = k8s.Provider(f"{stack}-k8s", kubeconfig="{}")
        host = (
            fake_ip("api", stack) if spec.cloud == "gcp" else f"https://api.{spec.cluster.name}.example.net"
        )
        self.endpoint = pulumi.Output.from_input(host)  # GKE reports a bare IP
        self.ca_data = pulumi.Output.from_input(fake_ca_data("cluster", stack))
        self.kubeconfig = pulumi.Output.secret("apiVersion: v1\nkind: Config\n")
        self.resource_group_name = (
            pulumi.Output.from_input(spec.account.azure_resource_group or f"rg-{stack}")
            if spec.cloud == "azure"
            else None
        )

    def exports(self) -> dict[str, Any]:
        return {}


def run_mesh_program(stack: str, build: Callable[[], dict[str, Any]], peers: dict[str, StackRun]) -> StackRun:
    run = run_program(stack, build, RecordingMocks(stack, peers), preview=True)
    assert set(run.tokens()) <= MESH_CALLS, f"the mesh makes no other provider calls, got {run.tokens()}"
    return run


def run_stack(fleet: Fleet, stack: str, peers: dict[str, StackRun]) -> StackRun:
    spec = fleet.stacks[stack].spec

    def build() -> dict[str, Any]:
        if isinstance(spec, TrustRootStackSpec):
            return TrustRoot(stack, TrustRootArgs(spec=spec)).exports()
        if isinstance(spec, PeeringStackSpec):
            return MeshPeering("peering", MeshPeeringArgs(spec=spec, fleet=fleet)).outputs
        cluster = FakeCluster(stack, spec)
        member = MeshMember(
            f"{stack}-mesh",
            MeshMemberArgs(
                stack=stack,
                placement=fleet.stacks[stack].resolved.placement,
                policies=spec.policies,
                fleet=fleet,
                cluster=cluster,  # type: ignore[arg-type]
            ),
            pulumi.ResourceOptions(provider=cluster.provider),
        )
        return member.exports()

    return run_mesh_program(stack, build, peers)


def run_fleet(fleet: Fleet) -> dict[str, StackRun]:
    """One pass in the documented bring-up order: trust roots, each region (seeing only the roots), peering."""

    def rank(name: str) -> int:
        spec = fleet.stacks[name].spec
        return 0 if isinstance(spec, TrustRootStackSpec) else 2 if isinstance(spec, PeeringStackSpec) else 1

    runs: dict[str, StackRun] = {}
    for name in sorted(fleet.stacks, key=lambda n: (rank(n), n)):
        up = {n: r for n, r in runs.items() if rank(n) < rank(name)}
        runs[name] = run_stack(fleet, name, up)
    return runs


def b64decode(text: str) -> str:
    return base64.b64decode(text).decode()
