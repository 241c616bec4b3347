"""Benchmark ``fleetkit.lint.lint_objects`` on a realistic mix of serving objects.

Each generated model brings a GPU Deployment, a Service, a DestinationRule (two subsets, locality failover,
outlier detection, connection pool), a VirtualService (weighted canary split, retries, timeout) and a KEDA
ScaledObject; every namespace gets a PeerAuthentication. Some objects carry deliberate mistakes so the
analyzers produce findings, as they would on a real repository. Target: >= 5,000 objects/s with schema
checks on (runbooks/lint.md gives the measured figures).

    python benchmarks/lint.py                 # default sizes
    python benchmarks/lint.py --sizes 100 1000 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from fleetkit.lint import LintConfig, lint_objects

OBJECTS_PER_MODEL = 5


def model_objects(i: int, namespace: str) -> list[dict[str, Any]]:
    name = f"model-{i}"
    labels = {"app": name}
    broken = i % 10 == 0  # one model in ten has problems
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**labels, "version": "v1"}},
                "spec": {
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm/vllm-openai:v0.11.0",
                            "command": ["vllm", "serve"],
                            "args": [f"/models/{name}", "--served-model-name", name],
                            "ports": [{"name": "http", "containerPort": 8000}],
                            "resources": {"limits": {"nvidia.com/gpu": 1}},
                        }
                    ]
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 8000, "targetPort": "http"}]},
    }
    policy: dict[str, Any] = {
        "loadBalancer": {
            "simple": "LEAST_REQUEST",
            "localityLbSetting": {"failoverPriority": ["topology.istio.io/network"]},
        },
        "connectionPool": {"http": {"http2MaxRequests": 8 if broken else 1024}},
    }
    if not broken:
        policy["outlierDetection"] = {"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "30s"}
    destination_rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "host": name,
            "trafficPolicy": policy,
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}},
            ],
        },
    }
    virtual_service = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "hosts": [name],
            "http": [
                {
                    "route": [
                        {"destination": {"host": name, "subset": "v1"}, "weight": 90},
                        {"destination": {"host": name, "subset": "v3" if broken else "v2"}, "weight": 10},
                    ],
                    "timeout": "20s" if broken else "600s",
                    "retries": {
                        "attempts": 2,
                        "retryOn": "5xx" if broken else "connect-failure,refused-stream",
                    },
                }
            ],
        },
    }
    scaled_object = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"name": name},
            "minReplicaCount": 1,
            "maxReplicaCount": 8,
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
                        "query": f"sum(vllm:{'gpu_cache_usage_perc' if broken else 'num_requests_waiting'}"
                        f'{{model_name="{name}"}})',
                        "threshold": "5",
                    },
                }
            ],
        },
    }
    return [deployment, service, destination_rule, virtual_service, scaled_object]


def generate(n_objects: int) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    models = max(1, n_objects // OBJECTS_PER_MODEL)
    namespaces = max(1, models // 20)
    for ns in range(namespaces):
        out.append(
            (
                f"ns-{ns}.yaml",
                {
                    "apiVersion": "security.istio.io/v1",
                    "kind": "PeerAuthentication",
                    "metadata": {"name": "default", "namespace": f"team-{ns}"},
                    "spec": {"mtls": {"mode": "STRICT"}},
                },
            )
        )
    for i in range(models):
        namespace = f"team-{i % namespaces}"
        out.extend((f"model-{i}.yaml", obj) for obj in model_objects(i, namespace))
    return out


def bench(
    objs: list[tuple[str, dict[str, Any]]], config: LintConfig, repeat: int
) -> tuple[float, float, int]:
    """Median wall-clock and CPU seconds of one lint run. On a shared machine the wall clock includes time
    spent waiting for a core; the CPU time is what the linter itself costs."""
    times, cpu = [], []
    findings = 0
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        findings = len(lint_objects(objs, config))
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(times), statistics.median(cpu), findings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 2000, 5000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    warm = generate(50)
    start = time.perf_counter()
    lint_objects(warm)
    print(f"cold start (load CRDs, compile validators for 6 kinds): {time.perf_counter() - start:.2f}s")
    warm = generate(2000)  # past FAST_PATH_AFTER objects per kind: the compiled fast validators get built
    start = time.perf_counter()
    lint_objects(warm)
    print(f"warm-up (build the compiled fast-path validators): {time.perf_counter() - start:.2f}s\n")

    with_schema, without_schema = LintConfig(), LintConfig(schema_validation=False)
    print("objects/s = per wall-clock second; per CPU s = per second of this process's CPU time")
    print(f"{'objects':>8} {'findings':>9} {'schema s':>9} {'objects/s':>10} {'per CPU s':>10} "
          f"{'no-schema s':>12} {'objects/s':>10} {'per CPU s':>10}")  # fmt: skip
    for size in args.sizes:
        objs = generate(size)
        t_schema, c_schema, findings = bench(objs, with_schema, args.repeat)
        t_plain, c_plain, _ = bench(objs, without_schema, args.repeat)
        n = len(objs)
        print(f"{n:>8} {findings:>9} {t_schema:>9.3f} {n / t_schema:>10.0f} {n / c_schema:>10.0f} "
              f"{t_plain:>12.3f} {n / t_plain:>10.0f} {n / c_plain:>10.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
