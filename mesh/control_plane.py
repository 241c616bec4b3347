"""Istio's official Helm charts as ``pulumi_kubernetes`` Helm releases.

A :class:`mesh.render.HelmReleasePlan` says what to install; :func:`helm_release` installs it from
the Istio chart repository at the plan's pinned version. A ``helm.v3.Release`` is one resource in
Pulumi's state (with its values), and Helm itself waits for the release's resources.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mesh.render import ISTIO_CHART_REPO, HelmReleasePlan
from policies.merge import deep_merge


def helm_release(
    name: str,
    plan: HelmReleasePlan,
    opts: pulumi.ResourceOptions,
    extra_values: Mapping[str, Any] | None = None,
) -> k8s.helm.v3.Release:
    """Install ``plan`` as a Helm release; ``extra_values`` (escape hatch) merge over the plan's values."""
    values = deep_merge(plan.values, dict(extra_values)) if extra_values else plan.values
    return k8s.helm.v3.Release(
        name,
        name=plan.release,
        chart=plan.chart,
        version=plan.version,
        namespace=plan.namespace,
        create_namespace=False,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=ISTIO_CHART_REPO),
        values=values,
        timeout=plan.timeout,
        atomic=False,
        cleanup_on_fail=False,
        opts=opts,
    )
