"""``review``: compare the fleet at a base revision with the working tree, stack by stack."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from fleetkit.errors import Issue, SpecError
from fleetkit.fleet import Fleet, LoadedStack
from fleetkit.loader import load_fleet
from fleetkit.review import gitrev
from fleetkit.review.behaviour import Behaviour, behaviour
from fleetkit.review.render import (
    Rendered,
    RenderMode,
    finding_key,
    guardrail_verdicts,
    introduced,
    lint_findings,
    render_sides,
    unified_diff,
)
from fleetkit.review.semantic import Change, Side, diff_stack
from fleetkit.verify.runner import verify_stack

HEAD_LABEL = "working tree"


@dataclass
class StackReview:
    name: str
    status: str  # added | removed | changed | unchanged
    changes: list[Change] = field(default_factory=list)
    manifest_diff: str = ""
    lint_introduced: list[Any] = field(default_factory=list)
    lint_resolved: int = 0
    #: None when the renderer recorded no resources (policies-only render)
    guardrails_introduced: list[Any] | None = None
    guardrails_resolved: int = 0
    #: the real tools' verdicts on the working tree's rendering (fleetkit.verify); empty when removed
    verdicts: list[Any] = field(default_factory=list)

    @property
    def blocking(self) -> bool:
        """The change introduces an unsuppressed lint error or a blocking guardrail verdict."""
        lint = any(f.severity == "error" and not f.suppressed for f in self.lint_introduced)
        guard = any(v.blocking for v in self.guardrails_introduced or [])
        return lint or guard or any(v.failed for v in self.verdicts)

    def diff_stats(self) -> tuple[int, int, int]:
        """(files, lines added, lines removed) of the raw diff."""
        files = added = removed = 0
        for line in self.manifest_diff.splitlines():
            if line.startswith("+++ "):
                files += 1
            elif line.startswith("+") and not line.startswith("+++"):
                added += 1
            elif line.startswith("-") and not line.startswith("---"):
                removed += 1
        return files, added, removed

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "changes": [c.to_dict() for c in self.changes],
            "manifest_diff": self.manifest_diff,
            "lint_introduced": [f.to_dict() for f in self.lint_introduced],
            "lint_resolved": self.lint_resolved,
            "guardrails_introduced": None
            if self.guardrails_introduced is None
            else [v.to_dict() for v in self.guardrails_introduced],
            "guardrails_resolved": self.guardrails_resolved,
            "verdicts": [v.to_dict() for v in self.verdicts],
        }


@dataclass
class Review:
    base: gitrev.Revision
    renderer: str  # preview | policies
    note: str | None
    stacks: list[StackReview]
    head: str = HEAD_LABEL
    #: simulated request outcomes that change (None: not computed)
    behaviour: Behaviour | None = None

    @property
    def exit_code(self) -> int:
        return 1 if any(s.blocking for s in self.stacks) else 0

    def changed(self) -> list[StackReview]:
        return [s for s in self.stacks if s.status != "unchanged"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": {"rev": self.base.label, "sha": self.base.sha},
            "head": self.head,
            "renderer": self.renderer,
            "note": self.note,
            "stacks": {s.name: s.to_dict() for s in self.stacks},
            "behaviour": self.behaviour.to_dict() if self.behaviour is not None else None,
            "exit_code": self.exit_code,
        }


def _load_base(project: Path, rev: gitrev.Revision) -> Fleet:
    try:
        return load_fleet(project)
    except SpecError as err:
        at = f" (at {rev.short})"
        problems = [replace(p, file=p.file + at) for p in err.problems]
        head = Issue.at(
            "--base",
            rev.label,
            "review.base-invalid",
            f"the fleet at {rev} does not load with this version of the kit",
        )
        raise SpecError([head, *problems]) from None


def side_of(st: LoadedStack | None) -> Side | None:
    """What the semantic diff compares: a region stack as resolved once by its loaded stack, else its spec."""
    if st is None:
        return None
    return st.resolved if st.is_region else st.spec


def _stack_review(name: str, base: Fleet, head: Fleet, rb: Rendered, rh: Rendered) -> StackReview:
    sb, sh = base.stacks.get(name), head.stacks.get(name)
    status = "added" if sb is None else "removed" if sh is None else "changed"
    review = StackReview(name, status)
    review.changes = diff_stack(side_of(sb), side_of(sh))
    review.manifest_diff = unified_diff(rb.objects(name), rh.objects(name))
    if rb.manifests.get(name) != rh.manifests.get(name):  # same objects, same findings
        review.lint_introduced, review.lint_resolved = introduced(
            lint_findings(rb, name) if sb else [], lint_findings(rh, name) if sh else [], finding_key
        )
    gb, gh = guardrail_verdicts(rb, name), guardrail_verdicts(rh, name)
    if gh is not None or gb is not None:
        review.guardrails_introduced, review.guardrails_resolved = introduced(
            gb or [], gh or [], lambda v: v.key()
        )
    if sh is not None and name in rh.manifests:
        review.verdicts = verify_stack(rh.manifests[name], rh.resources.get(name, []))
    if status == "changed" and not (
        review.changes
        or review.manifest_diff
        or review.lint_introduced
        or review.lint_resolved
        or review.guardrails_introduced
        or review.guardrails_resolved
    ):
        review.status = "unchanged"
    return review


def _sides(
    root: Path, base_rev: str | None, found: list[Issue]
) -> tuple[gitrev.Revision | None, Fleet | None]:
    """The base revision and the working tree's fleet; their problems go to ``found``."""
    rev: gitrev.Revision | None = None
    head: Fleet | None = None
    try:
        rev = gitrev.resolve_base(root, base_rev)
    except SpecError as err:
        found += err.problems
    try:
        head = load_fleet(root)
    except SpecError as err:
        found += err.problems
    return rev, head


