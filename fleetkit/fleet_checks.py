"""Reference checks over a loaded fleet: per stack (pools, models, policies, capacity, infrastructure)
and fleet-wide (mesh identity, cluster names, the mesh checks).

Checks layer: reads :class:`~fleetkit.fleet.Fleet`, never the files. Each check reports
:class:`~fleetkit.errors.Issue` rows with tuple paths in the stack spec; they are located to the file
that set the value once, by the stack's provenance.

Rules added here (besides those of :mod:`fleetkit.infra_checks`, :mod:`fleetkit.model_checks`,
:mod:`fleetkit.mesh_checks` and ``PolicySet.check``):

* ``stack.unknown-region`` — ``fleetkit:region`` is not a region of the stack's cloud (table and
  sources in :mod:`fleetkit.regions`).
* ``stack.provider-region-mismatch`` — the provider's own region key (``aws:region``, ``gcp:region``,
  ``azure-native:location``) names another region than ``fleetkit:region``: the provider would create
  the cluster in one region while the kit sizes, zones and names it for the other.
* ``addons.keda-disabled`` — a model autoscaled with ``engine: keda`` in a stack whose ``addons.keda``
  is off: the ScaledObject would be applied to a cluster with no KEDA CRDs or operator
  (KEDA install docs, https://keda.sh/docs/2.17/deploy/).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetkit import catalog, regions
from fleetkit.capacity_checks import check_cache_fit, check_fit
from fleetkit.cluster_checks import zone_example, zone_ok
from fleetkit.errors import MISSING, Issue
from fleetkit.fleet import Fleet, LoadedStack
from fleetkit.infra_checks import check_infra
from fleetkit.mesh_checks import check_mesh
from fleetkit.model_checks import check_models
from fleetkit.resolve import ResolvedStack
from fleetkit.serving_checks import check_serving
from fleetkit.spec import RegionStackSpec


def check_stack(fleet: Fleet, name: str) -> list[Issue]:
    """Every reference problem of one region stack, located to the file that set each value."""
    st = fleet.stacks[name]
    spec = st.spec
    if not isinstance(spec, RegionStackSpec):
        return []
    resolved = st.resolved
    wrong_cloud = _wrong_cloud(spec)
    region = [] if wrong_cloud else _region_issues(spec)
    issues = [*wrong_cloud, *region, *_model_issues(spec)]
    if (
        not wrong_cloud
    ):  # pools, zones, GPUs and accounts of the other cloud are follow-ons of the one mistake
        issues += [*_pool_issues(resolved), *_account_issues(spec)]
    # policies are judged against every model of the fleet; with a stack file unreadable they are not
    # all known, and the policy problems would be follow-ons of that file's mistake
    if not fleet.models_unknown:
        issues += [
            Issue(("policies", *i.path), i.rule, i.message, i.value)
            for i in spec.policies.check(fleet.context_for(name))
        ]
    issues += _keda_issues(spec)
    if wrong_cloud:
        return st.problems(issues)
    issues += check_fit(resolved)
    # zones and GPU offerings of a region that does not exist are follow-ons of that one mistake
    issues += [i for i in check_infra(resolved) if not (region and i.rule in REGION_FOLLOW_ONS)]
    issues += check_models(resolved)
    issues += check_cache_fit(resolved)
    # the provider's region disagreeing with a region that does not exist is the same mistake again
    provider = [] if region else _provider_problems(st, spec)
    return [*st.problems(issues), *provider]


#: infrastructure rules judged against the stack's region
REGION_FOLLOW_ONS = frozenset(
    {"pool.zone-not-in-region", "pool.gpu-not-offered", "mesh.east-west-zone-not-in-region"}
)


def _wrong_cloud(spec: RegionStackSpec) -> list[Issue]:
    """``stack.wrong-cloud``: the region and every pool's instance type belong to another cloud, so
    ``fleetkit:cloud`` is the one mistake (not the region, not each instance type)."""
    if regions.is_known(spec.cloud, spec.region) or not spec.node_pools:
        return []
    types = sorted({p.instance_type for p in spec.node_pools.values()})
    for other in regions.cloud_of(spec.region):
        if other != spec.cloud and all(
            catalog.lookup(other, t) and not catalog.lookup(spec.cloud, t) for t in types
        ):
            return [
                Issue(
                    ("cloud",),
                    "stack.wrong-cloud",
                    f"region {spec.region} and instance types {', '.join(types)} are {other}'s, but "
                    f"fleetkit:cloud is {spec.cloud}; did you mean {other!r}?",
                    spec.cloud,
                )
            ]
    return []


def _a(cloud: str) -> str:
    """The article before a cloud's name: an aws, a gcp, an azure."""
    return "a" if cloud == "gcp" else "an"


