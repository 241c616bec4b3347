"""The full set of serving policies of a stack, their cross-reference checks and their rendering."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from fleetkit.issue import Issue
from policies.autoscaling import AutoscalingPolicy
from policies.common import StrictModel, manifest_key
from policies.context import RenderContext
from policies.edge import EdgePolicy, render_edge
from policies.failover import FailoverPolicy
from policies.fallback_rewrite import render_fallback_rewrites
from policies.load_balancing import LoadBalancingPolicy
from policies.qos import QosPolicy
from policies.resilience import ResiliencePolicy
from policies.routing import Destination, Mirror, RoutingPolicy
from policies.security import SecurityPolicy
from policies.serving_rules import serving_issues
from policies.telemetry import TelemetryPolicy
from policies.traffic import render_traffic


class PolicySet(StrictModel):
    routing: RoutingPolicy
    load_balancing: LoadBalancingPolicy = LoadBalancingPolicy()
    resilience: ResiliencePolicy = ResiliencePolicy()
    qos: QosPolicy | None = None
    failover: FailoverPolicy | None = Field(default_factory=FailoverPolicy)
    autoscaling: AutoscalingPolicy = AutoscalingPolicy()
    security: SecurityPolicy = SecurityPolicy(require_jwt=False)
    edge: EdgePolicy = EdgePolicy()
    telemetry: TelemetryPolicy = TelemetryPolicy()

    def _fallback_cycles(self) -> list[Issue]:
        """A fallback chain that leads back to its primary (``a: [b]``, ``b: [a]``): when both fail each
        would send its traffic to the other. Reported once per cycle, at its first primary by name."""
        chains = self.resilience.fallback
        issues: list[Issue] = []
        seen: set[frozenset[str]] = set()
        for primary in sorted(chains):
            stack: list[list[str]] = [[primary, m] for m in chains[primary]]
            while stack:
                path = stack.pop()
                if path[-1] == primary:
                    cycle = frozenset(path)
                    if cycle not in seen:
                        seen.add(cycle)
                        issues.append(
                            Issue(
                                ("resilience", "fallback", primary),
                                "resilience.fallback-cycle",
                                f"fallback chains form a cycle: {' -> '.join(path)}",
                                path[1],
                            )
                        )
                    continue
                if path[-1] in path[:-1]:
                    continue
                stack.extend([*path, m] for m in chains.get(path[-1], []))
        return issues

    # ------------------------------------------------------------------ checks
    def check(self, ctx: RenderContext) -> list[Issue]:
        """References to models, versions, GPU classes, tiers and regions, and cross-policy rules."""
        issues = [
            *self._destination_issues(ctx),
            *self._route_issues(),
            *self._match_issues(ctx),
            *self._model_reference_issues(ctx),
            *self._fallback_cycles(),
            *self._fallback_reference_issues(ctx),
            *self._failover_issues(ctx),
            *self._window_issues(ctx),
            *self._fallback_split_issues(),
            *self._empty_subset_issues(ctx),
            *self._mirror_capacity_issues(ctx),
            *serving_issues(self, ctx),
        ]
        # de-duplicate (the same bad key can be reported by two sections)
        seen, unique = set(), []
        for issue in issues:
            key = (issue.path, issue.rule)
            if key not in seen:
                seen.add(key)
                unique.append(issue)
        return unique

    def _destination_issues(self, ctx: RenderContext) -> list[Issue]:
        """Every route destination and mirror names a model service, one of its versions and GPU classes."""
        out: list[Issue] = []
        for path, dest in self.routing.all_destinations():
            base = ("routing", *path)
            info = ctx.services.get(dest.model)
            if info is None:
                out.append(_unknown_model(ctx, (*base, "model"), dest.model))
                continue
            if dest.version is not None and dest.version not in info.versions:
                out.append(
                    Issue(
                        (*base, "version"),
                        "ref.unknown-version",
                        f"model {dest.model!r} has no version {dest.version!r} "
                        f"(versions: {', '.join(sorted(info.versions))})",
                        dest.version,
                    )
                )
            if (
                dest.gpu_class is not None
                and info.gpu_classes_known(dest.version)
                and dest.gpu_class not in info.gpu_classes(dest.version)
            ):
                out.append(
                    Issue(
                        (*base, "gpu_class"),
                        "ref.unknown-gpu-class",
                        f"model {dest.model!r} does not run on GPU class {dest.gpu_class!r} "
                        f"(runs on: {', '.join(sorted(info.gpu_classes(dest.version))) or 'none'})",
                        dest.gpu_class,
                    )
                )
        return out

    def _route_issues(self) -> list[Issue]:
        """Reserved route names, and tier matches naming a QoS tier that exists."""
        out: list[Issue] = []
        for i, route in enumerate(self.routing.routes):
            if route.name in ("default", "untiered"):
                out.append(
                    Issue(
                        ("routing", "routes", i, "name"),
                        "routing.reserved-name",
                        "route names 'default' and 'untiered' are reserved",
                        route.name,
                    )
                )
            for j, m in enumerate(route.match):
                if m.tier is not None and self.qos is not None and m.tier not in self.qos.tiers:
                    out.append(
                        Issue(
                            ("routing", "routes", i, "match", j, "tier"),
                            "ref.unknown-tier",
                            f"no QoS tier {m.tier!r} (tiers: {', '.join(sorted(self.qos.tiers))})",
                            m.tier,
                        )
                    )
        return out

    def _match_issues(self, ctx: RenderContext) -> list[Issue]:
        """A match on a model names a model service: the edge rewrites the body's served name or alias
        to the service key before routing, so any other value never matches."""
        out: list[Issue] = []
        for i, route in enumerate(self.routing.routes):
            for j, m in enumerate(route.match):
                if m.model is None or m.model in ctx.services:
                    continue
                owner = [
                    s for s, info in ctx.services.items() if m.model in (info.served_name, *info.aliases)
                ]
                issue = _unknown_model(ctx, ("routing", "routes", i, "match", j, "model"), m.model)
                if owner:
                    issue = Issue(
                        issue.path,
                        issue.rule,
                        f"{m.model!r} is a client-side name of model service {owner[0]!r}; the edge routes on "
                        f"the service name, so match on {owner[0]!r}",
                        m.model,
                    )
                out.append(issue)
        return out

    def _model_reference_issues(self, ctx: RenderContext) -> list[Issue]:
        """Per-model sections name known models; GPU weights name GPU classes the model runs on."""
        services = ctx.services
        out = [
            _unknown_model(ctx, (section, "models", name), name)
            for section in ("load_balancing", "resilience")
            for name in getattr(self, section).models
            if name not in services
        ]
        deployables = {v.model for info in services.values() for v in info.variants}
        out += [
            Issue(
                ("autoscaling", "models", name),
                "ref.unknown-model",
                f"no model named {name!r} (known: {', '.join(sorted(deployables))})",
                name,
            )
            for name in self.autoscaling.models
            if name not in deployables
        ]
        for name, spec in self.load_balancing.models.items():
            info = services.get(name)
            if info is None:
                continue
            out += [
                Issue(
                    ("load_balancing", "models", name, "gpu_weights", g),
                    "ref.unknown-gpu-class",
                    f"model {name!r} does not run on GPU class {g!r}",
                    g,
                )
                for g in spec.gpu_weights
                if info.gpu_classes_known() and g not in info.gpu_classes()
            ]
        return out

    def _fallback_reference_issues(self, ctx: RenderContext) -> list[Issue]:
        """Fallback chains name known models, a served version of the primary, and a short primary name."""
        services = ctx.services
        out: list[Issue] = []
        for primary, chain in self.resilience.fallback.items():
            if primary not in services:
                out.append(_unknown_model(ctx, ("resilience", "fallback", primary), primary))
            out += [
                _unknown_model(ctx, ("resilience", "fallback", primary, j), member)
                for j, member in enumerate(chain)
                if member not in services
            ]
            version = self.resilience.chain_version(primary)
            if primary in services and version not in services[primary].versions:
                out.append(
                    Issue(
                        ("resilience", "fallback_versions", primary),
                        "ref.unknown-version",
                        f"model {primary!r} has no version {version!r} to serve its fallback chain "
                        f"(versions: {', '.join(sorted(services[primary].versions))})",
                        version,
                    )
                )
            if len(primary) > 50:
                out.append(
                    Issue(
                        ("resilience", "fallback", primary),
                        "resilience.name-too-long",
                        "a model with a fallback chain needs a name of at most 50 characters "
                        "(it becomes a label key)",
                        primary,
                    )
                )
        return out

    def _failover_issues(self, ctx: RenderContext) -> list[Issue]:
        """Failover needs outlier detection on every model, and its regions must be the fleet's."""
        if self.failover is None:
            return []
        out: list[Issue] = []
        for model in sorted(ctx.services):
            if self.resilience.for_model(model).circuit_breaker.ejects:
                continue
            where = (
                ("resilience", "models", model, "circuit_breaker")
                if model in self.resilience.models
                else ("resilience", "default", "circuit_breaker")
            )
            out.append(
                Issue(
                    where,
                    "failover.needs-outlier-detection",
                    f"failover is on but outlier detection is disabled for {model!r} "
                    "(consecutive_5xx_errors and consecutive_gateway_errors are 0): "
                    "Istio would never fail over",
                    0,
                )
            )
        if ctx.fleet_regions and self.failover.mode == "regions":
            out += [
                Issue(
                    ("failover", "regions", j),
                    "ref.unknown-region",
                    f"no stack of the fleet runs in region {region!r} "
                    f"(fleet regions: {', '.join(sorted(ctx.fleet_regions))})",
                    region,
                )
                for j, region in enumerate(self.failover.regions)
                if region not in ctx.fleet_regions
            ]
        return out

    def _window_issues(self, ctx: RenderContext) -> list[Issue]:
        """A scheduled capacity window never holds more replicas than the model's ``replicas.max``."""
        out: list[Issue] = []
        for lm in ctx.local_models:
            at: tuple[str, ...] = (
                ("autoscaling", "models", lm.model)
                if lm.model in self.autoscaling.models
                else ("autoscaling", "default")
            )
            out += [
                Issue(
                    (*at, "schedule", j, "min_replicas"),
                    "autoscaling.window-above-max",
                    f"window {w.name!r} holds {w.min_replicas} replicas of {lm.model!r} but "
                    f"its replicas.max is {lm.max_replicas}",
                    w.min_replicas,
                )
                for j, w in enumerate(self.autoscaling.for_model(lm.model).schedule)
                if w.min_replicas > lm.max_replicas
            ]
        return out

    def _fallback_split_issues(self) -> list[Issue]:
        """A fallback chain is an aggregate cluster swapped into a single-destination route only."""
        out = []
        for i, route in enumerate(self.routing.routes):
            if len(route.to) < 2:
                continue
            for j, dest in enumerate(route.to):
                if dest.version is None and dest.gpu_class is None and dest.model in self.resilience.fallback:
                    out.append(
                        Issue(
                            ("routing", "routes", i, "to", j),
                            "routing.fallback-in-split",
                            f"model {dest.model!r} has a fallback chain, which is routed as one Envoy "
                            "aggregate cluster: give it a route of its own, or name a version",
                            dest.model,
                        )
                    )
        return out

    def _empty_subset_issues(self, ctx: RenderContext) -> list[Issue]:
        """Rule ``routing.weighted-subset-may-be-empty``: a split's every part keeps a replica somewhere.

        Each weighted destination is its own Envoy cluster; with no endpoint anywhere in the mesh its
        share of requests gets 503 (istio/istio#27092) and is not failed over to the other parts
        (istio/istio#41787). So every part of a split needs a Deployment with ``replicas.min >= 1``
        in some cluster of the fleet.
        """
        out = []
        for i, route in enumerate(self.routing.routes):
            if len(route.to) < 2:
                continue
            for j, d in enumerate(route.to):
                info = ctx.services.get(d.model)
                if info is None or d.weight == 0:
                    continue
                if (d.version is not None and d.version not in info.versions) or (
                    d.gpu_class is not None and d.gpu_class not in info.gpu_classes(d.version)
                ):
                    continue  # a reference error, reported by _destination_issues (or a pool's follow-on)
                if not [v for v in info.always_on("", d.version) if d.gpu_class in (None, v.gpu_class)]:
                    what = " ".join(x for x in (d.model, d.version, d.gpu_class) if x)
                    out.append(
                        Issue(
                            ("routing", "routes", i, "to", j),
                            "routing.weighted-subset-may-be-empty",
                            f"{what} may have no replica anywhere (replicas.min 0 in every cluster), so "
                            f"its {d.weight} weight would answer 503; keep a replica or route it alone",
                            d.weight,
                        )
                    )
        return out

    def _mirror_capacity_issues(self, ctx: RenderContext) -> list[Issue]:
        """Rule ``routing.mirror-overloads-target``: mirrored plus canary load fits the local target.

        Per cluster, at the source's full local capacity (its Deployments' ``replicas.max``): the
        mirrored share plus the largest weighted share any route gives the mirror target must not
        exceed the target's local ``replicas.max``. Replicas stand in for throughput, which holds when
        source and target are versions of one model on one GPU class (a canary, the usual mirror
        target); the capacity planner (``fleetkit plan-capacity``) shows both sides' replica ranges.
        """
        out: list[Issue] = []
        res = self.resilience

        def local_max(service: str, version: str | None) -> int:
            return sum(
                m.max_replicas
                for m in ctx.local_models
                if m.service == service and (version is None or m.version == version)
            )

        entries: list[tuple[tuple[str | int, ...], list[Destination], Mirror | None]] = [
            (("routing", "routes", i), r.to, r.mirror) for i, r in enumerate(self.routing.routes)
        ]
        entries.append((("routing", "default"), self.routing.default.to, self.routing.default.mirror))
        splits = [dests for _, dests, _ in entries]  # every route's destinations, the default's last
        for path, dests, mirror in entries:
            if mirror is None or not any(m.service == mirror.model for m in ctx.local_models):
                continue
            target = local_max(mirror.model, mirror.version)
            if target == 0:
                continue  # not rendered in this cluster (policies.traffic.mirror_is_local)
            source = sum(
                local_max(
                    d.model, d.version or (res.chain_version(d.model) if d.model in res.fallback else None)
                )
                for d in dests
            )
            canary = 0.0  # a weighted share toward the same named version (a canary) adds to its load
            for split in splits if mirror.version is not None else []:
                total = sum(d.weight for d in split) or 1
                share = sum(
                    d.weight for d in split if d.model == mirror.model and d.version == mirror.version
                )
                canary = max(canary, share / total)
            need = (mirror.percent / 100 + canary) * source
            if need > target:
                out.append(
                    Issue(
                        (*path, "mirror", "percent"),
                        "routing.mirror-overloads-target",
                        f"mirroring {mirror.percent:g}% of a source with {source} local replicas at "
                        f"most, plus a {canary:.0%} weighted share, needs {need:.2f} replicas of "
                        f"{mirror.model} {mirror.version or ''} but this cluster runs at most {target}; "
                        "lower the percentage or raise the target's replicas.max",
                        mirror.percent,
                    )
                )
        return out

    # ------------------------------------------------------------------ describe
    def describe(self) -> list[tuple[str, str]]:
        """``(policy, what it does)`` per policy, in words: each policy's own ``describe()``, the text the
        preview report's policy table and the review both show."""
        rows = [
            ("routing", "\n".join(f"{name}: {text}" for name, text in self.routing.describe())),
            ("load balancing", self.load_balancing.describe()),
            ("resilience", self.resilience.describe()),
        ]
        if self.qos is not None:
            tiers = [f"{name}: {tier.describe()}" for name, tier in self.qos.ordered()]
            rows.append(("QoS", "\n".join([self.qos.describe(), *tiers])))
        if self.failover is not None:
            rows.append(("failover", self.failover.describe()))
        rows += [
            ("autoscaling", self.autoscaling.describe()),
            ("security", self.security.describe()),
            ("edge", self.edge.describe()),
            ("telemetry", self.telemetry.describe()),
        ]
        return rows

    # ------------------------------------------------------------------ render
    def render(self, ctx: RenderContext) -> list[dict[str, Any]]:
        """Every manifest of the policy set, sorted by apiVersion, kind, namespace, name."""
        objs: list[dict[str, Any]] = []
        objs += render_traffic(self, ctx)
        objs += render_fallback_rewrites(self, ctx)
        objs += render_edge(self, ctx)
        objs += self.telemetry.render(self, ctx)
        objs += self.security.render(ctx, self.edge.identity.output_claim_to_headers())
        if self.qos is not None:
            objs += self.qos.render()
        for lm in ctx.local_models:
            objs += self.autoscaling.render_for(
                model=lm.model,
                deployment=lm.model,
                namespace=ctx.namespace,
                served_name=lm.served_name,
                min_replicas=lm.min_replicas,
                max_replicas=lm.max_replicas,
            )
        return sorted(objs, key=manifest_key)


def _unknown_model(ctx: RenderContext, path: tuple[Any, ...], name: str) -> Issue:
    known = ", ".join(sorted(ctx.services)) or "none"
    return Issue(path, "ref.unknown-model", f"no model service named {name!r} (known: {known})", name)
