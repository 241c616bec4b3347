"""Where the simulator's input comes from: the loaded stacks with their rendering, or a preview
output directory — and the mesh topology.

The stack path, :func:`fleet_from_stacks` (``fleetkit simulate`` without ``--from``, ``fleetkit
review``): each model's deployed facts come from the resolve step
(:attr:`fleetkit.fleet.LoadedStack.resolved`: service, version, pool and its zones, GPU class,
weight bytes), its replica bounds from its autoscaler policy
(:meth:`policies.autoscaling.AutoscalerSpec.replica_bounds`, what the ScaledObject/HPA is rendered
with) and its engine arguments (served names, tensor parallel, ``--max-num-seqs``) from the
resolved model too (:attr:`fleetkit.resolve.ResolvedModel.engine`, what the Deployment's command
line is rendered from);
only the routing facts (:mod:`.fleet`: the gateway's Istio config, Service selectors, pod labels,
edge filters) are read from the rendered manifests. A model without a rendered Deployment (a
partial render) is not deployed there and is left out with a note.

The preview path, :func:`read_preview_dir` + :func:`fleetkit.simulate.fleet.build_fleet` (``--from
DIR``), reads everything from the manifests: the directory may come from another revision than the
project's stack files, so only what the manifests lack is joined from the specs by stack and
Deployment name — the zones (:func:`topology_from_specs`) and the weight bytes
(:func:`weights_from_specs`). Both paths build the same fleet from the same rendering
(``tests/simulate/test_sources_agree.py``).

The topology (cluster id, network, region, pool zones) is read from each region stack's spec
(``mesh.cluster_name``, ``mesh.network``, ``region``, the resolved pools' zones); a preview
directory alone gives cluster, network and region from ``outputs.json`` (``meshClusterName``,
``meshNetwork``, ``region``) but no zones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from fleetkit.errors import Issue, SpecError
from fleetkit.fleet import LoadedStack
from fleetkit.loader import Fleet as SpecFleet
from fleetkit.output import MANIFESTS_DIR, manifest_files, read_manifest_file
from fleetkit.resolve import ResolvedModel
from fleetkit.simulate.fleet import (
    ClusterConfig,
    ClusterInfo,
    RenderedCluster,
    SimulatedFleet,
    Workload,
    read_cluster,
    with_rewrites,
)
from fleetkit.spec import RegionStackSpec


def cluster_info(name: str, st: LoadedStack) -> ClusterInfo | None:
    """The mesh topology of one stack (None for a stack that is not a region stack)."""
    spec = st.spec
    if not isinstance(spec, RegionStackSpec):
        return None
    cluster = spec.mesh.cluster_name or name
    network = spec.mesh.network or f"network-{cluster}"
    zones = {p: tuple(sorted(pool.spec.zones)) for p, pool in st.resolved.pools.items()}
    return ClusterInfo(cluster, network, spec.region, name, zones)


def topology_from_specs(fleet: SpecFleet) -> dict[str, ClusterInfo]:
    out: dict[str, ClusterInfo] = {}
    for name, st in sorted(fleet.stacks.items()):
        info = cluster_info(name, st)
        if info is not None:
            out[name] = info
    return out


def weights_from_specs(fleet: SpecFleet) -> dict[str, dict[str, float]]:
    """Stack -> Deployment (the model key) -> bytes of the weights, as the resolve step sizes them."""
    return {
        name: {m: float(rm.weights_bytes) for m, rm in st.resolved.models.items() if rm.weights_bytes}
        for name, st in sorted(fleet.stacks.items())
        if st.is_region
    }


def fleet_from_stacks(
    specs: SpecFleet, manifests: Mapping[str, Sequence[Mapping[str, Any]]]
) -> SimulatedFleet:
    """The fleet of the loaded stacks as ``manifests`` (stack -> its rendered objects) deploy it:
    model facts from the resolve step, routing from the rendering (module docstring). Stacks
    without manifests, and stacks that are not region stacks, are not part of it."""
    clusters: dict[str, ClusterInfo] = {}
    config: dict[str, ClusterConfig] = {}
    workloads: list[Workload] = []
    notes: list[str] = []
    for stack in sorted(manifests):
        st = specs.stacks.get(stack)
        info = cluster_info(stack, st) if st is not None else None
        if st is None or info is None:
            continue
        rendered = read_cluster(stack, info, manifests[stack])
        notes += rendered.notes
        clusters[info.name] = info
        config[info.name] = rendered.config
        for rm in st.resolved.models.values():
            w = _workload(stack, st, info, rm, rendered, notes)
            if w is not None:
                workloads.append(with_rewrites(w, rendered.rewrites))
    workloads.sort(key=lambda w: (w.cluster, w.namespace, w.name))
    return SimulatedFleet(clusters, config, workloads, notes)


def _workload(
    stack: str,
    st: LoadedStack,
    info: ClusterInfo,
    rm: ResolvedModel,
    rendered: RenderedCluster,
    notes: list[str],
) -> Workload | None:
    spec = st.resolved.spec
    deployment = rendered.deployments.get((spec.namespace, rm.name))
    engine = rm.engine
    if deployment is None or rm.pool is None or engine is None:
        why = (
            f"no pool {rm.spec.pool!r}"
            if rm.pool is None
            else "no rendered Deployment"
            if deployment is None
            else f"no engine arguments ({rm.engine_problem})"
        )
        notes.append(f"{stack}: model {rm.name} has {why}; not simulated")
        return None
    template = (deployment.get("spec") or {}).get("template") or {}
    lo, hi = spec.policies.autoscaling.for_model(rm.name).replica_bounds(
        rm.spec.replicas.min, rm.spec.replicas.max
    )
    return Workload(
        cluster=info.name,
        namespace=spec.namespace,
        name=rm.name,
        labels=dict((template.get("metadata") or {}).get("labels") or {}),
        model=rm.service,
        version=rm.spec.version,
        gpu_class=rm.gpu_class,
        served_names=tuple(engine.served_model_names),
        min_replicas=lo,
        max_replicas=hi,
        pools=(rm.pool.name,),
        zones=tuple(sorted(rm.pool.spec.zones)),
        tensor_parallel=engine.tensor_parallel_size,
        weights_bytes=float(rm.weights_bytes) if rm.weights_bytes else None,
        max_num_seqs=engine.max_num_seqs,
    )


def read_preview_dir(path: Path) -> tuple[dict[str, list[dict[str, Any]]], dict[str, ClusterInfo]]:
    """Per-stack manifests and the topology ``outputs.json`` gives (no zones) from ``fleetkit preview --out``."""
    if not path.is_dir():
        what = "is a file" if path.exists() else "no such directory"
        raise SpecError(
            [
                Issue.at(
                    "--from",
                    str(path),
                    "simulate.no-preview",
                    f"{what} (expected the output of `fleetkit preview --out DIR`)",
                    str(path),
                )
            ]
        )
    manifests: dict[str, list[dict[str, Any]]] = {}
    topology: dict[str, ClusterInfo] = {}
    problems: list[Issue] = []
    for sdir in sorted(p for p in path.iterdir() if p.is_dir()):
        if not (sdir / MANIFESTS_DIR).is_dir():
            continue
        objs: list[dict[str, Any]] = []
        for f in manifest_files(sdir):
            try:
                objs += read_manifest_file(f)
            except yaml.YAMLError as err:
                problems.append(Issue.at(str(f), "", "simulate.bad-yaml", f"not YAML: {err}".splitlines()[0]))
            except (OSError, UnicodeDecodeError) as err:
                problems.append(
                    Issue.at(str(f), "", "simulate.unreadable", f"cannot read it as UTF-8 text: {err}")
                )
        manifests[sdir.name] = objs
        outputs = sdir / "outputs.json"
        if outputs.exists():
            try:
                out = json.loads(outputs.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                problems.append(Issue.at(str(outputs), "", "simulate.bad-json", f"not JSON: {err}"))
                continue
            except (OSError, UnicodeDecodeError) as err:
                problems.append(
                    Issue.at(str(outputs), "", "simulate.unreadable", f"cannot read it as UTF-8 text: {err}")
                )
                continue
            if not isinstance(out, dict):
                problems.append(
                    Issue.at(
                        str(outputs),
                        "",
                        "simulate.bad-json",
                        "expected a JSON object of stack outputs",
                        type(out).__name__,
                    )
                )
                continue
            if out.get("meshClusterName"):
                topology[sdir.name] = ClusterInfo(
                    str(out["meshClusterName"]),
                    str(out.get("meshNetwork") or ""),
                    str(out.get("region") or ""),
                    sdir.name,
                    {},
                )
    if not manifests and not problems:
        problems.append(
            Issue.at(
                "--from",
                str(path),
                "simulate.no-preview",
                "no <stack>/manifests/*.yaml below it (run `fleetkit preview --out DIR` first)",
                str(path),
            )
        )
    if problems:
        raise SpecError(problems)
    return manifests, topology


def merge_topology(
    from_specs: Mapping[str, ClusterInfo], from_outputs: Mapping[str, ClusterInfo]
) -> dict[str, ClusterInfo]:
    """Spec topology where a stack has one (it knows the zones), else what the outputs say."""
    out = dict(from_outputs)
    out.update(from_specs)
    return out
