"""Analyzers. Each takes the :class:`~fleetkit.lint.index.Index` of every linted object and yields hits."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fleetkit.lint.checks import autoscaling, deprecations, routing, security, traffic
from fleetkit.lint.index import Hit, Index

Check = Callable[[Index], Iterable[Hit]]

ALL_CHECKS: list[Check] = [
    *routing.CHECKS,
    *traffic.CHECKS,
    *security.CHECKS,
    *deprecations.CHECKS,
    *autoscaling.CHECKS,
]
