"""YAML in and out: strict reading (duplicate keys and syntax errors become problems) and
deterministic writing (sorted keys, stable multi-document output).

The one strict YAML reader of the kit, for its two callers. :class:`StrictConstructor` is PyYAML's safe
constructor with mappings that record each key's line and refuse a key seen twice (YAML 1.2 requires
keys to be unique, https://yaml.org/spec/1.2.2/#3211-nodes; PyYAML keeps the last one silently). The
stack and fleet files are read with :class:`StrictLoader` (:func:`load_yaml_file`: one document, each
problem at ``line L``); the manifest linter reads with :class:`TrackingLoader`, which also records
sequence items' lines and the path to each duplicate (``fleetkit.lint.documents``: every document,
problems at a path). The loaders are composed from PyYAML's parts as ``yaml.SafeLoader`` and
``yaml.CSafeLoader`` are (PyYAML ``yaml/loader.py``, ``yaml/cyaml.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver, Resolver
from yaml.scanner import Scanner

from fleetkit.errors import Issue, ProblemCollector

MAP_TAG = BaseResolver.DEFAULT_MAPPING_TAG


@dataclass(frozen=True)
class KeyProblem:
    """A mapping key the strict loader refused: a duplicate (``first_line`` set) or an unhashable key.

    ``path`` leads to the mapping holding the key (keys and sequence indexes; sequence indexes only
    where the loader tracks sequences, :class:`TrackingLoader`); lines are 1-based.
    """

    path: tuple[Any, ...]
    key: Any
    line: int
    first_line: int | None = None


class StrictConstructor(SafeConstructor):
    """PyYAML's safe constructor with strict mappings: every key's line is recorded
    (``key_lines[id(mapping)]``), a key seen twice in one mapping is recorded in ``key_problems``
    instead of silently keeping the last value, and so is an unhashable key (which is then left
    out) — or, with ``unhashable_key_error``, it raises PyYAML's ``ConstructorError``."""

    #: an unhashable mapping key raises (a YAML error at its position) instead of being recorded
    unhashable_key_error = False

    def __init__(self) -> None:
        super().__init__()
        self.key_lines: dict[int, dict[Any, int]] = {}
        self.key_problems: list[KeyProblem] = []
        self.path: list[Any] = []

    def strict_mapping(self, node: yaml.MappingNode) -> dict[Any, Any]:
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                hash(key)
            except TypeError:
                if self.unhashable_key_error:
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        "found unhashable key",
                        key_node.start_mark,
                    ) from None
                self.key_problems.append(KeyProblem(tuple(self.path), key, line))
                continue
            if key in lines:
                self.key_problems.append(KeyProblem(tuple(self.path), key, line, lines[key]))
            lines[key] = line
            self.path.append(key)
            mapping[key] = self.construct_object(value_node, deep=True)
            self.path.pop()
        self.key_lines[id(mapping)] = lines
        return mapping

    def take_key_problems(self) -> list[KeyProblem]:
        """The problems recorded since the last call (one document's, when called after each)."""
        out, self.key_problems = self.key_problems, []
        return out


def _strict_map(loader: StrictConstructor, node: yaml.MappingNode) -> dict[Any, Any]:
    return loader.strict_mapping(node)


StrictConstructor.add_constructor(MAP_TAG, _strict_map)  # type: ignore[arg-type]


class _PyParser(Reader, Scanner, Parser, Composer):
    """PyYAML's pure-Python parser, composed as ``yaml.SafeLoader`` composes it."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)


try:  # libyaml's parser, when PyYAML was built with it (several times faster); same documents
    from yaml.cyaml import CParser

    _FastParser: Any = CParser
except ImportError:  # pragma: no cover - PyYAML without libyaml
    _FastParser = _PyParser


class StrictLoader(_PyParser, StrictConstructor, Resolver):
    """``yaml.SafeLoader`` (pure-Python parser) with strict mappings: the reader of the stack and
    fleet files (:func:`load_yaml_documents`), whose syntax errors name the pure parser's positions."""

    def __init__(self, stream: str) -> None:
        _PyParser.__init__(self, stream)
        StrictConstructor.__init__(self)
        Resolver.__init__(self)


class TrackingConstructor(StrictConstructor):
    """Strict mappings everywhere (``!!omap`` and sets too), the line of every sequence item
    (``item_lines[id(list)]``), and an unhashable key is a YAML error: the manifest linter's loader."""

    unhashable_key_error = True

    def __init__(self) -> None:
        super().__init__()
        self.item_lines: dict[int, list[int]] = {}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        return self.strict_mapping(node)

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> list[Any]:
        out: list[Any] = []
        for i, child in enumerate(node.value):
            self.path.append(i)
            out.append(self.construct_object(child, deep=True))
            self.path.pop()
        self.item_lines[id(out)] = [child.start_mark.line + 1 for child in node.value]
        return out


