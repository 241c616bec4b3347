"""Serving-path rules that need the whole fleet (called from ``fleet_checks.check_fleet``).

* ``model.name-conflict`` — a name clients may send as ``model`` (a service key, a served name or an
  alias) belongs to two model services: the edge could route it to only one of them, so whichever
  wins, some client gets the wrong model. Entries of one service (versions, GPU classes) share
  names by design.
* ``mesh.lb-idle-below-route-timeout`` — the load balancers in front of the ingress and east-west
  gateways would close an idle connection before the longest route timeout: an explicit
  ``mesh.lb_idle_timeout`` shorter than it, or a route timeout above what the cloud's load balancer
  accepts (AWS NLB 6000 s, Azure LB 100 min; ``mesh.render.lb_idle_annotations``).
"""

from __future__ import annotations

from typing import Any

from fleetkit.errors import MISSING, Issue
from fleetkit.fleet import Fleet, LoadedStack
from fleetkit.spec import RegionStackSpec
from mesh.render import lb_idle_limit_seconds
from policies.common import format_duration, seconds


def _problem(st: LoadedStack, loc: tuple[Any, ...], rule: str, message: str, value: Any = MISSING) -> Issue:
    return st.problem(Issue(loc, rule, message, value))


def check_serving(fleet: Fleet) -> list[Issue]:
    return [*_name_conflicts(fleet), *_lb_idle(fleet)]


def _name_conflicts(fleet: Fleet) -> list[Issue]:
    owners: dict[str, set[str]] = {}
    for st in fleet.region_stacks().values():
        spec = st.spec
        assert isinstance(spec, RegionStackSpec)
        for key, m in spec.models.items():
            service = spec.service_of(key)
            for name in (service, m.served_name, *m.aliases):
                owners.setdefault(name, set()).add(service)
    out: list[Issue] = []
    for _, st in sorted(fleet.region_stacks().items()):
        spec = st.spec
        assert isinstance(spec, RegionStackSpec)
        for key, m in sorted(spec.models.items()):
            service = spec.service_of(key)
            named: list[tuple[tuple[str | int, ...], str]] = [(("models", key, "served_name"), m.served_name)]
            named += [(("models", key, "aliases", i), a) for i, a in enumerate(m.aliases)]
            for path, name in named:
                others = sorted(owners.get(name, set()) - {service})
                if others:
                    out.append(
                        _problem(
                            st,
                            path,
                            "model.name-conflict",
                            f"{name!r} also names model service(s) {', '.join(others)}: a client sending it "
                            "could reach only one of them; give every service its own names",
                            name,
                        )
                    )
    return out


def _lb_idle(fleet: Fleet) -> list[Issue]:
    out: list[Issue] = []
    for _, st in sorted(fleet.region_stacks().items()):
        spec = st.spec
        assert isinstance(spec, RegionStackSpec)
        longest = spec.policies.resilience.longest_timeout()
        explicit = spec.mesh.lb_idle_timeout
        if explicit is not None and explicit < longest:
            out.append(
                _problem(
                    st,
                    ("mesh", "lb_idle_timeout"),
                    "mesh.lb-idle-below-route-timeout",
                    f"the load balancers would close an idle connection after {format_duration(explicit)}, "
                    f"before the longest route timeout {format_duration(longest)}: a non-streaming "
                    "generation would be cut",
                    format_duration(explicit),
                )
            )
        limit = lb_idle_limit_seconds(spec.cloud)
        if limit is not None and spec.lb_idle_seconds() > limit:
            out.append(
                _problem(
                    st,
                    ("policies", "resilience"),
                    "mesh.lb-idle-below-route-timeout",
                    f"the longest route timeout {format_duration(longest)} exceeds the longest idle "
                    f"timeout a {spec.cloud} load balancer accepts ({limit} s)",
                    seconds(longest),
                )
            )
    return out
