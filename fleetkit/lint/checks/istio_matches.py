"""VirtualService match analysis: unreachable rules (IST0130), duplicate or overlapping matches (IST0131) and
invalid RE2 regular expressions in StringMatch (IST0122).

Same logic as Istio's VirtualService validation (istio/istio ``pkg/config/validation``:
``analyzeUnreachableHTTPRules`` / ``...TCPRules`` / ``...TLSRules`` and the URI-prefix overlap check
``coveredValidation``) and ``pkg/config/analysis/analyzers/virtualservice/regexes.go``. Regexes are compiled
with Google's RE2 (the ``google-re2`` package), the engine Envoy and Go's ``regexp`` use, so Python-only syntax
such as lookarounds and backreferences is rejected exactly as Istio rejects it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import re2

from fleetkit.lint.index import NETWORKING, Hit, Index, Obj, as_dict, as_int, as_list, as_str

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # RE2 otherwise logs every rejected pattern to stderr


def re2_error(pattern: str) -> str | None:
    """RE2's complaint about ``pattern``, or None when it compiles."""
    try:
        re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        return detail.decode() if isinstance(detail, bytes) else str(detail)
    return None


def _name(item: dict[str, Any], n: int, named: bool) -> str:
    name = as_str(item.get("name")) if named else ""
    return f'"{name}"' if name else f"#{n}"


def _key(match: dict[str, Any], named: bool) -> str:
    body = {k: v for k, v in match.items() if not (named and k == "name")}
    return json.dumps(body, sort_keys=True, default=str)


Report = Callable[[int, str], Hit]


def _unreachable(vs: Obj, section: str) -> Iterator[Hit]:
    routes = as_list(vs.spec.get(section))
    named = section == "http"
    seen: dict[str, int] = {}
    catch_all = -1
    prefixes: list[_Prefix] = []

    def unused(i: int, why: str) -> Hit:
        return Hit(vs, ("spec", section, i), "FK115",
                   f"VirtualService rule {_name(as_dict(routes[i]), i, named)} not used ({why}).",
                   "remove the rule, or move it before the rule that already takes its traffic")  # fmt: skip

    def ineffective(i: int, j: int, match_name: str, dup: str) -> Hit:
        return Hit(vs, ("spec", section, i, "match", j), "FK116",
                   f"VirtualService rule {_name(as_dict(routes[i]), i, named)} match {match_name} is not used "
                   f"(duplicate/overlapping match in rule {dup}).",
                   "remove the duplicate match, or order the more specific match first")  # fmt: skip

    for i, route in enumerate(routes):
        if not isinstance(route, dict):
            continue
        matches = as_list(route.get("match"))
        if not matches:
            if catch_all >= 0:
                yield unused(i, "only the last rule can have no matches")
            catch_all = i
            continue
        duplicates = 0
        for j, match in enumerate(matches):
            match = as_dict(match)
            if catch_all >= 0:
                yield unused(i, "route without matches defined before")
                continue
            key = _key(match, named)
            if key in seen:
                dup = seen[key]
                yield ineffective(i, j, _name(match, j, named), _name(as_dict(routes[dup]), dup, named))
                duplicates += 1
                continue
            seen[key] = i
            if named:
                prefix = _Prefix.of(match, _name(route, i, True), _name(match, j, True), i, j)
                if prefix is not None:
                    prefixes.append(prefix)
        if duplicates == len(matches):
            yield unused(i, "all matches used by prior rules")
    yield from _overlaps(vs, section, prefixes)


def _overlaps(vs: Obj, section: str, prefixes: list[_Prefix]) -> Iterator[Hit]:
    """A later URI-prefix match covered by an earlier, shorter prefix with the same other conditions."""
    for a_index, a in enumerate(prefixes):
        for b in prefixes[a_index + 1 :]:
            if b.prefix != a.prefix and a.covers(b):
                yield Hit(vs, ("spec", section, b.rule, "match", b.match), "FK116",
                          f"VirtualService rule {b.route_name} match {b.match_name} of prefix {b.prefix} is not used "
                          f"(duplicate/overlapping match in rule {a.match_name} of prefix {a.prefix} on "
                          f"{a.route_name}).",
                          "order the longer prefix first, or remove the covered match")  # fmt: skip


