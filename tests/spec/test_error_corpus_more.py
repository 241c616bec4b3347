"""More mistakes a new user makes in the input files and in ``--set``, each checked end to end.

Every case runs ``fleetkit validate`` and ``fleetkit preview --out`` on a throwaway copy of the demo
project and checks the documented contract: exit code 2, no traceback, the rule reported against the
file that holds the mistake (``--set`` for an override) at the exact path there, the bad value shown,
only the root cause where that matters (no follow-on problems blamed on other files), and nothing
written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fleetkit.cli import app
from tests.spec.test_error_corpus import cfg, doc, raw, set_

USE1 = "stacks/Pulumi.aws-us-east-1.yaml"
USW2 = "stacks/Pulumi.aws-us-west-2.yaml"
EUW4 = "stacks/Pulumi.gcp-europe-west4.yaml"
EUS = "stacks/Pulumi.azure-eastus.yaml"
ROOT = "stacks/Pulumi.mesh-root.yaml"
FLEET = "stacks/fleet.yaml"

Edit = Callable[[Path], None]


def flt(fn: Callable[[dict[str, Any]], None]) -> Edit:
    """Edit the mapping under ``fleetkit:`` of the fleet file."""
    return doc(FLEET, lambda d: fn(d["fleetkit"]))


def sub(rel: str, old: str, new: str) -> Edit:
    """Replace text in a file as written (for mistakes a YAML round trip would not keep)."""

    def edit(root: Path) -> None:
        text = (root / rel).read_text()
        assert old in text, (rel, old)
        (root / rel).write_text(text.replace(old, new, 1))

    return edit


def rename(rel: str, new_name: str) -> Edit:
    return lambda root: (root / rel).rename((root / rel).parent / new_name)


def both(*edits: Edit) -> Edit:
    def edit(root: Path) -> None:
        for e in edits:
            e(root)

    return edit


def pop_into(path: str, old: str, new: str) -> Callable[[dict[str, Any]], None]:
    """Rename the key ``old`` to ``new`` in the mapping at ``path`` (a misspelled key)."""

    def fn(d: dict[str, Any]) -> None:
        for p in path.split(".") if path else []:
            d = d[int(p)] if isinstance(d, list) else d[p]
        d[new] = d.pop(old)

    return fn


S = ["-s", "aws-us-east-1"]

# (id, edit, extra args, rule, file, displayed path, value or text shown, the only problem?)
CASES: list[tuple[str, Edit | None, list[str], str, str, str, str, bool]] = [
    # --- YAML and document shape
    (
        "tab-indent",
        sub(USE1, "  fleetkit:cloud: aws", "\tfleetkit:cloud: aws"),
        [],
        "yaml.syntax",
        USE1,
        "line 3, column 1",
        "replace the tab",
        True,
    ),
    (
        "fleet-namespace-empty",
        raw(FLEET, "fleetkit:\n"),
        [],
        "fleet.shape",
        FLEET,
        "fleetkit",
        "it is empty",
        True,
    ),
    (
        "fleet-extra-top-key",
        sub(FLEET, "fleetkit:\n", "extra: 1\nfleetkit:\n"),
        [],
        "fleet.unknown-key",
        FLEET,
        "extra",
        "(got 'extra')",
        True,
    ),
    (
        "fleet-section-outside-namespace",
        sub(FLEET, "fleetkit:\n", "addons: {keda: false}\nfleetkit:\n"),
        [],
        "fleet.unknown-key",
        FLEET,
        "addons",
        "indent 'addons' under 'fleetkit:'",
        True,
    ),
    (
        "fleet-is-a-list",
        raw(FLEET, "- fleetkit\n"),
        [],
        "fleet.shape",
        FLEET,
        "(document)",
        "['fleetkit']",
        True,
    ),
    (
        "fleet-file-misnamed",
        rename(FLEET, "fleet.yml"),
        [],
        "fleet.file-name",
        "stacks/fleet.yml",
        "",
        "(got 'fleet.yml')",
        True,
    ),
    (
        "stack-file-misnamed",
        rename(USW2, "Pulumi.aws-us-west-2.yml"),
        [],
        "stack.file-name",
        "stacks/Pulumi.aws-us-west-2.yml",
        "",
        "(got 'Pulumi.aws-us-west-2.yml')",
        True,
    ),
    (
        "stack-file-without-settings",
        raw(USW2, "encryptionsalt: v1:abc\n"),
        [],
        "stack.shape",
        USW2,
        "config",
        "this stack has none",
        True,
    ),
    ("stack-config-empty", raw(USW2, "config: {}\n"), [], "stack.shape", USW2, "config", "none", True),
    (
        "stack-is-a-scalar",
        raw(USE1, "aws-us-east-1\n"),
        [],
        "stack.shape",
        USE1,
        "(document)",
        "(got 'aws-us-east-1')",
        True,
    ),
    (
        "duplicate-model-in-stack",
        sub(
            USE1,
            "    llama-3-70b: {pool: l40s}\n",
            "    llama-3-70b: {pool: l40s}\n    llama-3-8b: {pool: l40s}\n",
        ),
        [],
        "yaml.duplicate-key",
        USE1,
        "line 44",
        "(first on line 42)",
        True,
    ),
    (
        "yes-read-as-a-boolean",
        sub(FLEET, "served_name: meta-llama/Llama-3.1-8B-Instruct", "served_name: yes"),
        [],
        "spec.string_type",
        FLEET,
        "fleetkit.models.llama-3-8b.served_name",
        "put the value in quotes",
        True,
    ),
    (
        "on-read-as-a-boolean-key",
        sub(
            USE1,
            "      aws: {ami_type: AL2023_x86_64_NVIDIA}\n",
            "      labels: {on: x}\n",
        ),
        [],
        "spec.string_type",
        USE1,
        "fleetkit:node_pools.l4.labels.True",
        "put the value in quotes",
        True,
    ),
    (
        "models-null",
        cfg(lambda c: c.update({"fleetkit:models": None})),
        [],
        "stack.shape",
        USE1,
        "fleetkit:models",
        "write {} to deploy none",
        True,
    ),
    # --- config keys and namespaces
    (
        "config-key-without-namespace",
        sub(USE1, "  fleetkit:cloud: aws", "  cloud: aws"),
        [],
        "stack.config-key",
        USE1,
        "config.cloud",
        "did you mean 'fleetkit:cloud'",
        True,
    ),
    (
        "namespace-misspelled-on-required-key",
        cfg(pop_into("", "fleetkit:cloud", "fleetkti:cloud")),
        [],
        "stack.unknown-namespace",
        USE1,
        "fleetkti:cloud",
        "did you mean 'fleetkit:cloud'",
        True,
    ),
    (
        "namespace-upper-case",
        cfg(lambda c: c.update({"FLEETKIT:addons": {"keda": True}})),
        [],
        "stack.unknown-namespace",
        USE1,
        "FLEETKIT:addons",
        "did you mean 'fleetkit:addons'",
        True,
    ),
    (
        "secrets-namespace-misspelled",
        cfg(lambda c: c.update({"fleetkit-secret:adoptKubeconfig": {"secure": "v1:CIPHER"}})),
        [],
        "stack.unknown-namespace",
        USE1,
        "fleetkit-secret:adoptKubeconfig",
        "did you mean 'fleetkit-secrets:adoptKubeconfig'",
        True,
    ),
    (
        "credential-in-clear-text",
        cfg(lambda c: c.update({"fleetkit-secrets:adoptKubeconfig": "apiVersion: v1 token: PLAIN-tok"})),
        [],
        "config.plain-secret",
        USE1,
        "config.fleetkit-secrets:adoptKubeconfig",
        "(got [secret])",
        True,
    ),
    # --- unknown keys: the did-you-mean is a field of the model at that path
    (
        "replicas-key-typo-in-a-model",
        cfg(lambda c: set_(c, "fleetkit:models.llama-3-8b", {"pool": "l4", "replicas": {"mx": 3}})),
        [],
        "spec.extra_forbidden",
        USE1,
        "fleetkit:models.llama-3-8b.replicas.mx",
        "did you mean 'max'",
        True,
    ),
    (
        "route-key-typo",
        flt(pop_into("policies.routing.routes.0", "match", "macth")),
        [],
        "spec.extra_forbidden",
        FLEET,
        "fleetkit.policies.routing.routes[0].macth",
        "did you mean 'match'",
        True,
    ),
    (
        "pool-key-typo",
        cfg(pop_into("fleetkit:node_pools.l4", "instance_type", "instance_typ")),
        [],
        "spec.extra_forbidden",
        USE1,
        "fleetkit:node_pools.l4.instance_typ",
        "did you mean 'instance_type'",
        True,
    ),
    # --- types, ranges and choices
    (
        "replicas-as-a-number",
        cfg(lambda c: set_(c, "fleetkit:models.llama-3-8b", {"pool": "l4", "replicas": 3})),
        [],
        "spec.model_type",
        USE1,
        "fleetkit:models.llama-3-8b.replicas",
        "(got 3)",
        True,
    ),
    (
        "zones-as-a-string",
        cfg(lambda c: set_(c, "fleetkit:node_pools.l4.zones", "us-east-1a")),
        [],
        "spec.list_type",
        USE1,
        "fleetkit:node_pools.l4.zones",
        "(got 'us-east-1a')",
        True,
    ),
    (
        "fractional-pool-size",
        cfg(lambda c: set_(c, "fleetkit:node_pools.l4.max_size", 2.5)),
        [],
        "spec.int_from_float",
        USE1,
        "fleetkit:node_pools.l4.max_size",
        "(got 2.5)",
        True,
    ),
    (
        "replicas-min-over-max-in-fleet",
        flt(lambda f: set_(f, "models.llama-3-8b.replicas", {"min": 5, "max": 2})),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.models.llama-3-8b.replicas.min",
        "(got 5)",
        True,
    ),
    (
        "stack-min-over-fleet-max",
        cfg(lambda c: set_(c, "fleetkit:models.llama-3-8b", {"pool": "l4", "replicas": {"min": 6}})),
        [],
        "spec.value_error",
        USE1,
        "fleetkit:models.llama-3-8b.replicas.min",
        "min 6 is greater than max 4 (got 6)",
        True,
    ),
    (
        "desired-size-outside-range",
        cfg(lambda c: set_(c, "fleetkit:node_pools.l4.desired_size", 9)),
        [],
        "spec.value_error",
        USE1,
        "fleetkit:node_pools.l4.desired_size",
        "(got 9)",
        True,
    ),
    (
        "cohorts-over-100",
        flt(lambda f: set_(f, "policies.edge.identity.cohorts.beta", 150)),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.policies.edge.identity.cohorts",
        "they add up to 150",
        True,
    ),
    (
        "cidr-with-host-bits",
        cfg(
            lambda c: set_(c, "fleetkit:cluster.create.authorized_networks", ["203.0.113.0/24", "10.0.0.1/8"])
        ),
        [],
        "spec.value_error",
        USE1,
        "fleetkit:cluster.create.authorized_networks[1]",
        "(got '10.0.0.1/8')",
        True,
    ),
    (
        "window-ends-before-it-starts",
        cfg(lambda c: set_(c, "fleetkit:policies.autoscaling.models.llama-3-70b.schedule.0.end", "07:00")),
        [],
        "spec.value_error",
        USE1,
        "fleetkit:policies.autoscaling.models.llama-3-70b.schedule[0].end",
        "(got '07:00')",
        True,
    ),
    (
        "jwt-required-without-issuer",
        flt(lambda f: set_(f, "policies.security.jwt", [])),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.policies.security.require_jwt",
        "(got True)",
        True,
    ),
    (
        "dtype-shorthand",
        flt(lambda f: set_(f, "models.llama-3-8b.dtype", "bf16")),
        [],
        "spec.literal_error",
        FLEET,
        "fleetkit.models.llama-3-8b.dtype",
        "(got 'bf16')",
        True,
    ),
    (
        "lb-algorithm-with-dash",
        flt(lambda f: set_(f, "policies.load_balancing.default.algorithm", "round-robin")),
        [],
        "spec.literal_error",
        FLEET,
        "fleetkit.policies.load_balancing.default.algorithm",
        "(got 'round-robin')",
        True,
    ),
    (
        "mtls-lower-case",
        flt(lambda f: set_(f, "policies.security.mtls", "strict")),
        [],
        "spec.literal_error",
        FLEET,
        "fleetkit.policies.security.mtls",
        "(got 'strict')",
        True,
    ),
    (
        "cloud-upper-case",
        cfg(lambda c: c.update({"fleetkit:cloud": "AWS"})),
        [],
        "spec.literal_error",
        USE1,
        "fleetkit:cloud",
        "(got 'AWS')",
        True,
    ),
    (
        "ca-validity-too-short",
        cfg(lambda c: set_(c, "fleetkit:ca.root_validity_hours", 1), ROOT),
        [],
        "spec.greater_than_equal",
        ROOT,
        "fleetkit:ca.root_validity_hours",
        "(got 1)",
        True,
    ),
    # --- references, duplicates and cycles
    (
        "qos-default-tier-unknown",
        flt(lambda f: set_(f, "policies.qos.default_tier", "gold")),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.policies.qos.default_tier",
        "(got 'gold')",
        True,
    ),
    (
        "tier-priorities-collide",
        flt(lambda f: set_(f, "policies.qos.tiers.batch.priority", 10000)),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.policies.qos.tiers.batch.priority",
        "(got 10000)",
        True,
    ),
    (
        "fallback-to-itself",
        flt(lambda f: set_(f, "policies.resilience.fallback", {"llama-3-70b": ["llama-3-70b"]})),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.policies.resilience.fallback.llama-3-70b[0]",
        "(got 'llama-3-70b')",
        True,
    ),
    (
        "fallback-listed-twice",
        flt(lambda f: set_(f, "policies.resilience.fallback", {"llama-3-70b": ["llama-3-8b", "llama-3-8b"]})),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.policies.resilience.fallback.llama-3-70b[1]",
        "(got 'llama-3-8b')",
        True,
    ),
    (
        "route-destination-twice",
        flt(
            lambda f: set_(
                f, "policies.routing.routes.2.to", [{"model": "llama-3-8b"}, {"model": "llama-3-8b"}]
            )
        ),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.policies.routing.routes[2].to[1]",
        "listed twice",
        True,
    ),
    (
        "duplicate-route-name-at-the-second",
        flt(lambda f: set_(f, "policies.routing.routes.1.name", "llama-70b-canary")),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.policies.routing.routes[1].name",
        "(got 'llama-70b-canary')",
        True,
    ),
    (
        "duplicate-window-name",
        cfg(
            lambda c: c["fleetkit:policies"]["autoscaling"]["models"]["llama-3-70b"]["schedule"].append(
                {
                    **c["fleetkit:policies"]["autoscaling"]["models"]["llama-3-70b"]["schedule"][0],
                    "days": ["sat"],
                }
            )
        ),
        [],
        "spec.value_error",
        USE1,
        "fleetkit:policies.autoscaling.models.llama-3-70b.schedule[1].name",
        "(got 'business-hours')",
        True,
    ),
    (
        "route-matches-unknown-model",
        flt(lambda f: set_(f, "policies.routing.routes.3.match.0.model", "gpt-4")),
        [],
        "ref.unknown-model",
        FLEET,
        "fleetkit.policies.routing.routes[3].match[0].model",
        "(got 'gpt-4')",
        True,
    ),
    (
        "route-matches-a-served-name",
        flt(lambda f: set_(f, "policies.routing.routes.3.match.0.model", "meta-llama/Llama-3.1-8B-Instruct")),
        [],
        "ref.unknown-model",
        FLEET,
        "fleetkit.policies.routing.routes[3].match[0].model",
        "match on 'llama-3-8b'",
        True,
    ),
    (
        "zone-letter-typo",
        cfg(lambda c: set_(c, "fleetkit:node_pools.l4.zones", ["us-east-1a", "us-east-1z"])),
        [],
        "pool.zone-not-in-region",
        USE1,
        "fleetkit:node_pools.l4.zones[1]",
        "(got 'us-east-1z')",
        True,
    ),
    (
        "keda-off-in-the-fleet-file",
        flt(lambda f: f.update({"addons": {"keda": False}})),
        [],
        "addons.keda-disabled",
        FLEET,
        "fleetkit.addons.keda",
        "(got False)",
        True,
    ),
    (
        "time-unquoted",
        sub(USE1, 'end: "18:00"', "end: 18:00"),
        [],
        "spec.value_error",
        USE1,
        "fleetkit:policies.autoscaling.models.llama-3-70b.schedule[0].end",
        "(got 1080)",
        True,
    ),
    (
        "host-with-path",
        flt(lambda f: set_(f, "policies.routing.hosts", ["API.example.com/x"])),
        [],
        "spec.string_pattern_mismatch",
        FLEET,
        "fleetkit.policies.routing.hosts[0]",
        "(got 'API.example.com/x')",
        True,
    ),
    (
        "alias-listed-twice",
        flt(lambda f: set_(f, "models.llama-3-8b.aliases", ["llama-3.1-8b", "llama-3.1-8b"])),
        [],
        "spec.value_error",
        FLEET,
        "fleetkit.models.llama-3-8b.aliases[1]",
        "(got 'llama-3.1-8b')",
        True,
    ),
    (
        "kubeconfig-pasted-as-key-name",
        cfg(
            lambda c: c.update(
                {
                    "fleetkit:cluster": {
                        "name": "fleetkit-use1",
                        "adopt": {"kubeconfig_secret": "apiVersion: v1\nusers: [{token: PASTED-0042}]\n"},
                    }
                }
            )
        ),
        [],
        "spec.value_error",
        USE1,
        "fleetkit:cluster.adopt.kubeconfig_secret",
        "(got [secret])",
        True,
    ),
    (
        "trust-root-with-a-stray-region-key",
        cfg(lambda c: c.update({"fleetkit:cloud": "aws"}), ROOT),
        [],
        "spec.extra_forbidden",
        ROOT,
        "fleetkit:cloud",
        "known keys: role, mesh, ca",
        True,
    ),
    (
        "region-stack-with-trust-root-role",
        cfg(lambda c: c.update({"fleetkit:role": "trust-root"})),
        [],
        "stack.role-mismatch",
        USE1,
        "fleetkit:role",
        "(got 'trust-root')",
        True,
    ),
    (
        "same-cluster-name-in-one-region",
        cfg(
            lambda c: (
                c.update({"fleetkit:region": "us-east-1", "aws:region": "us-east-1"})
                or set_(c, "fleetkit:cluster.name", "fleetkit-use1")
            ),
            USW2,
        ),
        [],
        "cluster.duplicate-name",
        USW2,
        "fleetkit:cluster.name",
        "(got 'fleetkit-use1')",
        True,
    ),
    (
        "gcp-account-on-aws",
        cfg(lambda c: c.update({"fleetkit:account": {"gcp_project": "fleetkit-demo"}})),
        [],
        "account.wrong-cloud",
        USE1,
        "fleetkit:account.gcp_project",
        "(got 'fleetkit-demo')",
        True,
    ),
    # --- cloud, region and the providers' own keys
    (
        "cloud-of-another-region",
        cfg(lambda c: c.update({"fleetkit:cloud": "aws"}), EUW4),
        [],
        "stack.wrong-cloud",
        EUW4,
        "fleetkit:cloud",
        "did you mean 'gcp'",
        True,
    ),
    (
        "azure-stack-in-aws-region",
        cfg(lambda c: c.update({"fleetkit:region": "us-east-1", "azure-native:location": "us-east-1"}), EUS),
        [],
        "stack.unknown-region",
        EUS,
        "fleetkit:region",
        "that is an aws region",
        True,
    ),
    (
        "gcp-zone-of-another-region",
        cfg(lambda c: c.update({"gcp:zone": "us-central1-a"}), EUW4),
        [],
        "stack.provider-zone-mismatch",
        EUW4,
        "gcp:zone",
        "(got 'us-central1-a')",
        True,
    ),
    (
        "gcp-project-disagrees",
        cfg(lambda c: c.update({"gcp:project": "other-project"}), EUW4),
        [],
        "stack.provider-account-mismatch",
        EUW4,
        "gcp:project",
        "(got 'other-project')",
        True,
    ),
    # --- two files at once: both reported, each against its own file
    (
        "mistakes-in-two-files",
        both(
            cfg(lambda c: c.update({"fleetkit:modles": c.pop("fleetkit:models")}), EUW4),
            flt(lambda f: set_(f, "models.llama-3-8b.dtype", "bf16")),
        ),
        [],
        "spec.extra_forbidden",
        EUW4,
        "fleetkit:modles",
        "did you mean 'models'",
        False,
    ),
    # --- --set: the flag's own mistakes
    (
        "set-empty-key",
        None,
        ["--set", "models..replicas.max=6"],
        "cli.set-syntax",
        "--set",
        "models..replicas.max=6",
        "no empty key",
        True,
    ),
    (
        "set-into-a-value",
        None,
        ["--set", "models.llama-3-8b.replicas.max.foo=1"],
        "cli.set-not-a-mapping",
        "--set",
        "models.llama-3-8b.replicas.max",
        "(got 4)",
        True,
    ),
    (
        "set-list-item-out-of-range",
        None,
        ["--set", "policies.routing.routes[9].name=x"],
        "cli.set-index-out-of-range",
        "--set",
        "policies.routing.routes[9]",
        "4 items",
        True,
    ),
    (
        "set-list-item-bad-value",
        None,
        ["--set", "policies.routing.routes[1].to[0].weight=0"],
        "spec.greater_than_equal",
        "--set",
        "policies.routing.routes[1].to[0].weight",
        "(got 0)",
        True,
    ),
    (
        "set-key-into-a-list",
        None,
        ["--set", "policies.routing.routes.name=x"],
        "cli.set-into-list",
        "--set",
        "policies.routing.routes.name",
        "(got 'name')",
        True,
    ),
    (
        "set-with-config-namespace",
        None,
        ["--set", "fleetkit:cloud=aws"],
        "cli.set-unknown-key",
        "--set",
        "fleetkit:cloud",
        "write 'cloud'",
        True,
    ),
    (
        "set-model-on-the-trust-root",
        None,
        ["--set", "models.llama-3-8b.replicas.max=6", "-s", "mesh-root"],
        "cli.set-unknown-key",
        "--set",
        "models.llama-3-8b.replicas.max",
        "a trust-root stack takes role, mesh, ca",
        True,
    ),
    (
        "set-default-tier",
        None,
        ["--set", "policies.qos.default_tier=gold"],
        "spec.value_error",
        "--set",
        "policies.qos.default_tier",
        "(got 'gold')",
        True,
    ),
    (
        "set-max-below-file-min",
        None,
        ["--set", "node_pools.l4.min_size=5", "--set", "node_pools.l4.max_size=2", *S],
        "spec.value_error",
        "--set",
        "node_pools.l4.min_size",
        "(got 5)",
        True,
    ),
    (
        "set-replicas-min-over-file-max",
        None,
        ["--set", "models.llama-3-8b.replicas.min=9", *S],
        "spec.value_error",
        "--set",
        "models.llama-3-8b.replicas.min",
        "(got 9)",
        True,
    ),
    (
        "set-cloud",
        None,
        ["--set", "cloud=gcp", *S],
        "stack.wrong-cloud",
        "--set",
        "cloud",
        "(got 'gcp')",
        True,
    ),
    (
        "set-region-of-another-cloud",
        None,
        ["--set", "region=us-east-1", "-s", "gcp-europe-west4"],
        "stack.unknown-region",
        "--set",
        "region",
        "(got 'us-east-1')",
        True,
    ),
    (
        "set-role",
        None,
        ["--set", "role=peering", *S],
        "stack.role-mismatch",
        "--set",
        "role",
        "(got 'peering')",
        True,
    ),
    (
        "set-zone",
        None,
        ["--set", "node_pools.l4.zones=[us-east-1z]", *S],
        "pool.zone-not-in-region",
        "--set",
        "node_pools.l4.zones[0]",
        "(got 'us-east-1z')",
        True,
    ),
    (
        "set-yes",
        None,
        ["--set", "models.llama-3-8b.served_name=yes", *S],
        "spec.string_type",
        "--set",
        "models.llama-3-8b.served_name",
        "put the value in quotes",
        True,
    ),
    (
        "set-unknown-field",
        None,
        ["--set", "mesh.clustr_name=x", *S],
        "spec.extra_forbidden",
        "--set",
        "mesh.clustr_name",
        "did you mean 'cluster_name'",
        True,
    ),
    (
        "set-and-a-file-mistake",
        cfg(lambda c: set_(c, "fleetkit:node_pools.l40s.min_size", "x")),
        ["--set", "models.llama-3-8b.dtype=bf16", *S],
        "spec.literal_error",
        "--set",
        "models.llama-3-8b.dtype",
        "(got 'bf16')",
        False,
    ),
]


def _run(root: Path, command: str, args: list[str]) -> tuple[int, list[str], Path]:
    out = root.parent / "out"
    extra = ["--out", str(out)] if command == "preview" else []
    result = CliRunner().invoke(app, [command, "--root", str(root), *extra, *args])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    lines = [ln.strip().removeprefix("• ") for ln in result.output.splitlines() if ": [" in ln]
    return result.exit_code, lines, out


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", ["validate", "preview"])
def test_mistake_is_reported_clearly(case: Any, command: str, tmp_project: Path) -> None:
    _, edit, args, rule, file, path, shown, only = case
    if edit is not None:
        edit(tmp_project)
    code, lines, out = _run(tmp_project, command, args)
    assert code == 2, lines
    hits = [ln for ln in lines if f"[{rule}]" in ln]
    assert hits, f"{rule} not reported: {lines}"
    head = f"{file}: {path}: [" if path else f"{file}: ["
    assert any(ln.startswith(head) and shown in ln for ln in hits), hits
    if only:
        assert len(lines) == 1, f"expected the one root cause only, got {lines}"
    assert not out.exists(), "no output may be written on bad input"


def test_two_files_two_problems(tmp_project: Path) -> None:
    """A mistake in a stack file and one in the fleet file: both, each against its own file."""
    cfg(lambda c: c.update({"fleetkit:modles": c.pop("fleetkit:models")}), EUW4)(tmp_project)
    flt(lambda f: set_(f, "models.llama-3-8b.dtype", "bf16"))(tmp_project)
    code, lines, _ = _run(tmp_project, "validate", [])
    assert code == 2
    assert [ln.split(": [")[0] for ln in lines] == [
        f"{EUW4}: fleetkit:modles",
        f"{FLEET}: fleetkit.models.llama-3-8b.dtype",
    ], lines


def test_a_clear_text_credential_is_never_shown(tmp_project: Path) -> None:
    cfg(lambda c: c.update({"fleetkit-secrets:adoptKubeconfig": "token: PLAIN-tok-0042"}))(tmp_project)
    result = CliRunner().invoke(app, ["validate", "--root", str(tmp_project)])
    assert result.exit_code == 2
    assert "PLAIN-tok-0042" not in result.output and "[config.plain-secret]" in result.output


@pytest.mark.parametrize(
    "item",
    ["policies.routing.routes.0.name=renamed", "policies.routing.routes[0].name=renamed"],
)
def test_set_addresses_a_list_item(project_root: Path, item: str) -> None:
    """``key[0]`` (Helm, ``pulumi config set --path``) and ``key.0`` both change one item in place."""
    from fleetkit.loader import load_fleet

    fleet = load_fleet(project_root, only=["aws-us-east-1"], overrides=[item])
    spec = fleet.stacks["aws-us-east-1"].spec
    routes = spec.policies.routing.routes  # type: ignore[union-attr]
    assert routes[0].name == "renamed" and len(routes) == 4
    assert fleet.stacks["aws-us-west-2"].spec.policies.routing.routes[0].name == "llama-70b-canary"  # type: ignore[union-attr]
