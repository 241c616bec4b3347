"""The ingress gateway's edge: body-based model routing, identity from verified claims, rate limits.

Why these mechanisms
--------------------
* **Body routing** follows the Gateway API Inference Extension's body-based router (BBR): read the
  OpenAI body's ``model`` at the gateway, put it in a header, and let ordinary header routing (here
  the VirtualService) pick the backend. BBR does this in an ext_proc server; the kit does it inside
  the gateway's own Envoy with two upstream filters, so there is no extra deployment on the request
  path: ``envoy.filters.http.json_to_metadata`` (Envoy's JSON parser, top-level ``model`` only, so a
  ``"model"`` key inside a message cannot steer routing) and ``envoy.filters.http.lua`` (maps served
  names and aliases to the model service, answers unknown models with an OpenAI-format 404, and
  calls ``clearRouteCache()`` so the route is chosen again on the new headers). Both are in Istio's
  proxy build; they are installed by an ``EnvoyFilter`` on the ingress gateway only.
* **Identity**: ``RequestAuthentication.jwtRules[].outputClaimToHeaders`` copies verified claims to
  ``x-fleetkit-claim-*`` headers. Envoy's ``claim_to_headers`` *adds* the header (a client-sent
  copy would remain beside it), so a first Lua filter (``INSERT_FIRST``, ahead of ``jwt_authn``)
  removes every header the kit routes or identifies on before anything reads them; the routing Lua
  filter then derives tier, cohort and tenant only from the claim headers.
* **Tiers reach the GPU**: vLLM's OpenAI request models take a ``priority`` member (lower is
  scheduled earlier) honoured with ``--scheduling-policy priority``; the edge sets it from the
  verified tier (the highest-priority tier gets 0). The body rewrite appends ``"model"`` and
  ``"priority"`` before the closing brace: JSON parsers keep the last of duplicate keys, so a
  client-sent ``priority`` is overridden.
* **Quotas**: ``envoy.filters.http.local_ratelimit`` with descriptors from the tier and tenant
  headers (``rate_limits`` actions merged into the gateway's virtual hosts). Local rate limits are
  token buckets **per gateway replica**: with N replicas a tier may get up to N times its limit. The
  429 carries ``Retry-After`` (the bucket's fill interval) and an OpenAI-format error body.
* **Usage**: on the way back the routing Lua filter reads the answer's OpenAI ``usage`` object with
  ``bodyChunks()`` (which passes each chunk on unbuffered, so streams stay incremental) and writes
  the token counts into dynamic metadata ``fleetkit.usage``; the gateway's usage access log
  (``policies.telemetry``) carries them, with the tenant and model headers, to the collector.
* **Order**: the EnvoyFilters carry ``priority: 10`` — applied after default-priority ones, so the
  strip filter's ``INSERT_FIRST`` lands ahead of filters other EnvoyFilters insert first, and the
  relative patches have an explicit order (istioctl analyze IST0151).

References: Envoy docs, HTTP filters ``lua`` (``clearRouteCache``, ``body():setBytes``,
``bodyChunks()``, ``streamInfo():dynamicMetadata():set``; handle objects are invalid after the script yields),
``json_to_metadata``, ``local_ratelimit`` (descriptors, ``response_headers_to_add``), ``jwt_authn``
(``claim_to_headers``); Istio ``EnvoyFilter`` (``INSERT_FIRST``, ``INSERT_BEFORE``, ``VIRTUAL_HOST``
``MERGE``), ``RequestAuthentication`` (``outputClaimToHeaders``); vLLM ``protocol.py``
(``priority`` on chat/completion requests) and ``--scheduling-policy``; Gateway API Inference
Extension ``bbr``.
"""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from policies.common import (
    Duration,
    FieldError,
    Name,
    Rows,
    StrictModel,
    format_duration,
    metadata,
    seconds,
)
from policies.context import RenderContext

if TYPE_CHECKING:
    from policies.policy_set import PolicySet

