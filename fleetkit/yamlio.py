"""YAML in and out: strict reading (duplicate keys and syntax errors become problems) and
deterministic writing (sorted keys, stable multi-document output)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from fleetkit.errors import Issue, ProblemCollector


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that records duplicate keys instead of silently keeping the last one."""

    def __init__(self, stream: Any, collector: ProblemCollector, file: str):
        super().__init__(stream)
        self._collector = collector
        self._file = file


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    lines: dict[Any, int] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            loader._collector.add(
                loader._file,
                f"line {key_node.start_mark.line + 1}",
                "yaml.bad-key",
                "mapping keys must be scalars",
                str(key),
            )
            continue
        if key in out:
            loader._collector.add(
                loader._file,
                f"line {key_node.start_mark.line + 1}",
                "yaml.duplicate-key",
                f"key {key!r} appears twice in the same mapping (first on line {lines[key]}); remove one",
                key,
            )
        lines.setdefault(key, key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)  # type: ignore[arg-type]


def yaml_error_location(exc: yaml.YAMLError, unknown: str = "(document)") -> str:
    """``line L, column C`` of a YAML error (1-based), for problem reports."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else unknown


def load_yaml_documents(text: str, file: str) -> tuple[list[Any], list[Issue]]:
    """Parse every document of ``text``; syntax errors and duplicate keys come back as problems."""
    collector = ProblemCollector()
    docs: list[Any] = []
    loader = _StrictLoader(text, collector, file)
    try:
        while loader.check_data():
            docs.append(loader.get_data())
    except yaml.MarkedYAMLError as exc:
        problem = str(exc.problem or exc)
        if "'\\t'" in problem:
            problem += " (YAML indents with spaces only: replace the tab)"
        elif (
            exc.context
            and exc.context_mark
            and exc.problem_mark
            and exc.context_mark.line != exc.problem_mark.line
        ):
            problem += f" ({exc.context} started on line {exc.context_mark.line + 1})"
        collector.add(file, yaml_error_location(exc), "yaml.syntax", f"YAML syntax error: {problem}")
    except yaml.YAMLError as exc:
        collector.add(file, "(document)", "yaml.syntax", f"YAML error: {exc}")
    finally:
        loader.dispose()
    return docs, collector.problems


def load_yaml_file(path: Path, display: str) -> tuple[Any, list[Issue]]:
    """Read a single-document YAML file. Missing, empty and multi-document files are problems."""
    if not path.exists():
        return None, [Issue.at(display, "", "file.missing", "file does not exist")]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Issue.at(display, "", "file.unreadable", f"cannot read the file: {exc}")]
    docs, problems = load_yaml_documents(text, display)
    if problems:
        return None, problems
    docs = [d for d in docs if d is not None]
    if not docs:
        return None, [Issue.at(display, "(document)", "file.empty", "the file is empty")]
    if len(docs) > 1:
        return None, [
            Issue.at(
                display, "(document)", "yaml.multiple-documents", "expected one YAML document", len(docs)
            )
        ]
    return docs[0], []


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """libyaml's emitter when available (several times faster), same output as the pure one."""


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_presenter)


def dump_yaml(obj: Any) -> str:
    return yaml.dump(
        obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=100
    )


def dump_yaml_documents(objs: Iterable[Any]) -> str:
    return "".join("---\n" + dump_yaml(o) for o in objs)
