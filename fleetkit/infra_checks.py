"""Infrastructure reference checks of one region stack.

Pure: no engine, no credentials, no network. :func:`check_infra` runs inside the loader's reference
pass (after the typed models validated), so every problem carries the file that set the value, its
path, the rule and the bad value, like every other spec error.

Rules (``Issue.rule``):

* ``pool.gpu-not-offered`` — the catalog knows the type is not offered in the stack's region.
* ``pool.zone-not-in-region`` — a zone that is not a zone of the stack's region (AWS ``us-east-1a``,
  GCP ``europe-west4-b``, Azure ``1``/``2``/``3``).
* ``pool.mig-unsupported`` — an AKS MIG profile on a GPU without MIG (only A100/H100/H200 have it).
* ``pool.local-ssd-bundled`` — a GKE ``local_ssd_count`` other than the count a type bundles.
* ``pool.instance-store-unsupported`` — ``instance_store_cache: true`` with Bottlerocket, or on a
  type without instance-store NVMe.
* ``pool.ami-arch`` — an ARM AMI type on an x86 GPU instance type.
* ``pool.scale-to-zero`` — ``min_size: 0`` on a pool kind that cannot scale to zero.
* ``pool.reserved-label`` — a node label under a prefix the cloud reserves.
* ``pool.aks-name`` — an AKS agent pool name must be 1-12 lowercase letters/digits, not ``system``.
* ``pool.spot-options-without-spot`` — AKS ``spot_max_price``/``spot_eviction_policy`` on a pool that
  is not ``spot: true`` (AKS renders a Regular scale set and ignores them).
* ``cluster.api-open-to-internet`` — a public API endpoint with no ``authorized_networks`` or with
  ``0.0.0.0/0`` (EKS ``publicAccessCidrs`` defaults to ``0.0.0.0/0``; GKE without master authorized
  networks and AKS without ``authorizedIPRanges`` accept any address).
* ``pool.scale-from-zero-needs-autoscaler`` — ``min_size: 0`` with ``addons.node_autoscaler: none``:
  nothing would ever add a node for a pending pod (EKS managed node groups only hold their
  desired size; GKE/AKS pools scale only with their autoscaler on).
* ``autoscaling.hpa-needs-adapter`` — a model autoscaled by an HPA on the custom metric
  ``vllm_num_requests_waiting`` while no prometheus-adapter serves the custom metrics API
  (``addons.prometheus_adapter`` is not ``external``): the HPA reports "unable to get metric" and
  never scales (Kubernetes HPA walkthrough, "Autoscaling on multiple metrics and custom metrics":
  custom metrics come from an aggregated ``custom.metrics.k8s.io`` API such as prometheus-adapter).
* ``cluster.subnets`` — GKE and AKS take at most one subnet.
* ``account.gcp-project`` — a GCP stack needs ``account.gcp_project``.
* ``cluster.azure-resource-group`` — adopting an AKS cluster needs its resource group.
* ``foundation.*`` — Terraform foundation backend, settings, secrets and output names.
* ``cluster.access-entry-arn`` — an access entry principal that is not an IAM role/user ARN of the
  region's partition (an STS ``assumed-role`` session ARN, a typo, another partition). EKS takes the
  role's IAM ARN, with its path (EKS docs, "Create access entries").
* ``cluster.access-entry-duplicate`` — one principal in two entries (EKS: "An IAM principal can't be
  included in more than one access entry").
* ``cluster.access-entries-eks-only`` — access entries on a GKE/AKS stack.
* ``mesh.east-west-zone-not-in-region`` / ``mesh.east-west-zone-duplicate`` /
  ``mesh.east-west-zones-aws-only`` — ``mesh.east_west_zones`` is empty, names a zone of another
  region or one zone twice, or is set off AWS (one regional address there).
"""

from __future__ import annotations

import re
from typing import Any

from fleetkit import catalog
from fleetkit.cluster_checks import (
    access_entry_issues,
    east_west_zone_issues,
    foundation_issues,
    zone_example,
    zone_ok,
)
from fleetkit.errors import MISSING, Issue
from fleetkit.foundation import (  # noqa: F401  (re-exported: the rules below are documented here)
    BACKEND_SETTINGS,
    BOOL_SETTINGS,
    FOUNDATION_INPUTS,
    INT_SETTINGS,
    SECRET_SETTINGS,
    coerce_backend_setting,
)
from fleetkit.pools import aws_ami_type, gce_bundled_local_ssds
from fleetkit.resolve import ResolvedPool, ResolvedStack
from fleetkit.scheduling import RESERVED_LABEL_PREFIXES
from fleetkit.spec import NodePoolSpec, RegionStackSpec

#: GPU classes with Multi-Instance GPU support (AKS ``gpuInstanceProfile``).
MIG_GPU_CLASSES = frozenset({"a100-40gb", "a100-80gb", "h100", "h100-nvl", "h200"})

