"""Resilience for LLM traffic: timeouts, safe retries, circuit breaking and fallback-model chains.

* ``timeout`` bounds a whole request including retries. Generations run for minutes, so the
  default is 600 s (Istio's own default is no timeout at all).
* No per-try timeout by default, and none shorter than the route timeout
  (``resilience.per-try-cuts-generation``): Envoy's per-try timeout bounds the first try too and is
  only ignored once the response has started, so ``perTryTimeout: 450s`` under ``timeout: 900s``
  ends a non-streaming generation at 450 s. Retries only happen on conditions where no generation
  started (below), which fail fast, so they need no per-try bound of their own.
* Retries replay a request, and a replayed POST to an LLM may re-run a generation that already
  consumed GPU time. Only conditions where the upstream never started work are allowed
  (:data:`SAFE_RETRY_ON`); ``attempts: 0`` renders Istio's "no retries" form (Istio otherwise
  applies its mesh default of 2 retries on every route).
* The circuit breaker renders ``connectionPool`` and ``outlierDetection`` with the current field names
  (``consecutive5xxErrors``/``consecutiveGatewayErrors``, never the deprecated ``consecutiveErrors``).
* ``fallback``: an ordered chain per model, e.g. ``llama-70b: [llama-8b]``. The chain is served through
  one extra Service (``<model>-fallback``) selecting the pods of every chain member; priority-based
  load balancing (``failoverPriority`` with explicit label values) puts the primary's pods at
  priority 0 and each fallback one level lower, so Envoy only sends traffic to a fallback when
  outlier detection has ejected (or there are no) healthy primary endpoints anywhere in the mesh.
  Fallback pods also answer to the primary's served model name (``--served-model-name``), so the
  request body needs no rewrite. Only one version of the primary serves the chain
  (``fallback_versions``, default ``v1``): a canary version never receives whole-model traffic.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, get_args

from pydantic import Field, model_validator

from policies.common import Duration, FieldError, Name, Rows, StrictModel, format_duration, words
from policies.merge import merged_model

RetryOn = Literal["connect-failure", "refused-stream", "reset-before-request", "unavailable", "cancelled"]
#: Retry conditions under which the upstream cannot have started generating.
SAFE_RETRY_ON: tuple[RetryOn, ...] = get_args(RetryOn)


class Retries(StrictModel):
    attempts: int = Field(default=1, ge=0, le=10, description="retries after the first try; 0 disables")
    per_try_timeout: Duration | None = Field(
        default=None,
        description="bounds every try, the first one too; unset (the default) lets the route timeout bound "
        "a generation; a value shorter than the route timeout is rejected",
    )
    retry_on: list[RetryOn] = Field(default_factory=lambda: list(SAFE_RETRY_ON[:4]))

    @model_validator(mode="after")
    def _consistent(self) -> Retries:
        if self.attempts > 0 and not self.retry_on:
            raise FieldError(
                "retry_on must list at least one condition when attempts > 0",
                ("retry_on", self.retry_on),
                ("attempts", self.attempts),
            )
        if len(set(self.retry_on)) != len(self.retry_on):
            raise FieldError("retry_on lists a condition twice", ("retry_on", self.retry_on))
        return self

    def render(self) -> dict[str, object]:
        if self.attempts == 0:
            return {"attempts": 0}
        out: dict[str, object] = {"attempts": self.attempts, "retryOn": ",".join(self.retry_on)}
        if self.per_try_timeout is not None:
            out["perTryTimeout"] = format_duration(self.per_try_timeout)
        return out


class CircuitBreaker(StrictModel):
    """Connection pool limits per upstream host plus outlier detection (ejection of bad replicas)."""

    max_connections: int = Field(default=1024, ge=1)
    max_pending_requests: int = Field(default=1024, ge=1, description="requests queued in Envoy waiting")
    max_requests: int = Field(default=1024, ge=1, description="concurrent requests to the model service")
    connect_timeout: Duration = timedelta(seconds=10)
    idle_timeout: Duration = timedelta(hours=1)
    consecutive_5xx_errors: int = Field(default=5, ge=0, description="0 disables 5xx-based ejection")
    consecutive_gateway_errors: int = Field(default=3, ge=0, description="502/503/504; 0 disables")
    interval: Duration = timedelta(seconds=10)
    base_ejection_time: Duration = timedelta(seconds=30)
    max_ejection_percent: int = Field(
        default=100, ge=0, le=100, description="100 lets a whole locality be ejected so failover can happen"
    )
    min_health_percent: int = Field(default=0, ge=0, le=100)

    def describe_rows(self) -> Rows:
        """The connection-pool limits and the outlier detection, one row per setting."""
        return {
            "max connections": str(self.max_connections),
            "max pending requests": str(self.max_pending_requests),
            "max requests": str(self.max_requests),
            "connect timeout": format_duration(self.connect_timeout),
            "idle timeout": format_duration(self.idle_timeout),
            "eject after consecutive 5xx": str(self.consecutive_5xx_errors),
            "eject after consecutive gateway errors": str(self.consecutive_gateway_errors),
            "ejection interval": format_duration(self.interval),
            "base ejection time": format_duration(self.base_ejection_time),
            "max ejection percent": f"{self.max_ejection_percent}%",
            "min health percent": f"{self.min_health_percent}%",
        }

    @property
    def ejects(self) -> bool:
        return self.consecutive_5xx_errors > 0 or self.consecutive_gateway_errors > 0

    def connection_pool(self) -> dict[str, object]:
        return {
            "tcp": {
                "maxConnections": self.max_connections,
                "connectTimeout": format_duration(self.connect_timeout),
            },
            "http": {
                "http1MaxPendingRequests": self.max_pending_requests,
                "http2MaxRequests": self.max_requests,
                "idleTimeout": format_duration(self.idle_timeout),
            },
        }

    def outlier_detection(self) -> dict[str, object]:
        out: dict[str, object] = {
            "consecutive5xxErrors": self.consecutive_5xx_errors,
            "interval": format_duration(self.interval),
            "baseEjectionTime": format_duration(self.base_ejection_time),
            "maxEjectionPercent": self.max_ejection_percent,
        }
        if self.consecutive_gateway_errors:
            out["consecutiveGatewayErrors"] = self.consecutive_gateway_errors
        if self.min_health_percent:
            out["minHealthPercent"] = self.min_health_percent
        return out


class ResilienceSpec(StrictModel):
    timeout: Duration = Field(default=timedelta(seconds=600), description="whole request, retries included")
    retries: Retries = Retries()
    circuit_breaker: CircuitBreaker = CircuitBreaker()

    def per_try_cuts_generation(self) -> bool:
        r = self.retries
        return bool(r.attempts) and r.per_try_timeout is not None and r.per_try_timeout < self.timeout

    def describe(self) -> str:
        """``timeout 600s, retries 2× (connect-failure, reset)``."""
        rows = self.describe_rows()
        return f"timeout {rows['timeout']}, retries {rows['retry attempts']}× ({rows['retry on']})"

    def describe_rows(self) -> Rows:
        """Every setting in words: timeout, retries, then the circuit breaker's rows."""
        r = self.retries
        return {
            "timeout": format_duration(self.timeout),
            "retry attempts": str(r.attempts),
            "retry on": words(r.retry_on),
            "per-try timeout": words(r.per_try_timeout),
            **{f"circuit breaker {k}": v for k, v in self.circuit_breaker.describe_rows().items()},
        }

    def per_try_message(self) -> str:
        r = self.retries
        assert r.per_try_timeout is not None
        return (
            f"per_try_timeout {format_duration(r.per_try_timeout)} is shorter than the route timeout "
            f"{format_duration(self.timeout)}: Envoy bounds the first try too, so a non-streaming generation "
            f"is cut at {format_duration(r.per_try_timeout)}; remove per_try_timeout (retries only happen "
            "before a generation starts)"
        )


