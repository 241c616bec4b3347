"""A corpus of malformed stack / fleet / policy inputs and bad flags.

Every case must give the documented error format — ``file: path: [rule] message (got value)`` —
exit code 2, no traceback, and no output written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fleetkit.cli import app

STACK = "stacks/Pulumi.aws-us-east-1.yaml"
FLEET = "stacks/fleet.yaml"


def raw(rel: str, text: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        (root / rel).write_text(text)

    return edit


def doc(rel: str, fn: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        data = yaml.safe_load((root / rel).read_text())
        fn(data)
        (root / rel).write_text(yaml.safe_dump(data, sort_keys=False))

    return edit


def cfg(fn: Callable[[dict[str, Any]], None], rel: str = STACK) -> Callable[[Path], None]:
    return doc(rel, lambda d: fn(d["config"]))


def pol(fn: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    return doc(FLEET, lambda d: fn(d["fleetkit"]["policies"]))


def set_(d: dict[str, Any], path: str, value: Any) -> None:
    *head, last = path.split(".")
    for p in head:
        d = d[int(p)] if isinstance(d, list) else d[p]
    if isinstance(d, list):
        d[int(last)] = value
    else:
        d[last] = value


# (id, edit, extra CLI args, expected rule, expected file, expected path fragment)
CASES: list[tuple[str, Callable[[Path], None] | None, list[str], str, str, str]] = [
    ("yaml-syntax", raw(STACK, "config:\n  fleetkit:cloud: [aws\n"), [], "yaml.syntax", STACK, "line"),
    (
        "duplicate-key",
        raw(STACK, "config:\n  fleetkit:cloud: aws\n  fleetkit:cloud: gcp\n"),
        [],
        "yaml.duplicate-key",
        STACK,
        "line 3",
    ),
    ("empty-stack-file", raw(STACK, ""), [], "file.empty", STACK, "(document)"),
    ("empty-fleet-file", raw(FLEET, "   \n"), [], "file.empty", FLEET, "(document)"),
    ("stack-not-mapping", raw(STACK, "- a\n- b\n"), [], "stack.shape", STACK, "(document)"),
    ("config-not-mapping", raw(STACK, "config: 3\n"), [], "stack.shape", STACK, "config"),
    (
        "fleet-wrong-namespace",
        raw(FLEET, "fleet:\n  namespace: llm\n"),
        [],
        "fleet.shape",
        FLEET,
        "(document)",
    ),
    (
        "unknown-top-key",
        raw(STACK, "config:\n  fleetkit:cloud: aws\nconfg: {}\n"),
        [],
        "stack.unknown-key",
        STACK,
        "confg",
    ),
    (
        "typo-key",
        cfg(lambda c: c.update({"fleetkit:node_pool": c.pop("fleetkit:node_pools")})),
        [],
        "spec.extra_forbidden",
        STACK,
        "fleetkit:node_pool",
    ),
    (
        "wrong-type",
        cfg(lambda c: set_(c, "fleetkit:node_pools.l4.min_size", "two")),
        [],
        "spec.int_parsing",
        STACK,
        "fleetkit:node_pools.l4.min_size",
    ),
    (
        "min-gt-max",
        cfg(lambda c: set_(c, "fleetkit:node_pools.l4.min_size", 9)),
        [],
        "spec.value_error",
        STACK,
        "fleetkit:node_pools.l4",
    ),
    (
        "unknown-cloud",
        cfg(lambda c: set_(c, "fleetkit:cloud", "aws2")),
        [],
        "spec.literal_error",
        STACK,
        "fleetkit:cloud",
    ),
    (
        "bad-weights-uri",
        doc(FLEET, lambda d: set_(d, "fleetkit.models.llama-3-8b.weights_uri", "http://x/y")),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.models.llama-3-8b.weights_uri",
    ),
    (
        "unknown-pool",
        cfg(lambda c: set_(c, "fleetkit:models.llama-3-8b.pool", "l5")),
        [],
        "ref.unknown-pool",
        STACK,
        "fleetkit:models.llama-3-8b.pool",
    ),
    (
        "route-unknown-model",
        pol(lambda p: set_(p, "routing.routes.2.to.0.model", "gpt-9")),
        [],
        "ref.unknown-model",
        FLEET,
        "fleetkit.policies.routing.routes[2].to[0].model",
    ),
    (
        "route-unknown-version",
        pol(lambda p: set_(p, "routing.routes.0.to.1.version", "v7")),
        [],
        "ref.unknown-version",
        FLEET,
        "fleetkit.policies.routing.routes[0].to[1].version",
    ),
    (
        "zero-weight",
        pol(lambda p: set_(p, "routing.routes.0.to.1.weight", 0)),
        [],
        "spec.greater_than_equal",
        FLEET,
        "routes[0].to[1].weight",
    ),
    (
        "per-try-cuts-generation",
        pol(lambda p: set_(p, "resilience.default.retries.per_try_timeout", "300s")),
        [],
        "resilience.per-try-cuts-generation",
        FLEET,
        "fleetkit.policies.resilience.default.retries.per_try_timeout",
    ),
    (
        "bad-duration",
        pol(lambda p: set_(p, "resilience.default.timeout", "10 minutes")),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.policies.resilience.default.timeout",
    ),
    (
        "qos-unknown-default-tier",
        pol(lambda p: set_(p, "qos.default_tier", "gold")),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.policies.qos",
    ),
    (
        "qos-batch-not-shed-first",
        pol(lambda p: set_(p, "qos.tiers.batch.max_requests", 5000)),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.policies.qos",
    ),
    (
        "failover-unknown-region",
        pol(lambda p: p.update({"failover": {"mode": "regions", "regions": ["us-east-1", "mars-1"]}})),
        [],
        "ref.unknown-region",
        FLEET,
        "fleetkit.policies.failover.regions[1]",
    ),
    (
        "failover-without-outlier-detection",
        pol(
            lambda p: p["resilience"]["default"]["circuit_breaker"].update(
                {"consecutive_5xx_errors": 0, "consecutive_gateway_errors": 0}
            )
        ),
        [],
        "failover.needs-outlier-detection",
        FLEET,
        "fleetkit.policies.resilience.default.circuit_breaker",
    ),
    (
        "duplicate-route-names",
        pol(lambda p: set_(p, "routing.routes.1.name", "llama-70b-canary")),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.policies.routing",
    ),
    (
        "route-unknown-tier",
        pol(lambda p: set_(p, "routing.routes.2.match.0.tier", "gold")),
        [],
        "ref.unknown-tier",
        FLEET,
        "routes[2].match[0].tier",
    ),
    (
        "consistent-hash-without-key",
        pol(
            lambda p: p["load_balancing"]["models"].update({"llama-3-70b": {"algorithm": "consistent_hash"}})
        ),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.policies.load_balancing.models.llama-3-70b",
    ),
    (
        "maglev-not-prime",
        pol(
            lambda p: p["load_balancing"]["models"].update(
                {
                    "llama-3-70b": {
                        "algorithm": "consistent_hash",
                        "hash_on": {"header": "x-s"},
                        "hash_algorithm": "maglev",
                        "maglev_table_size": 1000,
                    }
                }
            )
        ),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.policies.load_balancing.models.llama-3-70b",
    ),
    (
        "mirror-over-100",
        pol(lambda p: set_(p, "routing.routes.1.mirror.percent", 150)),
        [],
        "spec.less_than_equal",
        FLEET,
        "routes[1].mirror.percent",
    ),
    (
        "model-named-vllm",
        cfg(lambda c: set_(c, "fleetkit:models.llama-3-8b.service", "vllm")),
        [],
        "model.reserved-name",
        STACK,
        "fleetkit:models.llama-3-8b.service",
    ),
    (
        "model-missing-fields",
        cfg(lambda c: c["fleetkit:models"].update({"qwen": {"pool": "l4"}})),
        [],
        "spec.missing",
        STACK,
        "fleetkit:models.qwen.served_name",
    ),
    (
        "tp-exceeds-gpus",
        cfg(lambda c: set_(c, "fleetkit:models.llama-3-70b.tensor_parallel", 8)),
        [],
        "capacity.tp-exceeds-gpus",
        STACK,
        "fleetkit:models.llama-3-70b.tensor_parallel",
    ),
    (
        "does-not-fit",
        cfg(
            lambda c: (
                set_(c, "fleetkit:models.llama-3-70b.pool", "l4")
                or set_(c, "fleetkit:models.llama-3-70b.tensor_parallel", 1)
            )
        ),
        [],
        "capacity.does-not-fit",
        STACK,
        "fleetkit:models.llama-3-70b.pool",
    ),
    (
        "adopt-and-create",
        cfg(lambda c: c["fleetkit:cluster"].update({"adopt": {"kubernetes_version": "1.33"}})),
        [],
        "spec.value_error",
        STACK,
        "fleetkit:cluster",
    ),
    (
        "unknown-instance-type",
        cfg(lambda c: set_(c, "fleetkit:node_pools.l4.instance_type", "g6.12xlarg")),
        [],
        "pool.unknown-instance-type",
        STACK,
        "fleetkit:node_pools.l4.instance_type",
    ),
    (
        "duplicate-cluster-name",
        cfg(lambda c: set_(c, "fleetkit:mesh.cluster_name", "aws-usw2")),
        [],
        "mesh.duplicate-cluster-name",
        STACK,
        "fleetkit:mesh.cluster_name",
    ),
    (
        "mesh-id-mismatch",
        cfg(lambda c: c.update({"fleetkit:mesh": {**c["fleetkit:mesh"], "mesh_id": "other"}})),
        [],
        "mesh.mesh-id-mismatch",
        STACK,
        "fleetkit:mesh.mesh_id",
    ),
    ("bad-set-flag", None, ["--set", "replicas"], "cli.set-syntax", "--set", "replicas"),
    (
        "set-wrong-type",
        None,
        ["--set", "models.llama-3-8b.replicas.max=lots", "-s", "aws-us-east-1"],
        "spec.int_parsing",
        "--set",
        "models.llama-3-8b.replicas.max",
    ),
    ("unknown-stack-flag", None, ["-s", "aws-mars-1"], "cli.unknown-stack", "--stack", "aws-mars-1"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", ["validate", "preview"])
def test_bad_input_reports_clearly_and_writes_nothing(case, command, tmp_project):
    _, edit, args, rule, file, path = case
    if edit is not None:
        edit(tmp_project)
    out = tmp_project / "out"
    extra = ["--out", str(out)] if command == "preview" else []
    result = CliRunner().invoke(app, [command, "--root", str(tmp_project), *extra, *args])
    text = result.output
    assert result.exit_code == 2, text
    assert "Traceback" not in text and result.exception is None or isinstance(result.exception, SystemExit), (
        text
    )
    lines = [ln for ln in text.splitlines() if f"[{rule}]" in ln]
    assert lines, f"rule {rule} not reported:\n{text}"
    assert any(f"{file}: " in ln and path in ln for ln in lines), lines
    assert not out.exists(), "no output may be written on bad input"


def test_all_problems_reported_at_once(tmp_project):
    def many(c: dict[str, Any]) -> None:
        set_(c, "fleetkit:node_pools.l4.min_size", "x")
        set_(c, "fleetkit:cloud", "aws2")
        set_(c, "fleetkit:region", "US EAST")

    cfg(many)(tmp_project)
    result = CliRunner().invoke(app, ["validate", "--root", str(tmp_project)])
    assert result.exit_code == 2
    assert "3 problems found" in result.output