def _exact_or_prefix(sm: Any) -> str:
    sm = as_dict(sm)
    if as_str(sm.get("exact")):
        return "exact:" + sm["exact"]
    if as_str(sm.get("prefix")):
        return "prefix:" + sm["prefix"]
    return ""


@dataclass(frozen=True)
class _Prefix:
    """A URI-prefix match reduced to what Istio compares for overlaps (port, method, authority, headers...)."""

    route_name: str
    match_name: str
    rule: int
    match: int
    prefix: str
    port: int
    method: str
    authority: str
    headers: dict[str, str]
    query: dict[str, str]
    without: dict[str, str]

    @classmethod
    def of(cls, match: dict[str, Any], route_name: str, match_name: str, i: int, j: int) -> _Prefix | None:
        prefix = as_str(as_dict(match.get("uri")).get("prefix"))
        if not prefix:
            return None
        return cls(route_name, match_name, i, j, prefix, as_int(match.get("port")) or 0,
                   _exact_or_prefix(match.get("method")) or "exact:GET", _exact_or_prefix(match.get("authority")),
                   {k: _exact_or_prefix(v) for k, v in as_dict(match.get("headers")).items()},
                   {k: _exact_or_prefix(v) for k, v in as_dict(match.get("queryParams")).items()},
                   {k: _exact_or_prefix(v) for k, v in as_dict(match.get("withoutHeaders")).items()})  # fmt: skip

    def covers(self, b: _Prefix) -> bool:
        if not b.prefix.startswith(self.prefix) or b.port != self.port:
            return False
        for mine, theirs in ((self.method, b.method), (self.authority, b.authority)):
            if mine != theirs and not mine.startswith(theirs):
                return False
        for mine_map, theirs_map in (
            (self.headers, b.headers),
            (self.query, b.query),
            (self.without, b.without),
        ):
            if len(mine_map) != len(theirs_map):
                return False
            for k, v in mine_map.items():
                if k not in theirs_map or (v != theirs_map[k] and not v.startswith(theirs_map[k])):
                    return False
        return True


def check_unreachable(ix: Index) -> Iterator[Hit]:
    """FK115 (IST0130) and FK116 (IST0131)."""
    for vs in ix.of(NETWORKING, "VirtualService"):
        for section in ("http", "tcp", "tls"):
            yield from _unreachable(vs, section)


def _string_matches(route: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str, Any]]:
    for j, match in enumerate(map(as_dict, as_list(route.get("match")))):
        for field in ("uri", "scheme", "method", "authority"):
            if field in match:
                yield ("match", j, field), field, match[field]
        for section in ("headers", "queryParams", "withoutHeaders"):
            for key, sm in as_dict(match.get(section)).items():
                yield ("match", j, section, key), section, sm
    for j, origin in enumerate(as_list(as_dict(route.get("corsPolicy")).get("allowOrigins"))):
        yield ("corsPolicy", "allowOrigins", j), "corsPolicy.allowOrigins", origin


def check_regexes(ix: Index) -> Iterator[Hit]:
    """FK117 (IST0122): StringMatch regexes RE2 cannot compile."""
    for vs in ix.of(NETWORKING, "VirtualService"):
        for i, route in enumerate(map(as_dict, as_list(vs.spec.get("http")))):
            for path, where, sm in _string_matches(route):
                pattern = as_dict(sm).get("regex")
                if not isinstance(pattern, str) or not pattern:
                    continue
                problem = re2_error(pattern)
                if problem:
                    yield Hit(vs, ("spec", "http", i, *path, "regex"), "FK117",
                              f'Field "{where}" regular expression invalid: "{pattern}" ({problem})',
                              "use RE2 syntax: no lookahead/lookbehind or backreferences; escape literal "
                              "metacharacters")  # fmt: skip


CHECKS = [check_unreachable, check_regexes]
