"""Every module of the kit has a place in the layers contract.

``lint-imports`` checks only the modules its ``layers`` list names: a module left out may import
anything above it (a command, the preview) without the contract noticing. So each top-level module
and package of ``fleetkit`` is named in one layer of ``pyproject.toml``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _layer_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [layers] = [c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "layers"]
    return {name.strip() for layer in layers["layers"] for name in layer.split("|")}


def _fleetkit_modules() -> set[str]:
    found = set()
    for path in (ROOT / "fleetkit").iterdir():
        if path.name.startswith("_"):
            continue
        if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists()):
            found.add(f"fleetkit.{path.name.removesuffix('.py')}")
    return found


def test_every_fleetkit_module_is_in_a_layer() -> None:
    missing = sorted(_fleetkit_modules() - _layer_modules())
    assert not missing, f"name these in a layer of [tool.importlinter] (docs/architecture.md): {missing}"


def test_the_layers_name_only_modules_that_exist() -> None:
    roots = {"components", "mesh", "policies"}
    stale = sorted(m for m in _layer_modules() - _fleetkit_modules() if m not in roots)
    assert not stale, f"layers name modules that do not exist: {stale}"
