"""Capacity view: can the replicas a scenario leaves carry the traffic, and which models lose service.

Assumptions (stated here once, each overridable from the CLI with ``--assume KEY=VALUE``):

* **Per-replica throughput.** Decoding is memory-bandwidth bound: each step reads the weights once
  for the whole batch, so a replica generates about
  ``efficiency × batch × (bandwidth_per_gpu × tensor_parallel) / weight_bytes`` tokens/s, and serves
  ``that / output_tokens`` requests/s. Bandwidths are the vendors' data-sheet figures
  (``GPU_BANDWIDTH_GBPS``); weight bytes are the resolve step's (:class:`fleetkit.resolve.ResolvedModel`
  ``weights_bytes``: declared, else ``params_billion × bytes_per_param(dtype)`` from the planner,
  :mod:`fleetkit.capacity`), or the manifest reader's estimate (:mod:`.fleet`). Defaults:
  ``efficiency`` 0.5, ``batch`` 32 concurrent sequences — never more than the model's
  ``--max-num-seqs``, the most sequences vLLM schedules in one step (vLLM engine arguments,
  ``max_num_seqs``) — and ``output_tokens`` 256 per request.
* **Demand.** Unless given per model (``--demand MODEL=RPS``), each model's fleet-wide demand is
  ``utilisation`` (default 0.5) × what its Deployments can serve at their max replicas with
  everything healthy, split evenly over the request classes naming it (origins × tiers).
* Replicas can reach their autoscaler's max in the surviving clusters (``baseline = max``): the
  view asks whether the fleet can *scale* to carry the load, not whether it already does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fleetkit.simulate.core import Distribution
from fleetkit.simulate.fleet import SimulatedFleet, Workload
from fleetkit.simulate.scenarios import Scenario

#: Memory bandwidth per GPU, GB/s (NVIDIA data sheets: T4, A10G (AWS), L4, L40S, A100 40/80 GB SXM,
#: H100 SXM, H100 NVL, H200, B200).
GPU_BANDWIDTH_GBPS: Mapping[str, float] = {
    "t4": 320,
    "a10g": 600,
    "l4": 300,
    "l40s": 864,
    "a100-40gb": 1555,
    "a100-80gb": 2039,
    "h100": 3350,
    "h100-nvl": 3900,
    "h200": 4800,
    "b200": 8000,
}
DEFAULT_ASSUMPTIONS: Mapping[str, float] = {
    "efficiency": 0.5,
    "batch": 32,
    "output_tokens": 256,
    "utilisation": 0.5,
}


@dataclass(frozen=True)
class ModelRow:
    model: str
    demand_rps: float
    capacity_rps: float
    #: share of the model's requests that end in an error or on another model
    lost_share: float

    @property
    def carried(self) -> bool:
        return self.capacity_rps >= self.demand_rps and self.lost_share == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "demand_rps": round(self.demand_rps, 3),
            "capacity_rps": round(self.capacity_rps, 3),
            "lost_share": round(self.lost_share, 6),
            "carried": self.carried,
        }


def replica_rps(w: Workload, assume: Mapping[str, float]) -> float:
    """Requests/s one replica of ``w`` serves under the stated assumptions (0 when unknown)."""
    bw = GPU_BANDWIDTH_GBPS.get(w.gpu_class)
    if not bw or not w.weights_bytes:
        return 0.0
    batch = min(assume["batch"], w.max_num_seqs) if w.max_num_seqs else assume["batch"]
    tokens = assume["efficiency"] * batch * bw * max(1, w.tensor_parallel) / (w.weights_bytes / 1e9)
    return tokens / assume["output_tokens"]


def _capacity(fleet: SimulatedFleet, scenario: Scenario, assume: Mapping[str, float]) -> dict[str, float]:
    at_max = replace(scenario, baseline="max")
    out: dict[str, float] = {}
    for w in fleet.workloads:
        n = sum(at_max.pods(fleet, w).values())
        out[w.model] = out.get(w.model, 0.0) + n * replica_rps(w, assume)
    return out


def capacity_view(
    fleet: SimulatedFleet,
    scenario: Scenario,
    results: Sequence[tuple[str, Distribution]],
    assume: Mapping[str, float],
    demand: Mapping[str, float] | None = None,
) -> list[ModelRow]:
    """Per model service: demand, the capacity left at max replicas, and the share of its requests
    that the scenario loses (errors or another model answering). ``results``: (the model service a
    request class names, its outcome distribution) per class."""
    healthy = _capacity(fleet, Scenario(), assume)
    left = _capacity(fleet, scenario, assume)
    classes: dict[str, list[Distribution]] = {}
    for model, dist in results:
        classes.setdefault(model, []).append(dist)
    rows = []
    for model in sorted(set(healthy) | set(classes)):
        want = (demand or {}).get(model, assume["utilisation"] * healthy.get(model, 0.0))
        dists = classes.get(model, [])
        lost = sum(p for d in dists for o, p in d.items() if not o.ok or o.model != model or o.substitute)
        rows.append(ModelRow(model, want, left.get(model, 0.0), lost / len(dists) if dists else 0.0))
    return rows
