"""Shared types for the typed serving policies: durations, names, labels and manifest helpers.

This package is pure: it never imports ``pulumi``, so rendering, linting and reviewing work with no
engine and no credentials.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer

#: Label keys the kit puts on model pods and uses in subsets, selectors and failover priority.
LABEL_APP = "app"
LABEL_VERSION = "version"
LABEL_MODEL = "fleetkit.dev/model"
LABEL_GPU_CLASS = "fleetkit.dev/gpu-class"
LABEL_TIER = "fleetkit.dev/tier"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "fleetkit"

#: Port every vLLM server listens on (``vllm serve --port``) and the Service exposes.
MODEL_PORT = 8000

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class FieldError(ValueError):
    """A rule a model validator checks across fields, broken at a field of that model.

    ``at`` lists the candidate places, each ``(path relative to the model, value there)``: the loader
    reports the problem at the candidate whose value the highest-precedence source wrote (of
    ``min_size: 5`` in the stack file and ``--set node_pools.l4.max_size=2``, the flag introduced the
    conflict), else at the first one, with that value. Pydantic keeps the raised exception in the
    error's ``ctx`` (``ctx.error``), which is how the loader finds it.
    """

    def __init__(self, message: str, *at: tuple[str | tuple[Any, ...], Any]) -> None:
        super().__init__(message)
        self.at: tuple[tuple[tuple[Any, ...], Any], ...] = tuple(
            ((p,) if isinstance(p, str) else tuple(p), v) for p, v in at
        )


class StrictModel(BaseModel):
    """Base for every spec/policy model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_name(value: str) -> str:
    if not isinstance(value, str) or len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or "
            "digit, at most 63 characters"
        )
    return value


#: A stable key (model, pool, tier, route, subset …): a DNS-1123 label, because keys become resource
#: and object names.
Name = Annotated[str, AfterValidator(_check_name)]


def parse_duration(value: Any) -> timedelta:
    """Parse an Istio/Go style duration (``250ms``, ``30s``, ``5m``, ``1h30m``) or seconds as a number."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("must be a duration such as '30s', '5m' or '250ms'")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("must not be negative")
        return timedelta(seconds=float(value))
    if not isinstance(value, str) or not value:
        raise ValueError("must be a duration such as '30s', '5m' or '250ms'")
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(value):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(value):
        raise ValueError(f"invalid duration {value!r}: use a number with a unit h, m, s or ms, e.g. '30s'")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """Render a duration the way Istio and KEDA accept it: whole seconds as ``Ns``, else ``Nms``."""
    ms = round(value.total_seconds() * 1000)
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


#: A policy's settings in words, one row per setting: label -> value, in reading order. Each policy's
#: ``describe_rows()`` returns them (every field it has, so a review that compares two sides row by row
#: misses no change) next to its one-line ``describe()``; both are the policy's own words.
Rows = dict[str, str]


def words(value: object) -> str:
    """A setting's value in words: ``none`` for unset, ``yes``/``no``, durations as ``30s``, lists joined."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(words(v) for v in value) if value else "none"
    return str(value)


def keyed_rows(items: Iterable[tuple[str, str]]) -> Rows:
    """Rows from (label, words) pairs; a label seen again is numbered (``#2``) so no row hides another."""
    rows: Rows = {}
    for label, text in items:
        key, n = label, 1
        while key in rows:
            n += 1
            key = f"{label} #{n}"
        rows[key] = text
    return rows


def _positive_duration(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be greater than zero")
    return value


#: A duration in the spec: written as ``30s``/``5m``/``250ms``, carried as ``timedelta``.
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    AfterValidator(_positive_duration),
    PlainSerializer(format_duration, return_type=str),
]


def is_prime(n: int) -> bool:
    """Istio requires a prime maglev table size."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def seconds(value: timedelta) -> int:
    return int(value.total_seconds())


def metadata(
    name: str,
    namespace: str | None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name}
    if namespace:
        md["namespace"] = namespace
    merged = {LABEL_MANAGED_BY: MANAGED_BY, **(labels or {})}
    md["labels"] = dict(sorted(merged.items()))
    if annotations:
        md["annotations"] = dict(sorted(annotations.items()))
    return md


def service_host(service: str, namespace: str, cluster_domain: str = "cluster.local") -> str:
    """The mesh-wide FQDN of a model service (namespace sameness makes it one host in every cluster)."""
    return f"{service}.{namespace}.svc.{cluster_domain}"


def manifest_key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    """Stable sort key for manifests: apiVersion, kind, namespace, name."""
    md = obj.get("metadata", {})
    return (obj.get("apiVersion", ""), obj.get("kind", ""), md.get("namespace", ""), md.get("name", ""))
