"""Checks on the serving path the typed fields cannot express alone (run by ``PolicySet.check``).

* ``routing.client-identity-header`` — a route matching, under ``headers``, a header named like an
  identity (tier, cohort, canary, plan, tenant, role, group, priority): clients set such headers
  freely, so whoever sends it gets the route. Use ``tier`` / ``cohort`` matches, which the edge
  derives from verified JWT claims.
* ``routing.managed-header`` — a ``headers`` match on a header the edge derives itself (model, tier,
  cohort, tenant, claim copies): use the typed field instead.
* ``resilience.per-try-cuts-generation`` — a per-try timeout shorter than the route timeout: Envoy
  applies it to the first try too (it is ignored only once the response has started), so it ends a
  non-streaming generation early.
* ``edge.unknown-tier`` / ``edge.unknown-cohort`` — identity mappings and rate limits naming a tier
  or cohort that nothing defines.

Sources: Envoy route ``RetryPolicy.per_try_timeout`` ("the per-try timeout … is not applied once the
response has started", HTTP router docs, ``x-envoy-upstream-rq-per-try-timeout-ms``); Istio
``HTTPRetry.perTryTimeout``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fleetkit.issue import Issue
from policies.edge import managed_headers

if TYPE_CHECKING:
    from policies.context import RenderContext
    from policies.policy_set import PolicySet

#: header names that look like a caller's identity or privilege
IDENTITY_HEADER = re.compile(r"(tier|cohort|canary|plan|tenant|role|group|priority|premium|beta)")


def routing_issues(policies: PolicySet) -> list[Issue]:
    out: list[Issue] = []
    managed = set(managed_headers(policies))
    for i, route in enumerate(policies.routing.routes):
        for j, m in enumerate(route.match):
            for name in sorted(m.headers):
                path = ("routing", "routes", i, "match", j, "headers", name)
                if name in managed:
                    out.append(
                        Issue(
                            path,
                            "routing.managed-header",
                            f"{name!r} is set by the edge from the request body or verified claims; "
                            "match it with the typed field (model, tier, cohort) instead",
                            name,
                        )
                    )
                elif IDENTITY_HEADER.search(name):
                    out.append(
                        Issue(
                            path,
                            "routing.client-identity-header",
                            f"{name!r} is a client-controlled header: any caller can send it and take this "
                            "route; match 'tier' or 'cohort' (derived from verified JWT claims) instead",
                            name,
                        )
                    )
    return out


def resilience_issues(policies: PolicySet, ctx: RenderContext) -> list[Issue]:
    res = policies.resilience
    out: list[Issue] = []
    if res.default.per_try_cuts_generation():
        out.append(
            Issue(
                ("resilience", "default", "retries", "per_try_timeout"),
                "resilience.per-try-cuts-generation",
                res.default.per_try_message(),
                res.default.retries.render().get("perTryTimeout"),
            )
        )
    for name in sorted(res.models):
        spec = res.for_model(name)
        if spec.per_try_cuts_generation():
            out.append(
                Issue(
                    ("resilience", "models", name),
                    "resilience.per-try-cuts-generation",
                    spec.per_try_message(),
                    spec.retries.render().get("perTryTimeout"),
                )
            )
    return out


def edge_issues(policies: PolicySet) -> list[Issue]:
    out: list[Issue] = []
    tiers = set(policies.qos.tiers) if policies.qos else set()
    ident = policies.edge.identity
    for value, tier in sorted(ident.tier_values.items()):
        if tier not in tiers:
            out.append(
                Issue(
                    ("edge", "identity", "tier_values", value),
                    "edge.unknown-tier",
                    f"claim value {value!r} maps to tier {tier!r}, which qos does not define "
                    f"(tiers: {', '.join(sorted(tiers)) or 'none'})",
                    tier,
                )
            )
    for tier in sorted(policies.edge.rate_limits.tiers):
        if tier not in tiers:
            out.append(
                Issue(
                    ("edge", "rate_limits", "tiers", tier),
                    "edge.unknown-tier",
                    f"rate limit for tier {tier!r}, which qos does not define "
                    f"(tiers: {', '.join(sorted(tiers)) or 'none'})",
                    tier,
                )
            )
    for i, route in enumerate(policies.routing.routes):
        for j, m in enumerate(route.match):
            if m.cohort and m.cohort not in ident.cohorts and not ident.cohort_claim:
                out.append(
                    Issue(
                        ("routing", "routes", i, "match", j, "cohort"),
                        "edge.unknown-cohort",
                        f"cohort {m.cohort!r} can never be assigned: no cohort claim is configured and "
                        "edge.identity.cohorts does not place subjects in it",
                        m.cohort,
                    )
                )
    return out


def serving_issues(policies: PolicySet, ctx: RenderContext) -> list[Issue]:
    return [*routing_issues(policies), *resilience_issues(policies, ctx), *edge_issues(policies)]
