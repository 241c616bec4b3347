"""Fleet-wide mesh rules, checked before anything is created (called from ``loader.check_fleet``).

The loader already checks that every stack uses the same ``mesh_id`` (``mesh.mesh-id-mismatch``) and
that every region stack has a unique ``cluster_name`` (``mesh.duplicate-cluster-name``) and a
``network``; failover chains naming regions outside the fleet are reported by the policy checks
(``ref.unknown-region``). The rules here:

* ``mesh.trust-root-missing`` / ``mesh.trust-root-not-a-root`` / ``mesh.trust-root-mismatch`` — every
  region stack names, in ``mesh.trust_root_stack``, the same stack of the fleet, and it is a
  ``role: trust-root`` stack (one root for the whole mesh);
* ``mesh.stack-ref-syntax`` — stack references are ``<stack>`` or ``<org>/<project>/<stack>``, and the
  ``FLEETKIT_STACK_REF_PREFIX`` environment variable is ``<org>/<project>``;
* ``mesh.trust-domain-mismatch`` — one trust domain across the mesh (the policy layer's principals
  embed it);
* ``mesh.network-without-gateway`` — when the mesh spans several networks, every network has at least
  one cluster with an east-west gateway, or its endpoints are unreachable from the others;
* ``mesh.istio-version-unsupported`` / ``mesh.kubernetes-too-old`` — the pinned Istio version is one the
  kit supports (its CRD schemas are vendored) and every cluster's Kubernetes meets its minimum.

* ``mesh.east-west-source-unknown`` — an east-west gateway's load balancer admits only the peers'
  ``mesh.egress_cidrs``; a peer that declares none (with no explicit ``east_west_source_ranges``)
  would leave it open to the internet (Kubernetes reads empty ``loadBalancerSourceRanges`` as all).

* ``mesh.peer-missing`` / ``mesh.peer-is-self`` / ``mesh.remote-secret-graph-incomplete`` — an explicit
  ``mesh.peers`` list names a stack that is not a region stack of the fleet, or leaves one out.

* ``mesh.peering-missing`` / ``mesh.peering-duplicate`` — a fleet of two or more region stacks has exactly
  one ``role: peering`` stack: it holds every cluster's remote secrets (region stacks never reference
  each other, so each comes up with one ``pulumi up`` in any order; see ``docs/mesh.md``).

Without explicit peers the remote-secret graph is derived from the fleet (every region stack
peers with every other), so it is complete once cluster names are present and unique.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from fleetkit.errors import MISSING, Issue
from fleetkit.fleet import Fleet, LoadedStack
from fleetkit.spec import (
    ISTIO_MIN_KUBERNETES,
    ISTIO_VERSION,
    PeeringStackSpec,
    RegionStackSpec,
    TrustRootStackSpec,
)
from mesh import topology

#: Istio versions the kit installs (their CRD schemas are vendored) -> minimum Kubernetes (major, minor).
SUPPORTED_ISTIO: dict[str, tuple[int, int]] = {ISTIO_VERSION: ISTIO_MIN_KUBERNETES}


def _problem(st: LoadedStack, loc: tuple[Any, ...], rule: str, message: str, value: Any = MISSING) -> Issue:
    return st.problem(Issue(loc, rule, message, value))


def check_mesh(fleet: Fleet, env: Mapping[str, str] | None = None) -> list[Issue]:
    """Every mesh problem of the fleet, each with its file, path, rule and bad value."""
    environ = os.environ if env is None else env
    regions = {n: st for n, st in sorted(fleet.region_stacks().items())}
    out: list[Issue] = []
    out += _trust_roots(fleet, regions)
    out += _stack_refs(regions, environ)
    out += _majority(
        regions,
        ("mesh", "trust_domain"),
        "mesh.trust-domain-mismatch",
        "every cluster of the mesh needs the same trust domain",
    )
    out += _gateways(regions)
    out += _versions(regions)
    out += _peers(regions)
    out += _east_west_sources(fleet, regions)
    out += _peering(fleet, regions)
    return out


def _peering(fleet: Fleet, regions: dict[str, LoadedStack]) -> list[Issue]:
    """One peering stack when there is anyone to peer with."""
    peering = sorted(n for n, st in fleet.stacks.items() if isinstance(st.spec, PeeringStackSpec))
    if len(peering) > 1:
        return [
            _problem(
                fleet.stacks[n],
                ("role",),
                "mesh.peering-duplicate",
                f"one peering stack per mesh holds every remote secret (peering stacks: {', '.join(peering)})",
                "peering",
            )
            for n in peering[1:]
        ]
    if not peering and len(regions) > 1:
        first = next(iter(regions.values()))
        return [
            Issue.at(
                "stacks/",
                "",
                "mesh.peering-missing",
                f"{len(regions)} region stacks but no 'role: peering' stack: nothing would write the clusters' "
                f"remote secrets; add stacks/Pulumi.mesh-peering.yaml with `fleetkit:role: peering` "
                f"(first region: {first.name})",
            )
        ]
    return []


def _east_west_sources(fleet: Fleet, regions: dict[str, LoadedStack]) -> list[Issue]:
    """An east-west gateway admits only its peers' egress CIDRs: each peer must declare them (or the
    stack sets ``mesh.east_west_source_ranges`` itself), else the load balancer would be open to all."""
    out = []
    for name, st in regions.items():
        spec = _region(st)
        if not spec.mesh.east_west_gateway or spec.mesh.cluster_name is None or spec.mesh.network is None:
            continue
        try:
            _, missing = topology.east_west_source_ranges(fleet, name)
        except ValueError:  # a peer without cluster_name/network: reported by the loader
            continue
        for peer in missing:
            out.append(
                _problem(
                    st,
                    ("mesh", "east_west_source_ranges"),
                    "mesh.east-west-source-unknown",
                    f"peer stack {peer!r} declares no mesh.egress_cidrs, so this east-west gateway "
                    "cannot admit it without being open to everyone; set mesh.egress_cidrs on "
                    f"{peer!r} (its NAT/outbound addresses) or mesh.east_west_source_ranges here "
                    "('0.0.0.0/0' to open it deliberately)",
                )
            )
    return out


def _peers(regions: dict[str, LoadedStack]) -> list[Issue]:
    """Explicit ``mesh.peers``: every name a region stack of the fleet, and the graph complete."""
    out = []
    for name, st in regions.items():
        peers = _region(st).mesh.peers
        if peers is None:
            continue
        for i, peer in enumerate(peers):
            if peer == name:
                out.append(
                    _problem(
                        st,
                        ("mesh", "peers", i),
                        "mesh.peer-is-self",
                        "a stack does not peer with itself",
                        peer,
                    )
                )
            elif peer not in regions:
                out.append(
                    _problem(
                        st,
                        ("mesh", "peers", i),
                        "mesh.peer-missing",
                        f"no region stack {peer!r} in the fleet (region stacks: {', '.join(regions)})",
                        peer,
                    )
                )
        missing = sorted(set(regions) - set(peers) - {name})
        if missing:
            out.append(
                _problem(
                    st,
                    ("mesh", "peers"),
                    "mesh.remote-secret-graph-incomplete",
                    f"multi-primary endpoint discovery needs a remote secret for every other cluster; "
                    f"missing: {', '.join(missing)}",
                    peers,
                )
            )
    return out


def _region(st: LoadedStack) -> RegionStackSpec:
    assert isinstance(st.spec, RegionStackSpec)
    return st.spec


def _trust_roots(fleet: Fleet, regions: dict[str, LoadedStack]) -> list[Issue]:
    out: list[Issue] = []
    roots = sorted(n for n, st in fleet.stacks.items() if isinstance(st.spec, TrustRootStackSpec))
    for st in regions.values():
        ref = _region(st).mesh.trust_root_stack
        target = topology.split_ref(ref)[1]
        loc = ("mesh", "trust_root_stack")
        if target not in fleet.stacks:
            hint = (
                f"trust-root stacks: {', '.join(roots)}"
                if roots
                else "the fleet has no role: trust-root stack"
            )
            out.append(
                _problem(
                    st,
                    loc,
                    "mesh.trust-root-missing",
                    f"no stack {target!r} in stacks/ to read the mesh root CA from ({hint})",
                    ref,
                )
            )
        elif not isinstance(fleet.stacks[target].spec, TrustRootStackSpec):
            out.append(
                _problem(
                    st,
                    loc,
                    "mesh.trust-root-not-a-root",
                    f"stack {target!r} is a {fleet.stacks[target].spec.role!r} stack, not a 'role: trust-root' "
                    "stack",
                    ref,
                )
            )
    out += _majority(
        regions,
        ("mesh", "trust_root_stack"),
        "mesh.trust-root-mismatch",
        "every cluster must chain to one root CA (one trust-root stack)",
        key=lambda v: topology.split_ref(v)[1],
    )
    return out


def _stack_refs(regions: dict[str, LoadedStack], env: Mapping[str, str]) -> list[Issue]:
    out: list[Issue] = []
    for st in regions.values():
        ref = _region(st).mesh.trust_root_stack
        why = topology.ref_syntax_problem(ref)
        if why:
            out.append(_problem(st, ("mesh", "trust_root_stack"), "mesh.stack-ref-syntax", why, ref))
    prefix = env.get(topology.STACK_REF_PREFIX_ENV, "").strip().strip("/")
    if prefix:
        why = topology.prefix_syntax_problem(prefix)
        if why:
            out.append(
                Issue.at(
                    f"${topology.STACK_REF_PREFIX_ENV}", "(environment)", "mesh.stack-ref-syntax", why, prefix
                )
            )
    return out


def _majority(
    regions: dict[str, LoadedStack],
    loc: tuple[str, str],
    rule: str,
    message: str,
    key: Callable[[Any], Any] | None = None,
) -> list[Issue]:
    """Report every stack whose value at ``loc`` differs from the most common one."""
    groups: dict[str, list[str]] = {}
    for name, st in regions.items():
        value = getattr(getattr(_region(st), loc[0]), loc[1])
        groups.setdefault(key(value) if key else value, []).append(name)
    if len(groups) < 2:
        return []
    majority = max(groups, key=lambda k: (len(groups[k]), k))
    out = []
    for value, names in sorted(groups.items()):
        if value == majority:
            continue
        for n in names:
            raw = getattr(getattr(_region(regions[n]), loc[0]), loc[1])
            out.append(_problem(regions[n], loc, rule, f"{message}; the fleet uses {majority!r}", raw))
    return out


def _gateways(regions: dict[str, LoadedStack]) -> list[Issue]:
    networks: dict[str, list[str]] = {}
    for name, st in regions.items():
        net = _region(st).mesh.network
        if net is not None:
            networks.setdefault(net, []).append(name)
    if len(networks) < 2:  # one flat network: pods reach each other directly, no gateway needed
        return []
    out = []
    for net, names in sorted(networks.items()):
        if any(_region(regions[n]).mesh.east_west_gateway for n in names):
            continue
        for n in names:
            out.append(
                _problem(
                    regions[n],
                    ("mesh", "east_west_gateway"),
                    "mesh.network-without-gateway",
                    f"network {net!r} has no cluster with an east-west gateway, so the other "
                    f"networks cannot reach its endpoints; enable it on one of: {', '.join(names)}",
                    False,
                )
            )
    return out


def _versions(regions: dict[str, LoadedStack]) -> list[Issue]:
    out = []
    for st in regions.values():
        spec = _region(st)
        version = spec.mesh.istio_version
        minimum = SUPPORTED_ISTIO.get(version)
        if minimum is None:
            out.append(
                _problem(
                    st,
                    ("mesh", "istio_version"),
                    "mesh.istio-version-unsupported",
                    f"pin a supported Istio version ({', '.join(sorted(SUPPORTED_ISTIO))}); the kit "
                    "vendors and validates against that version's CRDs",
                    version,
                )
            )
            continue
        have = tuple(int(x) for x in spec.cluster.kubernetes_version.split("."))
        if have < minimum:
            side = "create" if spec.cluster.create is not None else "adopt"
            out.append(
                _problem(
                    st,
                    ("cluster", side, "kubernetes_version"),
                    "mesh.kubernetes-too-old",
                    f"Istio {version} needs Kubernetes >= {minimum[0]}.{minimum[1]}",
                    spec.cluster.kubernetes_version,
                )
            )
    return out
