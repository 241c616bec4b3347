"""Analyzers. Each takes the :class:`~fleetkit.lint.index.Index` of every linted object and yields hits."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fleetkit.lint.checks import (
    autoscaling,
    deprecations,
    gateways,
    istio_config,
    istio_extra,
    istio_matches,
    istio_routes,
    llm_routing,
    routing,
    scaler_queries,
    security,
    traffic,
)
from fleetkit.lint.index import Hit, Index

Check = Callable[[Index], Iterable[Hit]]

ALL_CHECKS: list[Check] = [
    *routing.CHECKS,
    *traffic.CHECKS,
    *security.CHECKS,
    *deprecations.CHECKS,
    *autoscaling.CHECKS,
    *istio_routes.CHECKS,
    *istio_matches.CHECKS,
    *istio_config.CHECKS,
    *istio_extra.CHECKS,
    *gateways.CHECKS,
    *llm_routing.CHECKS,
    *scaler_queries.CHECKS,
]
