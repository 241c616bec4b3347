"""Run the mesh components for a whole fleet under Pulumi's mock runtime and record everything.

Each stack is one program run: the trust-root stack builds a ``TrustRoot``; a region stack builds a
``MeshMember`` on a small fake ``Cluster`` (provider, endpoint, CA data, kubeconfig, resource group).
Resource outputs come from the registry the offline preview uses (:mod:`fleetkit.mocks`), so these
tests also prove the mesh's mock outputs exist. StackReferences resolve to the previously run stacks'
exports (secret exports stay secret); like the preview, the fleet runs in two passes so every region
sees every peer. Recorded inputs keep Pulumi's secret wrappers, so a test can tell secret values
from plain ones, and the monitor records each registration's dependencies.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime import mocks as rmocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

import fleetkit.mocks as registry
from fleetkit.loader import Fleet
from fleetkit.mocks.registry import MockResource, digest, fake_ca_data, fake_ip
from fleetkit.spec import PeeringStackSpec, RegionStackSpec, TrustRootStackSpec

PROJECT = "fleetkit"


def plain(value: Any) -> Any:
    """``value`` with every Pulumi secret wrapper replaced by its content (and whole floats as ints)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf carries every number as a double
    if rpc.is_rpc_secret(value):
        return plain(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def public_strings(value: Any) -> list[str]:
    """Every string in ``value`` that is not inside a Pulumi secret wrapper."""
    if rpc.is_rpc_secret(value):
        return []
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [str(k), *public_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in public_strings(v)]
    return [value] if isinstance(value, str) else []


@dataclass
class Registered:
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]  # as serialized by the SDK: secrets wrapped
    outputs: dict[str, Any]  # what the mock registry added
    custom: bool
    dependencies: list[str]

    @property
    def plain_inputs(self) -> dict[str, Any]:
        return plain(self.inputs)


@dataclass
class StackRun:
    stack: str
    resources: list[Registered]
    exports: dict[str, Any]
    secret_exports: set[str]
    missing_refs: set[str] = field(default_factory=set)

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def by_urn(self) -> dict[str, Registered]:
        return {r.urn: r for r in self.resources}

    def depends_on(self, res: Registered) -> set[str]:
        """URNs ``res`` waits for, directly or through what those wait for."""
        index, seen, todo = self.by_urn(), set(), list(res.dependencies)
        while todo:
            urn = todo.pop()
            if urn in seen:
                continue
            seen.add(urn)
            if urn in index:
                todo.extend(index[urn].dependencies)
        return seen


class FleetMocks(pulumi.runtime.Mocks):
    def __init__(self, stack: str, peers: dict[str, StackRun]):
        self.stack = stack
        self.peers = peers
        self.missing_refs: set[str] = set()
        self.outputs: dict[tuple[str, str], dict[str, Any]] = {}

    def new_resource(self, args: rmocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            return self._stack_reference(args)
        inputs = dict(args.inputs)
        fn = registry.RESOURCE_OUTPUTS.get(args.typ)
        extra = fn(MockResource(args.typ, args.name, plain(inputs), self.stack, PROJECT)) if fn else {}
        self.outputs[(args.typ, args.name)] = extra
        state = {**inputs, **extra}
        rid = state.pop("id", None) or f"{args.name}-{digest(self.stack, args.typ, args.name, length=8)}"
        return str(rid), state

    def _stack_reference(self, args: rmocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        ref = str(args.inputs.get("name") or args.name)
        peer = self.peers.get(ref.split("/")[-1])
        if peer is None:
            self.missing_refs.add(ref)
            return ref, {"name": ref, "outputs": {}, "secretOutputNames": []}
        outputs = {
            k: rpc.wrap_rpc_secret(v) if k in peer.secret_exports else v for k, v in peer.exports.items()
        }
        return ref, {"name": ref, "outputs": outputs, "secretOutputNames": sorted(peer.secret_exports)}

    def call(self, args: rmocks.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        # the peering stack reads AKS user credentials for its provider; the mesh itself calls nothing
        if args.token == "azure-native:containerservice:listManagedClusterUserCredentials":
            return registry.INVOKES[args.token](plain(dict(args.args)), self.stack), None
        raise AssertionError(f"the mesh makes no provider calls, got {args.token}")


class RecordingMonitor(rmocks.MockMonitor):
    """Records every registration with its inputs (secrets still wrapped) and its dependencies."""

    def __init__(self, mocks: FleetMocks):
        super().__init__(mocks)
        self.recorded: list[Registered] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:
        resp = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = rpc.deserialize_properties(request.object)
            mocks = self.mocks
            assert isinstance(mocks, FleetMocks)
            with self._lock:
                self.recorded.append(
                    Registered(
                        resp.urn,
                        request.type,
                        request.name,
                        inputs,
                        mocks.outputs.get((request.type, request.name), {}),
                        bool(request.custom),
                        list(request.dependencies),
                    )
                )
        return resp

    def ReadResource(self, request: Any) -> Any:
        resp = super().ReadResource(request)
        with self._lock:
            self.recorded.append(
                Registered(
                    resp.urn,
                    request.type,
                    request.name,
                    {"name": rpc.deserialize_properties(request.properties).get("name")},
                    {},
                    True,
                    list(request.dependencies),
                )
            )
        return resp


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


def run_program(stack: str, build: Callable[[], dict[str, Any]], peers: dict[str, StackRun]) -> StackRun:
    mocks = FleetMocks(stack, peers)
    monitor = RecordingMonitor(mocks)
    settings.reset_options(project=PROJECT, stack=stack, preview=True)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=True, monitor=monitor)
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    holder: dict[str, dict[str, Any]] = {}

    def main() -> None:
        holder["exports"] = build()

    _sync_await(run_pulumi_func(main))
    exports: dict[str, Any] = {}
    secret: set[str] = set()
    for key, value in holder["exports"].items():
        out = pulumi.Output.from_input(value)
        exports[key] = _sync_await(out.future())
        if _sync_await(out.is_secret()):
            secret.add(key)
    return StackRun(stack, list(monitor.recorded), exports, secret, set(mocks.missing_refs))


def run_stack(fleet: Fleet, stack: str, peers: dict[str, StackRun]) -> StackRun:
    from components.peering import MeshPeering, MeshPeeringArgs
    from mesh.member import MeshMember, MeshMemberArgs
    from mesh.trust import TrustRoot, TrustRootArgs

    spec = fleet.stacks[stack].spec

    def build() -> dict[str, Any]:
        if isinstance(spec, TrustRootStackSpec):
            return TrustRoot(stack, TrustRootArgs(spec=spec)).exports()
        if isinstance(spec, PeeringStackSpec):
            return MeshPeering("peering", MeshPeeringArgs(spec=spec, fleet=fleet)).outputs
        cluster = FakeCluster(stack, spec)
        member = MeshMember(
            f"{stack}-mesh",
            MeshMemberArgs(stack=stack, spec=spec, fleet=fleet, cluster=cluster),  # type: ignore[arg-type]
            pulumi.ResourceOptions(provider=cluster.provider),
        )
        return member.exports()

    return run_program(stack, build, peers)


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
