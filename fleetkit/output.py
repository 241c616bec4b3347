"""Writing preview results: deterministic files, and nothing half-written.

Everything is rendered in memory first; files go to a temporary directory beside the target and
each stack's directory is swapped in with a rename, so an error leaves the previous output intact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fleetkit.yamlio import dump_yaml_documents


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_tree(out_dir: Path, files: dict[str, str]) -> None:
    """Write ``{relative path: text}`` under ``out_dir``; top-level entries are replaced atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fleetkit-", dir=out_dir))
    try:
        for rel, text in sorted(files.items()):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        for top in sorted({Path(rel).parts[0] for rel in files}):
            dest = out_dir / top
            staged = tmp / top
            if dest.is_dir() and not dest.is_symlink():
                old = out_dir / f".{top}.old"
                if old.exists():
                    shutil.rmtree(old)
                os.replace(dest, old)
                os.replace(staged, dest)
                shutil.rmtree(old)
            else:
                if dest.exists():
                    dest.unlink()
                os.replace(staged, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
        files[f"{stack}/manifests/{name}.yaml"] = dump_yaml_documents(objs)
    for rel, text in (extra or {}).items():
        files[f"{stack}/{rel}"] = text
    return files
