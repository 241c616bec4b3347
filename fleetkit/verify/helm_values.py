"""Helm release values checked against the pinned chart's own files (``fleetkit/charts/``).

Two checks, both what the chart's consumer — Helm — does or fails to do:

* **Schema.** When a chart ships ``values.schema.json``, ``helm install`` validates the *coalesced*
  values (the chart's ``values.yaml`` with the user's values merged over it) against it and refuses
  the release on a mismatch (https://helm.sh/docs/topics/charts/#schema-files). The same merge and
  the same schema run here, with ``jsonschema`` (Draft 7, the draft the Istio schema is written in).
* **Unknown keys.** Helm ignores a key no template reads, without a warning: a typo is a no-op in
  production. Every key the kit sets must exist in the chart's ``values.yaml`` (for Istio's charts,
  under ``_internal_defaults_do_not_set``, which the chart's ``zzz_profile.yaml`` merges the user's
  top-level values over) or be named by the schema. A mapping whose default is empty (``{}``, e.g.
  ``annotations``, ``env``) or null, or that the schema declares as an object without properties
  (the gateway chart's ``labels``), is free-form: keys below it are the user's own. Values a chart
  passes verbatim into another API (istiod's ``meshConfig``) are reported as *not checked*. A key under a
  subchart (Chart.yaml ``dependencies``, by alias) whose parent values do not list it is reported as
  *not checked* (the subcharts' values files are not vendored), never as a pass.

A chart/version the kit has no files for gives a ``skipped`` verdict naming it, unless it is listed
in :data:`NOT_VENDORED` with the reason its files are not here: its values are then reported as
*not checked*, never as a pass.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator

from fleetkit.issue import Issue
from fleetkit.verify import Verdict, finding

CHARTS_DIR = Path(__file__).resolve().parent.parent / "charts"
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
ISTIO_DEFAULTS = "_internal_defaults_do_not_set"

RULE_SCHEMA = "helm.values-schema"
RULE_UNKNOWN = "helm.unknown-key"
RULE_NO_CHART = "helm.chart-not-vendored"
RULE_NOT_CHECKED = "helm.not-checked"
#: chart -> why its values files are not vendored (its releases' values are reported as not checked)
NOT_VENDORED = {
    "aws-load-balancer-controller": "the eks-charts values files for the pinned chart version could not be fetched "
    "byte for byte from the upstream tag offline; components/lb_controller.py "
    "sets only keys documented in the chart's README",
}

#: Top-level values a chart copies verbatim into another API (no values.yaml keys to check against).
PASS_THROUGH: dict[str, dict[str, str]] = {
    # istiod renders meshConfig into the mesh ConfigMap (istio.mesh.v1alpha1.MeshConfig,
    # https://istio.io/latest/docs/reference/config/istio.mesh.v1alpha1/)
    "istiod": {"meshConfig": "the MeshConfig API (istio.mesh.v1alpha1)"},
}


class Chart:
    """One pinned chart's values.yaml, optional values.schema.json and subchart names."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.name = folder.name.rsplit("-", 1)[0]
        self.values: dict[str, Any] = (
            yaml.safe_load((folder / "values.yaml").read_text(encoding="utf-8")) or {}
        )
        schema_file = folder / "values.schema.json"
        self.schema: dict[str, Any] | None = (
            json.loads(schema_file.read_text(encoding="utf-8")) if schema_file.exists() else None
        )
        meta = yaml.safe_load((folder / "Chart.yaml").read_text(encoding="utf-8")) or {}
        self.subcharts = frozenset(d.get("alias") or d["name"] for d in meta.get("dependencies") or [])
        # a dependency condition such as "nfd.enabled" is a valid key without being in values.yaml
        self.conditions = frozenset(
            c.strip()
            for d in meta.get("dependencies") or []
            for c in str(d.get("condition") or "").split(",")
            if c.strip()
        )

    @property
    def defaults(self) -> dict[str, Any]:
        """The mapping users' keys are looked up in (Istio charts keep them under a prefix)."""
        inner = self.values.get(ISTIO_DEFAULTS)
        return inner if isinstance(inner, dict) else self.values


@functools.cache
def chart(name: str, version: str) -> Chart | None:
    folder = CHARTS_DIR / f"{name}-{version}"
    return Chart(folder) if (folder / "values.yaml").exists() else None


def vendored() -> list[str]:
    return sorted(p.name for p in CHARTS_DIR.iterdir() if (p / "values.yaml").exists())


