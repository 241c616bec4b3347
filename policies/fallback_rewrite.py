"""The fallback model's side of a failed-over request: an inbound ``EnvoyFilter`` on each fallback
model's pods rewrites the body's ``model`` (the name of a primary it backs) to the fallback's own
served name.

Each vLLM serves only its own ``--served-model-name``, and the reply's ``model`` says which model
answered, so no pod advertises another model's name (:mod:`policies.fallback` chains the Services).
The filter is the sidecar-inbound twin of the gateway's edge filter (:mod:`policies.edge`): Envoy's
``json_to_metadata`` HTTP filter puts the top-level ``model`` into dynamic metadata (envoyproxy.io,
"JSON to Metadata" filter reference), then a Lua filter appends ``"model": <served name>`` before
the closing brace — JSON parsers keep the last of duplicate keys, as the edge's own body rewrite
relies on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from policies.common import LABEL_APP, metadata
from policies.edge import (
    ENVOY_FILTER_PRIORITY,
    HCM,
    LUA_TYPE,
    METADATA_NAMESPACE,
    ROUTER,
    json_to_metadata_filter,
    lua_literal,
    model_names,
)

if TYPE_CHECKING:
    from policies.context import RenderContext
    from policies.policy_set import PolicySet


def fallback_rewrites(policies: PolicySet, ctx: RenderContext) -> dict[str, dict[str, str]]:
    """Fallback member service -> {every name of a primary it backs: the member's own served name}."""
    names = model_names(ctx)
    out: dict[str, dict[str, str]] = {}
    for primary, chain in sorted(policies.resilience.fallback.items()):
        for member in chain:
            info = ctx.services.get(member)
            if info is None or primary not in ctx.services:
                continue
            for name, target in names.items():
                if target["service"] == primary:
                    out.setdefault(member, {})[name] = info.served_name
    return out


FALLBACK_REWRITE_LUA = """
function envoy_on_request(handle)
  local meta = handle:streamInfo():dynamicMetadata():get(NAMESPACE)
  local to = meta and meta.model and REWRITE[meta.model]
  if to == nil then return end
  local body = handle:body()
  local head = body:getBytes(0, body:length()):match("^(.*)}%s*$")
  if head == nil then return end
  body:setBytes(head .. ',"model":"' .. to .. '"}')
  handle:headers():replace("content-length", tostring(body:length()))
end
"""


def render_fallback_rewrites(policies: PolicySet, ctx: RenderContext) -> list[dict[str, Any]]:
    """An inbound ``EnvoyFilter`` on each fallback model's pods: a request the mesh failed over to it
    (the body names a primary it backs) is rewritten to the fallback's own served name.

    Each vLLM serves exactly its own name (a pod never advertises another model's name), and the
    reply's ``model`` says which model answered. Sidecar-inbound twin of the edge filter:
    ``json_to_metadata`` for the top-level ``model``, then a Lua body rewrite (last key wins).
    """
    out = []
    router = {"filterChain": {"filter": {"name": HCM, "subFilter": {"name": ROUTER}}}}
    for member, rewrite in sorted(fallback_rewrites(policies, ctx).items()):
        script = (
            f"local NAMESPACE = {lua_literal(METADATA_NAMESPACE)}\nlocal REWRITE = {lua_literal(rewrite)}\n"
            f"{FALLBACK_REWRITE_LUA}"
        )
        lua = {
            "name": "fleetkit.fallback.rewrite",
            "typed_config": {"@type": LUA_TYPE, "default_source_code": {"inline_string": script}},
        }
        patches = [
            {
                "applyTo": "HTTP_FILTER",
                "match": {"context": "SIDECAR_INBOUND", "listener": router},
                "patch": {"operation": "INSERT_BEFORE", "value": f},
            }
            for f in (json_to_metadata_filter(), lua)
        ]
        out.append(
            {
                "apiVersion": "networking.istio.io/v1alpha3",
                "kind": "EnvoyFilter",
                "metadata": metadata(f"{member}-fallback-rewrite", ctx.namespace),
                "spec": {
                    "workloadSelector": {"labels": {LABEL_APP: member}},
                    "priority": ENVOY_FILTER_PRIORITY,
                    "configPatches": patches,
                },
            }
        )
    return out
