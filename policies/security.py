"""Security: mesh-wide STRICT mTLS, deny-by-default authorization, JWT at the ingress.

Renders (``security.istio.io/v1``):

* PeerAuthentication ``default`` in the Istio root namespace with ``STRICT`` (mesh-wide) and one in
  the model namespace, so no plaintext reaches a model pod.
* AuthorizationPolicy ``allow-nothing`` in the model namespace (an ALLOW policy with no rules denies
  everything), then ALLOW rules: the ingress gateway's identity may call the model API; extra
  callers are listed explicitly. No rule for Prometheus: it scrapes vLLM through Istio's merged
  metrics endpoint (``:15020/stats/prometheus``, served by the pod's istio-agent, which sidecar
  authorization does not see — Istio "Prometheus" integration, "Option 1: Metrics merging"), so an
  ALLOW rule for ``GET /metrics`` would never match and only suggest a path that is not used.
* RequestAuthentication on the ingress gateway with the JWT rules, paired with an AuthorizationPolicy
  that requires a valid token (``requestPrincipals: ["*"]``): a RequestAuthentication alone lets
  requests without a token through. Every rule copies the identity claims (tier, cohort, tenant,
  subject) to ``x-fleetkit-claim-*`` headers (``outputClaimToHeaders``) for the edge filter
  (``policies.edge``), which removes client-sent copies of those headers before ``jwt_authn`` runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fleetkit.issue import MISSING
from policies.common import FieldError, Rows, StrictModel, keyed_rows, metadata, words
from policies.context import RenderContext


class JwtRule(StrictModel):
    issuer: str = Field(min_length=1)
    jwks_uri: str | None = Field(default=None, pattern=r"^https://")
    audiences: list[str] = Field(default_factory=list)
    forward_original_token: bool = False

    def describe(self) -> str:
        """``JWKS https://…/jwks.json, audiences fleetkit, forwards the token`` (or ``JWKS from the issuer``)."""
        text = f"JWKS {self.jwks_uri or 'from the issuer'}, audiences {words(self.audiences)}"
        return text + (", forwards the token" if self.forward_original_token else "")

    def render(self, claim_headers: list[dict[str, str]] | None = None) -> dict[str, object]:
        out: dict[str, object] = {"issuer": self.issuer}
        if self.jwks_uri:
            out["jwksUri"] = self.jwks_uri
        if self.audiences:
            out["audiences"] = list(self.audiences)
        if self.forward_original_token:
            out["forwardOriginalToken"] = True
        if claim_headers:
            out["outputClaimToHeaders"] = [dict(c) for c in claim_headers]
        return out


class ExtraCaller(StrictModel):
    """Another workload allowed to call model services directly (inside the mesh)."""

    namespace: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    service_account: str | None = None
    paths: list[str] = Field(default_factory=lambda: ["/v1/*"])

    @model_validator(mode="after")
    def _who(self) -> ExtraCaller:
        if self.service_account and not self.namespace:
            raise FieldError("service_account needs its namespace", ("namespace", MISSING))
        if not self.namespace:
            raise FieldError(
                "name the caller's namespace (and optionally its service_account)", ("namespace", MISSING)
            )
        return self

    def who(self) -> str:
        """``search`` (the namespace) or ``search/sa/indexer`` (one service account)."""
        return f"{self.namespace}/sa/{self.service_account}" if self.service_account else f"{self.namespace}"


