"""Simulator speed: N stacks × M models × the standard scenario set (target: 50 × 20 in < 30 s on 2 cores).

A synthetic fleet shaped like the kit's rendered output: every stack its own cluster, network and
region; every model a Deployment (min 1, max 3), a Service, a DestinationRule with one subset per
tier, topology failoverPriority and outlier detection, and VirtualService routes per model × tier;
an edge body router (the Lua config table) maps each model's served name to its service and the
``tier`` claim to the tier header. Request classes: every model × tier × origin.

    .venv/bin/python benchmarks/simulate.py [--stacks 50] [--models 20]

Prints the figures; nothing is timed in the test suite (a smoke test runs a tiny size).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleetkit.simulate.fleet import ClusterInfo, SimulatedFleet, build_fleet
from fleetkit.simulate.report import request_classes, simulate
from fleetkit.simulate.scenarios import standard_scenarios

NS = "llm"
TIERS = ("premium", "standard", "batch")
TOPOLOGY = [
    "topology.istio.io/network",
    "topology.istio.io/cluster",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
]


def _host(model: str) -> str:
    return f"{model}.{NS}.svc.cluster.local"


def _lua(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in sorted(value.items())) + "}"
    return "{" + ", ".join(_lua(v) for v in value) + "}"


def stack_manifests(i: int, models: int) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    routes = []
    names = [f"m{j}" for j in range(models)]
    for m in names:
        labels = {"app": m, "version": "v1", "fleetkit.dev/gpu-class": ("l4", "h100", "a100-80gb")[i % 3]}
        objs.append(
            {
                "kind": "Deployment",
                "metadata": {"name": m, "namespace": NS},
                "spec": {
                    "replicas": 1,
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "nodeSelector": {"fleetkit.dev/pool": "gpu"},
                            "containers": [
                                {
                                    "name": "vllm",
                                    "command": ["vllm", "serve"],
                                    "args": [
                                        f"/models/{m}",
                                        "--served-model-name",
                                        f"org/{m}",
                                        "--tensor-parallel-size",
                                        "1",
                                    ],
                                }
                            ],
                        },
                    },
                },
            }
        )
        objs.append(
            {
                "kind": "ScaledObject",
                "metadata": {"name": m, "namespace": NS},
                "spec": {"scaleTargetRef": {"name": m}, "minReplicaCount": 1, "maxReplicaCount": 3},
            }
        )
        objs.append(
            {"kind": "Service", "metadata": {"name": m, "namespace": NS}, "spec": {"selector": {"app": m}}}
        )
        objs.append(
            {
                "kind": "DestinationRule",
                "metadata": {"name": m, "namespace": NS},
                "spec": {
                    "host": _host(m),
                    "subsets": [
                        {
                            "name": t,
                            "labels": {"app": m},
                            "trafficPolicy": {"connectionPool": {"http": {"http2MaxRequests": 128}}},
                        }
                        for t in TIERS
                    ],
                    "trafficPolicy": {
                        "loadBalancer": {
                            "simple": "LEAST_REQUEST",
                            "localityLbSetting": {"enabled": True, "failoverPriority": TOPOLOGY},
                        },
                        "outlierDetection": {"consecutive5xxErrors": 5, "maxEjectionPercent": 100},
                    },
                },
            }
        )
        for t in TIERS:
            routes.append(
                {
                    "name": f"{m}-{t}",
                    "match": [
                        {"headers": {"x-fleetkit-model": {"exact": m}, "x-fleetkit-tier": {"exact": t}}}
                    ],
                    "route": [{"destination": {"host": _host(m), "subset": t}, "weight": 100}],
                }
            )
    routes.append(
        {"name": "default", "route": [{"destination": {"host": _host(names[0]), "subset": "standard"}}]}
    )
    objs.append(
        {
            "kind": "VirtualService",
            "metadata": {"name": "routes", "namespace": NS},
            "spec": {"hosts": ["api.example.com"], "gateways": ["istio-system/ingress"], "http": routes},
        }
    )
    table = {
        "headers": {"model": "x-fleetkit-model", "tier": "x-fleetkit-tier"},
        "claim_headers": {"tier": "x-fleetkit-claim-tier"},
        "models": {f"org/{m}": {"service": m, "served": f"org/{m}"} for m in names},
        "tiers": {"default": "standard", "map": {t: t for t in TIERS}},
        "cohorts": {"known": {}, "sticky": []},
        "body_paths": {"/v1/chat/completions": True},
    }
    lua = f"FLEETKIT = {_lua(table)}\n"
    objs.append(
        {
            "kind": "EnvoyFilter",
            "metadata": {"name": "edge", "namespace": "istio-system"},
            "spec": {
                "configPatches": [
                    {
                        "applyTo": "HTTP_FILTER",
                        "patch": {
                            "operation": "INSERT_BEFORE",
                            "value": {
                                "name": "route",
                                "typed_config": {"default_source_code": {"inline_string": lua}},
                            },
                        },
                    }
                ]
            },
        }
    )
    objs.append(
        {
            "kind": "RequestAuthentication",
            "metadata": {"name": "jwt", "namespace": "istio-system"},
            "spec": {
                "jwtRules": [{"outputClaimToHeaders": [{"header": "x-fleetkit-claim-tier", "claim": "tier"}]}]
            },
        }
    )
    return objs


def synthetic_fleet(stacks: int, models: int) -> SimulatedFleet:
    manifests = {f"s{i}": stack_manifests(i, models) for i in range(stacks)}
    topology = {
        f"s{i}": ClusterInfo(f"c{i}", f"net-{i}", f"region-{i}", f"s{i}", {"gpu": ("a", "b")})
        for i in range(stacks)
    }
    return build_fleet(manifests, topology)


def _cpu() -> float:
    """User + system CPU seconds of this process and its finished children (the forked workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stacks", type=int, default=50)
    ap.add_argument("--models", type=int, default=20)
    ap.add_argument("--target", type=float, default=30.0, help="seconds")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (scenarios split between them)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    c0 = _cpu()
    fleet = synthetic_fleet(args.stacks, args.models)
    t1 = time.perf_counter()
    scenarios = standard_scenarios(fleet)
    classes = request_classes(fleet)
    report = simulate(fleet, scenarios, classes, jobs=args.jobs)
    t2 = time.perf_counter()
    runs = len(scenarios) * len(classes)
    served = sum(1 for d in report.results.values() if d and next(iter(d)).ok)
    print(
        f"fleet: {args.stacks} stacks × {args.models} models, {len(fleet.workloads)} Deployments "
        f"(built in {t1 - t0:.2f} s)"
    )
    print(
        f"simulated: {len(scenarios)} standard scenarios × {len(classes)} request classes = {runs} distributions "
        f"in {t2 - t1:.2f} s ({runs / (t2 - t1):,.0f}/s; {served} mostly served); "
        f"{args.jobs} worker(s), {os.cpu_count()} cpus"
    )
    total = t2 - t0
    cpu = _cpu() - c0
    print(
        f"total {total:.2f} s wall, {cpu:.2f} s CPU in all processes (the wall time on {max(1, args.jobs)} idle "
        f"core(s) is about CPU / workers; load average now {os.getloadavg()[0]:.1f})"
    )
    print(f"target < {args.target:g} s: {'met' if total < args.target else 'MISSED'} (wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
