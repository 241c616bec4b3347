"""Where the simulator's input comes from: a preview output directory, or an in-memory rendering,
plus the mesh topology from the loaded stack specs.

The topology (cluster id, network, region, pool zones) is read from each region stack's spec
(``mesh.cluster_name``, ``mesh.network``, ``region``, ``node_pools.*.zones``); a preview directory
alone gives cluster, network and region from ``outputs.json`` (``meshClusterName``,
``meshNetwork``, ``region``) but no zones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fleetkit.errors import Issue, SpecError
from fleetkit.loader import Fleet as SpecFleet
from fleetkit.simulate.fleet import ClusterInfo
from fleetkit.spec import RegionStackSpec


def topology_from_specs(fleet: SpecFleet) -> dict[str, ClusterInfo]:
    out: dict[str, ClusterInfo] = {}
    for name, st in sorted(fleet.stacks.items()):
        spec = st.spec
        if not isinstance(spec, RegionStackSpec):
            continue
        cluster = spec.mesh.cluster_name or name
        network = spec.mesh.network or f"network-{cluster}"
        zones = {p: tuple(sorted(pool.zones)) for p, pool in sorted(spec.node_pools.items())}
        out[name] = ClusterInfo(cluster, network, spec.region, name, zones)
    return out


def sizes_from_specs(fleet: SpecFleet) -> dict[str, dict[str, float]]:
    """Stack -> Deployment (the model key) -> parameters in billions."""
    return {
        name: {m: float(spec.params_billion) for m, spec in st.spec.models.items() if spec.params_billion}
        for name, st in sorted(fleet.stacks.items())
        if isinstance(st.spec, RegionStackSpec)
    }


def read_preview_dir(path: Path) -> tuple[dict[str, list[dict[str, Any]]], dict[str, ClusterInfo]]:
    """Per-stack manifests and the topology ``outputs.json`` gives (no zones) from ``fleetkit preview --out``."""
    if not path.is_dir():
        what = "is a file" if path.exists() else "no such directory"
        raise SpecError(
            [
                Issue.at(
                    "--from",
                    str(path),
                    "simulate.no-preview",
                    f"{what} (expected the output of `fleetkit preview --out DIR`)",
                    str(path),
                )
            ]
        )
    manifests: dict[str, list[dict[str, Any]]] = {}
    topology: dict[str, ClusterInfo] = {}
    problems: list[Issue] = []
    for sdir in sorted(p for p in path.iterdir() if p.is_dir()):
        mdir = sdir / "manifests"
        if not mdir.is_dir():
            continue
        objs: list[dict[str, Any]] = []
        for f in sorted(mdir.glob("*.yaml")):
            try:
                objs += [d for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if isinstance(d, dict)]
            except yaml.YAMLError as err:
                problems.append(Issue.at(str(f), "", "simulate.bad-yaml", f"not YAML: {err}".splitlines()[0]))
            except (OSError, UnicodeDecodeError) as err:
                problems.append(
                    Issue.at(str(f), "", "simulate.unreadable", f"cannot read it as UTF-8 text: {err}")
                )
        manifests[sdir.name] = objs
        outputs = sdir / "outputs.json"
        if outputs.exists():
            try:
                out = json.loads(outputs.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                problems.append(Issue.at(str(outputs), "", "simulate.bad-json", f"not JSON: {err}"))
                continue
            except (OSError, UnicodeDecodeError) as err:
                problems.append(
                    Issue.at(str(outputs), "", "simulate.unreadable", f"cannot read it as UTF-8 text: {err}")
                )
                continue
            if not isinstance(out, dict):
                problems.append(
                    Issue.at(
                        str(outputs),
                        "",
                        "simulate.bad-json",
                        "expected a JSON object of stack outputs",
                        type(out).__name__,
                    )
                )
                continue
            if out.get("meshClusterName"):
                topology[sdir.name] = ClusterInfo(
                    str(out["meshClusterName"]),
                    str(out.get("meshNetwork") or ""),
                    str(out.get("region") or ""),
                    sdir.name,
                    {},
                )
    if not manifests and not problems:
        problems.append(
            Issue.at(
                "--from",
                str(path),
                "simulate.no-preview",
                "no <stack>/manifests/*.yaml below it (run `fleetkit preview --out DIR` first)",
                str(path),
            )
        )
    if problems:
        raise SpecError(problems)
    return manifests, topology


def merge_topology(
    from_specs: Mapping[str, ClusterInfo], from_outputs: Mapping[str, ClusterInfo]
) -> dict[str, ClusterInfo]:
    """Spec topology where a stack has one (it knows the zones), else what the outputs say."""
    out = dict(from_outputs)
    out.update(from_specs)
    return out
