"""Load Kubernetes YAML from files and directories, remembering where each value came from.

Unusable input (missing file, YAML syntax error, duplicate key, a document that is not an object or has no
apiVersion/kind) is collected for every file and raised once as :class:`~fleetkit.errors.SpecError`.
The YAML reader itself (strict keys, key and item lines) is ``fleetkit.yamlio.TrackingLoader``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetkit.errors import ProblemCollector, format_path
from fleetkit.yamlio import TrackingLoader, yaml_error_location


@dataclass
class Lines:
    """Line numbers (1-based) of mapping keys and sequence items, found by object identity."""

    start: int
    keys: dict[int, dict[Any, int]] = field(default_factory=dict)
    items: dict[int, list[int]] = field(default_factory=dict)

    def line_of(self, root: Any, path: Sequence[str | int]) -> int:
        """Line of the deepest part of ``path`` that exists under ``root`` (the document start otherwise)."""
        line, node = self.start, root
        for part in path:
            if isinstance(node, dict) and part in node:
                line = self.keys.get(id(node), {}).get(part, line)
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                items = self.items.get(id(node), [])
                line = items[part] if part < len(items) else line
                node = node[part]
            else:
                break
        return line


@dataclass
class Document:
    """One object from one file (``index`` counts objects in the file, List items included)."""

    file: str
    index: int
    obj: dict[str, Any]
    lines: Lines | None = None

    def line(self, path: Sequence[str | int] = ()) -> int | None:
        return self.lines.line_of(self.obj, path) if self.lines else None


def discover(paths: Iterable[Path], problems: ProblemCollector) -> list[Path]:
    """Files to lint: explicit files as given, directories searched recursively for *.yaml / *.yml."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in (".yaml", ".yml")
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                problems.add(str(path), "", "no-input", "directory contains no *.yaml or *.yml files")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        elif path.exists():
            problems.add(
                str(path), "", "not-a-file", "not a regular file or directory (a device, socket or pipe?)"
            )
        else:
            problems.add(str(path), "", "file-not-found", "no such file or directory")
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def load_text(text: str, file: str, problems: ProblemCollector) -> list[Document]:
    """Parse one file's text into documents; problems are added to ``problems``."""
    loader = TrackingLoader(text)
    docs: list[Document] = []
    try:
        n = 0
        while loader.check_node():
            node = loader.get_node()
            n += 1
            if node is None:
                continue
            start = node.start_mark.line + 1
            data = loader.construct_document(node)
            for dup in loader.take_key_problems():  # duplicates only: an unhashable key raises
                key = dup.key
                problems.add(
                    file,
                    [*dup.path, key] if isinstance(key, str | int) else dup.path,
                    "duplicate-key",
                    f"key {key!r} appears twice in document {n} (lines {dup.first_line} and {dup.line}); "
                    "YAML keeps only the last",
                )
            if data is None:
                continue
            lines = Lines(start, loader.key_lines, loader.item_lines)
            docs.extend(_objects(data, file, n, start, lines, problems, len(docs)))
    except yaml.MarkedYAMLError as exc:
        where = yaml_error_location(exc, "unknown position")
        problems.add(file, where, "yaml-syntax", f"invalid YAML: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        problems.add(file, "", "yaml-syntax", f"invalid YAML: {exc}")
    finally:
        loader.dispose()
    return docs


def _objects(
    data: Any, file: str, n: int, start: int, lines: Lines, problems: ProblemCollector, offset: int
) -> list[Document]:
    where = f"document {n}"
    if not isinstance(data, dict):
        problems.add(file, where, "not-an-object",
                     f"expected a Kubernetes object, got {type(data).__name__} (line {start})")  # fmt: skip
        return []
    if data.get("kind") == "List" and "items" in data:
        items = data.get("items")
        if not isinstance(items, list):
            problems.add(
                file, f"{where}: items", "not-an-object", f"List.items must be a list (line {start})"
            )
            return []
        out: list[Document] = []
        for i, item in enumerate(items):
            item_line = lines.items.get(id(items), [start] * len(items))[i]
            item_lines = Lines(item_line, lines.keys, lines.items)
            item_where = f"document {n}, {format_path(['items', i])}"
            if _usable(item, file, item_where, problems, item_line):
                out.append(Document(file, offset + len(out), item, item_lines))
        return out
    if _usable(data, file, where, problems, start):
        return [Document(file, offset, data, lines)]
    return []


def _usable(obj: Any, file: str, where: str, problems: ProblemCollector, line: int) -> bool:
    if not isinstance(obj, dict):
        problems.add(
            file,
            where,
            "not-an-object",
            f"expected a Kubernetes object, got {type(obj).__name__} (line {line})",
        )
        return False
    ok = True
    for key in ("apiVersion", "kind"):
        value = obj.get(key)
        if value is None:
            problems.add(file, f"{where}: {key}", "missing-type", f"{key} is missing (object at line {line})")
            ok = False
        elif not isinstance(value, str) or not value:
            problems.add(file, f"{where}: {key}", "missing-type",
                         f"{key} must be a non-empty string (object at line {line})", value)  # fmt: skip
            ok = False
    return ok


def load_paths(paths: Iterable[Path | str]) -> list[Document]:
    """Load every object under ``paths`` (``-``: standard input, as ``helm template … | fleetkit lint -``);
    raises SpecError listing all unusable input at once."""
    problems = ProblemCollector()
    given = [Path(p) for p in paths]
    docs: list[Document] = []
    if any(str(p) == "-" for p in given):
        docs.extend(load_text(sys.stdin.read(), "(stdin)", problems))
    files = discover([p for p in given if str(p) != "-"], problems)
    for path in files:
        name = path.as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.add(name, "", "unreadable", f"cannot read file: {exc}")
            continue
        docs.extend(load_text(text, name, problems))
    problems.raise_if_any()
    return docs
