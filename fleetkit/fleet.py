"""The loaded fleet: each stack's typed spec with the provenance of every value, and fleet-wide views.

Bottom layer (no checks, no Pulumi). :mod:`fleetkit.loader` builds a :class:`Fleet`; checks,
components, mesh, report and review read it.

Provenance
    While composing a stack (field defaults < ``stacks/fleet.yaml`` < the stack file < ``--set``),
    the loader records which source wrote each path of the merged document. A check reports an
    :class:`~fleetkit.errors.Issue` with a tuple path; :meth:`Provenance.locate` turns it into a
    :class:`~fleetkit.errors.Issue` once, naming the file (or flag) that set the value — or, for a
    value nobody wrote (a missing key), the stack file, where it would be added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from fleetkit.errors import Issue
from fleetkit.resolve import ResolvedStack, resolve
from fleetkit.spec import PeeringStackSpec, RegionStackSpec, TrustRootStackSpec
from policies.context import LocalModel, RenderContext, ServiceInfo, Variant

#: The Pulumi config namespace of the kit's settings (``fleetkit:models`` in a stack file).
NAMESPACE = "fleetkit"


@dataclass(frozen=True)
class Source:
    """Where a value came from: the displayed file (or flag) and how paths are written there."""

    file: str
    #: ``stack`` (``fleetkit:models.x``), ``fleet`` (``fleetkit.models.x``) or ``cli`` (``models.x``)
    style: str

    def path_in_file(self, loc: tuple[Any, ...]) -> tuple[Any, ...]:
        """``loc`` (a path in the merged spec) as written in this source: ``fleetkit:models.x`` in a
        stack file, ``fleetkit.models.x`` in the fleet file, ``models.x`` on the command line."""
        if self.style == "stack":
            return (f"{NAMESPACE}:{loc[0]}", *loc[1:]) if loc else ("config",)
        if self.style == "fleet":
            return (NAMESPACE, *loc)
        return loc or ("(document)",)


@dataclass
class Provenance:
    """Which source wrote each path of one stack's merged document."""

    stack_source: Source
    origin: dict[tuple[Any, ...], Source] = field(default_factory=dict)

    def mark(self, loc: tuple[Any, ...], source: Source) -> None:
        """``source`` wrote the value at ``loc`` (not its children)."""
        self.origin[loc] = source

    def record(self, loc: tuple[Any, ...], value: Any, source: Source) -> None:
        """``source`` wrote ``value`` at ``loc``, and every path below it."""
        self.origin[loc] = source
        if isinstance(value, dict):
            for k, v in value.items():
                self.record((*loc, k), v, source)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.record((*loc, i), v, source)

    def source_of(self, loc: tuple[Any, ...]) -> Source:
        """The source of the nearest written path at or above ``loc``; the stack file for unwritten ones."""
        for n in range(len(loc), 0, -1):
            src = self.origin.get(tuple(loc[:n]))
            if src is not None:
                return src
        return self.stack_source

    def locate(self, issue: Issue) -> Issue:
        src = self.source_of(issue.path)
        return issue.located(src.file, src.path_in_file(issue.path))


@dataclass
class LoadedStack:
    name: str
    file: str
    spec: RegionStackSpec | TrustRootStackSpec | PeeringStackSpec
    #: every config key of the stack file (incl. provider keys such as ``aws:region``), as written
    config: dict[str, Any]
    provenance: Provenance = field(repr=False, default_factory=lambda: Provenance(Source("", "stack")))
    #: the ``--set`` items (or changed ``pulumi config`` values) merged into this stack, as given
    overrides: tuple[str, ...] = ()

    @property
    def is_region(self) -> bool:
        return isinstance(self.spec, RegionStackSpec)

    @cached_property
    def resolved(self) -> ResolvedStack:
        """The region stack's pools and models resolved (:mod:`fleetkit.resolve`), once per loaded stack."""
        if not isinstance(self.spec, RegionStackSpec):
            raise TypeError(f"stack {self.name!r} is not a region stack (it has no pools or models)")
        return resolve(self.spec)

    def problem(self, issue: Issue) -> Issue:
        """Locate ``issue`` (a path in this stack's merged spec) to the file that set the value."""
        return self.provenance.locate(issue)

    def problems(self, issues: list[Issue]) -> list[Issue]:
        return [self.provenance.locate(i) for i in issues]


@dataclass
class Fleet:
    root: Path
    stacks: dict[str, LoadedStack]
    #: stacks whose files did not validate (their problems are reported); fleet-wide rules that need
    #: every stack (the remote-secret graph, majorities) do not run while this is non-empty
    invalid: frozenset[str] = frozenset()
    #: model variants read, as written, from stacks that did not validate, as
    #: ``(service, served_name, variant)``: references to them are not reported as unknown
    unverified: tuple[tuple[str, str, Variant], ...] = ()
    #: a stack file could not be read at all, so the fleet's models are not all known
    models_unknown: bool = False

    def region_stacks(self) -> dict[str, LoadedStack]:
        return {k: v for k, v in self.stacks.items() if v.is_region}

    def services(self) -> dict[str, ServiceInfo]:
        return fleet_services(self)

    def context_for(self, stack: str) -> RenderContext:
        return render_context(self, stack)


def fleet_services(fleet: Fleet) -> dict[str, ServiceInfo]:
    """Every model service of the fleet with its variants (version x GPU class x stack)."""
    variants: dict[str, list[Variant]] = {}
    served: dict[str, str] = {}
    aliases: dict[str, set[str]] = {}
    for sname, st in sorted(fleet.region_stacks().items()):
        spec = st.spec
        assert isinstance(spec, RegionStackSpec)
        resolved = st.resolved
        for mname, m in sorted(spec.models.items()):
            service = m.service or mname
            served.setdefault(service, m.served_name)
            aliases.setdefault(service, set()).update(a for a in m.aliases if a != served[service])
            variants.setdefault(service, []).append(
                Variant(
                    model=mname,
                    version=m.version,
                    gpu_class=resolved.models[mname].gpu_class,
                    stack=sname,
                    min_replicas=m.replicas.min,
                    max_replicas=m.replicas.max,
                )
            )
    for service, served_name, variant in fleet.unverified:
        served.setdefault(service, served_name)
        variants.setdefault(service, []).append(variant)
    return {
        s: ServiceInfo(s, served[s], tuple(v), tuple(sorted(aliases.get(s, set()))))
        for s, v in sorted(variants.items())
    }


def render_context(fleet: Fleet, stack: str) -> RenderContext:
    st = fleet.stacks[stack]
    spec = st.spec
    assert isinstance(spec, RegionStackSpec)
    return RenderContext(
        namespace=spec.namespace,
        services=fleet_services(fleet),
        stack=stack,
        local_services=frozenset(m.service or k for k, m in spec.models.items()),
        local_models=tuple(
            LocalModel(
                model=k,
                service=m.service or k,
                served_name=m.served_name,
                min_replicas=m.replicas.min,
                max_replicas=m.replicas.max,
                version=m.version,
            )
            for k, m in sorted(spec.models.items())
        ),
        trust_domain=spec.mesh.trust_domain,
        fleet_regions=frozenset(
            s.spec.region for s in fleet.region_stacks().values() if isinstance(s.spec, RegionStackSpec)
        ),
    )
