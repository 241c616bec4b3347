"""One name, one thing: no two first-party classes share a name (issue #11 found two ``PolicySet``s,
two ``Verdict``s, two ``Fleet``s). A reader who meets a class name knows which one it is without
looking at the import. The weight agent is its own distribution and is not compared with the kit."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fleetkit", "components", "mesh", "policies")


def _classes() -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.ClassDef):
                    found[node.name].append(str(path.relative_to(ROOT)))
    return found


def test_the_scan_finds_the_classes() -> None:
    classes = _classes()
    assert classes["PolicySet"] == ["policies/policy_set.py"]
    assert len(classes) > 100


def test_no_two_classes_share_a_name() -> None:
    twins = {name: where for name, where in _classes().items() if len(where) > 1}
    assert twins == {}, twins
