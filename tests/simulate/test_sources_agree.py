"""The two ways the simulator builds a fleet agree, and each deployed fact has one owner.

The stack path (:func:`fleetkit.simulate.source.fleet_from_stacks`) takes each model's facts from the
resolve step and the routing from the rendering; the preview path
(:func:`fleetkit.simulate.fleet.build_fleet`) reads everything from the manifests. On the demo fleet's
golden preview files (the rendering of the project's own stacks) both must build the same fleet.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fleetkit.loader import load_fleet
from fleetkit.simulate.capacity import DEFAULT_ASSUMPTIONS, capacity_view, replica_rps
from fleetkit.simulate.fleet import SimulatedFleet, build_fleet
from fleetkit.simulate.scenarios import Scenario
from fleetkit.simulate.source import (
    fleet_from_stacks,
    merge_topology,
    read_preview_dir,
    topology_from_specs,
    weights_from_specs,
)
from policies.autoscaling import AutoscalerSpec, AutoscalingPolicy

GOLDEN_PREVIEW = Path(__file__).resolve().parents[1] / "golden" / "demo"


@pytest.fixture(scope="module")
def demo(project_root: Path) -> tuple[Any, dict[str, list[dict[str, Any]]], dict[str, Any]]:
    manifests, from_outputs = read_preview_dir(GOLDEN_PREVIEW)
    return load_fleet(project_root), manifests, from_outputs


def _deployment(manifests: dict[str, list[dict[str, Any]]], stack: str, name: str) -> dict[str, Any]:
    [obj] = [o for o in manifests[stack] if o.get("kind") == "Deployment" and o["metadata"]["name"] == name]
    return obj


def _vllm_args(obj: dict[str, Any]) -> list[str]:
    [container] = [c for c in obj["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm"]
    args: list[str] = container["args"]
    return args


def test_stack_and_preview_paths_build_the_same_demo_fleet(demo):
    specs, manifests, from_outputs = demo
    from_stacks = fleet_from_stacks(specs, manifests)
    topology = merge_topology(topology_from_specs(specs), from_outputs)
    assert len(from_stacks.workloads) == 8 and len(from_stacks.clusters) == 4
    # what `fleetkit simulate --from DIR` builds (the specs add zones and weight sizes) ...
    assert build_fleet(manifests, topology, weights_from_specs(specs)) == from_stacks
    # ... and the manifests alone, with the project's topology, infer every model fact the same way
    assert build_fleet(manifests, topology) == from_stacks


def test_a_preview_directory_alone_agrees_except_for_the_zones(demo):
    specs, manifests, from_outputs = demo
    from_stacks = fleet_from_stacks(specs, manifests)
    alone = build_fleet(manifests, from_outputs)
    assert alone.config == from_stacks.config
    assert {c: replace(i, pool_zones={}) for c, i in from_stacks.clusters.items()} == alone.clusters
    assert [replace(w, zones=()) for w in from_stacks.workloads] == alone.workloads
    assert any(w.zones for w in from_stacks.workloads)


def test_a_model_without_a_rendered_deployment_is_left_out_with_a_note(demo):
    specs, manifests, _ = demo
    partial = dict(manifests)
    partial["azure-eastus"] = [o for o in manifests["azure-eastus"] if o.get("kind") != "Deployment"]
    fleet = fleet_from_stacks(specs, partial)
    assert not fleet.workloads_in("azure-eus") and "azure-eus" in fleet.clusters
    assert fleet.notes == ["azure-eastus: model llama-3-8b has no rendered Deployment; not simulated"]


def test_the_stack_path_takes_model_facts_from_the_resolve_step_not_the_manifests(demo):
    """Edit the rendered Deployment's model facts: the stack path does not see them (their owner is
    the resolve step), while its routing facts — the pod labels subsets select — are the rendered ones."""
    specs, manifests, _ = demo
    edited = copy.deepcopy(manifests)
    obj = _deployment(edited, "aws-us-east-1", "llama-3-8b")
    args = _vllm_args(obj)
    args[args.index("--max-num-seqs") + 1] = "8"
    args[args.index("--served-model-name") + 1] = "someone-else"
    obj["spec"]["template"]["spec"]["nodeSelector"] = {"fleetkit.dev/pool": "elsewhere"}
    obj["spec"]["template"]["metadata"]["labels"]["canary"] = "yes"

    def eight_b(fleet: SimulatedFleet):
        [w] = [w for w in fleet.workloads if w.key == "aws-use1/llama-3-8b"]
        return w

    before = eight_b(fleet_from_stacks(specs, manifests))
    after = eight_b(fleet_from_stacks(specs, edited))
    assert replace(after, labels=before.labels) == before
    assert after.labels["canary"] == "yes"
    read = eight_b(build_fleet(edited, topology_from_specs(specs)))
    assert (read.max_num_seqs, read.served_names[0], read.pools) == (8, "someone-else", ("elsewhere",))


def test_a_quantized_model_is_sized_from_the_resolve_step(project_root, demo):
    """Named bug of the manifest reading: an fp8 model renders ``--dtype auto`` (vLLM reads the
    quantization from the checkpoint), which counts two bytes a parameter — half the model's real
    throughput. The stack path takes the resolve step's weight bytes."""
    _, manifests, _ = demo
    specs = load_fleet(project_root, overrides=["models.llama-3-70b.dtype=fp8"])
    rendered = copy.deepcopy(manifests)
    for stack in ("aws-us-east-1", "gcp-europe-west4"):
        args = _vllm_args(_deployment(rendered, stack, "llama-3-70b"))
        args[args.index("--dtype") + 1] = "auto"  # what EngineArgs renders for fp8
    from_stacks = fleet_from_stacks(specs, rendered)
    from_manifests = build_fleet(rendered, topology_from_specs(specs))
    sizes = {
        w.key: (w.weights_bytes, v.weights_bytes)
        for w, v in zip(from_stacks.workloads, from_manifests.workloads, strict=True)
    }
    assert sizes["gcp-euw4/llama-3-70b"] == (70e9, 140e9)
    assert sizes["gcp-euw4/llama-3-8b"] == (16e9, 16e9)

    def capacity(fleet: SimulatedFleet) -> dict[str, float]:
        return {r.model: r.capacity_rps for r in capacity_view(fleet, Scenario(), [], DEFAULT_ASSUMPTIONS)}

    stacks, read = capacity(from_stacks), capacity(from_manifests)
    assert stacks["llama-3-8b"] == read["llama-3-8b"]
    # the fp8 Deployments count twice their bf16 estimate; v2 (bf16) is the same on both paths
    v2 = sum(
        replica_rps(w, DEFAULT_ASSUMPTIONS) * w.max_replicas
        for w in from_stacks.workloads
        if w.version == "v2"
    )
    assert stacks["llama-3-70b"] - v2 == pytest.approx(2 * (read["llama-3-70b"] - v2))