class ResiliencePolicy(StrictModel):
    """A fleet default plus per-model overrides, and fallback chains keyed by primary model."""

    default: ResilienceSpec = ResilienceSpec()
    models: dict[Name, ResilienceSpec] = Field(default_factory=dict)
    fallback: dict[Name, list[Name]] = Field(
        default_factory=dict, description="primary model -> ordered fallback models"
    )
    fallback_versions: dict[Name, Name] = Field(
        default_factory=dict,
        description="primary model -> the version its chain serves (default v1); other versions, e.g. a canary, "
        "stay out of the chain so whole-model traffic never reaches them",
    )
    fallback_mode: Literal["same-served-name"] = "same-served-name"

    @model_validator(mode="after")
    def _chains(self) -> ResiliencePolicy:
        for primary, chain in self.fallback.items():
            if not chain:
                raise FieldError(
                    "a fallback chain is empty: list at least one fallback model",
                    (("fallback", primary), chain),
                )
            if primary in chain:
                raise FieldError(
                    f"the fallback chain of {primary!r} lists the primary itself",
                    (("fallback", primary, chain.index(primary)), primary),
                )
            if len(set(chain)) != len(chain):
                twice = next(j for j, m in enumerate(chain) if m in chain[:j])
                raise FieldError(
                    f"the fallback chain of {primary!r} lists {chain[twice]!r} twice",
                    (("fallback", primary, twice), chain[twice]),
                )
        for primary in self.fallback_versions:
            if primary not in self.fallback:
                raise FieldError(
                    f"{primary!r} has no fallback chain (fallback.{primary})",
                    (("fallback_versions", primary), primary),
                )
        return self

    def for_model(self, model: str) -> ResilienceSpec:
        return merged_model(ResilienceSpec, self.default, self.models.get(model))

    def longest_timeout(self) -> timedelta:
        """The longest route timeout of any model (what idle timeouts on the path must allow)."""
        return max([self.default.timeout, *(self.for_model(m).timeout for m in self.models)])

    def chain(self, primary: str) -> list[str]:
        """The full ordered chain, primary first."""
        return [primary, *self.fallback.get(primary, [])]

    def chain_text(self, primary: str) -> str:
        """``llama-3-70b > llama-3-8b``: the chain in order, primary first."""
        return " > ".join(self.chain(primary))

    def describe(self) -> str:
        """The default's timeout and retries, then every fallback chain."""
        text = self.default.describe()
        if self.fallback:
            text += "; fallback " + "; ".join(self.chain_text(k) for k in sorted(self.fallback))
        return text

    def chain_version(self, primary: str) -> str:
        """The primary's version that serves its chain (other versions are canaries outside it)."""
        return self.fallback_versions.get(primary, "v1")

    def chains_of(self, model: str) -> list[tuple[str, int]]:
        """(primary, rank) for every chain the model belongs to (rank 0 = primary)."""
        out = []
        for primary in sorted(self.fallback):
            chain = self.chain(primary)
            if model in chain:
                out.append((primary, chain.index(model)))
        return out