class SecurityPolicy(StrictModel):
    mtls: Literal["STRICT"] = Field(
        default="STRICT", description="only STRICT is supported: model traffic is never plaintext"
    )
    deny_by_default: bool = True
    jwt: list[JwtRule] = Field(default_factory=list, description="JWT issuers accepted at the ingress")
    require_jwt: bool = True
    allow_metrics_from_monitoring: bool = Field(
        default=False,
        description="must stay false: scrapes go to Istio's merged metrics on :15020, so a GET /metrics "
        "rule would be dead (rule security.dead-metrics-rule)",
    )
    extra_callers: list[ExtraCaller] = Field(default_factory=list)

    @model_validator(mode="after")
    def _metrics(self) -> SecurityPolicy:
        if self.allow_metrics_from_monitoring:
            raise FieldError(
                "allow_metrics_from_monitoring would render a dead rule: Prometheus scrapes vLLM through Istio's "
                "merged metrics on :15020 (the istio-agent, outside sidecar authorization), never GET /metrics "
                "through the sidecar; remove the setting",
                ("allow_metrics_from_monitoring", True),
            )
        return self

    @model_validator(mode="after")
    def _jwt(self) -> SecurityPolicy:
        if self.require_jwt and not self.jwt:
            raise FieldError(
                "require_jwt is true but no jwt issuer is configured (set jwt or require_jwt: false)",
                ("require_jwt", True),
                ("jwt", self.jwt),
            )
        return self

    def describe(self) -> str:
        """``mTLS STRICT, deny by default, JWT required (1 issuer)``."""
        n, rows = len(self.jwt), self.describe_rows()
        return (
            f"mTLS {rows['mTLS']}, {rows['authorization']}, "
            f"JWT {rows['JWT']} ({n} issuer{'s' if n != 1 else ''})"
        )

    def describe_rows(self) -> Rows:
        """Every setting in words: one ``JWT issuer <issuer>`` row per issuer, one ``caller <who>`` row
        per extra caller (``allow_metrics_from_monitoring`` has none: it can only be false)."""
        rows: Rows = {
            "mTLS": self.mtls,
            "authorization": "deny by default" if self.deny_by_default else "allow by default",
            "JWT": "required" if self.require_jwt else "optional",
        }
        rows.update(keyed_rows((f"JWT issuer {r.issuer}", r.describe()) for r in self.jwt))
        rows.update(keyed_rows((f"caller {c.who()}", f"paths {words(c.paths)}") for c in self.extra_callers))
        return rows

    def render(
        self, ctx: RenderContext, claim_headers: list[dict[str, str]] | None = None
    ) -> list[dict[str, object]]:
        ns, sys_ns = ctx.namespace, ctx.system_namespace
        out: list[dict[str, object]] = [
            {
                "apiVersion": "security.istio.io/v1",
                "kind": "PeerAuthentication",
                "metadata": metadata("default", sys_ns),
                "spec": {"mtls": {"mode": self.mtls}},
            },
            {
                "apiVersion": "security.istio.io/v1",
                "kind": "PeerAuthentication",
                "metadata": metadata("default", ns),
                "spec": {"mtls": {"mode": self.mtls}},
            },
        ]
        if self.deny_by_default:
            out.append(
                {
                    "apiVersion": "security.istio.io/v1",
                    "kind": "AuthorizationPolicy",
                    "metadata": metadata("allow-nothing", ns),
                    "spec": {},
                }
            )
        rules: list[dict[str, object]] = [
            {
                "from": [{"source": {"principals": [ctx.ingress_principal]}}],
                "to": [{"operation": {"methods": ["GET", "POST"], "paths": ["/v1/*"]}}],
            }
        ]
        for caller in self.extra_callers:
            source: dict[str, object]
            if caller.service_account:
                source = {
                    "principals": [f"{ctx.trust_domain}/ns/{caller.namespace}/sa/{caller.service_account}"]
                }
            else:
                source = {"namespaces": [caller.namespace]}
            rules.append({"from": [{"source": source}], "to": [{"operation": {"paths": list(caller.paths)}}]})
        out.append(
            {
                "apiVersion": "security.istio.io/v1",
                "kind": "AuthorizationPolicy",
                "metadata": metadata("allow-model-callers", ns),
                "spec": {"action": "ALLOW", "rules": rules},
            }
        )
        gw_selector = {"matchLabels": {"istio": ctx.ingress_gateway_name.removeprefix("istio-")}}
        if self.jwt:
            out.append(
                {
                    "apiVersion": "security.istio.io/v1",
                    "kind": "RequestAuthentication",
                    "metadata": metadata(f"{ctx.ingress_gateway_name}-jwt", sys_ns),
                    "spec": {
                        "selector": gw_selector,
                        "jwtRules": [r.render(claim_headers) for r in self.jwt],
                    },
                }
            )
        if self.require_jwt:
            out.append(
                {
                    "apiVersion": "security.istio.io/v1",
                    "kind": "AuthorizationPolicy",
                    "metadata": metadata(f"{ctx.ingress_gateway_name}-require-jwt", sys_ns),
                    "spec": {
                        "selector": gw_selector,
                        "action": "ALLOW",
                        "rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}],
                    },
                }
            )
        return out