EDGE_FILTER_NAME = "fleetkit-edge"
METADATA_NAMESPACE = "fleetkit.edge"
#: dynamic metadata the edge writes per request for usage accounting: endpoint, prompt/completion tokens
USAGE_NAMESPACE = "fleetkit.usage"
#: bytes of the previous response chunk kept when looking for ``"usage"`` across chunk borders
USAGE_WINDOW = 1024
CLAIM_HEADER_PREFIX = "x-fleetkit-claim-"
RATE_LIMITED_MARKER = "x-fleetkit-rate-limited"
BODY_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
HCM = "envoy.filters.network.http_connection_manager"
ROUTER = "envoy.filters.http.router"
LUA_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
JSON_TO_METADATA_TYPE = "type.googleapis.com/envoy.extensions.filters.http.json_to_metadata.v3.JsonToMetadata"
LOCAL_RATELIMIT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
#: ``EnvoyFilter.spec.priority`` of the kit's filters: applied after default-priority (0) EnvoyFilters,
#: so the strip filter's INSERT_FIRST puts it ahead of any filter another EnvoyFilter inserted first,
#: and the order of the relative patches is explicit (istioctl analyze IST0151 otherwise)
ENVOY_FILTER_PRIORITY = 10


class Identity(StrictModel):
    """Which verified JWT claims decide tier, cohort and tenant."""

    tier_claim: str = Field(default="tier", min_length=1, description="claim naming the caller's tier")
    tier_values: dict[str, Name] = Field(
        default_factory=dict,
        description="claim value -> QoS tier (e.g. {gold: premium}); a tier's own name always maps to itself; "
        "tokens without the claim, or with an unmapped value, get qos.default_tier",
    )
    cohort_claim: str | None = Field(default="cohort", description="claim naming a canary cohort; null: none")
    cohorts: dict[Name, float] = Field(
        default_factory=dict,
        description="cohort -> percent of subjects placed in it by a sticky hash of the subject claim "
        "(for tokens without a cohort claim); e.g. {beta: 10}",
    )
    tenant_claim: str | None = Field(default="tenant", description="claim naming the tenant (usage, quotas)")
    subject_claim: str = Field(default="sub", min_length=1)

    @model_validator(mode="after")
    def _percent(self) -> Identity:
        total = sum(self.cohorts.values())
        for name, p in self.cohorts.items():
            if p <= 0:
                raise FieldError("a cohort percentage must be greater than 0", (("cohorts", name), p))
        if total > 100:
            raise FieldError(
                f"cohort percentages must add up to at most 100 (they add up to {total:g})",
                ("cohorts", self.cohorts),
            )
        return self

    def claims(self) -> dict[str, str]:
        """Role (tier/cohort/tenant/subject) -> claim name, for the roles in use."""
        out = {"tier": self.tier_claim, "subject": self.subject_claim}
        if self.cohort_claim:
            out["cohort"] = self.cohort_claim
        if self.tenant_claim:
            out["tenant"] = self.tenant_claim
        return out

    @staticmethod
    def claim_header(role: str) -> str:
        return f"{CLAIM_HEADER_PREFIX}{role}"

    def describe(self) -> str:
        """``tier from claim 'tier' (gold→premium), cohort from claim 'cohort' or 10% beta by 'sub', tenant from 'tenant'``."""
        mapped = ", ".join(f"{value}→{tier}" for value, tier in sorted(self.tier_values.items()))
        words = [f"tier from claim '{self.tier_claim}'" + (f" ({mapped})" if mapped else "")]
        if self.cohort_claim or self.cohorts:
            sticky = ", ".join(f"{pct:g}% {name}" for name, pct in sorted(self.cohorts.items()))
            parts = [f"claim '{self.cohort_claim}'"] if self.cohort_claim else []
            if sticky:
                parts.append(f"{sticky} by a sticky hash of '{self.subject_claim}'")
            words.append("cohort from " + " or ".join(parts))
        if self.tenant_claim:
            words.append(f"tenant from '{self.tenant_claim}'")
        return ", ".join(words)

    def describe_rows(self) -> Rows:
        """Every setting in words: the claims, one ``tier value <v>`` row per mapped claim value, one
        ``cohort <name>`` row per sticky cohort."""
        rows: Rows = {"tier claim": f"'{self.tier_claim}'"}
        rows.update({f"tier value {value}": tier for value, tier in sorted(self.tier_values.items())})
        rows["cohort claim"] = f"'{self.cohort_claim}'" if self.cohort_claim else "none"
        rows.update(
            {
                f"cohort {name}": f"{pct:g}% by a sticky hash of '{self.subject_claim}'"
                for name, pct in sorted(self.cohorts.items())
            }
        )
        rows["tenant claim"] = f"'{self.tenant_claim}'" if self.tenant_claim else "none"
        rows["subject claim"] = f"'{self.subject_claim}'"
        return rows

    def output_claim_to_headers(self) -> list[dict[str, str]]:
        """``RequestAuthentication`` ``outputClaimToHeaders`` entries, sorted by header."""
        return [
            {"header": self.claim_header(role), "claim": claim}
            for role, claim in sorted(self.claims().items())
        ]