def _region_issues(spec: RegionStackSpec) -> list[Issue]:
    return _unknown_region(spec.cloud, spec.region)


def _unknown_region(cloud: str, region: str) -> list[Issue]:
    if regions.is_known(cloud, region):
        return []
    elsewhere = [c for c in regions.cloud_of(region) if c != cloud]
    if elsewhere:
        hint = f"; that is {_a(elsewhere[0])} {'/'.join(elsewhere)} region (fleetkit:cloud is {cloud})"
    else:
        close = regions.suggest(cloud, region)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
    return [Issue(("region",), "stack.unknown-region", f"not {_a(cloud)} {cloud} region{hint}", region)]


def _unknown_instance_type(cloud: str, pname: str, instance_type: str) -> Issue:
    sugg = catalog.suggest(cloud, instance_type)
    hint = f"; did you mean {', '.join(sugg)}?" if sugg else ""
    return Issue(
        ("node_pools", pname, "instance_type"),
        "pool.unknown-instance-type",
        f"{instance_type!r} is not a GPU instance type of the {cloud} catalog{hint}",
        instance_type,
    )


def check_unvalidated(merged: Mapping[str, Any]) -> list[Issue]:
    """The reference problems of a region stack that did not validate, judged from its document.

    A type error elsewhere (often in ``fleet.yaml``, which every stack inherits) must not hide an
    unknown region or instance type written in this stack: those two are read here from the merged
    document as written, when the cloud and the value are plain strings (issue paths as in
    :func:`check_stack`; the loader locates them).
    """
    cloud = merged.get("cloud")
    if merged.get("role", "region") != "region" or cloud not in regions.PROVIDER_REGION_KEY:
        return []
    region = merged.get("region")
    out = _unknown_region(cloud, region) if isinstance(region, str) else []
    pools = merged.get("node_pools")
    for pname, pool in sorted(pools.items()) if isinstance(pools, Mapping) else []:
        itype = pool.get("instance_type") if isinstance(pool, Mapping) else None
        if isinstance(itype, str) and catalog.lookup(cloud, itype) is None:
            out.append(_unknown_instance_type(cloud, str(pname), itype))
    return out


def _provider_problems(st: LoadedStack, spec: RegionStackSpec) -> list[Issue]:
    """The provider's own settings (beside ``fleetkit:*`` in the stack file) that contradict the spec."""
    out: list[Issue] = []
    key = regions.PROVIDER_REGION_KEY[spec.cloud]
    value = st.config.get(key)
    if isinstance(value, str) and regions.normalize(spec.cloud, value) != regions.normalize(
        spec.cloud, spec.region
    ):
        out.append(
            Issue.at(
                st.file,
                key,
                "stack.provider-region-mismatch",
                f"the {spec.cloud} provider would deploy to {value!r} but fleetkit:region is {spec.region!r}; "
                f"set both to the same region",
                value,
            )
        )
    zone = st.config.get("gcp:zone") if spec.cloud == "gcp" else None
    if isinstance(zone, str) and not zone_ok("gcp", spec.region, zone):
        out.append(
            Issue.at(
                st.file,
                "gcp:zone",
                "stack.provider-zone-mismatch",
                f"the gcp provider's default zone {zone!r} is not a zone of fleetkit:region {spec.region} "
                f"(write it like {zone_example('gcp', spec.region)}, or remove it)",
                zone,
            )
        )
    for key, field, mine in (
        ("gcp:project", "account.gcp_project", spec.account.gcp_project if spec.cloud == "gcp" else None),
        (
            "azure-native:subscriptionId",
            "account.azure_subscription_id",
            spec.account.azure_subscription_id if spec.cloud == "azure" else None,
        ),
    ):
        theirs = st.config.get(key)
        if isinstance(theirs, str) and mine is not None and theirs != mine:
            out.append(
                Issue.at(
                    st.file,
                    key,
                    "stack.provider-account-mismatch",
                    f"the provider would create resources in {theirs!r} but fleetkit:{field} is {mine!r} "
                    "(the kit places the cluster's identities there); set both to the same",
                    theirs,
                )
            )
    return out


