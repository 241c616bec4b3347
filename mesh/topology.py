"""The mesh as the fleet defines it: who peers with whom, and how stacks reference each other.

Pure (no ``pulumi`` import): computed from the loaded :class:`fleetkit.loader.Fleet` only, so the
remote-secret graph and the stack-reference names can be checked and unit-tested without an engine.

Peers
    Every region stack peers with every *other* region stack of the fleet (multi-primary: each
    istiod watches every other cluster's API server). With *n* region stacks each cluster holds
    *n − 1* remote secrets. The graph is derived, never listed, so it is complete by construction:
    adding ``stacks/Pulumi.<new>.yaml`` adds the new cluster to every other stack's next ``pulumi up``.

Stack references
    Peers and the trust root are read with ``pulumi.StackReference``. A reference name is either a
    bare stack name (``mesh-root``; Pulumi resolves it in the current organization and project) or
    fully qualified, ``<org>/<project>/<stack>``. The ``<org>/<project>`` prefix, lowest to highest
    precedence:

    1. none (bare names);
    2. the prefix written in ``mesh.trust_root_stack`` (``acme/fleetkit/mesh-root`` makes every
       reference ``acme/fleetkit/<stack>``), so one shared setting in ``stacks/fleet.yaml`` covers all;
    3. the environment variable ``FLEETKIT_STACK_REF_PREFIX`` (``acme/fleetkit``), for a CI runner or
       an operator whose backend organization differs.

    The stack a reference points at is always its last ``/``-segment (the offline preview resolves
    references the same way).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleetkit.fleet import Fleet
    from fleetkit.spec import MeshSpec

#: Environment variable holding the ``<org>/<project>`` prefix of stack references.
STACK_REF_PREFIX_ENV = "FLEETKIT_STACK_REF_PREFIX"

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# Stack outputs one mesh member publishes and its peers read (camelCase, as Pulumi exports go).
EXPORT_MESH_ID = "meshId"
EXPORT_CLUSTER_NAME = "meshClusterName"
EXPORT_NETWORK = "meshNetwork"
EXPORT_TRUST_DOMAIN = "meshTrustDomain"
EXPORT_ISTIO_VERSION = "istioVersion"
EXPORT_EAST_WEST_ADDRESS = "eastWestAddress"
EXPORT_EAST_WEST_ADDRESSES = "eastWestAddresses"
EXPORT_READER_SERVER = "readerServer"
EXPORT_READER_CA_DATA = "readerCaData"
EXPORT_READER_TOKEN = "readerToken"  # a Pulumi secret
EXPORT_INTERMEDIATE_CERT = "intermediateCertPem"
EXPORT_ROOT_CERT = "rootCertPem"
# Trust-root stack outputs.
EXPORT_ROOT_KEY = "rootKeyPem"  # a Pulumi secret


@dataclass(frozen=True)
class Peer:
    """Another region stack of the mesh, as one member sees it."""

    stack: str
    cluster_name: str
    network: str
    #: the ``pulumi.StackReference`` name of the peer's stack
    ref: str


def split_ref(ref: str) -> tuple[str, str]:
    """``(prefix, stack)`` of a reference name: ``acme/fleetkit/mesh-root`` -> ``("acme/fleetkit", "mesh-root")``."""
    prefix, _, stack = ref.rpartition("/")
    return prefix, stack


def ref_syntax_problem(ref: str) -> str | None:
    """Why ``ref`` is not a usable stack reference name, or ``None``."""
    parts = ref.split("/")
    if len(parts) not in (1, 3) or not all(_SEGMENT.match(p) for p in parts):
        return "write a stack reference as '<stack>' or '<org>/<project>/<stack>'"
    return None


def prefix_syntax_problem(prefix: str) -> str | None:
    """Why ``prefix`` is not a usable ``<org>/<project>`` prefix, or ``None``."""
    parts = prefix.split("/")
    if len(parts) != 2 or not all(_SEGMENT.match(p) for p in parts):
        return "write the prefix as '<org>/<project>' (e.g. acme/fleetkit)"
    return None


def stack_ref_prefix(mesh: MeshSpec, env: Mapping[str, str] | None = None) -> str:
    """The ``<org>/<project>`` prefix of every stack reference ('' for bare names); see the module doc."""
    environ = os.environ if env is None else env
    from_env = environ.get(STACK_REF_PREFIX_ENV, "").strip().strip("/")
    if from_env:
        return from_env
    prefix, _ = split_ref(mesh.trust_root_stack)
    return prefix


def stack_ref(stack: str, mesh: MeshSpec, env: Mapping[str, str] | None = None) -> str:
    """The reference name of ``stack`` (a bare stack name) under the fleet's prefix."""
    prefix = stack_ref_prefix(mesh, env)
    return f"{prefix}/{stack}" if prefix else stack


def trust_root_ref(mesh: MeshSpec, env: Mapping[str, str] | None = None) -> str:
    """The reference name of the trust-root stack."""
    return stack_ref(split_ref(mesh.trust_root_stack)[1], mesh, env)


def trust_root_stack_name(mesh: MeshSpec) -> str:
    """The (bare) stack name of the trust root: the last segment of ``mesh.trust_root_stack``."""
    return split_ref(mesh.trust_root_stack)[1]


def peers_of(fleet: Fleet, stack: str, env: Mapping[str, str] | None = None) -> list[Peer]:
    """Every other region stack of the fleet, sorted by stack name (the remote-secret graph's edges)."""
    me = fleet.stacks[stack]
    my_mesh = me.spec.mesh
    wanted = set(my_mesh.peers) if me.is_region and my_mesh.peers is not None else None
    peers = []
    for name, st in sorted(fleet.region_stacks().items()):
        if name == stack or (wanted is not None and name not in wanted):
            continue
        mesh = st.spec.mesh
        if mesh.cluster_name is None or mesh.network is None:
            raise ValueError(f"stack {name!r} has no mesh cluster_name/network; validate the fleet first")
        peers.append(
            Peer(
                stack=name,
                cluster_name=mesh.cluster_name,
                network=mesh.network,
                ref=stack_ref(name, my_mesh, env),
            )
        )
    return peers


def east_west_source_ranges(fleet: Fleet, stack: str) -> tuple[list[str], list[str]]:
    """(CIDRs the stack's east-west load balancer admits, peers that declare no ``mesh.egress_cidrs``).

    An explicit ``mesh.east_west_source_ranges`` wins; otherwise the union of every peer's egress
    CIDRs (the addresses a peer's sidecars dial this gateway from). ``mesh_checks`` refuses a fleet
    where a peer is missing, so an empty list — which Kubernetes reads as "anyone" — is never rendered
    by accident.
    """
    me = fleet.stacks[stack]
    if me.is_region and me.spec.mesh.east_west_source_ranges is not None:
        return sorted({str(c) for c in me.spec.mesh.east_west_source_ranges}), []
    ranges: set[str] = set()
    missing: list[str] = []
    for peer in peers_of(fleet, stack):  # region stacks only
        cidrs = fleet.stacks[peer.stack].spec.mesh.egress_cidrs
        if not cidrs:
            missing.append(peer.stack)
        ranges.update(str(c) for c in cidrs)
    return sorted(ranges), missing


def remote_secret_graph(fleet: Fleet) -> dict[str, list[str]]:
    """stack -> cluster names whose remote secret that stack's cluster holds."""
    return {name: [p.cluster_name for p in peers_of(fleet, name)] for name in sorted(fleet.region_stacks())}