def coalesce(base: Any, over: Any) -> Any:
    """Helm's merge of user values over chart values: mappings merge key by key, anything else replaces;
    a null user value deletes the key (https://helm.sh/docs/chart_template_guide/values_files/)."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = coalesce(base.get(k), v)
        return out
    return over


def _schema_at(schema: Mapping[str, Any] | None, root: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    """(does the schema name ``key`` here, the subschema for it)."""
    node = _resolve(schema, root)
    if not isinstance(node, Mapping):
        return False, None
    props = node.get("properties") or {}
    if key in props:
        return True, _resolve(props[key], root)
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        return True, _resolve(extra, root)
    return False, None


def _resolve(node: Any, root: Mapping[str, Any]) -> Any:
    for _ in range(10):  # bounded: local "#/..." references only
        if not (
            isinstance(node, Mapping) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/")
        ):
            return node
        target: Any = root
        for part in node["$ref"][2:].split("/"):
            target = target.get(part) if isinstance(target, Mapping) else None
        node = target
    return node


def unknown_keys(values: Mapping[str, Any], ch: Chart) -> Iterator[tuple[str, str, str]]:
    """(path, rule, message) for every key Helm would silently ignore, or could not check."""
    root = ch.schema or {}

    def walk(
        user: Mapping[str, Any], default: Any, schema: Any, path: str, top: bool
    ) -> Iterator[tuple[str, str, str]]:
        for key, value in sorted(user.items()):
            sub = f"{path}.{key}" if path else str(key)
            in_values = isinstance(default, Mapping) and key in default
            named, subschema = _schema_at(schema, root, key) if schema is not None else (False, None)
            if not in_values and not named:
                if sub in ch.conditions:
                    continue
                if top and key in ch.subcharts:
                    continue
                head = sub.split(".", 1)[0]
                if head in ch.subcharts:
                    yield (
                        sub,
                        RULE_NOT_CHECKED,
                        (
                            f"{sub} belongs to subchart {head!r}, whose values.yaml is not "
                            "vendored: not checked"
                        ),
                    )
                    continue
                yield (
                    sub,
                    RULE_UNKNOWN,
                    (
                        f"{sub} is not a value of chart {ch.folder.name} (not in values.yaml, not "
                        "allowed by values.schema.json): Helm ignores it"
                    ),
                )
                continue
            if not isinstance(value, Mapping):
                continue
            dflt = default.get(key) if in_values else None
            props = (
                (_resolve(subschema, root) or {}).get("properties")
                if isinstance(subschema, Mapping)
                else None
            )
            if in_values and (dflt is None or dflt == {}) and not props:
                continue  # free-form mapping (annotations, env, nodeSelector…)
            if (
                isinstance(subschema, Mapping)
                and not props
                and _resolve(subschema, root).get("type") == "object"
            ):
                continue  # the schema declares a free-form map here (labels, env, nodeSelector…)
            if top and key in PASS_THROUGH.get(ch.name, {}):
                yield (
                    sub,
                    RULE_NOT_CHECKED,
                    f"{sub} is passed through to {PASS_THROUGH[ch.name][key]}: keys below it not checked",
                )
                continue
            if in_values and not isinstance(dflt, Mapping):
                continue  # a type mismatch is the schema's to report
            if not in_values and subschema is not None and not props:
                continue  # the schema allows a free-form mapping here
            yield from walk(value, dflt if in_values else None, subschema, sub, False)

    yield from walk(values, ch.defaults, root if ch.schema else None, "", True)


def schema_errors(values: Mapping[str, Any], ch: Chart) -> list[tuple[str, str]]:
    """(path, message) of every ``values.schema.json`` violation of the coalesced values."""
    if ch.schema is None:
        return []
    merged = coalesce(ch.values, dict(values))
    validator = Draft7Validator(ch.schema)
    out = []
    for err in sorted(validator.iter_errors(merged), key=lambda e: [str(p) for p in e.absolute_path]):
        path = ".".join(str(p) for p in err.absolute_path)
        out.append((path, err.message if len(err.message) < 300 else err.message[:297] + "..."))
    return out


def check_release(
    subject: str, chart_name: str, version: str, values: Mapping[str, Any]
) -> list[Issue] | None:
    """Findings for one release; ``None`` when the chart/version is not vendored."""
    ch = chart(chart_name, version)
    if ch is None:
        return None
    out = [
        finding(subject, f"values.{p}" if p else "values", RULE_SCHEMA, m)
        for p, m in schema_errors(values, ch)
    ]
    out += [finding(subject, f"values.{p}", rule, m) for p, rule, m in unknown_keys(values, ch)]
    return out


def releases(resources: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(subject, chart, version, values) of every Helm release in resources.json rows."""
    out = []
    for row in resources:
        if row.get("type") != RELEASE_TYPE:
            continue
        inputs = row.get("inputs") or {}
        subject = f"helm.v3.Release {row.get('name')} ({inputs.get('chart')} {inputs.get('version')})"
        out.append(
            (subject, str(inputs.get("chart")), str(inputs.get("version")), dict(inputs.get("values") or {}))
        )
    return sorted(out)


def verify(resources: Iterable[Mapping[str, Any]]) -> Verdict:
    started = time.perf_counter()
    rels = releases(resources)
    findings: list[Issue] = []
    missing: list[str] = []
    for subject, name, version, values in rels:
        got = check_release(subject, name, version, values)
        if got is None and name in NOT_VENDORED:
            findings.append(
                finding(subject, f"values of {name} (not vendored)", RULE_NOT_CHECKED, NOT_VENDORED[name])
            )
        elif got is None:
            missing.append(f"{name} {version}")
        else:
            findings += got
    errors = [f for f in findings if f.rule != RULE_NOT_CHECKED]
    unchecked = [f for f in findings if f.rule == RULE_NOT_CHECKED]
    if missing:
        findings += [
            finding(m, "", RULE_NO_CHART, f"no vendored values for chart {m} (have: {', '.join(vendored())})")
            for m in sorted(set(missing))
        ]
    n = len(rels)
    if errors or missing:
        status, summary = "fail", f"{len(errors) + len(set(missing))} problem(s) in {n} release(s)"
    elif not rels:
        status, summary = "skipped", "no Helm releases"
    else:
        status, summary = "pass", f"{n} release(s) valid"
        if unchecked:
            summary += (
                f" (not checked: {', '.join(sorted({f.where.removeprefix('values.') for f in unchecked}))})"
            )
    return Verdict("chart values", status, summary, findings, time.perf_counter() - started, n)  # type: ignore[arg-type]