class Limit(StrictModel):
    """A token bucket: ``requests_per_minute`` refilled every minute, up to ``burst`` at once."""

    requests_per_minute: int = Field(ge=1)
    burst: int | None = Field(default=None, ge=1, description="bucket size; default requests_per_minute")

    def describe(self) -> str:
        """``60/min (burst 120)``."""
        return f"{self.requests_per_minute}/min" + (f" (burst {self.burst})" if self.burst else "")

    def token_bucket(self, fill: timedelta) -> dict[str, Any]:
        per_fill = max(1, round(self.requests_per_minute * fill.total_seconds() / 60))
        return {
            "max_tokens": self.burst or self.requests_per_minute,
            "tokens_per_fill": per_fill,
            "fill_interval": f"{seconds(fill)}s",
        }


class RateLimits(StrictModel):
    """Per-tier and per-tenant request rates at the ingress gateway (per gateway replica)."""

    tiers: dict[Name, Limit] = Field(default_factory=dict)
    tenants: dict[str, Limit] = Field(default_factory=dict, description="tenant claim value -> limit")
    fill_interval: Duration = Field(
        default=timedelta(seconds=60), description="refill period; Retry-After value"
    )

    @property
    def enabled(self) -> bool:
        return bool(self.tiers or self.tenants)

    def describe(self) -> str:
        """``rate limits per gateway replica: tier batch 60/min; tenant acme 600/min`` (or ``no rate limits``)."""
        if not self.enabled:
            return "no rate limits"
        groups = [
            f"{kind} " + ", ".join(f"{name} {limit.describe()}" for name, limit in sorted(limits.items()))
            for kind, limits in (("tier", self.tiers), ("tenant", self.tenants))
            if limits
        ]
        return "rate limits per gateway replica: " + "; ".join(groups)

    def describe_rows(self) -> Rows:
        """One ``rate limit tier <t>`` / ``rate limit tenant <t>`` row per limit, then the refill period."""
        rows: Rows = {
            f"rate limit {kind} {name}": limit.describe()
            for kind, limits in (("tier", self.tiers), ("tenant", self.tenants))
            for name, limit in sorted(limits.items())
        }
        rows["rate-limit refill"] = format_duration(self.fill_interval)
        return rows


class EdgePolicy(StrictModel):
    """The ingress edge: which verified claims decide tier/cohort/tenant, and the request-rate limits."""

    identity: Identity = Identity()
    rate_limits: RateLimits = RateLimits()

    def describe(self) -> str:
        """Identity and limits in one line (the preview report's and the review's words)."""
        return f"{self.identity.describe()}; {self.rate_limits.describe()}"

    def describe_rows(self) -> Rows:
        """The identity's rows, then the rate limits'."""
        return {**self.identity.describe_rows(), **self.rate_limits.describe_rows()}


# --------------------------------------------------------------------------- helpers
def sticky_bucket(subject: str) -> int:
    """The bucket (0..99) the edge filter puts a subject in (same arithmetic as edge_route.lua)."""
    h = 0
    for b in subject.encode():
        h = (h * 31 + b) % 2147483647
    return h % 100


def managed_headers(policies: PolicySet) -> list[str]:
    """Every request header the kit derives at the edge; client-sent copies are removed first."""
    h = policies.routing.headers
    claims = [Identity.claim_header(role) for role in ("cohort", "subject", "tenant", "tier")]
    return sorted({h.model, h.tier, h.cohort, h.tenant, *claims})