def _unknown_stacks(stacks: list[str] | None, names: list[str], rev: gitrev.Revision) -> list[Issue]:
    return [
        Issue.at(
            "--stack",
            s,
            "cli.unknown-stack",
            f"no stack {s!r} at {rev} or in the working tree (stacks: {', '.join(names)})",
            s,
        )
        for s in stacks or []
        if s not in names
    ]


def review_problems(
    root: Path, base_rev: str | None, stacks: list[str] | None, problems: Sequence[Issue]
) -> NoReturn:
    """Raise ``problems`` (the caller's: flags, output path) together with the base revision's, the
    working tree's and the stack names' — without rendering anything."""
    found = list(problems)
    rev, head = _sides(root, base_rev, found)
    if rev is not None and head is not None:
        with gitrev.extracted(root, rev) as base_root:
            try:
                base = _load_base(base_root, rev)
            except SpecError as err:
                found += err.problems
            else:
                found += _unknown_stacks(stacks, sorted(set(base.stacks) | set(head.stacks)), rev)
    raise SpecError(found)


def review(
    root: Path, base_rev: str | None = None, stacks: list[str] | None = None, mode: RenderMode = "auto"
) -> Review:
    """Compare the fleet at ``base_rev`` (see :mod:`fleetkit.review.gitrev` for the default) with ``root``.

    Every problem (base revision, working tree, stack names) is raised at once, before anything is rendered.
    """
    found: list[Issue] = []
    rev, head = _sides(root, base_rev, found)
    if rev is None or head is None:
        raise SpecError(found)
    with gitrev.extracted(root, rev) as base_root:
        base = _load_base(base_root, rev)
        names = sorted(set(base.stacks) | set(head.stacks))
        unknown = _unknown_stacks(stacks, names, rev)
        if unknown:
            raise SpecError(unknown)
        renderer, note, rb, rh = render_sides(base_root, root, base, head, mode)
    wanted = [n for n in names if not stacks or n in stacks]
    sim = behaviour(base, head, rb.manifests, rh.manifests, full_render=renderer == "preview")
    return Review(rev, renderer, note, [_stack_review(n, base, head, rb, rh) for n in wanted], behaviour=sim)
