"""``--set path=value`` overrides: parsing, and setting a value at a path of a document.

Bottom layer: shared by the loader (which merges overrides over the stack spec) and the offline
preview (which hands the same values to the Pulumi program as config, as ``pulumi config set``
would). The value is parsed as YAML, as in Helm's ``--set`` (``6`` is a number, ``true`` a bool).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from fleetkit.errors import Issue

#: ``name[3]`` — a list index written the way Helm's ``--set`` and ``pulumi config set --path`` write it
_INDEX = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class Override:
    """One ``--set`` item: the text as given, its path in the stack spec and the parsed value."""

    item: str
    parts: tuple[str | int, ...]
    value: Any


class OverridePathError(ValueError):
    """An override path that does not fit the document: ``at`` is the part of the path that failed."""

    def __init__(self, at: tuple[str | int, ...], rule: str, message: str, value: Any) -> None:
        super().__init__(message)
        self.at, self.rule, self.message, self.value = at, rule, message, value


def _split(path: str) -> list[str | int] | None:
    """``a.b[2].c`` -> ``["a", "b", 2, "c"]``; None when a part is empty (``a..b``, ``.a``, ``a.``)."""
    parts: list[str | int] = []
    for raw in path.split("."):
        name = _INDEX.sub("", raw)
        if not name and not raw.startswith("["):
            return None
        if name:
            if "[" in name or "]" in name:
                return None
            parts.append(name)
        parts += [int(i) for i in _INDEX.findall(raw)]
    return parts


def parse_override(item: str) -> Override | Issue:
    """The override, or an :class:`Issue` (path ``(item,)``) when the item is not ``path=value``."""
    if "=" not in item:
        return Issue((item,), "cli.set-syntax", "write --set path.to.key=value", item)
    path, _, raw = item.partition("=")
    path = path.strip()
    if not path:
        return Issue((item,), "cli.set-syntax", "the path before '=' is empty", item)
    parts = _split(path)
    if parts is None or not parts or isinstance(parts[0], int):
        return Issue(
            (item,),
            "cli.set-syntax",
            "a path is keys joined by '.' with no empty key (list items as key[0]), e.g. "
            "models.llama-3-8b.replicas.max",
            path,
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return Override(item, tuple(parts), value)


def _index(cur: list[Any], at: tuple[str | int, ...]) -> int:
    part = at[-1]
    if isinstance(part, str) and not part.isdigit():
        raise OverridePathError(
            at,
            "cli.set-into-list",
            f"{'.'.join(map(str, at[:-1]))} is a list: address an item by its index "
            f"({at[-2] if len(at) > 1 else 'list'}[0]), or set the whole list",
            part,
        )
    idx = int(part)
    if idx >= len(cur):
        raise OverridePathError(
            (*at[:-1], idx),
            "cli.set-index-out-of-range",
            f"the list has {len(cur)} item{'s' if len(cur) != 1 else ''} (indexes 0..{len(cur) - 1}); "
            "--set changes items, it does not add them: set the whole list",
            idx,
        )
    return idx


def set_path(
    doc: dict[str, Any], parts: tuple[str | int, ...], value: Any
) -> tuple[tuple[str | int, ...], list[tuple[str | int, ...]]]:
    """Set ``value`` at ``parts`` (creating mappings on the way); returns the path as set (list indexes
    as numbers) and the paths it created.

    Raises :class:`OverridePathError` when the path runs into a value that is not a mapping (a number, a
    string) or names a list item that does not exist: ``--set`` never turns a value into a mapping.
    """
    created: list[tuple[str | int, ...]] = []
    cur: Any = doc
    for n, p in enumerate(parts, start=1):
        at = parts[:n]
        last = n == len(parts)
        if isinstance(cur, list):
            idx = _index(cur, at)
            at = (*at[:-1], idx)
            parts = (*at, *parts[n:])
            if last:
                cur[idx] = value
                return parts, created
            if cur[idx] is None:
                cur[idx] = {}
                created.append(at)
            cur = cur[idx]
            continue
        if not isinstance(cur, dict):
            raise OverridePathError(
                at[:-1],
                "cli.set-not-a-mapping",
                f"{'.'.join(map(str, at[:-1]))} is a value, not a mapping: there is no {p!r} under it to set",
                cur,
            )
        key = str(p)
        if last:
            if key not in cur:
                created.append(at)
            cur[key] = value
            return parts, created
        if cur.get(key) is None:
            cur[key] = {}
            created.append(at)
        cur = cur[key]
    return parts, created