def model_names(ctx: RenderContext) -> dict[str, dict[str, str]]:
    """Every name a client may put in ``model`` -> the model service and the served name it becomes."""
    out: dict[str, dict[str, str]] = {}
    for service, info in sorted(ctx.services.items()):
        target = {"service": service, "served": info.served_name}
        for name in (service, info.served_name, *info.aliases):
            out.setdefault(name, target)
    return out


def tier_priorities(policies: PolicySet) -> dict[str, int]:
    """QoS tier -> vLLM request priority (0 for the most important tier; lower runs earlier)."""
    if policies.qos is None:
        return {}
    return {name: i for i, (name, _) in enumerate(policies.qos.ordered())}


def lua_literal(value: Any) -> str:
    """A Lua literal for plain data (dict keys sorted for deterministic output)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(c if c.isalnum() or c in " -_./:@+" else f"\\{ord(c):03d}" for c in value) + '"'
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"[{lua_literal(k)}] = {lua_literal(v)}" for k, v in sorted(value.items())) + "}"
        )
    raise TypeError(f"cannot render {type(value).__name__} as Lua")


def route_script(policies: PolicySet, ctx: RenderContext) -> str:
    """The routing Lua filter's source: the fleet's configuration table, then ``edge_route.lua``."""
    ident = policies.edge.identity
    h = policies.routing.headers
    tiers = sorted(policies.qos.tiers) if policies.qos else []
    tier_map = {t: t for t in tiers}
    tier_map.update({k: v for k, v in ident.tier_values.items() if v in tier_map})
    config: dict[str, Any] = {
        "headers": {"model": h.model, "tier": h.tier, "cohort": h.cohort, "tenant": h.tenant},
        "claim_headers": {role: Identity.claim_header(role) for role in ident.claims()},
        "models": model_names(ctx),
        "tiers": {
            "default": policies.qos.default_tier if policies.qos else "",
            "map": tier_map,
            "priority": tier_priorities(policies),
        },
        "cohorts": {
            "known": {c: True for c in ident.cohorts} | {c: True for c in policies.routing.cohorts()},
            "sticky": [{"name": c, "percent": p} for c, p in sorted(ident.cohorts.items())],
        },
        "body_paths": {p: True for p in BODY_PATHS},
        "metadata_namespace": METADATA_NAMESPACE,
    }
    if policies.telemetry.usage_metrics:
        config["usage_namespace"] = USAGE_NAMESPACE
        config["usage_window"] = USAGE_WINDOW
    source = resources.files("policies").joinpath("edge_route.lua").read_text(encoding="utf-8")
    return f"FLEETKIT = {lua_literal(config)}\n\n{source}"


def strip_script(policies: PolicySet) -> str:
    lines = [
        "-- fleetkit: drop client-sent copies of every header the edge derives (before jwt_authn)",
        "function envoy_on_request(handle)",
        "  local headers = handle:headers()",
    ]
    lines += [f'  headers:remove("{name}")' for name in managed_headers(policies)]
    lines += ["end", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- Envoy filter configs
def strip_filter(policies: PolicySet) -> dict[str, Any]:
    return {
        "name": "fleetkit.edge.strip",
        "typed_config": {"@type": LUA_TYPE, "default_source_code": {"inline_string": strip_script(policies)}},
    }


def json_to_metadata_filter() -> dict[str, Any]:
    target = {"metadata_namespace": METADATA_NAMESPACE, "key": "model"}
    return {
        "name": "fleetkit.edge.model",
        "typed_config": {
            "@type": JSON_TO_METADATA_TYPE,
            "request_rules": {"rules": [{"selectors": [{"key": "model"}], "on_present": dict(target)}]},
        },
    }


def route_filter(policies: PolicySet, ctx: RenderContext) -> dict[str, Any]:
    return {
        "name": "fleetkit.edge.route",
        "typed_config": {
            "@type": LUA_TYPE,
            "default_source_code": {"inline_string": route_script(policies, ctx)},
        },
    }


def ratelimit_filter(policies: PolicySet) -> dict[str, Any]:
    rl = policies.edge.rate_limits
    fill = rl.fill_interval
    descriptors = [
        {"entries": [{"key": "tier", "value": t}], "token_bucket": lim.token_bucket(fill)}
        for t, lim in sorted(rl.tiers.items())
    ]
    descriptors += [
        {"entries": [{"key": "tenant", "value": t}], "token_bucket": lim.token_bucket(fill)}
        for t, lim in sorted(rl.tenants.items())
    ]
    # the filter-wide bucket only bounds requests no descriptor matches; keep it out of the way
    biggest = max(lim.burst or lim.requests_per_minute for lim in [*rl.tiers.values(), *rl.tenants.values()])
    full = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": "fleetkit_edge_rl"}
    return {
        "name": "fleetkit.edge.ratelimit",
        "typed_config": {
            "@type": LOCAL_RATELIMIT_TYPE,
            "stat_prefix": "fleetkit_edge_ratelimit",
            "token_bucket": {
                "max_tokens": biggest * 100,
                "tokens_per_fill": biggest * 100,
                "fill_interval": f"{seconds(fill)}s",
            },
            "filter_enabled": dict(full),
            "filter_enforced": dict(full),
            "descriptors": descriptors,
            "response_headers_to_add": [
                {
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    "header": {"key": "retry-after", "value": str(seconds(fill))},
                },
                {
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    "header": {"key": RATE_LIMITED_MARKER, "value": "1"},
                },
            ],
        },
    }


def vhost_rate_limits(policies: PolicySet) -> list[dict[str, Any]]:
    """Route-table ``rate_limits``: one descriptor from the tier header, one from the tenant header."""
    h = policies.routing.headers
    rl = policies.edge.rate_limits
    out = []
    if rl.tiers:
        out.append({"actions": [{"request_headers": {"header_name": h.tier, "descriptor_key": "tier"}}]})
    if rl.tenants:
        out.append({"actions": [{"request_headers": {"header_name": h.tenant, "descriptor_key": "tenant"}}]})
    return out


def http_filters(
    policies: PolicySet, ctx: RenderContext
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(filters first in the chain, filters just before the router), in order."""
    before_router = [json_to_metadata_filter(), route_filter(policies, ctx)]
    if policies.edge.rate_limits.enabled:
        before_router.append(ratelimit_filter(policies))
    return [strip_filter(policies)], before_router


