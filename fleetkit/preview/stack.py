"""One stack's offline preview: ``__main__.py`` run on the recording mock runtime, and its views.

The program runs exactly as ``pulumi up`` would run it — same config (the stack file's values,
objects as JSON strings, as Pulumi passes them; ``--set`` items on top), same components — on
:mod:`fleetkit.mocks.runtime`, which records every registered resource and answers with plausible,
deterministic outputs. The program is not told it is previewed: it reads its config like any other
run, and ``pulumi.runtime.is_dry_run()`` answers True as under ``pulumi preview``.
"""

from __future__ import annotations

import copy
import json
import runpy
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from fleetkit.errors import Issue, SpecError
from fleetkit.mocks.runtime import PROJECT, SECRET, Recorded, RecordingMocks, redact, run_program
from fleetkit.overrides import Override, OverridePathError, parse_override, set_path
from fleetkit.stack_files import stack_names
from fleetkit.yamlio import load_yaml_file
from policies.common import manifest_key

#: resource options a real engine enforces and a mock runtime ignores: listed in resources.json when set
ENGINE_OPTIONS = ("protect", "retainOnDelete", "ignoreChanges")

__all__ = ["SECRET", "StackPreview", "config_for", "run_stack"]


@dataclass
class StackPreview:
    """What one stack registers and exports; resources with their inputs redacted (files show them)."""

    stack: str
    resources: list[Recorded]
    outputs: dict[str, Any]
    secret_outputs: set[str] = field(default_factory=set)
    missing_refs: set[str] = field(default_factory=set)
    seconds: float = 0.0
    #: StackReferences a real ``pulumi up`` would fail on, with why (stack not in stacks/, not initialised)
    ref_problems: list[str] = field(default_factory=list)
    #: warnings and errors the program logged (pulumi.log), in order
    messages: list[str] = field(default_factory=list)

    # ---------------------------------------------------------------- views
    def resource_names(self) -> dict[str, str]:
        return {r.urn: f"{r.type}::{r.name}" for r in self.resources}

    def resources_json(self) -> list[dict[str, Any]]:
        names = self.resource_names()
        rows = []
        for r in self.resources:
            row: dict[str, Any] = {
                "type": r.type,
                "name": r.name,
                "parent": names.get(r.parent, ""),
                "provider": names.get(r.provider.rsplit("::", 1)[0], "") if r.provider else "",
                "custom": r.custom,
                "inputs": r.inputs,
            }
            # the options a real engine enforces and the mock ignores, when set (reviewed in the diff)
            options = {k: r.options[k] for k in ENGINE_OPTIONS if k in r.options}
            if "ignoreChanges" in options:
                options["ignoreChanges"] = sorted(options["ignoreChanges"])
            if options:
                row["options"] = options
            rows.append(row)
        return sorted(rows, key=lambda r: (r["type"], r["name"]))

    def manifests(self) -> list[dict[str, Any]]:
        """Every Kubernetes object the stack applies (Helm releases are listed in resources.json)."""
        out = []
        for r in self.resources:
            if (
                not r.custom
                or not r.type.startswith("kubernetes:")
                or r.type.startswith("kubernetes:helm.sh")
            ):
                continue
            if "apiVersion" not in r.inputs or "kind" not in r.inputs:
                continue
            obj = {"apiVersion": r.inputs["apiVersion"], "kind": r.inputs["kind"]}
            for k, v in r.inputs.items():
                if k not in obj:
                    obj[k] = v
            out.append(obj)
        return sorted(out, key=manifest_key)

    def types(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.resources:
            if r.custom:
                counts[r.type] = counts.get(r.type, 0) + 1
        return dict(sorted(counts.items()))

    def public_outputs(self) -> dict[str, Any]:
        """Outputs as written to files: secrets redacted, JSON-ready."""
        return {
            k: (SECRET if k in self.secret_outputs else redact(v)) for k, v in sorted(self.outputs.items())
        }


def config_for(root: Path, stack: str, cli_sets: list[str]) -> tuple[dict[str, str], list[str]]:
    """The stack's config exactly as Pulumi would pass it: strings, objects as JSON, plus --set values."""
    doc, problems = load_yaml_file(root / "stacks" / f"Pulumi.{stack}.yaml", f"stacks/Pulumi.{stack}.yaml")
    if problems:
        raise SpecError(problems)
    config: dict[str, Any] = dict((doc or {}).get("config") or {})
    for item in cli_sets:
        parsed = parse_override(item)
        if not isinstance(parsed, Override):  # the loader reported it already
            raise SpecError([Issue.at("--set", item, parsed.rule, parsed.message, parsed.value)])
        parts, value = parsed.parts, parsed.value
        key = f"{PROJECT}:{parts[0]}"  # parse_override: the first part is always a key
        if len(parts) == 1:
            config[key] = value
        else:
            holder = config.get(key)
            holder = copy.deepcopy(holder) if isinstance(holder, dict) else {}
            try:
                set_path(holder, parts[1:], value)
            except OverridePathError as exc:  # the loader reports it first, against the merged spec
                raise SpecError([Issue.at("--set", exc.at, exc.rule, exc.message, exc.value)]) from None
            config[key] = holder
    out: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in config.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            out[key] = "preview-secret-placeholder"
            secret_keys.append(key)
        elif isinstance(value, str):
            out[key] = value
        else:
            out[key] = json.dumps(value)
    return out, secret_keys


def run_stack(
    root: Path,
    stack: str,
    peers: dict[str, StackPreview] | None = None,
    cli_sets: list[str] | None = None,
    unknown_outputs: bool = False,
) -> StackPreview:
    """Run ``__main__.py`` for one stack on the mock runtime and return what it registered.

    ``peers`` are the stacks already up (StackReferences resolve to their outputs; a reference to
    any other stack is recorded in ``ref_problems``). ``unknown_outputs`` answers every resource as a
    first ``pulumi preview`` does: outputs not among the inputs are unknown.
    """
    started = time.perf_counter()
    cfg, secret_keys = config_for(root, stack, cli_sets or [])
    mocks = RecordingMocks(
        stack,
        peers,
        known_stacks=frozenset(stack_names(root / "stacks")),
        unknown_outputs=unknown_outputs,
    )
    program = str(root / "__main__.py")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))

    def main() -> None:
        runpy.run_path(program, run_name="__main__")

    try:
        run = run_program(stack, main, mocks, config=cfg, secret_keys=secret_keys, preview=True)
    except pulumi.RunError as err:
        raise SpecError([Issue.at(f"stacks/Pulumi.{stack}.yaml", "", "program.error", str(err))]) from None
    return StackPreview(
        stack,
        [r.redacted() for r in run.resources],
        run.outputs,
        run.secret_outputs,
        run.missing_refs,
        time.perf_counter() - started,
        messages=run.messages,
        ref_problems=run.ref_problems,
    )
