"""Findings, rule metadata and the lint configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleetkit.issue import Issue
from fleetkit.lint.durations import parse_duration


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


SEVERITY_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True)
class Finding:
    """One problem found in one object: the kit's :class:`~fleetkit.issue.Issue` plus what lint adds to it.

    The issue holds the file, the object (its ``subject``: ``Kind/namespace/name``, ``Kind/name`` for
    cluster-scoped kinds), the path inside the object, the rule, the severity, the message and — when an
    annotation on the object suppresses the finding — the justification (``suppressed``). Lint adds the fix,
    ``ist`` — the ``istioctl analyze`` message code the finding corresponds to (``IST0101``), None for
    LLM-specific rules — and ``line`` (1-based, in ``file``), known only for objects loaded from files and
    not part of the JSON output.
    """

    issue: Issue
    fix: str
    line: int | None = field(default=None, compare=False, repr=False)
    ist: str | None = None

    @property
    def file(self) -> str:
        return self.issue.file

    @property
    def object(self) -> str:
        return self.issue.subject

    @property
    def rule(self) -> str:
        return self.issue.rule

    @property
    def severity(self) -> str:
        return self.issue.severity

    @property
    def message(self) -> str:
        """The message, led by the path inside the object when there is one (``spec.http[0].timeout: …``)."""
        where = self.issue.where
        return f"{where}: {self.issue.message}" if where else self.issue.message

    @property
    def suppressed(self) -> str | None:
        return self.issue.suppressed

    @property
    def label(self) -> str:
        """``FK110 (IST0132)`` for rules istioctl also has, else the bare id."""
        return f"{self.rule} ({self.ist})" if self.ist else self.rule

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "object": self.object,
            "rule": self.rule,
            "ist": self.ist,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "suppressed": self.suppressed,
        }

    def record(self) -> dict[str, Any]:
        """Every field, ``line`` included (the preview's ``lint.json``)."""
        return {
            "file": self.file,
            "object": self.object,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "suppressed": self.suppressed,
            "line": self.line,
            "ist": self.ist,
        }


@dataclass(frozen=True)
class LintRule:
    id: str
    slug: str
    severity: Severity
    title: str
    help: str
    ist: str = ""  # the istioctl analyze code (IST0101...) this rule corresponds to; "" = LLM-specific


def _rules(*rules: LintRule) -> dict[str, LintRule]:
    return {r.id: r for r in rules}


#: Every rule the linter can report. Ids are stable; runbooks/lint.md documents each one.
RULES: dict[str, LintRule] = _rules(
    LintRule("FK001", "schema", Severity.ERROR, "Object does not match its schema",
         "Unknown fields, wrong types, bad enum values or invalid metadata; the API server or Istio would "
         "reject or silently drop it."),
    LintRule("FK002", "unknown-kind", Severity.WARNING, "No schema for this apiVersion/kind",
         "The kind is neither a core Kubernetes kind nor one of the vendored CRDs, so it was not validated."),
    LintRule("FK003", "unserved-api-version", Severity.ERROR, "apiVersion is not served",
         "The CRD or Kubernetes version the kit targets does not serve this apiVersion; apply fails."),
    LintRule("FK004", "bad-suppression", Severity.WARNING, "Lint suppression without a reason or for an unknown rule",
         "fleetkit.dev/lint-ignore entries must read 'RULE: reason'; an entry without a reason suppresses nothing."),
    LintRule("FK101", "undefined-subset", Severity.ERROR, "Route references a subset no DestinationRule defines",
         "Istio has no cluster for the subset and the route fails with 503 (NR).", "IST0101"),
    LintRule("FK102", "unused-subset", Severity.WARNING, "DestinationRule subset no route uses",
         "A subset that no VirtualService routes to is dead configuration (often a finished canary)."),
    LintRule("FK103", "fault-injection", Severity.WARNING, "Fault injection left on a route",
         "Injected aborts/delays hit real traffic, and Istio disables the route's retries and timeouts while "
         "a fault is configured."),
    LintRule("FK104", "retry-exceeds-timeout", Severity.WARNING, "Retries do not fit in the route timeout",
         "perTryTimeout x (attempts + 1) exceeds the route timeout, so the last tries are cut off."),
    LintRule("FK105", "unsafe-retry", Severity.ERROR, "Retry condition can replay a started generation",
         "Conditions such as 5xx, reset or gateway-error fire after the request reached vLLM; the retry runs "
         "the whole generation again (double GPU work, duplicated side effects)."),
    LintRule("FK106", "invalid-retry", Severity.ERROR, "Retry policy Istio rejects",
         "Unknown retryOn tokens, negative attempts, or retry settings with attempts 0."),
    LintRule("FK107", "short-timeout", Severity.WARNING, "Timeout too short for LLM generation",
         "Route timeout or perTryTimeout below the configured generation budget cuts off long completions."),
    LintRule("FK108", "unroutable-host", Severity.ERROR, "Destination host cannot resolve in a multi-cluster mesh",
         "IPs, localhost, wildcards, partial names and foreign cluster domains match no mesh service."),
    LintRule("FK109", "gateway-not-found", Severity.ERROR, "VirtualService names a Gateway that does not exist",
         "The routes bound to the missing gateway are never programmed.", "IST0101"),
    LintRule("FK110", "host-not-found", Severity.ERROR, "Destination host matches no Service or ServiceEntry",
         "No Service/ServiceEntry visible from the VirtualService's namespace (exportTo) has the host; traffic "
         "to it fails.", "IST0101"),
    LintRule("FK111", "port-selector-required", Severity.ERROR, "Destination omits the port of a multi-port service",
         "The destination service exposes several ports, so the route must say which one.", "IST0112"),
    LintRule("FK112", "port-not-found", Severity.ERROR, "Destination port is not a port of the service",
         "The route sends traffic to a port the Service/ServiceEntry does not expose.", "IST0101"),
    LintRule("FK113", "host-not-in-gateway", Severity.WARNING, "VirtualService host not served by its Gateway",
         "None of the VirtualService's hosts matches a host of the bound Gateway's servers.", "IST0132"),
    LintRule("FK114", "conflicting-mesh-hosts", Severity.ERROR, "Several mesh VirtualServices define one host",
         "VirtualServices bound to the mesh gateway with the same host (and export scope) merge unpredictably.",
         "IST0109"),
    LintRule("FK115", "unreachable-rule", Severity.WARNING, "VirtualService rule can never match",
         "An earlier rule has no match (catch-all) or already covers every match of this rule.", "IST0130"),
    LintRule("FK116", "ineffective-match", Severity.INFO, "VirtualService match duplicated or overlapped",
         "A match repeats, or is covered by a URI-prefix match of, an earlier rule.", "IST0131"),
    LintRule("FK117", "invalid-regex", Severity.ERROR, "StringMatch regex is not valid RE2",
         "Istio and Envoy use RE2: no backreferences or lookaround; Istio's validation rejects the object.",
         "IST0122"),
    LintRule("FK118", "jwt-claim-route-without-authn", Severity.ERROR,
         "JWT claim routing without a RequestAuthentication on the gateway",
         "@request.auth.claims headers only exist after a RequestAuthentication validated the token on the "
         "gateway pods.", "IST0149"),
    LintRule("FK119", "unauthenticated-header-routing", Severity.WARNING,
         "Tier or canary chosen by a client-controlled header",
         "Any client can set the header and pick the premium tier or the canary; bind the choice to a JWT claim."),
    LintRule("FK120", "weighted-route-to-empty-subset", Severity.WARNING,
         "Weighted route to a subset that can have zero endpoints",
         "While the subset has no endpoints its share of requests fails with 503 (UH)."),
    LintRule("FK121", "mirror-to-remote", Severity.WARNING, "Mirroring to another network or to a subset with no local "
         "endpoints", "Every mirrored generation crosses the east-west gateway and doubles GPU work far away."),
    LintRule("FK122", "per-try-timeout-cuts-generation", Severity.WARNING,
         "perTryTimeout shorter than the route timeout while retries cannot fire on it",
         "A per-try timeout during a generation ends the request with 504 unless retryOn retries 504s, so the "
         "route timeout is never reached."),
    LintRule("FK123", "gateway-skips-subsets", Severity.WARNING, "Gateway route bypasses a mesh subset split",
         "Requests entering through the gateway go to the host without the subset routing a mesh VirtualService "
         "defines for it.", "IST0140"),
    LintRule("FK201", "failover-without-outlier-detection", Severity.ERROR,
         "Locality failover without outlier detection",
         "failover/failoverPriority only take effect when outlierDetection can eject endpoints in the same "
         "traffic policy."),
    LintRule("FK202", "connection-pool-limits", Severity.WARNING, "Connection pool limits throttle LLM traffic",
         "Small concurrency limits queue or reject (503 UO) normal long-running generations; tiny timeouts "
         "break connections."),
    LintRule("FK203", "hash-defeated", Severity.WARNING, "Consistent hashing defeated by other settings",
         "Locality LB, weighted splits or hashing on the gateway's source IP break session/prefix-cache affinity."),
    LintRule("FK204", "maglev-table-size", Severity.ERROR, "Maglev tableSize missing or not prime",
         "Istio validation requires maglev.tableSize to be set, prime and below 5000011."),
    LintRule("FK205", "mtls-conflict", Severity.ERROR, "DestinationRule TLS mode conflicts with PeerAuthentication",
         "Plaintext toward a STRICT workload, or Istio mTLS toward a DISABLE workload, fails every connection."),
    LintRule("FK206", "tls-without-ca", Severity.WARNING, "DestinationRule TLS SIMPLE/MUTUAL without caCertificates",
         "The server certificate is not verified.", "IST0128"),
    LintRule("FK207", "port-tls-without-ca", Severity.WARNING,
         "Port-level TLS SIMPLE/MUTUAL without caCertificates", "The server certificate is not verified on "
         "that port.", "IST0129"),
    LintRule("FK208", "subset-selects-no-pods", Severity.ERROR, "DestinationRule subset selects no workload",
         "Requests routed to the subset fail with 503 (UH).", "IST0173"),
    LintRule("FK209", "unknown-destinationrule-host", Severity.WARNING,
         "DestinationRule host matches no Service or ServiceEntry", "The rule applies to nothing.", "IST0174"),
    LintRule("FK210", "failover-priority-lost-across-networks", Severity.WARNING,
         "failoverPriority on custom labels across networks",
         "Endpoints in another network are reached through the east-west gateway, which carries only the "
         "network and cluster labels, so custom labels never match them."),
    LintRule("FK301", "deprecated-field", Severity.WARNING, "Deprecated or removed field/value",
         "The field or value is deprecated upstream; use the replacement."),
    LintRule("FK302", "deprecated-api-version", Severity.WARNING, "Deprecated apiVersion",
         "A newer apiVersion is served; old versions get removed."),
    LintRule("FK401", "autoscale-on-cpu-memory", Severity.WARNING, "GPU inference autoscaled on CPU/memory",
         "CPU, memory and GPU framebuffer usage do not track vLLM load; scale on queue depth or KV-cache usage."),
    LintRule("FK402", "vllm-metric-removed", Severity.ERROR, "Autoscaler or alert uses a metric vLLM removed",
         "The series no longer exists; queries return nothing (KEDA then treats it as 0)."),
    LintRule("FK403", "vllm-metric-unknown", Severity.WARNING, "Unknown vllm: metric",
         "The name is not a metric vLLM is known to export (typo?)."),
    LintRule("FK404", "keda-scale-to-zero", Severity.WARNING, "ScaledObject can scale to zero",
         "minReplicaCount defaults to 0; a cold start reloads model weights (minutes)."),
    LintRule("FK405", "duplicate-autoscaler", Severity.ERROR, "Several autoscalers target one workload",
         "KEDA creates its own HPA; two HPAs on one Deployment fight over the replica count."),
    LintRule("FK406", "scaler-query-not-one-workload", Severity.WARNING,
         "Autoscaler query does not select its own Deployment",
         "The query filters only on labels several Deployments share, so each autoscaler sees their combined "
         "load."),
    LintRule("FK501", "gateway-selects-no-workload", Severity.ERROR, "Gateway selector matches no pod",
         "No gateway workload in the input carries the selector's labels.", "IST0101"),
    LintRule("FK502", "gateway-port-not-on-service", Severity.WARNING, "Gateway port not exposed by the gateway Service",
         "The port is not a (target) port of any Service selecting the gateway pods.", "IST0162"),
    LintRule("FK503", "credential-not-found", Severity.ERROR, "Gateway credentialName secret not found",
         "The TLS server has no certificate and the listener fails.", "IST0101"),
    LintRule("FK504", "invalid-gateway-credential", Severity.ERROR, "Gateway credential secret is invalid",
         "Missing tls.crt/tls.key, unparsable or expired certificate.", "IST0161"),
    LintRule("FK505", "conflicting-gateways", Severity.ERROR, "Gateways conflict on selector, port and host",
         "Two Gateways on the same workload selector and port claim the same host.", "IST0145"),
    LintRule("FK506", "duplicate-certificate", Severity.WARNING, "One certificate on several gateways",
         "HTTP/2 connection reuse across the gateways can return 404s.", "IST0138"),
    LintRule("FK507", "serviceentry-addresses-required", Severity.WARNING,
         "ServiceEntry TCP port without addresses", "Without addresses, TCP traffic to the host cannot be "
         "told apart by destination and is not matched.", "IST0134"),
    LintRule("FK508", "conflicting-serviceentry-protocol", Severity.WARNING,
         "ServiceEntries give one host and port different protocols", "The protocol Istio uses is undefined.",
         "IST0177"),
    LintRule("FK509", "authz-no-matching-workload", Severity.WARNING, "AuthorizationPolicy matches no workload",
         "No in-mesh pod in the input matches the policy's selector/namespace.", "IST0127"),
    LintRule("FK510", "authz-namespace-not-found", Severity.ERROR, "AuthorizationPolicy names a namespace that does not "
         "exist", "A source namespace the policy allows or denies is in no object of the input.", "IST0101"),
    LintRule("FK511", "selector-matches-no-pod", Severity.ERROR, "Sidecar/Telemetry selector matches no pod",
         "The resource applies to no workload in its namespace.", "IST0101"),
    LintRule("FK512", "conflicting-workload-selectors", Severity.ERROR,
         "Several Sidecars/Telemetries select one pod", "Which one applies is undefined.", "IST0110"),
    LintRule("FK513", "several-without-selector", Severity.ERROR,
         "Several namespace-wide Sidecars/Telemetries in one namespace", "Which one applies is undefined.",
         "IST0111"),
    LintRule("FK514", "port-name-convention", Severity.INFO, "Service port name does not name a protocol",
         "Istio falls back to protocol sniffing for the port.", "IST0118"),
    LintRule("FK515", "external-name-port", Severity.WARNING, "ExternalName Service port name is invalid",
         "TCP traffic to the port may not be forwarded.", "IST0150"),
    LintRule("FK516", "proxy-uid", Severity.WARNING, "Application runs as UID 1337",
         "UID 1337 is the sidecar's; its traffic bypasses the mesh redirection.", "IST0144"),
    LintRule("FK517", "envoyfilter-relative-operation", Severity.WARNING,
         "EnvoyFilter relative patch without priority", "The patch may not apply, or stop applying after an "
         "upgrade.", "IST0151"),
    LintRule("FK518", "envoyfilter-operation-ignored", Severity.ERROR, "EnvoyFilter operation invalid for applyTo",
         "The patch is ignored.", "IST0152"),
    LintRule("FK519", "selector-on-kubernetes-gateway", Severity.WARNING,
         "Policy selects a Kubernetes Gateway by labels", "Policies for Gateway API gateways need targetRef; the "
         "selector is ineffective.", "IST0166"),
    LintRule("FK520", "service-protocol-conflict", Severity.WARNING,
         "Services selecting one Deployment give a port different protocols",
         "The sidecar cannot serve one port with two protocols.", "IST0116"),
    LintRule("FK521", "service-target-port-conflict", Severity.WARNING,
         "Services selecting one Deployment map a targetPort from different ports",
         "Two Services reaching one targetPort must use the same port.", "IST0137"),
)  # fmt: skip

RULES_BY_SLUG: dict[str, LintRule] = {r.slug: r for r in RULES.values()}


def rule_for(name: str) -> LintRule | None:
    """Look a rule up by id (``FK105``, case-insensitive) or slug (``unsafe-retry``)."""
    return RULES.get(name.strip().upper()) or RULES_BY_SLUG.get(name.strip().lower())


#: retryOn conditions that only fire before vLLM could have started a generation (see runbooks/lint.md).
DEFAULT_SAFE_RETRY_ON: frozenset[str] = frozenset(
    {
        "connect-failure",  # TCP connect failed: request never sent
        "refused-stream",  # HTTP/2 REFUSED_STREAM: server did not process the stream
        "reset-before-request",  # reset before the request was fully sent
        "envoy-ratelimited",  # rejected locally by Envoy's rate limiter
        "unavailable",  # gRPC UNAVAILABLE (Istio default; only for gRPC responses)
        "cancelled",  # gRPC CANCELLED (Istio default; only for gRPC responses)
        "retriable-status-codes",  # the token alone adds no codes; listed codes are checked separately
        "503",  # upstream answered "unavailable" before processing
        "429",  # rejected as too many requests before processing
    }
)

GPU_RESOURCES: tuple[str, ...] = ("nvidia.com/gpu", "amd.com/gpu")


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        parsed = parse_duration(value)
        if parsed is None:
            raise ValueError(f"{value!r} is not a duration such as '60s', '1m30s' or '500ms'")
        value = parsed
    elif isinstance(value, int | float) and not isinstance(value, bool):
        value = timedelta(seconds=value)
    if isinstance(value, timedelta) and value < timedelta(0):
        raise ValueError("a duration of 0 or more is needed, not a negative one")
    return value


class LintConfig(BaseModel):
    """Tunable thresholds. Defaults suit LLM generation behind Istio; every field can be set from a YAML
    file (``fleetkit lint --config``) and the main ones from CLI flags (flag > file > default).
    Durations accept Go-style strings (``90s``, ``2m``) or seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_validation: bool = Field(
        default=True, description="Validate every object against its schema (FK001)."
    )
    min_timeout: timedelta = Field(
        default=timedelta(seconds=60), description="Smallest acceptable VirtualService route timeout (FK107)."
    )
    min_per_try_timeout: timedelta = Field(
        default=timedelta(seconds=30), description="Smallest acceptable retries.perTryTimeout (FK107)."
    )
    min_connect_timeout: timedelta = Field(
        default=timedelta(seconds=1),
        description="Smallest acceptable connectionPool.tcp.connectTimeout (FK202).",
    )
    min_http_idle_timeout: timedelta = Field(
        default=timedelta(seconds=10),
        description="Smallest acceptable connectionPool.http.idleTimeout (FK202).",
    )
    min_concurrency: int = Field(
        default=32,
        ge=1,
        description="Floor for tcp.maxConnections and http.http2MaxRequests, per client proxy (FK202).",
    )
    min_pending_requests: int = Field(
        default=8, ge=1, description="Floor for http.http1MaxPendingRequests (FK202)."
    )
    cluster_domain: str = Field(
        default="cluster.local", description="Kubernetes cluster domain shared by the mesh."
    )
    root_namespace: str = Field(
        default="istio-system", description="Istio root namespace (mesh-wide policies)."
    )
    default_namespace: str = Field(
        default="default", description="Namespace assumed for objects that name none."
    )
    safe_retry_on: frozenset[str] = Field(
        default=DEFAULT_SAFE_RETRY_ON, description="retryOn tokens FK105 accepts."
    )
    gpu_resources: tuple[str, ...] = Field(
        default=GPU_RESOURCES, description="Extended resources that mark GPU pods."
    )
    disable: frozenset[str] = Field(default=frozenset(), description="Rule ids or slugs not to run.")
    severity: dict[str, Severity] = Field(default_factory=dict, description="Per-rule severity overrides.")

    _parse_durations = field_validator(
        "min_timeout", "min_per_try_timeout", "min_connect_timeout", "min_http_idle_timeout", mode="before"
    )(_duration)

    @field_validator("disable", mode="after")
    @classmethod
    def _known_disabled(cls, value: frozenset[str]) -> frozenset[str]:
        unknown = sorted(v for v in value if rule_for(v) is None)
        if unknown:
            raise ValueError(f"unknown rule(s): {', '.join(unknown)}")
        return frozenset(r.id for v in value if (r := rule_for(v)) is not None)

    @field_validator("severity", mode="after")
    @classmethod
    def _known_severity(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        out = {}
        for name, sev in value.items():
            rule = rule_for(name)
            if rule is None:
                raise ValueError(f"unknown rule {name!r}")
            out[rule.id] = sev
        return out

    def enabled(self, rule_id: str) -> bool:
        return rule_id not in self.disable

    def severity_of(self, rule_id: str, default: Severity) -> Severity:
        return self.severity.get(rule_id, default)