def gateway_port(policies: PolicySet) -> int:
    return 443 if policies.routing.tls_credential else 80


def render_edge(policies: PolicySet, ctx: RenderContext) -> list[dict[str, Any]]:
    """The ingress gateway's ``EnvoyFilter`` (``networking.istio.io/v1alpha3``)."""
    first, before_router = http_filters(policies, ctx)
    listener = {"filterChain": {"filter": {"name": HCM}}}
    patches: list[dict[str, Any]] = [
        {
            "applyTo": "HTTP_FILTER",
            "match": {"context": "GATEWAY", "listener": listener},
            "patch": {"operation": "INSERT_FIRST", "value": f},
        }
        for f in first
    ]
    router = {"filterChain": {"filter": {"name": HCM, "subFilter": {"name": ROUTER}}}}
    patches += [
        {
            "applyTo": "HTTP_FILTER",
            "match": {"context": "GATEWAY", "listener": router},
            "patch": {"operation": "INSERT_BEFORE", "value": f},
        }
        for f in before_router
    ]
    limits = vhost_rate_limits(policies)
    if limits:
        port = gateway_port(policies)
        for host in sorted(policies.routing.hosts):
            patches.append(
                {
                    "applyTo": "VIRTUAL_HOST",
                    "match": {
                        "context": "GATEWAY",
                        "routeConfiguration": {"vhost": {"name": f"{host}:{port}"}},
                    },
                    "patch": {"operation": "MERGE", "value": {"rate_limits": limits}},
                }
            )
    return [
        {
            "apiVersion": "networking.istio.io/v1alpha3",
            "kind": "EnvoyFilter",
            "metadata": metadata(EDGE_FILTER_NAME, ctx.system_namespace),
            "spec": {
                "workloadSelector": {"labels": {"istio": ctx.ingress_gateway_name.removeprefix("istio-")}},
                "priority": ENVOY_FILTER_PRIORITY,
                "configPatches": patches,
            },
        },
    ]
