"""Components and the mesh read resolved objects, never the whole region stack spec (issue #11).

Every component and mesh argument carries :class:`fleetkit.resolve.ResolvedStack`,
:class:`~fleetkit.resolve.ResolvedPlacement`, a resolved pool or model, or a narrow typed section
(``MeshSpec``, ``PolicySet``, ``CaSpec``). import-linter's contracts forbid modules, not names, and
``fleetkit.spec`` stays importable for those sections, so this test walks the syntax trees.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from components.addons import AddonsArgs
from components.cluster_common import ClusterArgs
from components.identity import WeightsIdentityArgs
from components.lb_controller import LoadBalancerPrerequisitesArgs
from components.platform import RegionPlatformArgs
from fleetkit.resolve import ResolvedPlacement, ResolvedStack
from mesh.gateways import EastWestGatewayArgs
from mesh.member import MeshMemberArgs

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = "RegionStackSpec"


def _uses(path: Path) -> list[int]:
    """The lines where ``path`` names the region stack spec: imports, names, attributes, string annotations."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    hits = []
    for node in ast.walk(tree):
        named = (
            (isinstance(node, ast.alias) and FORBIDDEN in (node.name.rsplit(".", 1)[-1], node.asname))
            or (isinstance(node, ast.Name) and node.id == FORBIDDEN)
            or (isinstance(node, ast.Attribute) and node.attr == FORBIDDEN)
            # a string annotation (``"RegionStackSpec | None"``) names it too
            or (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value == FORBIDDEN)
        )
        if named:
            hits.append(node.lineno)
    return sorted(set(hits))


@pytest.mark.parametrize("package", ["components", "mesh"])
def test_no_module_names_the_region_stack_spec(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    hits = [f"{f.relative_to(ROOT)}:{line}" for f in files for line in _uses(f)]
    assert hits == [], f"{package}/ must read resolved objects (fleetkit.resolve), not {FORBIDDEN}: {hits}"


def test_the_scan_finds_an_import_a_name_and_an_attribute(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from fleetkit.spec import RegionStackSpec as S\n"
        "import fleetkit.spec\n"
        "x: 'RegionStackSpec'\n"
        "y = fleetkit.spec.RegionStackSpec\n"
        "def f(s: RegionStackSpec) -> None: ...\n",
        encoding="utf-8",
    )
    assert _uses(probe) == [1, 3, 4, 5]


@pytest.mark.parametrize(
    ("args", "field", "kind"),
    [
        (ClusterArgs, "placement", ResolvedPlacement),
        (AddonsArgs, "placement", ResolvedPlacement),
        (LoadBalancerPrerequisitesArgs, "placement", ResolvedPlacement),
        (WeightsIdentityArgs, "placement", ResolvedPlacement),
        (EastWestGatewayArgs, "placement", ResolvedPlacement),
        (MeshMemberArgs, "placement", ResolvedPlacement),
        (RegionPlatformArgs, "resolved", ResolvedStack),
    ],
)
def test_component_args_carry_the_resolved_objects(args: type, field: str, kind: type) -> None:
    fields = {f.name: f.type for f in dataclasses.fields(args)}
    assert "spec" not in fields
    # annotations are strings (``from __future__ import annotations``)
    assert fields[field] == kind.__name__