#: Source ranges that mean "the whole internet" on a public API endpoint.
OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})

#: Per cloud: may a GPU pool with ``min_size: 0`` scale to zero? EKS managed node groups, GKE node
#: pools and AKS user pools all can (AKS system pools cannot, but GPU pools are user pools).
SCALE_TO_ZERO: dict[str, bool] = {"aws": True, "gcp": True, "azure": True}


_AKS_POOL_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")


# --------------------------------------------------------------------------- checks
def check_infra(stack: ResolvedStack) -> list[Issue]:
    """Every infrastructure issue of one resolved region stack; paths are relative to the stack spec."""
    spec = stack.spec
    out: list[Issue] = []

    def add(loc: tuple[Any, ...], rule: str, message: str, value: Any = MISSING) -> None:
        out.append(Issue(loc, rule, message, value))

    cloud = spec.cloud
    for pool in stack.pools.values():
        out.extend(_pool_issues(spec, pool))

    for mname in sorted(spec.models):
        engine = spec.policies.autoscaling.for_model(mname).engine
        where = (
            ("policies", "autoscaling", "models", mname, "engine")
            if mname in spec.policies.autoscaling.models
            else ("policies", "autoscaling", "default", "engine")
        )
        if engine == "hpa" and spec.addons.prometheus_adapter != "external":
            add(
                where,
                "autoscaling.hpa-needs-adapter",
                f"model '{mname}' autoscales with an HPA on the custom metric vllm_num_requests_waiting, which only "
                "prometheus-adapter serves and the kit does not install: use engine: keda (with addons.keda), or "
                "run the adapter and set addons.prometheus_adapter: external",
                engine,
            )

    cl = spec.cluster
    if cl.create is not None and cloud in ("gcp", "azure") and len(cl.create.subnet_ids) > 1:
        add(
            ("cluster", "create", "subnet_ids"),
            "cluster.subnets",
            f"{'GKE takes one subnetwork' if cloud == 'gcp' else 'AKS takes one VNet subnet'}; give at most one",
            cl.create.subnet_ids,
        )
    if cl.create is not None and cl.create.public_endpoint:
        open_ranges = [c for c in cl.create.authorized_networks if c in OPEN_CIDRS]
        if not cl.create.authorized_networks or open_ranges:
            add(
                ("cluster", "create", "authorized_networks"),
                "cluster.api-open-to-internet",
                "the public Kubernetes API endpoint would accept connections from any address; list the CIDRs "
                "that must reach it (your admin networks and the NAT egress of every peer cluster, whose istiod "
                "watches this API server) or set public_endpoint: false",
                cl.create.authorized_networks,
            )
    if cloud == "gcp" and not spec.account.gcp_project:
        add(
            ("account", "gcp_project"),
            "account.gcp-project",
            "GCP stacks need account.gcp_project (workload identity pool and node service account live there)",
        )
    if (
        cloud == "azure"
        and cl.adopt is not None
        and not (cl.adopt.resource_group or spec.account.azure_resource_group)
    ):
        fed = cl.foundation is not None and "resource_group" in cl.foundation.outputs
        if not fed:
            add(
                ("cluster", "adopt", "resource_group"),
                "cluster.azure-resource-group",
                "adopting an AKS cluster needs its resource group (adopt.resource_group or "
                "account.azure_resource_group)",
            )
    if cl.foundation is not None:
        out.extend(foundation_issues(spec))
    out.extend(access_entry_issues(spec))
    out.extend(east_west_zone_issues(spec))
    return out


def _pool_issues(spec: RegionStackSpec, resolved: ResolvedPool) -> list[Issue]:
    """Issues of one node pool that hold on every cloud: offering, zones, labels, scale to zero."""
    name, pool, entry = resolved.name, resolved.spec, resolved.instance
    out: list[Issue] = []

    def add(loc: tuple[Any, ...], rule: str, message: str, value: Any = MISSING) -> None:
        out.append(Issue(loc, rule, message, value))

    cloud, region = spec.cloud, spec.region
    at = ("node_pools", name)
    if entry is not None and catalog.offered_in(cloud, pool.instance_type, region) is False:
        add(
            (*at, "instance_type"),
            "pool.gpu-not-offered",
            f"pool '{name}': {pool.instance_type} ({entry.gpu_model}) is not offered in {cloud} region "
            f"{region}; pick another region or GPU type",
            pool.instance_type,
        )
    for i, zone in enumerate(pool.zones):
        if not zone_ok(cloud, region, zone):
            add(
                (*at, "zones", i),
                "pool.zone-not-in-region",
                f"pool '{name}': {zone!r} is not a zone of {cloud} region {region} "
                f"(write zones like {zone_example(cloud, region)})",
                zone,
            )
    for key in sorted(pool.labels):
        for prefix in RESERVED_LABEL_PREFIXES[cloud]:
            if key.startswith(prefix) or key.split("/")[0].endswith("." + prefix.rstrip("/")):
                add(
                    (*at, "labels", key),
                    "pool.reserved-label",
                    f"pool '{name}': label prefix {prefix!r} is reserved by {cloud} on node pools",
                    key,
                )
                break
    if pool.min_size == 0 and spec.addons.node_autoscaler == "none":
        add(
            (*at, "min_size"),
            "pool.scale-from-zero-needs-autoscaler",
            f"pool '{name}' has min_size 0 but addons.node_autoscaler is none: no node would ever be added "
            "for a pending pod; keep node_autoscaler auto (Cluster Autoscaler on EKS, the pool autoscaler on "
            "GKE/AKS) or external, or set min_size to 1 or more",
            0,
        )
    if pool.min_size == 0 and not SCALE_TO_ZERO[cloud]:
        add(
            (*at, "min_size"),
            "pool.scale-to-zero",
            f"pool '{name}': {cloud} GPU pools cannot scale to zero; set min_size to 1 or more",
            0,
        )
    return [*out, *_cloud_pool_issues(spec, name, pool, entry)]