#: the cloud each ``account`` setting belongs to
ACCOUNT_CLOUD = {"gcp_project": "gcp", "azure_resource_group": "azure", "azure_subscription_id": "azure"}


def _account_issues(spec: RegionStackSpec) -> list[Issue]:
    """``account.wrong-cloud``: another cloud's account setting, which this stack would ignore."""
    return [
        Issue(
            ("account", name),
            "account.wrong-cloud",
            f"account.{name} is {_a(cloud)} {cloud} setting; {_a(spec.cloud)} {spec.cloud} stack ignores it "
            "(remove it, or check "
            "fleetkit:cloud)",
            getattr(spec.account, name),
        )
        for name, cloud in ACCOUNT_CLOUD.items()
        if cloud != spec.cloud and getattr(spec.account, name) is not None
    ]


def _pool_issues(stack: ResolvedStack) -> list[Issue]:
    spec = stack.spec
    out: list[Issue] = []
    for pname, resolved in stack.pools.items():
        pool = resolved.spec
        if resolved.instance is None:
            out.append(_unknown_instance_type(spec.cloud, pname, pool.instance_type))
        for other in ("aws", "gcp", "azure"):
            if other != spec.cloud and getattr(pool, other) is not None:
                out.append(
                    Issue(
                        ("node_pools", pname, other),
                        "pool.wrong-cloud-options",
                        f"pool '{pname}': {other} options in a {spec.cloud} stack (use '{spec.cloud}:')",
                        other,
                    )
                )
    return out


def _model_issues(spec: RegionStackSpec) -> list[Issue]:
    out: list[Issue] = []
    tiers = spec.policies.qos.tiers if spec.policies.qos else {}
    pools = ", ".join(sorted(spec.node_pools))
    for mname, m in sorted(spec.models.items()):
        for reserved in {mname, m.service or mname} & {"vllm"}:
            where = ("models", mname, "service") if m.service == "vllm" else ("models", mname)
            out.append(
                Issue(
                    where,
                    "model.reserved-name",
                    "a model service must not be named 'vllm' (its Service env VLLM_PORT breaks vLLM)",
                    reserved,
                )
            )
        if m.pool is None:
            out.append(
                Issue(
                    ("models", mname, "pool"),
                    "model.no-pool",
                    f"model {mname!r} is deployed in this stack but names no GPU pool (pools: {pools})",
                )
            )
        elif m.pool not in spec.node_pools:
            out.append(
                Issue(
                    ("models", mname, "pool"),
                    "ref.unknown-pool",
                    f"no node pool {m.pool!r} in this stack (pools: {pools})",
                    m.pool,
                )
            )
        if m.tier is not None and m.tier not in tiers:
            out.append(
                Issue(
                    ("models", mname, "tier"),
                    "ref.unknown-tier",
                    f"no QoS tier {m.tier!r} (tiers: {', '.join(sorted(tiers)) or 'none configured'})",
                    m.tier,
                )
            )
    # versions of one service must be unique per pool inside a stack (they are one Deployment each)
    seen: dict[tuple[str, str, str], str] = {}
    for mname, m in sorted(spec.models.items()):
        key = (m.service or mname, m.version, m.pool or "")
        if key in seen:
            out.append(
                Issue(
                    ("models", mname, "version"),
                    "model.duplicate-variant",
                    f"models {seen[key]!r} and {mname!r} are both version {m.version!r} of service "
                    f"{key[0]!r} on pool {m.pool!r}",
                    m.version,
                )
            )
        seen[key] = mname
    return out