def _tracked_map(loader: TrackingConstructor, node: yaml.MappingNode) -> Any:
    return loader.construct_mapping(node)


def _tracked_seq(loader: TrackingConstructor, node: yaml.SequenceNode) -> Any:
    return loader.construct_sequence(node)


def _tracked_omap(loader: TrackingConstructor, node: yaml.Node) -> Any:
    """``!!omap``: a sequence of one-pair mappings (yaml.org/type/omap), read as one strict mapping
    (a repeated key is a duplicate); anything else under the tag is a YAML error at the node."""
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    pairs: list[tuple[yaml.Node, yaml.Node]] = []
    items = node.value if isinstance(node, yaml.SequenceNode) else None
    for item in items if items is not None else [None]:
        if not (isinstance(item, yaml.MappingNode) and len(item.value) == 1):
            mark = item.start_mark if isinstance(item, yaml.Node) else node.start_mark
            raise yaml.constructor.ConstructorError(
                "while constructing an ordered map", node.start_mark,
                "expected a sequence of one-pair mappings", mark,
            )  # fmt: skip
        pairs.extend(item.value)
    merged = yaml.MappingNode(MAP_TAG, pairs, node.start_mark, node.end_mark)
    return loader.construct_mapping(merged)


TrackingConstructor.add_constructor(MAP_TAG, _tracked_map)  # type: ignore[arg-type]
TrackingConstructor.add_constructor("tag:yaml.org,2002:seq", _tracked_seq)  # type: ignore[arg-type]
TrackingConstructor.add_constructor("tag:yaml.org,2002:omap", _tracked_omap)  # type: ignore[arg-type]


class TrackingLoader(_FastParser, TrackingConstructor, Resolver):  # type: ignore[misc]
    """``yaml.CSafeLoader`` (libyaml's parser where available) with :class:`TrackingConstructor`: the
    manifest linter's reader (``fleetkit.lint.documents``), which points at key and item lines."""

    def __init__(self, stream: str) -> None:
        _FastParser.__init__(self, stream)
        TrackingConstructor.__init__(self)
        Resolver.__init__(self)


def yaml_error_location(exc: yaml.YAMLError, unknown: str = "(document)") -> str:
    """``line L, column C`` of a YAML error (1-based), for problem reports."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else unknown


def _syntax_hint(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem, plus what a person needs to find it: tabs are never indentation in YAML
    (yaml.org/spec/1.2.2, 6.1), and an unclosed block names the line it started on."""
    problem = str(exc.problem or exc)
    if "'\\t'" in problem:
        return problem + " (YAML indents with spaces only: replace the tab)"
    if (
        exc.context
        and exc.context_mark
        and exc.problem_mark
        and exc.context_mark.line != exc.problem_mark.line
    ):
        return problem + f" ({exc.context} started on line {exc.context_mark.line + 1})"
    return problem


def load_yaml_documents(text: str, file: str) -> tuple[list[Any], list[Issue]]:
    """Parse every document of ``text``; syntax errors, duplicate and unhashable keys come back as
    problems (at ``line L``), in the order they were met."""
    collector = ProblemCollector()
    docs: list[Any] = []
    loader = StrictLoader(text)
    try:
        while loader.check_data():
            docs.append(loader.get_data())
            _add_key_problems(collector, file, loader.take_key_problems())
    except yaml.MarkedYAMLError as exc:
        _add_key_problems(collector, file, loader.take_key_problems())
        collector.add(
            file, yaml_error_location(exc), "yaml.syntax", f"YAML syntax error: {_syntax_hint(exc)}"
        )
    except yaml.YAMLError as exc:
        _add_key_problems(collector, file, loader.take_key_problems())
        collector.add(file, "(document)", "yaml.syntax", f"YAML error: {exc}")
    finally:
        loader.dispose()
    return docs, collector.problems


def _add_key_problems(collector: ProblemCollector, file: str, found: list[KeyProblem]) -> None:
    for p in found:
        if p.first_line is None:
            collector.add(file, f"line {p.line}", "yaml.bad-key", "mapping keys must be scalars", str(p.key))
        else:
            collector.add(
                file,
                f"line {p.line}",
                "yaml.duplicate-key",
                f"key {p.key!r} appears twice in the same mapping (first on line {p.first_line}); remove one",
                p.key,
            )


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
