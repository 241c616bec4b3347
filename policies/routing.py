"""Routing: which model (and version / GPU class) serves a request, with canary weights and mirroring.

Requests reach the front-door hosts through the ingress gateway only: the VirtualService is bound to
the ingress Gateway (``gateways: [istio-system/fleetkit-ingress]``) and not to ``mesh``, so a client
inside the mesh calling ``api.llm.example.com`` or a model Service directly bypasses these routes
(Istio VirtualService reference, ``gateways``: "the reserved word mesh is used to imply all the
sidecars in the mesh", and it applies only when listed). Routes are evaluated in order, first match wins, and the ``default`` route catches the rest. A route
matches on the model, the tier, the canary cohort, the task type, any other header, or a URI prefix;
its destinations carry weights (``weight/sum(weights)`` of the traffic each, as in Istio — they
need not add up to 100).

The model, tier and cohort are **not** client headers: the edge filter (``policies.edge``) sets them
from the request body's ``model`` and from verified JWT claims, after removing any client-sent copy,
so a match on them cannot be forged. The task header is client-controlled on purpose (a hint such as
``summarize``). A match on any other header is client-controlled too, so matching a header named
like an identity (tier, cohort, canary, plan, tenant, …) there is rejected (``routing.client-identity-header``).

Renders one ``networking.istio.io/v1`` VirtualService per front-door host set.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, field_validator, model_validator

from policies.common import FieldError, Name, Rows, StrictModel, words


class StringMatch(StrictModel):
    """Exactly one of ``exact``, ``prefix`` or ``regex`` (RE2 syntax, as Envoy uses)."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one(self) -> StringMatch:
        given = [k for k in ("exact", "prefix", "regex") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of exact, prefix or regex")
        return self

    def render(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}

    def describe(self, name: str) -> str:
        """``x-team=search``, ``x-team prefix se``."""
        op, value = next(iter(self.render().items()))
        return f"{name}={value}" if op == "exact" else f"{name} {op} {value}"


def _coerce_match(value: object) -> object:
    # a bare string is an exact match: {x-team: search} == {x-team: {exact: search}}
    return {"exact": value} if isinstance(value, str) else value


HeaderMatch = Annotated[StringMatch, Field()]

_HEADER_NAME = r"^[a-z0-9][a-z0-9-]*$"
#: a VirtualService / Gateway host: a lowercase DNS name, optionally with a leading ``*.`` wildcard
_HOST = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class RouteMatch(StrictModel):
    """One match block; all conditions in it must hold (AND). A route's blocks are OR-ed."""

    model: str | None = Field(
        default=None, description="model service the request's body names (served name or alias)"
    )
    tier: str | None = Field(default=None, description="QoS tier from the verified tier claim")
    cohort: str | None = Field(
        default=None, description="canary cohort from the verified cohort claim or sticky hash"
    )
    task: str | None = Field(default=None, description="value of the task-type header (exact)")
    headers: dict[Annotated[str, Field(pattern=_HEADER_NAME)], StringMatch] = Field(default_factory=dict)
    uri_prefix: str | None = None

    @field_validator("headers", mode="before")
    @classmethod
    def _bare_strings(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: _coerce_match(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> RouteMatch:
        if not (self.model or self.tier or self.cohort or self.task or self.headers or self.uri_prefix):
            raise ValueError(
                "a match block needs at least one condition (model, tier, cohort, task, headers or "
                "uri_prefix)"
            )
        return self

    def describe(self) -> str:
        """``tier=premium & x-team=search & uri prefix /v1``: the conditions, AND-ed."""
        parts = [f"{k}={getattr(self, k)}" for k in ("model", "tier", "cohort", "task") if getattr(self, k)]
        parts += [sm.describe(name) for name, sm in sorted(self.headers.items())]
        if self.uri_prefix:
            parts.append(f"uri prefix {self.uri_prefix}")
        return " & ".join(parts)


class Destination(StrictModel):
    """Where traffic goes: a model service, optionally one version and/or one GPU class."""

    model: Name
    version: Name | None = None
    gpu_class: Name | None = None
    weight: int = Field(
        default=100, ge=1, le=1000, description="relative share; destinations need not sum to 100"
    )

    def label(self) -> str:
        """``model/version@gpu-class`` (the parts that are set)."""
        return _label(self.model, self.version, self.gpu_class)


class Mirror(StrictModel):
    """Copy a percentage of the traffic to another destination (responses are discarded)."""

    model: Name
    version: Name | None = None
    gpu_class: Name | None = None
    percent: float = Field(gt=0, le=100, description="share of requests mirrored, 0 < percent <= 100")

    def label(self) -> str:
        return _label(self.model, self.version, self.gpu_class)

    def describe(self) -> str:
        """``llama-3-70b/v2 5%``."""
        return f"{self.label()} {percent_text(self.percent)}"


def _label(model: str, version: str | None, gpu_class: str | None) -> str:
    return model + (f"/{version}" if version else "") + (f"@{gpu_class}" if gpu_class else "")


def percent_text(x: float) -> str:
    """``12.5%``, ``25%`` (one decimal at most, no trailing zeros)."""
    return f"{x:.1f}".rstrip("0").rstrip(".") + "%"


def shares(dests: list[Destination]) -> dict[str, str]:
    """Each destination's share of the traffic, by label: ``{"llama-3-70b/v2": "10%"}``."""
    total = sum(d.weight for d in dests) or 1
    return {d.label(): percent_text(100 * d.weight / total) for d in dests}


def _route_text(matches: str, to: list[Destination], mirror: Mirror | None) -> str:
    text = f"{matches} → " + ", ".join(f"{k} {v}" for k, v in shares(to).items())
    return text + (f", mirror {mirror.describe()}" if mirror is not None else "")


class Route(StrictModel):
    name: Name
    match: list[RouteMatch] = Field(min_length=1)
    to: list[Destination] = Field(min_length=1)
    mirror: Mirror | None = None

    @model_validator(mode="after")
    def _distinct_destinations(self) -> Route:
        seen = set()
        for j, d in enumerate(self.to):
            key = (d.model, d.version, d.gpu_class)
            if key in seen:
                raise FieldError(
                    f"destination {'/'.join(x for x in key if x)} is listed twice", (("to", j), d.model)
                )
            seen.add(key)
        return self

    def matches(self) -> str:
        """The match blocks, OR-ed: ``tier=premium | cohort=beta``."""
        return " | ".join(m.describe() for m in self.match)

    def describe(self) -> str:
        """``tier=premium → llama-3-70b 90%, llama-3-70b/v2 10%, mirror llama-3-70b/v3 5%``."""
        return _route_text(self.matches(), self.to, self.mirror)


class RoutingHeaders(StrictModel):
    """The request headers the kit routes on. The edge sets model, tier, cohort and tenant (client
    copies are removed); only ``task`` is a client header."""

    model: Annotated[str, Field(pattern=_HEADER_NAME)] = "x-fleetkit-model"
    tier: Annotated[str, Field(pattern=_HEADER_NAME)] = "x-fleetkit-tier"
    cohort: Annotated[str, Field(pattern=_HEADER_NAME)] = "x-fleetkit-cohort"
    tenant: Annotated[str, Field(pattern=_HEADER_NAME)] = "x-fleetkit-tenant"
    task: Annotated[str, Field(pattern=_HEADER_NAME)] = "x-fleetkit-task"


class DefaultRoute(StrictModel):
    to: list[Destination] = Field(min_length=1)
    mirror: Mirror | None = None

    name: ClassVar[str] = "default"

    def matches(self) -> str:
        return "everything else"

    def describe(self) -> str:
        """``everything else → llama-3-8b 100%``."""
        return _route_text(self.matches(), self.to, self.mirror)


class RoutingPolicy(StrictModel):
    """Front-door routing. ``routes`` are ordered (first match wins); names must be unique."""

    hosts: list[Annotated[str, Field(pattern=_HOST)]] = Field(
        default_factory=lambda: ["api.llm.internal"],
        min_length=1,
        description="front-door host names (lowercase DNS names, optionally '*.'-prefixed; no scheme, port or path)",
    )
    headers: RoutingHeaders = RoutingHeaders()
    routes: list[Route] = Field(default_factory=list)
    default: DefaultRoute
    tls_credential: str | None = Field(
        default=None,
        description="Kubernetes TLS secret (in istio-system) for HTTPS on 443; unset serves plain HTTP on 80",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> RoutingPolicy:
        names = [r.name for r in self.routes]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise FieldError(
                    f"route names must be unique: {name!r} is also the name of routes[{names.index(name)}]",
                    (("routes", i, "name"), name),
                )
        return self

    def all_destinations(self) -> list[tuple[tuple[object, ...], Destination | Mirror]]:
        """Every destination and mirror with its path in the document (for reference checks)."""
        out: list[tuple[tuple[object, ...], Destination | Mirror]] = []
        for i, r in enumerate(self.routes):
            for j, d in enumerate(r.to):
                out.append((("routes", i, "to", j), d))
            if r.mirror:
                out.append((("routes", i, "mirror"), r.mirror))
        for j, d in enumerate(self.default.to):
            out.append((("default", "to", j), d))
        if self.default.mirror:
            out.append((("default", "mirror"), self.default.mirror))
        return out

    def front_door_rows(self) -> Rows:
        """The front door in words: hosts, TLS and the header the kit routes each attribute on."""
        tls = f"HTTPS on 443 (secret {self.tls_credential})" if self.tls_credential else "plain HTTP on 80"
        rows: Rows = {"hosts": words(self.hosts), "TLS": tls}
        rows.update({f"{role} header": header for role, header in self.headers.model_dump().items()})
        return rows

    def describe(self) -> list[tuple[str, str]]:
        """``(route name, what it does)`` in evaluation order, the default route last."""
        return [*((r.name, r.describe()) for r in self.routes), (self.default.name, self.default.describe())]

    def cohorts(self) -> list[str]:
        """Every cohort a route matches on."""
        return sorted({m.cohort for r in self.routes for m in r.match if m.cohort})

    def match_blocks(self, match: RouteMatch) -> dict[str, object]:
        """An Istio HTTPMatchRequest for one match block."""
        headers: dict[str, dict[str, str]] = {}
        if match.model:
            headers[self.headers.model] = {"exact": match.model}
        if match.tier:
            headers[self.headers.tier] = {"exact": match.tier}
        if match.cohort:
            headers[self.headers.cohort] = {"exact": match.cohort}
        if match.task:
            headers[self.headers.task] = {"exact": match.task}
        for k, v in sorted(match.headers.items()):
            headers[k] = v.render()
        out: dict[str, object] = {}
        if headers:
            out["headers"] = dict(sorted(headers.items()))
        if match.uri_prefix:
            out["uri"] = {"prefix": match.uri_prefix}
        return out
