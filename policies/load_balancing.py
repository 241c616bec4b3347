"""Load balancing toward model pods.

* ``least_request`` (default): the right choice for LLM serving, where request cost varies by orders
  of magnitude; Istio's ``LEAST_CONN`` is deprecated in its favour.
* ``consistent_hash`` on a header or cookie keeps a session on one replica so vLLM's prefix
  (KV) cache is reused. Istio warns that consistent hashing and locality load balancing only work
  together when all proxies are in one locality; failover still applies when a replica is ejected.
* ``gpu_weights``: hardware-aware weighting across GPU classes. Routes to a model without an
  explicit ``gpu_class`` are split into per-GPU-class subsets with these relative weights (weights
  live on the VirtualService route; DestinationRule subsets carry no weight).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fleetkit.issue import MISSING
from policies.common import Duration, FieldError, Name, Rows, StrictModel, format_duration, is_prime, words
from policies.merge import merged_model


class HashCookie(StrictModel):
    name: str = Field(min_length=1)
    ttl: Duration | None = None
    path: str | None = None

    def describe(self) -> str:
        """``cookie session (ttl 3600s, path /)``."""
        extra = [
            f"ttl {format_duration(self.ttl)}" if self.ttl is not None else "",
            f"path {self.path}" if self.path else "",
        ]
        details = ", ".join(x for x in extra if x)
        return f"cookie {self.name}" + (f" ({details})" if details else "")


class HashOn(StrictModel):
    """Exactly one hash key: a request header or a cookie."""

    header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$")
    cookie: HashCookie | None = None

    @model_validator(mode="after")
    def _one(self) -> HashOn:
        if (self.header is None) == (self.cookie is None):
            raise FieldError(
                "set exactly one of header or cookie", ("cookie", "cookie"), ("header", self.header)
            )
        return self

    def describe(self) -> str:
        """``header x-session`` or ``cookie session (ttl 3600s, path /)``."""
        if self.cookie is not None:
            return self.cookie.describe()
        return f"header {self.header}"


class LoadBalancerSpec(StrictModel):
    algorithm: Literal["least_request", "round_robin", "random", "consistent_hash"] = "least_request"
    hash_on: HashOn | None = None
    hash_algorithm: Literal["ring_hash", "maglev"] = "ring_hash"
    ring_minimum_size: int | None = Field(default=None, ge=1, le=8_388_608)
    maglev_table_size: int | None = Field(
        default=None, description="Istio requires it set, prime and < 5000011 when maglev is used"
    )
    warmup: Duration | None = Field(default=None, description="slow-start window for new replicas")
    gpu_weights: dict[Name, int] = Field(
        default_factory=dict, description="relative traffic share per GPU class, e.g. {h100: 3, l4: 1}"
    )

    @model_validator(mode="after")
    def _consistent(self) -> LoadBalancerSpec:
        if self.algorithm == "consistent_hash" and self.hash_on is None:
            raise FieldError(
                "consistent_hash needs hash_on (a header or a cookie)", ("algorithm", self.algorithm)
            )
        if self.algorithm != "consistent_hash" and self.hash_on is not None:
            raise FieldError(
                f"hash_on only applies to consistent_hash, not {self.algorithm}",
                ("hash_on", "hash_on"),
                ("algorithm", self.algorithm),
            )
        if self.algorithm == "consistent_hash" and self.hash_algorithm == "maglev":
            size = self.maglev_table_size
            if size is None or not is_prime(size) or size >= 5_000_011:
                raise FieldError(
                    "maglev needs maglev_table_size set to a prime below 5000011 (e.g. 65537)",
                    ("maglev_table_size", size if size is not None else MISSING),
                    ("hash_algorithm", self.hash_algorithm),
                )
        if self.algorithm == "consistent_hash" and self.warmup is not None:
            raise FieldError(
                "warmup only works with least_request, round_robin or random",
                ("warmup", "warmup"),
                ("algorithm", self.algorithm),
            )
        for gpu, w in self.gpu_weights.items():
            if w < 1:
                raise FieldError(
                    "a GPU weight must be at least 1 (leave a GPU class out instead of 0)",
                    (("gpu_weights", gpu), w),
                )
        return self

    def describe(self) -> str:
        """``least_request``, ``round_robin, GPU weights {'h100': 3, 'l4': 1}``."""
        weights = f", GPU weights {dict(sorted(self.gpu_weights.items()))}" if self.gpu_weights else ""
        return f"{self.algorithm}{weights}"

    def describe_rows(self) -> Rows:
        """Every setting in words (``algorithm``, ``hash on`` …, one ``GPU weight <class>`` row per class)."""
        rows: Rows = {
            "algorithm": self.algorithm,
            "hash on": self.hash_on.describe() if self.hash_on is not None else "none",
            "hash algorithm": self.hash_algorithm,
            "ring minimum size": words(self.ring_minimum_size),
            "maglev table size": words(self.maglev_table_size),
            "warmup": words(self.warmup),
        }
        rows.update({f"GPU weight {gpu}": str(w) for gpu, w in sorted(self.gpu_weights.items())})
        return rows

    def render(self) -> dict[str, object]:
        """The ``trafficPolicy.loadBalancer`` fragment (locality settings are added by failover)."""
        if self.algorithm == "consistent_hash":
            assert self.hash_on is not None
            ch: dict[str, object] = {}
            if self.hash_on.header:
                ch["httpHeaderName"] = self.hash_on.header
            elif self.hash_on.cookie:
                cookie: dict[str, object] = {"name": self.hash_on.cookie.name}
                if self.hash_on.cookie.ttl is not None:
                    cookie["ttl"] = format_duration(self.hash_on.cookie.ttl)
                if self.hash_on.cookie.path:
                    cookie["path"] = self.hash_on.cookie.path
                ch["httpCookie"] = cookie
            if self.hash_algorithm == "maglev":
                ch["maglev"] = {"tableSize": self.maglev_table_size}
            elif self.ring_minimum_size is not None:
                ch["ringHash"] = {"minimumRingSize": self.ring_minimum_size}
            return {"consistentHash": ch}
        out: dict[str, object] = {"simple": self.algorithm.upper()}
        if self.warmup is not None:
            out["warmup"] = {"duration": format_duration(self.warmup)}
        return out


class LoadBalancingPolicy(StrictModel):
    """A fleet default plus per-model overrides (an override is merged over the default)."""

    default: LoadBalancerSpec = LoadBalancerSpec()
    models: dict[Name, LoadBalancerSpec] = Field(default_factory=dict)

    def for_model(self, model: str) -> LoadBalancerSpec:
        return merged_model(LoadBalancerSpec, self.default, self.models.get(model))

    def describe(self) -> str:
        """``default least_request; llama-3-70b: round_robin, GPU weights {…}`` (overrides as merged)."""
        text = f"default {self.default.algorithm}"
        for name in sorted(self.models):
            text += f"; {name}: {self.for_model(name).describe()}"
        return text
