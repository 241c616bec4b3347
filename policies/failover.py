"""Locality failover across zones, regions, clusters and clouds.

Two forms, as Istio offers:

* ``priority`` (default): an ordered list of topology labels (``failoverPriority``). The default
  ``[topology.istio.io/network, topology.istio.io/cluster, topology.kubernetes.io/region,
  topology.kubernetes.io/zone]`` keeps traffic in the caller's network, then cluster, region and zone
  and spills to the next level only when the closer endpoints are unhealthy. These labels are
  cloud-neutral, which matters because region names differ per cloud (``us-east-1``, ``us-east1``,
  ``eastus``).
* ``regions``: an ordered chain of provider region names; traffic from region *i* fails over to
  region *i+1* (literal provider names, as ``failover.from/to`` require). ``priority_labels`` may add
  non-locality labels (e.g. network) in this form.

Failover is always rendered together with outlier detection (from the resilience policy's circuit
breaker, on the same DestinationRule): Istio accepts locality failover without it but never fails
over (it only warns). A policy set that enables failover while a model's circuit breaker disables
ejection is rejected (``PolicySet`` checks it, rule ``failover.needs-outlier-detection``).
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Literal

from pydantic import Field, model_validator

from policies.common import StrictModel

LOCALITY_LABELS = (
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
)
DEFAULT_PRIORITY = (
    "topology.istio.io/network",
    "topology.istio.io/cluster",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
)
_REGION = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
_LABEL_KEY = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?(=[-A-Za-z0-9_.]*)?$")


class FailoverPolicy(StrictModel):
    mode: Literal["priority", "regions"] = "priority"
    priority_labels: list[str] = Field(default_factory=lambda: list(DEFAULT_PRIORITY))
    regions: list[str] = Field(default_factory=list, description="ordered region chain (mode: regions)")

    @model_validator(mode="after")
    def _consistent(self) -> FailoverPolicy:
        for label in self.priority_labels:
            if not _LABEL_KEY.match(label):
                raise ValueError(f"priority label {label!r} is not a valid label key (optionally key=value)")
        if len(set(self.priority_labels)) != len(self.priority_labels):
            raise ValueError("priority_labels lists a label twice")
        if self.mode == "regions":
            if len(self.regions) < 2:
                raise ValueError("mode regions needs an ordered chain of at least two regions")
            for region in self.regions:
                if not _REGION.match(region) or "/" in region or "*" in region:
                    raise ValueError(
                        f"region {region!r} must be a plain provider region name (no '/' or '*')"
                    )
            if len(set(self.regions)) != len(self.regions):
                raise ValueError("regions lists a region twice")
            bad = [lbl for lbl in self.priority_labels if lbl.split("=")[0] in LOCALITY_LABELS]
            if bad and "priority_labels" in self.model_fields_set:
                raise ValueError(
                    f"with mode regions, priority_labels may not contain locality labels {bad} (Istio rejects it)"
                )
        elif self.regions:
            raise ValueError("regions only applies to mode: regions")
        elif not self.priority_labels:
            raise ValueError("mode priority needs at least one priority label")
        return self

    def effective_priority_labels(self) -> list[str]:
        if self.mode == "regions":
            return [lbl for lbl in self.priority_labels if lbl.split("=")[0] not in LOCALITY_LABELS]
        return list(self.priority_labels)

    def describe(self) -> str:
        """``priority network > cluster > region > zone`` or ``regions us-east-1 > us-west-2 (priority …)``
        (topology label prefixes dropped)."""
        if self.mode == "regions":
            extra = self.effective_priority_labels()
            text = "regions " + " > ".join(self.regions)
            return text + (f" (priority {' > '.join(_short(x) for x in extra)})" if extra else "")
        return "priority " + " > ".join(_short(x) for x in self.priority_labels)

    def locality_lb_setting(self, extra_priority: list[str] | None = None) -> dict[str, object]:
        """``loadBalancer.localityLbSetting``; ``extra_priority`` labels go first (fallback chains)."""
        setting: dict[str, object] = {"enabled": True}
        prio = [*(extra_priority or []), *self.effective_priority_labels()]
        if self.mode == "regions":
            setting["failover"] = [{"from": a, "to": b} for a, b in pairwise(self.regions)]
        if prio:
            setting["failoverPriority"] = prio
        return setting


_SHORT_PREFIXES = ("topology.istio.io/", "topology.kubernetes.io/")


def _short(label: str) -> str:
    for prefix in _SHORT_PREFIXES:
        if label.startswith(prefix):
            return label[len(prefix) :]
    return label


def describe(policy: FailoverPolicy | None) -> str:
    """A stack's failover in words; ``off`` when it has none."""
    return "off" if policy is None else policy.describe()
