"""Rendering both sides of a review, and comparing what they render.

Two renderers:

* ``preview`` — the full offline preview (``fleetkit preview --out``) of each side, each run by that
  side's own code in a subprocess (cwd and ``PYTHONPATH`` = that side's project directory, so a base
  revision that ships its own ``fleetkit``/``components`` is rendered by them; a project that only
  holds stacks uses the installed kit). Both run in parallel. Every Kubernetes object and every
  cloud resource (node groups, IAM, Helm releases) is compared, and the guardrails are checked on
  both sides.
* ``policies`` — the pure serving-policy render (``spec.policies.render(fleet.context_for(stack))``)
  of each side's spec, in process with the working tree's code: Istio, KEDA and PriorityClass
  objects only. Fast, needs no Pulumi program.

``auto`` (the default) uses ``preview`` when the Pulumi program runs on both sides and otherwise
falls back to ``policies`` for both (mixing them would show every non-policy object as a change);
the report says which renderer was used and why.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from fleetkit.errors import Issue, SpecError
from fleetkit.fleet import Fleet
from fleetkit.guardrails import check_records
from fleetkit.lint import lint_objects
from fleetkit.output import manifest_files, read_manifest_file
from fleetkit.spec import RegionStackSpec
from fleetkit.yamlio import dump_yaml
from policies.common import manifest_key

RenderMode = Literal["auto", "preview", "policies"]
T = TypeVar("T")
PREVIEW_TIMEOUT_S = 900


@dataclass
class Rendered:
    """What one side renders, per stack."""

    #: stack -> Kubernetes manifests (sorted), what lint sees
    manifests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: stack -> resources.json rows (full preview only), what the guardrails see
    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def objects(self, stack: str) -> dict[str, Any]:
        """Every object of the stack keyed by a readable path (the raw diff's file names)."""
        out: dict[str, Any] = {}
        for obj in self.manifests.get(stack, []):
            api = str(obj.get("apiVersion", ""))
            group = api.split("/")[0] if "/" in api else "core"
            md = obj.get("metadata") or {}
            out[f"{stack}/{group}/{obj.get('kind')}/{md.get('namespace') or '_'}/{md.get('name')}.yaml"] = obj
        for row in self.resources.get(stack, []):
            typ = str(row.get("type", ""))
            if not row.get("custom") or typ.startswith("pulumi:providers:"):
                continue
            if typ.startswith("kubernetes:") and not typ.startswith("kubernetes:helm.sh/"):
                continue  # already above, as a manifest
            out[f"{stack}/{typ.replace(':', '/')}/{row.get('name')}.yaml"] = row.get("inputs") or {}
        return out


# --------------------------------------------------------------------------- pure policy render
def render_policies(fleet: Fleet) -> Rendered:
    out = Rendered()
    for name, st in sorted(fleet.stacks.items()):
        spec = st.spec
        out.manifests[name] = (
            spec.policies.render(fleet.context_for(name)) if isinstance(spec, RegionStackSpec) else []
        )
    return out


# --------------------------------------------------------------------------- full preview in a subprocess
@dataclass
class _Run:
    root: Path
    out: Path
    proc: subprocess.Popen


def _start_preview(root: Path, workdir: Path) -> _Run:
    out = workdir / "out"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
    cmd = [sys.executable, "-m", "fleetkit.cli", "preview", "--root", str(root), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return _Run(root, out, proc)


def _finish_preview(run: _Run, stacks: Iterable[str]) -> Rendered | str:
    try:
        stdout, stderr = run.proc.communicate(timeout=PREVIEW_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        run.proc.kill()
        run.proc.communicate()
        return f"the preview did not finish in {PREVIEW_TIMEOUT_S}s"
    # exit 1 = the preview ran and reported lint errors or blocking guardrails: its files are complete
    if run.proc.returncode not in (0, 1) or not run.out.is_dir():
        lines = [ln for ln in (stderr or stdout or "").strip().splitlines() if ln.strip()]
        return lines[-1].strip() if lines else f"the preview exited with code {run.proc.returncode}"
    rendered = Rendered()
    for stack in stacks:
        sdir = run.out / stack
        if not sdir.is_dir():
            return f"the preview wrote nothing for stack {stack}"
        objs: list[dict[str, Any]] = []
        for f in manifest_files(sdir):
            objs += read_manifest_file(f)
        rendered.manifests[stack] = sorted(objs, key=manifest_key)
        res = sdir / "resources.json"
        rendered.resources[stack] = json.loads(res.read_text(encoding="utf-8")) if res.exists() else []
    return rendered


def render_sides(
    base_root: Path, head_root: Path, base: Fleet, head: Fleet, mode: RenderMode
) -> tuple[str, str | None, Rendered, Rendered]:
    """(renderer used, why it fell back or None, base rendering, head rendering)."""
    if mode == "policies":
        return "policies", None, render_policies(base), render_policies(head)
    with tempfile.TemporaryDirectory(prefix="fleetkit-review-render-") as tmp:
        runs = {
            side: _start_preview(root, Path(tmp) / side)
            for side, root in (("base", base_root), ("head", head_root))
        }
        results = {
            "base": _finish_preview(runs["base"], base.stacks),
            "head": _finish_preview(runs["head"], head.stacks),
        }
    failed = {side: r for side, r in results.items() if isinstance(r, str)}
    if not failed:
        b, h = results["base"], results["head"]
        assert isinstance(b, Rendered) and isinstance(h, Rendered)
        return "preview", None, b, h
    why = "; ".join(f"{side}: {msg}" for side, msg in sorted(failed.items()))
    if mode == "preview":
        raise SpecError(
            [
                Issue.at(
                    "--render", "preview", "review.preview-failed", f"the full preview did not run ({why})"
                )
            ]
        )
    return "policies", f"the Pulumi program did not run ({why})", render_policies(base), render_policies(head)


# --------------------------------------------------------------------------- comparisons
def unified_diff(before: dict[str, Any], after: dict[str, Any], context: int = 3) -> str:
    """One unified diff of the deterministic YAML of every object that differs, in path order."""
    chunks: list[str] = []
    for path in sorted(set(before) | set(after)):
        b, a = before.get(path), after.get(path)
        if b == a:
            continue
        btext = dump_yaml(b) if path in before else ""
        atext = dump_yaml(a) if path in after else ""
        lines = difflib.unified_diff(
            btext.splitlines(keepends=True),
            atext.splitlines(keepends=True),
            fromfile=f"a/{path}" if path in before else "/dev/null",
            tofile=f"b/{path}" if path in after else "/dev/null",
            n=context,
        )
        chunks.append("".join(x if x.endswith("\n") else x + "\n" for x in lines))
    return "".join(chunks)


def lint_findings(rendered: Rendered, stack: str) -> list[Any]:
    return lint_objects([(f"{stack}/manifests", o) for o in rendered.manifests.get(stack, [])])


def introduced(base: Iterable[T], head: Iterable[T], key: Callable[[T], Hashable]) -> tuple[list[T], int]:
    """(items at head whose key is not at base, number of base keys gone at head): what a change
    introduces and resolves, for lint findings and guardrail verdicts alike."""
    bkeys = {key(x) for x in base}
    head = list(head)
    hkeys = {key(x) for x in head}
    return [x for x in head if key(x) not in bkeys], len(bkeys - hkeys)


def finding_key(f: Any) -> Hashable:
    """A lint finding is the same finding on both sides when its object, rule and message are."""
    return (f.object, f.rule, f.message)


def guardrail_verdicts(rendered: Rendered, stack: str) -> list[Any] | None:
    if stack not in rendered.resources:
        return None
    return check_records(rendered.resources[stack])
