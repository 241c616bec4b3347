"""The base side of a review: a git revision of the project, extracted into a temporary directory.

The user's working tree, index and HEAD are never touched: the tracked files of the revision are
streamed with ``git archive`` and unpacked into a fresh temporary directory, which is removed
afterwards.

Default base: the merge-base of ``HEAD`` and ``origin/main`` when a remote-tracking ``origin/main``
exists (what a pull request against main would be reviewed against: everything on this branch,
committed or not), else ``HEAD`` (only the uncommitted changes).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleetkit.errors import MISSING, Issue, SpecError

DEFAULT_UPSTREAM = "origin/main"


@dataclass(frozen=True)
class Revision:
    #: what the user asked for (``HEAD``, ``main~2``) or how the default was chosen
    label: str
    sha: str

    @property
    def short(self) -> str:
        return self.sha[:12]

    def __str__(self) -> str:
        return f"{self.label} ({self.short})" if self.label != self.short else self.short


def _fail(rev: str, rule: str, message: str, value: object = MISSING) -> SpecError:
    return SpecError([Issue.at("--base", rev, rule, message, value)])


def git(cwd: Path, *args: str, binary: bool = False) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=not binary, check=False)
    except FileNotFoundError:
        raise _fail(
            "", "review.no-git", "git is not installed (fleetkit review reads the base revision with git)"
        ) from None


def toplevel(root: Path) -> Path:
    proc = git(root, "rev-parse", "--show-toplevel")
    if proc.returncode != 0:
        raise SpecError(
            [
                Issue.at(
                    str(root),
                    "",
                    "review.not-a-repo",
                    "the project is not in a git repository, so there is no base revision to compare with",
                )
            ]
        )
    return Path(proc.stdout.strip()).resolve()


def _verify(root: Path, rev: str) -> str | None:
    proc = git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def resolve_base(root: Path, rev: str | None) -> Revision:
    """The commit to compare the working tree with (see the module docstring for the default)."""
    toplevel(root)
    if rev is not None:
        if not rev.strip() or rev.startswith("-"):
            raise _fail(rev, "review.unknown-rev", "not a revision (a branch, tag or sha)", rev)
        sha = _verify(root, rev)
        if sha is None:
            raise _fail(
                rev,
                "review.unknown-rev",
                "no such commit in this repository (try a branch, tag or sha)",
                rev,
            )
        return Revision(rev, sha)
    head = _verify(root, "HEAD")
    if head is None:
        raise _fail(
            "HEAD",
            "review.no-commits",
            "the repository has no commits yet; commit a base first or pass --base",
        )
    if _verify(root, DEFAULT_UPSTREAM) is not None:
        proc = git(root, "merge-base", "HEAD", DEFAULT_UPSTREAM)
        if proc.returncode == 0 and proc.stdout.strip():
            return Revision(f"merge-base of HEAD and {DEFAULT_UPSTREAM}", proc.stdout.strip())
    return Revision("HEAD", head)


@contextmanager
def extracted(root: Path, rev: Revision) -> Iterator[Path]:
    """The project directory as it was at ``rev``, in a temporary directory (removed on exit)."""
    top = toplevel(root)
    rel = root.resolve().relative_to(top).as_posix()
    args = ["archive", "--format=tar", rev.sha]
    if rel != ".":
        args += ["--", rel]
    proc = git(top, *args, binary=True)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise _fail(
            rev.label,
            "review.archive-failed",
            f"cannot read the project at {rev}: {detail[-1] if detail else 'git archive failed'}",
        )
    tmp = Path(tempfile.mkdtemp(prefix="fleetkit-review-"))
    try:
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        project = tmp / rel if rel != "." else tmp
        if not (project / "Pulumi.yaml").exists() or not (project / "stacks").is_dir():
            raise _fail(
                rev.label,
                "review.no-project-at-base",
                f"there is no fleetkit project (Pulumi.yaml and stacks/) at {rev}",
            )
        yield project
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
