"""The ingress gateway's edge as rendered: header stripping, verified claims, body routing, rate limits.

Read generically from the rendered objects, so the simulator follows whatever the renderers emit:

* ``RequestAuthentication.jwtRules[].outputClaimToHeaders`` — Envoy ``jwt_authn``
  ``claim_to_headers`` **adds** the header: a client-sent copy that nothing removed stays beside
  it, and a header matcher sees the values joined with ``,`` (Envoy ``HeaderMatcher``: multiple
  headers of one name are matched as their comma-joined value), so an ``exact`` match fails.
* ``EnvoyFilter`` Lua filters inserted first on the gateway: every ``headers:remove("…")`` is a
  header the client cannot set.
* A body router: a Lua filter whose source starts with a ``FLEETKIT = { … }`` table (the kit's
  edge, issue #13: the OpenAI body's ``model`` resolved through ``models`` to the model service
  header, the tier from a claim through ``tiers.map`` else ``tiers.default``, the canary cohort from
  a known cohort claim else a sticky hash of the subject over ``cohorts.sticky``; unknown model →
  an OpenAI-format 404 at the edge). Without one, the body's model does not influence routing.
* ``envoy.filters.http.local_ratelimit`` descriptors ``{key, value}`` with token buckets: a token
  bucket per gateway replica (Envoy local rate limit docs); a class offered ``rate`` requests/s at
  one replica above ``tokens_per_fill / fill_interval`` sees 429 for the excess share.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_REMOVE = re.compile(r"""headers\(\)?:remove\(\s*["']([^"']+)["']\s*\)|:remove\(\s*["']([^"']+)["']\s*\)""")
_TABLE_START = re.compile(r"^\s*(?:local\s+)?FLEETKIT\s*=\s*\{", re.MULTILINE)


@dataclass(frozen=True)
class BodyRouter:
    headers: Mapping[str, str]  # role (model/tier/cohort/tenant) -> header
    claim_headers: Mapping[str, str]  # role (tier/cohort/subject/tenant) -> claim header
    models: Mapping[str, tuple[str, str]]  # client name -> (service, served name)
    default_tier: str
    tier_map: Mapping[str, str]
    cohorts_known: frozenset[str]
    sticky: tuple[tuple[str, float], ...]
    body_paths: frozenset[str]


@dataclass
class Edge:
    stripped: frozenset[str] = frozenset()
    #: (header, claim) pairs copied from verified tokens
    claim_headers: tuple[tuple[str, str], ...] = ()
    router: BodyRouter | None = None
    #: (descriptor key, value) -> requests/s per gateway replica
    limits: dict[tuple[str, str], float] = field(default_factory=dict)
    #: descriptor key -> header the route's rate_limits action reads
    limit_headers: dict[str, str] = field(default_factory=dict)
    #: Envoy aggregate clusters added by an EnvoyFilter: name -> member clusters, in order
    aggregates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: VirtualService route name -> the cluster an EnvoyFilter ``HTTP_ROUTE`` MERGE points it at
    route_clusters: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def claim_for_header(self, header: str) -> str | None:
        for h, c in self.claim_headers:
            if h == header:
                return c
        return None


def sticky_bucket(subject: str) -> int:
    """The bucket 0..99 the kit's edge puts a subject in (a polynomial hash modulo 2^31-1, the
    arithmetic of ``policies/edge_route.lua``)."""
    h = 0
    for b in subject.encode():
        h = (h * 31 + b) % 2147483647
    return h % 100


# --------------------------------------------------------------------------- a Lua table literal
class _Lua:
    """A reader for the data subset of Lua table constructors (strings, numbers, booleans, nested
    tables with ``[key] = value``, ``name = value`` or positional fields)."""

    _TOKEN = re.compile(
        r'\s*(?:(--[^\n]*)|("(?:\\.|[^"\\])*")|([{}\[\]=,;])|([-+]?\d+(?:\.\d+)?)|([A-Za-z_]\w*))', re.DOTALL
    )

    def __init__(self, text: str, pos: int) -> None:
        self.text, self.pos = text, pos

    def _next(self) -> tuple[str, str]:
        while True:
            m = self._TOKEN.match(self.text, self.pos)
            if not m:
                raise ValueError(f"unexpected Lua at {self.pos}")
            self.pos = m.end()
            if m.group(1):
                continue
            if m.group(2):
                return "str", _unescape(m.group(2)[1:-1])
            if m.group(3):
                return "sym", m.group(3)
            if m.group(4):
                return "num", m.group(4)
            return "name", m.group(5)

    def _peek(self) -> tuple[str, str]:
        pos = self.pos
        tok = self._next()
        self.pos = pos
        return tok

    def value(self) -> Any:
        kind, tok = self._next()
        if kind == "str":
            return tok
        if kind == "num":
            return float(tok) if "." in tok else int(tok)
        if kind == "name":
            return {"true": True, "false": False, "nil": None}.get(tok, tok)
        if tok != "{":
            raise ValueError(f"unexpected {tok!r}")
        items: list[Any] = []
        keyed: dict[Any, Any] = {}
        while True:
            kind, tok = self._peek()
            if (kind, tok) == ("sym", "}"):
                self._next()
                break
            if (kind, tok) == ("sym", "["):
                self._next()
                key = self.value()
                if self._next() != ("sym", "]") or self._next() != ("sym", "="):
                    raise ValueError("bad keyed field")
                keyed[key] = self.value()
            elif kind == "name" and self._after_name_is_eq():
                self._next()
                self._next()
                keyed[tok] = self.value()
            else:
                items.append(self.value())
            kind, tok = self._peek()
            if kind == "sym" and tok in ",;":
                self._next()
        return keyed if keyed or not items else items

    def _after_name_is_eq(self) -> bool:
        pos = self.pos
        self._next()
        nxt = self._next()
        self.pos = pos
        return nxt == ("sym", "=")


def _unescape(s: str) -> str:
    return re.sub(
        r"\\(\d{1,3}|.)",
        lambda m: (
            chr(int(m.group(1)))
            if m.group(1).isdigit()
            else {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1))
        ),
        s,
    )


def lua_table(source: str) -> dict[str, Any] | None:
    """The ``FLEETKIT = {…}`` table of a Lua source, or None."""
    m = _TABLE_START.search(source)
    if not m:
        return None
    value = _Lua(source, m.end() - 1).value()
    return value if isinstance(value, dict) else None


# --------------------------------------------------------------------------- reading the rendered edge
def _walk_filters(obj: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """(patch operation, filter value) of every HTTP_FILTER patch of an EnvoyFilter."""
    for patch in (obj.get("spec") or {}).get("configPatches") or []:
        if patch.get("applyTo") != "HTTP_FILTER":
            continue
        p = patch.get("patch") or {}
        yield str(p.get("operation", "")), p.get("value") or {}


def _seconds(value: Any) -> float:
    text = str(value or "1s").strip()
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    return float(text.rstrip("s") or 1)


def _router(table: Mapping[str, Any]) -> BodyRouter:
    tiers = table.get("tiers") or {}
    cohorts = table.get("cohorts") or {}
    models = {
        str(k): (str(v.get("service")), str(v.get("served")))
        for k, v in (table.get("models") or {}).items()
        if isinstance(v, Mapping)
    }
    sticky = tuple(
        (str(c.get("name")), float(c.get("percent", 0)))
        for c in cohorts.get("sticky") or []
        if isinstance(c, Mapping)
    )
    paths = table.get("body_paths") or {}
    return BodyRouter(
        headers={str(k): str(v) for k, v in (table.get("headers") or {}).items()},
        claim_headers={str(k): str(v) for k, v in (table.get("claim_headers") or {}).items()},
        models=models,
        default_tier=str(tiers.get("default") or ""),
        tier_map={str(k): str(v) for k, v in (tiers.get("map") or {}).items()},
        cohorts_known=frozenset(str(k) for k in (cohorts.get("known") or {})),
        sticky=sticky,
        body_paths=frozenset(str(p) for p in (paths if isinstance(paths, list) else paths.keys())),
    )


def _cluster_patch(edge: Edge, patch: Mapping[str, Any]) -> None:
    """Aggregate clusters (``applyTo: CLUSTER``, ``ADD``, ``envoy.clusters.aggregate``) and routes
    re-pointed at a cluster (``applyTo: HTTP_ROUTE`` matched by route name, ``MERGE`` of ``route.cluster``)."""
    value = (patch.get("patch") or {}).get("value") or {}
    if patch.get("applyTo") == "CLUSTER":
        ctype = value.get("cluster_type") or value.get("clusterType") or {}
        if ctype.get("name") == "envoy.clusters.aggregate":
            typed = ctype.get("typed_config") or ctype.get("typedConfig") or {}
            edge.aggregates[str(value.get("name"))] = tuple(str(c) for c in typed.get("clusters") or [])
    elif patch.get("applyTo") == "HTTP_ROUTE":
        route = (((patch.get("match") or {}).get("routeConfiguration") or {}).get("vhost") or {}).get(
            "route"
        ) or {}
        target = (value.get("route") or {}).get("cluster")
        if route.get("name") and target:
            edge.route_clusters[str(route["name"])] = str(target)


def _lua_source(typed: Mapping[str, Any]) -> str:
    code = typed.get("default_source_code") or typed.get("defaultSourceCode") or {}
    return str(
        code.get("inline_string")
        or code.get("inlineString")
        or typed.get("inline_code")
        or typed.get("inlineCode")
        or ""
    )


def _http_filter(edge: Edge, name: str, op: str, typed: Mapping[str, Any], stripped: set[str]) -> None:
    """One HTTP filter an EnvoyFilter inserts: a Lua filter (stripping, the body router's table) or a
    local rate limit (descriptors)."""
    source = _lua_source(typed)
    if source:
        if op == "INSERT_FIRST":
            stripped.update(a or b for a, b in _REMOVE.findall(source))
        try:
            table = lua_table(source)
        except ValueError as err:
            edge.notes.append(f"EnvoyFilter {name}: Lua table not read ({err})")
            table = None
        if table is not None and isinstance(table.get("models"), Mapping):
            edge.router = _router(table)
    for d in typed.get("descriptors") or []:
        entries = d.get("entries") or []
        bucket = d.get("token_bucket") or d.get("tokenBucket") or {}
        if len(entries) == 1 and bucket:
            per = float(bucket.get("tokens_per_fill", bucket.get("tokensPerFill", 1)))
            interval = _seconds(bucket.get("fill_interval", bucket.get("fillInterval")))
            edge.limits[(str(entries[0].get("key")), str(entries[0].get("value")))] = per / interval


def _rate_limit_actions(edge: Edge, patch: Mapping[str, Any]) -> None:
    for rl in ((patch.get("patch") or {}).get("value") or {}).get("rate_limits") or []:
        for action in rl.get("actions") or []:
            rh = action.get("request_headers") or {}
            if rh.get("descriptor_key") and rh.get("header_name"):
                edge.limit_headers[str(rh["descriptor_key"])] = str(rh["header_name"]).lower()


def read_edge(objs: Iterable[Mapping[str, Any]]) -> Edge:
    edge = Edge()
    stripped: set[str] = set()
    claims: list[tuple[str, str]] = []
    for o in objs:
        kind = o.get("kind")
        if kind == "RequestAuthentication":
            for rule in (o.get("spec") or {}).get("jwtRules") or []:
                claims += [
                    (str(c["header"]).lower(), str(c["claim"]))
                    for c in rule.get("outputClaimToHeaders") or []
                    if c.get("header") and c.get("claim")
                ]
        elif kind == "EnvoyFilter":
            name = str((o.get("metadata") or {}).get("name"))
            for op, value in _walk_filters(o):
                _http_filter(
                    edge, name, op, value.get("typed_config") or value.get("typedConfig") or {}, stripped
                )
            for patch in (o.get("spec") or {}).get("configPatches") or []:
                _cluster_patch(edge, patch)
                _rate_limit_actions(edge, patch)
    edge.stripped = frozenset(h.lower() for h in stripped)
    edge.claim_headers = tuple(sorted(set(claims)))
    return edge
