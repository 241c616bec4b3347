"""Helm release values against the pinned charts' own values.yaml / values.schema.json."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from fleetkit.verify import finding_line, helm_values
from mesh import render
from mesh.render import eastwest_values, istiod_values

ROW = "kubernetes:helm.sh/v3:Release"


def _row(chart: str, version: str, values: dict) -> dict:
    return {
        "type": ROW,
        "name": f"r-{chart}",
        "inputs": {"chart": chart, "version": version, "values": values},
    }


def _rules(verdict) -> list[tuple[str, str]]:
    return [(f.rule, f.where) for f in verdict.findings]


def test_vendored_chart_files_are_the_upstream_bytes() -> None:
    readme = (helm_values.CHARTS_DIR / "README.md").read_text()
    table = dict(re.findall(r"^\| (\S+/\S+) \| ([0-9a-f]{64}) \|$", readme, flags=re.M))
    assert len(table) == 13
    for rel, digest in table.items():
        assert hashlib.sha256((helm_values.CHARTS_DIR / rel).read_bytes()).hexdigest() == digest, rel


def test_every_release_of_the_demo_fleet_passes(demo_preview) -> None:
    for name, res in demo_preview.items():
        verdict = helm_values.verify(res.resources_json())
        assert verdict.status in ("pass", "skipped"), (name, [finding_line(f) for f in verdict.findings])
    east = helm_values.verify(demo_preview["aws-us-east-1"].resources_json())
    assert (
        east.count == 8 and "kube-state-metrics.metricLabelsAllowlist" in east.summary
    )  # not checked, said so
    assert (
        "aws-load-balancer-controller (not vendored)" in east.summary
    )  # the LB controller chart: said so too


def test_list_valued_network_gateway_ports_is_refused() -> None:
    values = eastwest_values("n1", {})
    values["networkGatewayPorts"] = [{"name": "status-port", "port": 15021}, {"name": "tls", "port": 15443}]
    verdict = helm_values.verify([_row("gateway", "1.30.3", values)])
    assert verdict.failed and ("helm.values-schema", "values.networkGatewayPorts") in _rules(verdict)
    assert "is not of type 'object'" in verdict.findings[0].message


def test_the_fixed_east_west_values_pass_the_chart_schema() -> None:
    values = eastwest_values(
        "n1", render.aws_nlb_annotations("eipalloc-1"), source_ranges=["198.51.100.0/29"]
    )
    assert helm_values.verify([_row("gateway", "1.30.3", values)]).status == "pass"
    ports = values["networkGatewayPorts"]
    assert ports["status-port"]["port"] == 15021 and ports["tls"]["port"] == 15443


def test_unknown_helm_keys_are_errors() -> None:
    legacy = {**istiod_values(_mesh(), "c1", "n1"), "pilot": {"env": {"AUTO_RELOAD_PLUGIN_CERTS": "true"}}}
    verdict = helm_values.verify([_row("istiod", "1.30.3", legacy)])
    assert verdict.failed and ("helm.unknown-key", "values.pilot") in _rules(verdict)
    typo = helm_values.verify(
        [_row("keda", "2.20.2", {"resources": {"operatr": {"limits": {"memory": "1Gi"}}}})]
    )
    assert _rules(typo) == [("helm.unknown-key", "values.resources.operatr")]
    # the gateway schema forbids unknown top-level keys: both checks report it
    gw = helm_values.verify([_row("gateway", "1.30.3", {"nmae": "x"})])
    assert {r for r, _ in _rules(gw)} == {"helm.values-schema", "helm.unknown-key"}


def test_istiod_values_have_env_at_the_top_level() -> None:
    values = istiod_values(_mesh(), "c1", "n1")
    assert "pilot" not in values and values["env"]["AUTO_RELOAD_PLUGIN_CERTS"] == "true"
    verdict = helm_values.verify([_row("istiod", "1.30.3", values)])
    assert verdict.status == "pass" and "meshConfig" in verdict.summary  # passed through: said, not checked


def test_free_form_maps_and_subchart_conditions_are_accepted() -> None:
    values = {"nodeSelector": {"any/label": "x"}, "nfd": {"enabled": False}, "gfd": {"enabled": False}}
    assert helm_values.verify([_row("nvidia-device-plugin", "0.19.3", values)]).status == "pass"


def test_a_chart_version_without_vendored_values_fails() -> None:
    verdict = helm_values.verify([_row("keda", "9.9.9", {})])
    assert verdict.failed and _rules(verdict) == [("helm.chart-not-vendored", "")]


def test_coalesce_is_helms_merge() -> None:
    assert helm_values.coalesce({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": None, "e": 3}, "d": [2]}) == {
        "a": {"c": 2, "e": 3},
        "d": [2],
    }


def _mesh():
    from fleetkit.spec import MeshSpec

    return MeshSpec(mesh_id="m1", cluster_name="c1", network="n1")


def test_chart_files_ship_with_the_package() -> None:
    assert Path(helm_values.CHARTS_DIR, "gateway-1.30.3", "values.schema.json").is_file()