def _keda_issues(spec: RegionStackSpec) -> list[Issue]:
    if spec.addons.keda:
        return []
    autoscaling = spec.policies.autoscaling
    keda = [m for m in sorted(spec.models) if autoscaling.for_model(m).engine == "keda"]
    if not keda:
        return []
    return [
        Issue(
            ("addons", "keda"),
            "addons.keda-disabled",
            f"KEDA is off but models {', '.join(keda)} are autoscaled with engine keda: their ScaledObjects "
            "would have no KEDA to act on; turn addons.keda on, or set policies.autoscaling engine hpa "
            "or none for them",
            False,
        )
    ]


def _cloud_cluster_names(fleet: Fleet) -> list[Issue]:
    """``cluster.duplicate-name``: two stacks naming one cluster in the same cloud region (and project):
    EKS, GKE and AKS names are unique there, so the second create (or adopt) would hit the first cluster."""
    seen: dict[tuple[str, str, str, str], list[str]] = {}
    for name, st in sorted(fleet.region_stacks().items()):
        spec = st.spec
        assert isinstance(spec, RegionStackSpec)
        scope = spec.account.gcp_project or spec.account.azure_resource_group or ""
        seen.setdefault((spec.cloud, spec.region, scope, spec.cluster.name), []).append(name)
    out: list[Issue] = []
    for (cloud, region, _, cname), names in sorted(seen.items()):
        for n in names[1:]:
            out.append(
                fleet.stacks[n].problem(
                    Issue(
                        ("cluster", "name"),
                        "cluster.duplicate-name",
                        f"stack {names[0]} also names its cluster {cname!r} in {cloud} {region}: one region "
                        "holds one cluster of a name; rename one",
                        cname,
                    )
                )
            )
    return out


def check_fleet(fleet: Fleet) -> list[Issue]:
    """Per-stack reference checks plus fleet-wide rules (mesh identity, unique cluster names, mesh).

    Rules that compare stacks with each other run only when every stack validated
    (``fleet.invalid`` is empty): with a stack missing they would report follow-on mistakes.
    """
    out: list[Issue] = []
    for name in sorted(fleet.stacks):
        out.extend(check_stack(fleet, name))
    if fleet.invalid:
        return out
    out.extend(_mesh_identity(fleet))
    out.extend(check_mesh(fleet))
    out.extend(check_serving(fleet))
    return out


def _mesh_identity(fleet: Fleet) -> list[Issue]:
    out: list[Issue] = []
    mesh_ids: dict[str, list[str]] = {}
    for name, st in sorted(fleet.stacks.items()):
        mesh_ids.setdefault(st.spec.mesh.mesh_id, []).append(name)
    if len(mesh_ids) > 1:
        majority = max(mesh_ids, key=lambda k: (len(mesh_ids[k]), k))
        for mid, names in sorted(mesh_ids.items()):
            if mid == majority:
                continue
            for n in names:
                out.append(
                    fleet.stacks[n].problem(
                        Issue(
                            ("mesh", "mesh_id"),
                            "mesh.mesh-id-mismatch",
                            f"every cluster of one mesh needs the same meshID; the fleet uses {majority!r}",
                            mid,
                        )
                    )
                )
    cluster_names: dict[str, list[str]] = {}
    for name, st in sorted(fleet.region_stacks().items()):
        spec = st.spec
        assert isinstance(spec, RegionStackSpec)
        if spec.mesh.cluster_name is None:
            out.append(
                st.problem(
                    Issue(
                        ("mesh", "cluster_name"),
                        "mesh.cluster-name-missing",
                        "each region stack needs a unique mesh cluster_name",
                        MISSING,
                    )
                )
            )
        else:
            cluster_names.setdefault(spec.mesh.cluster_name, []).append(name)
        if spec.mesh.network is None:
            out.append(
                st.problem(
                    Issue(
                        ("mesh", "network"),
                        "mesh.network-missing",
                        "each region stack needs the name of its mesh network",
                        MISSING,
                    )
                )
            )
    out.extend(_cloud_cluster_names(fleet))
    for cname, names in sorted(cluster_names.items()):
        if len(names) > 1:
            for n in names:
                others = ", ".join(x for x in names if x != n)
                out.append(
                    fleet.stacks[n].problem(
                        Issue(
                            ("mesh", "cluster_name"),
                            "mesh.duplicate-cluster-name",
                            f"cluster_name must be unique across the fleet; also used by {others}",
                            cname,
                        )
                    )
                )
    return out
