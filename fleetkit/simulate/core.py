"""Requests and outcomes: the simulator's vocabulary."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: reasons an error outcome carries (the issue's vocabulary)
NO_ROUTE = "no route"
UNKNOWN_MODEL = "unknown model"
NO_ENDPOINTS = "no endpoints"
ALL_EJECTED = "all endpoints ejected"
FAILING_ENDPOINT = "failing endpoint not ejected"
CIRCUIT_OPEN = "circuit open"
RATE_LIMITED = "429 rate limited"
MODEL_NOT_SERVED = "model not served by pod"
INGRESS_DOWN = "ingress cluster down"
BAD_REQUEST = "bad request"


@dataclass(frozen=True, order=True)
class Outcome:
    """Where one request ends: served by a pod, or an error with its HTTP status and reason."""

    kind: str  # served | error
    cluster: str = ""
    model: str = ""
    version: str = ""
    gpu: str = ""
    #: the pod answered under a name it is not (vLLM accepted an alias of another model)
    substitute: bool = False
    status: int = 0
    reason: str = ""

    @classmethod
    def served(cls, cluster: str, model: str, version: str, gpu: str, substitute: bool = False) -> Outcome:
        return cls("served", cluster, model, version, gpu, substitute)

    @classmethod
    def error(cls, status: int, reason: str) -> Outcome:
        return cls("error", status=status, reason=reason)

    @property
    def ok(self) -> bool:
        return self.kind == "served"

    def label(self) -> str:
        if self.kind == "error":
            return f"{self.status} {self.reason}"
        where = (
            f"{self.model}{'@' + self.version if self.version else ''} {self.gpu or '?'} in {self.cluster}"
        )
        return where + (" (as another model)" if self.substitute else "")

    def to_dict(self) -> dict[str, object]:
        if self.kind == "error":
            return {"kind": "error", "status": self.status, "reason": self.reason}
        return {
            "kind": "served",
            "cluster": self.cluster,
            "model": self.model,
            "version": self.version,
            "gpu": self.gpu,
            "substitute": self.substitute,
        }


Distribution = dict[Outcome, float]


def merge(parts: Iterable[tuple[float, Mapping[Outcome, float]]]) -> Distribution:
    """The mixture of several distributions, each taken with its probability."""
    out: Distribution = {}
    for p, dist in parts:
        if p <= 0:
            continue
        for o, q in dist.items():
            out[o] = out.get(o, 0.0) + p * q
    return out


def rounded(dist: Mapping[Outcome, float], digits: int = 6) -> Distribution:
    """Probabilities rounded (deterministic output); outcomes below the last digit dropped."""
    out = {o: round(p, digits) for o, p in dist.items()}
    return {o: p for o, p in sorted(out.items(), key=lambda kv: (-kv[1], kv[0])) if p > 0}


@dataclass(frozen=True, eq=False)
class Request:
    """One request class: what a client sends and where it enters the mesh."""

    #: the OpenAI body's ``model`` (None: no body, e.g. GET /v1/models)
    model: str | None
    #: cluster whose ingress gateway receives the request
    origin: str
    path: str = "/v1/chat/completions"
    method: str = "POST"
    #: verified JWT claims (``tier``, ``cohort``, ``sub``, ``tenant`` …)
    claims: Mapping[str, str] = field(default_factory=dict)
    #: headers the client sends itself (forged routing headers included)
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: bool = False
    #: zone of the ingress gateway pod (locality of the proxy); "" unknown
    zone: str = ""
    #: host header; None: the first host the gateway routes
    host: str | None = None
    #: in-flight requests of this class at one gateway replica (circuit breakers); 0: not modelled
    concurrency: float = 0.0
    #: requests/s of this class at one gateway replica (local rate limits); 0: not modelled
    rate: float = 0.0

    def describe(self) -> str:
        tier = self.claims.get("tier")
        parts = [f"{self.model or '(no model)'}"]
        if tier:
            parts.append(tier)
        if self.headers:
            parts.append("headers " + ",".join(f"{k}={v}" for k, v in sorted(self.headers.items())))
        parts.append(f"from {self.origin}")
        return " ".join(parts)

    def key(self) -> str:
        tier = self.claims.get("tier", "-")
        extra = "".join(f";{k}={v}" for k, v in sorted(self.headers.items()))
        return f"{self.origin}|{self.model or '-'}|{tier}{extra}"
