"""Writing results: deterministic files, output paths checked before any work, nothing half-written.

Output paths (``--out DIR``, ``--output FILE``) are checked before anything is rendered: a directory
that is a file, a path under a file, a file that is a directory, or a place the user cannot write
is a usage error (exit 2) with the flag, the path and the reason. So is an output directory that
holds a project or stack files or contains the current directory (``--out ..``); an output that is
one of the command's inputs, lies inside one or contains one (``--out stacks/``, ``--output`` over a
linted file); ``--out -`` (a tree cannot go to stdout; the single-file ``--output -`` is stdout,
decided by the commands); and an existing ``--out`` directory that no earlier ``--out`` wrote (it
would be replaced as a whole: an empty directory, or one holding ``<stack>/resources.json``, is
accepted). Everything is rendered in memory first; the output directory is then staged whole in a
temporary directory beside it (the entries a run does not write — other stacks' directories — are
carried over) and swapped in with two renames,
so a failure while writing leaves the previous tree exactly as it was. A single file is written to a
temporary file beside it and renamed over it (``os.replace`` is atomic on POSIX).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from fleetkit.errors import Issue, SpecError
from fleetkit.yamlio import dump_yaml_documents


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _nearest_existing(path: Path) -> Path:
    for cand in (path, *path.parents):
        if cand.exists() or cand.is_symlink():
            return cand
    return Path(".")


def _unusable(flag: str, path: Path, message: str) -> SpecError:
    return SpecError([Issue.at(flag, str(path), "output.unusable", message, str(path))])


def _check_parent(path: Path, flag: str) -> None:
    """The nearest existing ancestor of ``path`` must be a writable directory (new entries go there)."""
    anchor = _nearest_existing(path.parent)
    if not anchor.is_dir():
        raise _unusable(flag, path, f"{anchor} is a file, so nothing can be created under it")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise _unusable(flag, path, f"the directory {anchor} is not writable")


def _overlap(path: Path, inputs: Iterable[Path]) -> str | None:
    """Why writing at ``path`` would touch an input (the same path, inside it, or around it); None if not."""
    target = path.resolve()
    for given in inputs:
        src = given.resolve()
        if target == src:
            return f"is the input {given}; the output must go elsewhere"
        if src.is_dir() and target.is_relative_to(src):
            return f"lies inside the input {given}; the output must go elsewhere"
        if src.is_relative_to(target):
            return f"contains the input {given}; the output must go elsewhere"
    return None


def _earlier_output(path: Path) -> bool:
    """An empty directory, or one an earlier ``--out`` wrote (a ``<stack>/resources.json`` or ``manifests/``)."""
    entries = [e for e in path.iterdir() if not e.name.startswith(".")]
    return not entries or any(
        e.is_dir() and ((e / "resources.json").is_file() or (e / "manifests").is_dir()) for e in entries
    )


def check_output_dir(
    path: Path, flag: str = "--out", inputs: Iterable[Path] = (), *, checked: bool = False
) -> None:
    """Raise :class:`SpecError` unless ``path`` can become (or be replaced as) an output directory.

    ``inputs`` are what the command reads (the project's stack files): the output may not be one of
    them, lie inside one or contain one. An existing directory must be empty or an earlier output
    (``checked``: the caller already made sure of that, and this is the check again at write time).
    """
    if str(path) == "-":
        raise SpecError(
            [
                Issue.at(
                    flag,
                    "-",
                    "output.no-stdout",
                    "writes a tree of files, not a stream: give a directory",
                    "-",
                )
            ]
        )
    if path.exists() and not path.is_dir():
        raise _unusable(flag, path, "is an existing file; give a directory (it is replaced as a whole)")
    if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
        raise _unusable(flag, path, "the directory is not readable")
    overlap = _overlap(path, inputs)
    if overlap and not overlap.startswith("contains"):  # the input itself, or inside it
        raise SpecError([Issue.at(flag, str(path), "output.is-input", overlap, str(path))])
    marker = next((m for m in ("Pulumi.yaml", ".git", "pyproject.toml") if (path / m).exists()), None)
    if marker is None and path.is_dir():
        marker = next((p.name for p in sorted(path.glob("Pulumi.*.yaml"))), None)
    if path.is_dir() and marker:
        raise _unusable(
            flag,
            path,
            f"holds a project ({marker}); the output directory is replaced as a whole, "
            "so give it a directory of its own",
        )
    if overlap:  # around an input that is not itself a project (the project's parent)
        raise SpecError([Issue.at(flag, str(path), "output.is-input", overlap, str(path))])
    here = Path.cwd().resolve()
    if path.resolve() == here or path.resolve() in here.parents:
        raise _unusable(
            flag,
            path,
            "contains the current directory; the output directory is replaced as a whole, "
            "so give it a directory of its own",
        )
    if path.is_dir() and not checked and not _earlier_output(path):
        names = sorted(e.name for e in path.iterdir() if not e.name.startswith("."))
        shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
        raise _unusable(
            flag,
            path,
            f"is a directory that no earlier --out wrote (it holds {shown}); the output directory is "
            "replaced as a whole, so give a new or empty directory",
        )
    _check_parent(path, flag)


def check_output_file(path: Path, flag: str = "--output", inputs: Iterable[Path] = ()) -> None:
    """Raise :class:`SpecError` unless a file can be written at ``path`` (not over or inside ``inputs``)."""
    overlap = _overlap(path, inputs)
    if overlap:
        raise SpecError([Issue.at(flag, str(path), "output.is-input", overlap, str(path))])
    if path.is_dir():
        raise _unusable(flag, path, "is a directory; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise _unusable(flag, path, "the file is read-only")
    _check_parent(path, flag)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole: a temporary file beside it, then a rename. A path that is not a
    regular file (``/dev/stdout``, a pipe, a device) is written to directly, as a shell redirection would:
    renaming over it would replace the device itself."""
    if path.exists() and not path.is_file():
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tree(out_dir: Path, files: dict[str, str], flag: str = "--out") -> None:
    """Replace ``out_dir`` as a whole with ``files`` (``{relative path: text}``) plus the old entries
    the files do not touch; on any error the old tree is left as it was and :class:`SpecError` is raised."""
    check_output_dir(out_dir, flag, checked=True)
    out_dir = Path(os.path.abspath(out_dir))  # `x/..` has no name of its own to stage beside
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=parent))
    except OSError as exc:
        raise _unusable(flag, out_dir, f"cannot create the output: {exc.strerror or exc}") from None
    old = parent / f".{out_dir.name}.old-{os.getpid()}"
    try:
        os.chmod(stage, 0o777 & ~_umask())
        tops = {Path(rel).parts[0] for rel in files}
        if out_dir.is_dir():
            for entry in sorted(out_dir.iterdir()):
                if entry.name in tops:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.copytree(entry, stage / entry.name, symlinks=True)
                else:
                    shutil.copy2(entry, stage / entry.name, follow_symlinks=False)
        for rel, text in sorted(files.items()):
            path = stage / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if out_dir.exists():
            os.replace(out_dir, old)
            try:
                os.replace(stage, out_dir)
            except BaseException:  # a failure or Ctrl-C between the two renames: put the old tree back
                os.replace(old, out_dir)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, out_dir)
    except OSError as exc:
        raise SpecError(
            [
                Issue.at(
                    flag,
                    str(out_dir),
                    "output.write-failed",
                    f"cannot write the output (nothing was changed): {exc.strerror or exc}",
                    str(getattr(exc, "filename", None) or out_dir),
                )
            ]
        ) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


#: where a previewed stack's manifests go under its output directory
MANIFESTS_DIR = "manifests"


def stack_files(preview: Any, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The files of one previewed stack, keyed by path relative to the output directory."""
    stack = preview.stack
    files = {
        f"{stack}/resources.json": dump_json(preview.resources_json()),
        f"{stack}/outputs.json": dump_json(preview.public_outputs()),
    }
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in preview.manifests():
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else "core"
        by_kind.setdefault(f"{group}_{obj['kind']}".lower(), []).append(obj)
    for name, objs in sorted(by_kind.items()):
        files[f"{stack}/{MANIFESTS_DIR}/{name}.yaml"] = dump_yaml_documents(objs)
    for rel, text in (extra or {}).items():
        files[f"{stack}/{rel}"] = text
    return files


def manifest_files(stack_dir: Path) -> list[Path]:
    """The manifest files :func:`stack_files` wrote for one stack (``<stack>/manifests/*.yaml``), sorted."""
    return sorted((stack_dir / MANIFESTS_DIR).glob("*.yaml"))


def read_manifest_file(path: Path) -> list[dict[str, Any]]:
    """The objects of one written manifest file; its read or YAML error is the caller's to report."""
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
