"""Mistakes a new user makes, each blamed on the right file (or flag) with the path, rule and value.

Every case runs the real CLI on a throwaway copy of the demo project and checks: exit code 2, no
traceback, the rule reported against the expected file and path, and — where it matters — that the
one root cause is the only problem (no follow-ons blamed on files without a mistake).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fleetkit.cli import app
from fleetkit.loader import load_fleet
from fleetkit.spec import RegionStackSpec

USE1 = "stacks/Pulumi.aws-us-east-1.yaml"
EUW4 = "stacks/Pulumi.gcp-europe-west4.yaml"
EUS = "stacks/Pulumi.azure-eastus.yaml"
ROOT = "stacks/Pulumi.mesh-root.yaml"
PEERING = "stacks/Pulumi.mesh-peering.yaml"
FLEET = "stacks/fleet.yaml"

Edit = Callable[[Path], None]


def config(rel: str, fn: Callable[[dict[str, Any]], None]) -> Edit:
    def edit(root: Path) -> None:
        doc = yaml.safe_load((root / rel).read_text())
        fn(doc["config"])
        (root / rel).write_text(yaml.safe_dump(doc, sort_keys=False))

    return edit


def fleet_doc(fn: Callable[[dict[str, Any]], None]) -> Edit:
    def edit(root: Path) -> None:
        doc = yaml.safe_load((root / FLEET).read_text())
        fn(doc["fleetkit"])
        (root / FLEET).write_text(yaml.safe_dump(doc, sort_keys=False))

    return edit


def raw(rel: str, text: str) -> Edit:
    def edit(root: Path) -> None:
        (root / rel).write_text(text)

    return edit


def run(root: Path, *args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, [args[0], "--root", str(root), *args[1:]])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, [ln.strip().removeprefix("• ") for ln in result.output.splitlines() if "[" in ln]


def _pool_opts(other: str) -> Callable[[dict[str, Any]], None]:
    return lambda c: c["fleetkit:node_pools"]["l4"].update({other: {}})


def _region(cloud_key: str, region: str) -> Callable[[dict[str, Any]], None]:
    def fn(c: dict[str, Any]) -> None:
        c["fleetkit:region"] = region
        c[cloud_key] = region

    return fn


# (id, edit, extra args, rule, file, displayed path, value shown, only problem?)
CASES: list[tuple[str, Edit | None, list[str], str, str, str, str, bool]] = [
    # --- blame: a --set mistake is the flag's
    (
        "set-wrong-type-all-stacks",
        None,
        ["--set", "models.llama-3-8b.replicas.max=lots"],
        "spec.int_parsing",
        "--set",
        "models.llama-3-8b.replicas.max",
        "'lots'",
        True,
    ),
    (
        "set-creates-model",
        None,
        ["-s", "aws-us-east-1", "--set", "models.qwen.pool=l4"],
        "spec.missing",
        "--set",
        "models.qwen.served_name",
        "",
        False,
    ),
    (
        "set-unknown-instance-type",
        None,
        ["-s", "aws-us-east-1", "--set", "node_pools.l4.instance_type=g6.huge"],
        "pool.unknown-instance-type",
        "--set",
        "node_pools.l4.instance_type",
        "'g6.huge'",
        True,
    ),
    (
        "set-misspelled-field",
        None,
        ["--set", "models.llama-3-8b.replica.max=6"],
        "spec.extra_forbidden",
        "--set",
        "models.llama-3-8b.replica",
        "did you mean 'replicas'",
        True,
    ),
    (
        "set-unknown-top-key",
        None,
        ["--set", "modles.llama-3-8b.replicas.max=6"],
        "cli.set-unknown-key",
        "--set",
        "modles.llama-3-8b.replicas.max",
        "did you mean 'models'",
        True,
    ),
    # --- blame: the stack file that set or deploys it
    (
        "pool-option-wrong-cloud",
        config(USE1, _pool_opts("gcp")),
        [],
        "pool.wrong-cloud-options",
        USE1,
        "fleetkit:node_pools.l4.gcp",
        "'gcp'",
        True,
    ),
    (
        "deployed-model-without-pool",
        config(USE1, lambda c: c["fleetkit:models"].update({"llama-3-8b": {}})),
        [],
        "model.no-pool",
        USE1,
        "fleetkit:models.llama-3-8b.pool",
        "",
        True,
    ),
    # --- root cause first: one problem, not one per stack
    (
        "fleet-syntax-error",
        raw(FLEET, "fleetkit:\n  mesh: [unclosed\n"),
        [],
        "yaml.syntax",
        FLEET,
        "line",
        "",
        True,
    ),
    ("fleet-empty", raw(FLEET, ""), [], "file.empty", FLEET, "(document)", "", True),
    (
        "fleet-misspelled-namespace",
        lambda r: (r / FLEET).write_text((r / FLEET).read_text().replace("fleetkit:\n", "fleetkt:\n", 1)),
        [],
        "fleet.shape",
        FLEET,
        "(document)",
        "misspelling of 'fleetkit'",
        True,
    ),
    (
        "fleet-misspelled-key",
        fleet_doc(lambda f: f.update({"polices": f.pop("policies")})),
        [],
        "spec.extra_forbidden",
        FLEET,
        "fleetkit.polices",
        "did you mean 'policies'",
        True,
    ),
    (
        "stack-misspelled-config",
        lambda r: (r / USE1).write_text((r / USE1).read_text().replace("config:", "confg:", 1)),
        [],
        "stack.unknown-key",
        USE1,
        "confg",
        "did you mean 'config'",
        True,
    ),
    (
        "stack-misspelled-key",
        config(USE1, lambda c: c.update({"fleetkit:node_pool": c.pop("fleetkit:node_pools")})),
        [],
        "spec.extra_forbidden",
        USE1,
        "fleetkit:node_pool",
        "did you mean 'node_pools'",
        True,
    ),
    # --- accepted silently before: now errors with file, path, rule and value
    (
        "region-does-not-exist",
        config(USE1, _region("aws:region", "us-west-9")),
        [],
        "stack.unknown-region",
        USE1,
        "fleetkit:region",
        "'us-west-9'",
        True,
    ),
    (
        "aws-region-in-gcp-stack",
        config(EUW4, _region("gcp:region", "us-east-1")),
        [],
        "stack.unknown-region",
        EUW4,
        "fleetkit:region",
        "that is an aws region",
        False,
    ),
    (
        "aws-provider-region-disagrees",
        config(USE1, lambda c: c.update({"aws:region": "us-west-2"})),
        [],
        "stack.provider-region-mismatch",
        USE1,
        "aws:region",
        "'us-west-2'",
        True,
    ),
    (
        "gcp-provider-region-disagrees",
        config(EUW4, lambda c: c.update({"gcp:region": "europe-west1"})),
        [],
        "stack.provider-region-mismatch",
        EUW4,
        "gcp:region",
        "'europe-west1'",
        True,
    ),
    (
        "azure-provider-location-disagrees",
        config(EUS, lambda c: c.update({"azure-native:location": "westeurope"})),
        [],
        "stack.provider-region-mismatch",
        EUS,
        "azure-native:location",
        "'westeurope'",
        True,
    ),
    (
        "fallback-cycle",
        fleet_doc(
            lambda f: f["policies"]["resilience"].update(
                {"fallback": {"llama-3-70b": ["llama-3-8b"], "llama-3-8b": ["llama-3-70b"]}}
            )
        ),
        [],
        "resilience.fallback-cycle",
        FLEET,
        "fleetkit.policies.resilience.fallback.llama-3-70b",
        "llama-3-70b -> llama-3-8b -> llama-3-70b",
        True,
    ),
    (
        "keda-objects-without-keda",
        config(USE1, lambda c: c.update({"fleetkit:addons": {"keda": False}})),
        [],
        "addons.keda-disabled",
        USE1,
        "fleetkit:addons.keda",
        "llama-3-70b",
        True,
    ),
    (
        "misspelled-config-namespace",
        config(USE1, lambda c: c.update({"fleetkti:addons": {"keda": True}})),
        [],
        "stack.unknown-namespace",
        USE1,
        "fleetkti:addons",
        "did you mean 'fleetkit:addons'",
        True,
    ),
    ("jobs-zero", None, ["-j", "0"], "cli.bad-jobs", "--jobs", "0", "(got 0)", True),
    # --- the role key: blamed at fleetkit:role (not at the whole 'config'), and the one root cause
    (
        "role-unknown-value",
        config(ROOT, lambda c: c.update({"fleetkit:role": "trust-rot"})),
        [],
        "spec.union_tag_invalid",
        ROOT,
        "fleetkit:role",
        "(got 'trust-rot')",
        True,
    ),
    (
        "role-key-misspelled",
        config(PEERING, lambda c: c.update({"fleetkit:rol": c.pop("fleetkit:role")})),
        [],
        "spec.extra_forbidden",
        PEERING,
        "fleetkit:rol",
        "did you mean 'role'",
        True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_mistake_is_blamed_on_the_right_file(case, tmp_project: Path) -> None:
    _, edit, args, rule, file, path, shown, only = case
    if edit is not None:
        edit(tmp_project)
    command = "preview" if "-j" in args else "validate"
    code, lines = run(tmp_project, command, *args)
    assert code == 2, lines
    hits = [ln for ln in lines if f"[{rule}]" in ln]
    assert hits, f"{rule} not reported: {lines}"
    assert any(ln.startswith(f"{file}: {path}") and shown in ln for ln in hits), hits
    if only:
        assert len(lines) == 1, f"expected the one root cause only, got {lines}"


def test_the_readme_set_example_works(project_root: Path) -> None:
    code, lines = run(project_root, "validate", "--set", "models.llama-3-8b.replicas.max=6")
    assert code == 0, lines
    fleet = load_fleet(project_root, overrides=["models.llama-3-8b.replicas.max=6"])
    for name, st in fleet.stacks.items():
        if isinstance(st.spec, RegionStackSpec):
            assert st.spec.models["llama-3-8b"].replicas.max == 6, name
            assert st.overrides == ("models.llama-3-8b.replicas.max=6",)
        else:
            assert st.overrides == (), "a model override does not reach the trust-root stack"


def test_a_model_override_reaches_only_the_stacks_that_deploy_it(project_root: Path) -> None:
    fleet = load_fleet(project_root, overrides=["models.llama-3-70b-v2.replicas.max=2"])
    touched = sorted(n for n, st in fleet.stacks.items() if st.overrides)
    assert touched == ["aws-us-east-1"]


def test_a_type_error_does_not_hide_reference_errors_elsewhere(tmp_project: Path) -> None:
    config(USE1, lambda c: c["fleetkit:node_pools"]["l4"].update({"min_size": "two"}))(tmp_project)
    config(EUW4, lambda c: c["fleetkit:node_pools"]["l4"].update({"instance_type": "g2-standard-99"}))(
        tmp_project
    )
    fleet_doc(lambda f: f["policies"]["routing"]["routes"][2]["to"][0].update({"version": "v7"}))(tmp_project)
    code, lines = run(tmp_project, "validate")
    assert code == 2
    rules = sorted((ln.split(":")[0], re.search(r"\[([a-z]+\.[a-z_-]+)\]", ln).group(1)) for ln in lines)  # type: ignore[union-attr]
    assert rules == [
        (USE1, "spec.int_parsing"),
        (EUW4, "pool.unknown-instance-type"),
        (FLEET, "ref.unknown-version"),
    ], lines
    # the broken stack's models still count as known: its canary version is no follow-on error
    assert not any("'v2'" in ln for ln in lines), lines