def _cloud_pool_issues(
    spec: RegionStackSpec, name: str, pool: NodePoolSpec, entry: catalog.GpuInstanceType | None
) -> list[Issue]:
    """Issues of one node pool's per-cloud options (AMI, instance store, local SSDs, AKS names, MIG)."""
    out: list[Issue] = []

    def add(loc: tuple[Any, ...], rule: str, message: str, value: Any = MISSING) -> None:
        out.append(Issue(loc, rule, message, value))

    cloud = spec.cloud
    at = ("node_pools", name)
    if cloud == "aws":
        opts = pool.aws
        ami = aws_ami_type(pool)
        if "ARM_64" in ami and entry is not None:
            add(
                (*at, "aws", "ami_type"),
                "pool.ami-arch",
                f"pool '{name}': {ami} is an ARM (Graviton) AMI but {pool.instance_type} is x86_64; "
                f"use {ami.replace('ARM_64', 'x86_64')}",
                ami,
            )
        if opts is not None and opts.instance_store_cache:
            if ami.startswith("BOTTLEROCKET"):
                add(
                    (*at, "aws", "instance_store_cache"),
                    "pool.instance-store-unsupported",
                    f"pool '{name}': instance_store_cache uses nodeadm (AL2023); Bottlerocket keeps the "
                    "weight cache on its /dev/xvdb data volume (size it with root_volume_gib) - set "
                    "instance_store_cache: false or ami_type: AL2023_x86_64_NVIDIA",
                    True,
                )
            elif entry is not None and entry.local_nvme_gb == 0:
                add(
                    (*at, "aws", "instance_store_cache"),
                    "pool.instance-store-unsupported",
                    f"pool '{name}': {pool.instance_type} has no instance-store NVMe",
                    True,
                )
    if cloud == "gcp" and pool.gcp is not None and pool.gcp.local_ssd_count is not None and entry:
        bundled = gce_bundled_local_ssds(entry)
        if bundled and pool.gcp.local_ssd_count != bundled:
            add(
                (*at, "gcp", "local_ssd_count"),
                "pool.local-ssd-bundled",
                f"pool '{name}': {pool.instance_type} bundles {bundled} local SSDs, which back ephemeral "
                "storage as a whole; leave local_ssd_count unset",
                pool.gcp.local_ssd_count,
            )
    if cloud == "azure":
        if not _AKS_POOL_NAME.match(name) or name == "system":
            add(
                at,
                "pool.aks-name",
                f"AKS agent pool names are 1-12 lowercase letters and digits starting with a letter, and "
                f"'system' is the kit's system pool; rename pool '{name}'",
                name,
            )
        spot_opts = (
            sorted(pool.azure.model_fields_set & {"spot_max_price", "spot_eviction_policy"})
            if pool.azure
            else []
        )
        if spot_opts and not pool.spot:
            add(
                (*at, "azure", spot_opts[0]),
                "pool.spot-options-without-spot",
                f"pool '{name}': azure.{' and azure.'.join(spot_opts)} only apply to a Spot scale set, but the "
                "pool is not spot (spot: false renders a Regular pool and AKS ignores them); set spot: true or "
                "remove them",
                spot_opts,
            )
        mig = pool.azure.mig_profile if pool.azure else None
        if mig is not None and entry is not None and entry.gpu_class not in MIG_GPU_CLASSES:
            add(
                (*at, "azure", "mig_profile"),
                "pool.mig-unsupported",
                f"pool '{name}': {pool.instance_type} has {entry.gpu_model} GPUs, which have no MIG "
                f"(MIG needs A100, H100 or H200)",
                mig,
            )
    return out