def test_max_num_seqs_caps_the_assumed_batch(demo):
    """vLLM schedules at most ``--max-num-seqs`` sequences a step, so a replica configured below the
    assumed batch is credited with that many, not more."""
    specs, manifests, _ = demo
    w = next(w for w in fleet_from_stacks(specs, manifests).workloads if w.gpu_class == "l4")
    assert w.max_num_seqs == 256
    full = replica_rps(w, DEFAULT_ASSUMPTIONS)
    assert replica_rps(replace(w, max_num_seqs=8), DEFAULT_ASSUMPTIONS) == pytest.approx(full * 8 / 32)
    assert replica_rps(replace(w, max_num_seqs=None), DEFAULT_ASSUMPTIONS) == full


@pytest.mark.parametrize("engine", ["keda", "hpa", "none"])
@pytest.mark.parametrize(("lo", "hi"), [(0, 3), (2, 5)])
def test_replica_bounds_are_what_the_autoscaler_renders(engine, lo, hi):
    """The stack path's replica bounds and the rendered autoscaler come from one method."""
    spec = AutoscalerSpec(engine=engine)
    out = AutoscalingPolicy(default=spec).render_for(
        model="m", deployment="m", namespace="llm", served_name="org/m", min_replicas=lo, max_replicas=hi
    )
    bounds = spec.replica_bounds(lo, hi)
    if engine == "none":
        assert out == [] and bounds == (lo, lo)  # the Deployment keeps `replicas: min`
        return
    [obj] = out
    s: Any = obj["spec"]
    keys = ("minReplicaCount", "maxReplicaCount") if engine == "keda" else ("minReplicas", "maxReplicas")
    assert (s[keys[0]], s[keys[1]]) == bounds
    assert bounds[0] == (max(lo, 1) if engine == "hpa" else lo)


def test_the_stack_path_stays_pure():
    """Reading the model plans (``components.model_plan``) must not pull in the Pulumi engine: the
    simulator runs with no engine and no credentials."""
    code = "import sys, fleetkit.simulate.source, fleetkit.simulate.command; print('pulumi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
