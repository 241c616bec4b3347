"""``--set path=value`` overrides: parsing, and setting a value at a path of a document.

Bottom layer: shared by the loader (which merges overrides over the stack spec) and the offline
preview (which hands the same values to the Pulumi program as config, as ``pulumi config set``
would). The value is parsed as YAML, as in Helm's ``--set`` (``6`` is a number, ``true`` a bool).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from fleetkit.errors import Issue


@dataclass(frozen=True)
class Override:
    """One ``--set`` item: the text as given, its path in the stack spec and the parsed value."""

    item: str
    parts: tuple[str, ...]
    value: Any


def parse_override(item: str) -> Override | Issue:
    """The override, or an :class:`Issue` (path ``(item,)``) when the item is not ``path=value``."""
    if "=" not in item:
        return Issue((item,), "cli.set-syntax", "write --set path.to.key=value", item)
    path, _, raw = item.partition("=")
    parts = tuple(p.strip() for p in path.strip().split("."))
    if not any(parts):
        return Issue((item,), "cli.set-syntax", "the path before '=' is empty", item)
    if not all(parts):
        return Issue(
            (item,), "cli.set-syntax", "the path has an empty key (two dots, or a dot at an end)", item
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return Override(item, parts, value)


def set_path(doc: dict[str, Any], parts: tuple[str, ...], value: Any) -> list[tuple[str, ...]]:
    """Set ``value`` at ``parts`` (creating mappings on the way); returns the paths it created."""
    created: list[tuple[str, ...]] = []
    cur = doc
    for n, p in enumerate(parts[:-1], start=1):
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[p] = nxt
            created.append(parts[:n])
        cur = nxt
    if parts[-1] not in cur:
        created.append(parts)
    cur[parts[-1]] = value
    return created
