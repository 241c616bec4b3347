"""Readable preview output: per-stack tables of resources, GPU pools, models and policies; the
``plan-capacity`` tables (:func:`capacity_plan`: one stack's plan, from its resolved spec)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fleetkit import dr
from fleetkit.capacity_plan import CapacityPlan, PlanModel, PlanPool, plan_rows, render_plan_table
from fleetkit.engine_checks import check_preview
from fleetkit.engine_checks import to_dict as engine_dict
from fleetkit.fleet import Fleet
from fleetkit.guardrails import preview_section
from fleetkit.lint import lint_objects
from fleetkit.output import dump_json
from fleetkit.resolve import ResolvedStack
from fleetkit.spec import RegionStackSpec
from fleetkit.verify.runner import failed as verify_failed
from fleetkit.verify.runner import verdict_text, verify_stack


@dataclass
class Report:
    renderables: list[Any] = field(default_factory=list)
    #: stack -> {relative path: text} written beside resources.json with --out
    extra_files: dict[str, dict[str, str]] = field(default_factory=dict)
    exit_code: int = 0


def titled_table(title: str, columns: Any, rows: Any, **column_opts: Any) -> Table:
    """The kit's table look (left title, no outer edge), with these columns and rows."""
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for col in columns:
        table.add_column(col, **column_opts)
    for row in rows:
        table.add_row(*row)
    return table


def _resource_table(preview: Any, details: bool) -> Table:
    table = Table(title="resources", title_justify="left", show_edge=False, pad_edge=False)
    if details:
        table.add_column("type")
        table.add_column("name")
        table.add_column("parent", style="dim")
        for row in preview.resources_json():
            if row["custom"]:
                table.add_row(row["type"], row["name"], row["parent"].split("::")[-1])
        return table
    table.add_column("type")
    table.add_column("count", justify="right")
    for typ, n in preview.types().items():
        table.add_row(typ, str(n))
    return table


def _pool_table(stack: ResolvedStack) -> Table:
    table = Table(title="GPU node pools", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("pool", "instance type", "GPU", "GPUs/node", "GPU mem", "nodes", "capacity", "taints"):
        table.add_column(col, justify="right" if col in ("GPUs/node", "GPU mem", "nodes") else "left")
    for name, resolved in stack.pools.items():
        pool, entry = resolved.spec, resolved.instance
        gpu = f"{entry.gpu_model}" if entry else "?"
        table.add_row(
            name,
            pool.instance_type,
            gpu,
            str(entry.gpu_count) if entry else "?",
            f"{entry.gpu_memory_gib:g} GiB" if entry else "?",
            f"{pool.min_size}–{pool.max_size}",
            "spot" if pool.spot else "on-demand",
            ", ".join(f"{t.key}={t.value}:{t.effect}" for t in pool.taints) or "-",
        )
    return table


def _model_table(spec: RegionStackSpec) -> Table:
    return titled_table(
        "models",
        ("model", "service", "version", "pool", "TP", "replicas", "tier", "served as"),
        (
            (
                name,
                m.service or name,
                m.version,
                m.pool or "-",
                str(m.tensor_parallel),
                f"{m.replicas.min}–{m.replicas.max}",
                m.tier or "-",
                m.served_name,
            )
            for name, m in sorted(spec.models.items())
        ),
    )


def _policy_table(spec: RegionStackSpec) -> Table:
    """Each policy in its own words (``PolicySet.describe``, the same text the review shows)."""
    table = Table(
        title="serving policies", title_justify="left", show_edge=False, pad_edge=False, show_header=False
    )
    table.add_column("policy", style="bold")
    table.add_column("summary")
    for name, text in spec.policies.describe():
        table.add_row(name, escape(text))
    return table


def _lint(preview: Any) -> tuple[list[Any], Any | None]:
    objs = [(f"{preview.stack}/manifests", o) for o in preview.manifests()]
    findings = lint_objects(objs)
    if not findings:
        return [], Text("lint: no findings", style="green")
    return findings, titled_table(
        "lint findings",
        ("severity", "rule", "object", "message"),
        (
            (
                f.severity + (" (suppressed)" if getattr(f, "suppressed", None) else ""),
                f.rule,
                escape(f.object),
                escape(f.message),
            )
            for f in findings
        ),
    )


def preview_report(fleet: Fleet, results: dict[str, Any], details: bool = False) -> Report:
    report = Report()
    total = 0
    for name, res in results.items():
        st = fleet.stacks[name]
        spec = st.spec
        n = sum(1 for r in res.resources if r.custom)
        total += n
        parts: list[Any] = [_resource_table(res, details)]
        if isinstance(spec, RegionStackSpec):
            title = f"{name}  ·  {spec.cloud} {spec.region}  ·  cluster {spec.cluster.name}  ·  mesh {spec.mesh.cluster_name}@{spec.mesh.network}"
            parts += [_pool_table(st.resolved), _model_table(spec), _policy_table(spec)]
        else:
            title = f"{name}  ·  mesh {spec.role} ({spec.mesh.mesh_id})"
        if res.messages:
            parts.append(Text("\n".join(res.messages), style="yellow"))
        findings, lint_view = _lint(res)
        if lint_view is not None:
            parts.append(lint_view)
            report.extra_files[name] = {"lint.json": dump_json([f.record() for f in findings])}
            if any(f.severity == "error" and not getattr(f, "suppressed", None) for f in findings):
                report.exit_code = 1
        engine = check_preview(res)  # where the real engine (or cluster) would fail and the mocks did not
        report.extra_files.setdefault(name, {})["engine-checks.json"] = dump_json(
            [engine_dict(f) for f in engine]
        )
        if engine:
            parts.append(
                titled_table(
                    "engine checks (fleetkit/engine_checks.py)",
                    ("severity", "rule", "resource", "message"),
                    (
                        (
                            Text(f.severity, style="red" if f.severity == "error" else "yellow"),
                            f.rule,
                            escape(f.subject),
                            escape(f.message),
                        )
                        for f in engine
                    ),
                )
            )
            if any(f.severity == "error" for f in engine):
                report.exit_code = 1
        else:
            parts.append(Text("engine checks: pass", style="green"))
        guard = preview_section(res)  # the CrossGuard rules (policies/crossguard), run offline
        parts.append(guard.renderable)
        report.extra_files.setdefault(name, {}).update(guard.files)
        if guard.failed:
            report.exit_code = 1
        verdicts = verify_stack(res.manifests(), res.resources_json())  # the real consumers' checks
        parts.append(verdict_text(verdicts))
        if verify_failed(verdicts):
            report.exit_code = 1
        outputs = res.public_outputs()
        if outputs:
            out_table = Table(title="stack outputs", title_justify="left", show_edge=False, pad_edge=False)
            out_table.add_column("key")
            out_table.add_column("value", overflow="fold")
            for k, v in outputs.items():
                shown = str(v) if not isinstance(v, (dict, list)) else f"{type(v).__name__} ({len(v)})"
                out_table.add_row(escape(k), escape(shown))
            parts.append(out_table)
        report.renderables.append(
            Panel(
                Group(*parts),
                title=title,
                title_align="left",
                subtitle=f"{n} resources · {res.seconds:.2f}s",
                subtitle_align="right",
            )
        )
    report.renderables.append(
        Text(f"{len(results)} stacks, {total} resources would be created.", style="bold")
    )
    return report


def capacity_tables(fleet: Fleet, only: list[str] | None) -> list[Any]:
    """One ``plan-capacity`` table per region stack."""
    out = []
    for name, st in sorted(fleet.region_stacks().items()):
        if only and name not in only:
            continue
        spec = st.spec
        assert isinstance(spec, RegionStackSpec)
        out.append(
            render_plan_table(capacity_plan(fleet, name), title=f"{name} ({spec.cloud} {spec.region})")
        )
    if not only:  # N-1 needs the whole fleet
        out.extend(dr_tables(fleet))
    return out


def dr_tables(fleet: Fleet) -> list[Any]:
    """The fleet's N-1 table (one row per region lost and service it runs) and its DR warnings."""

    rows = [
        (
            r.lost,
            r.service,
            str(r.load),
            str(r.remaining_max),
            "[green]yes[/green]" if r.carried else "[red]NO[/red]",
        )
        for r in dr.n_minus_one(fleet)
    ]
    out: list[Any] = [
        titled_table(
            "DR capacity (N-1): load = replicas.min summed over the fleet",
            ("region lost", "service", "fleet load", "rest at max", "carried"),
            rows,
        )
    ]
    warnings = dr.warnings(fleet)
    if warnings:
        out.append(Text("\n".join(f"warning [{w.rule}] {w.message}" for w in warnings), style="yellow"))
    return out


def capacity_plan(fleet: Fleet, stack: str) -> CapacityPlan:
    """Rows and problems of ``fleetkit plan-capacity`` for one region stack, from its resolved spec.

    Pools are the stack's node pools (nodes min..max); models are the ones it deploys, with their
    tensor parallelism, size, replica range and the fit the resolve step computed. Issue paths
    name the stack file.
    """
    st = fleet.stacks[stack]
    if not isinstance(st.spec, RegionStackSpec):
        raise TypeError(f"stack {stack!r} is not a region stack (it has no GPU pools)")
    resolved = st.resolved
    pools = {
        name: PlanPool(p.instance_type, p.spec.min_size, p.spec.max_size)
        for name, p in resolved.pools.items()
    }
    models = {
        name: PlanModel(
            pool=m.spec.pool or "",
            tensor_parallel=m.spec.tensor_parallel,
            size=m.size,
            replicas_min=m.spec.replicas.min,
            replicas_max=m.spec.replicas.max,
            gpu_memory_utilization=m.spec.gpu_memory_utilization,
        )
        for name, m in resolved.models.items()
    }
    fits = {name: m.fit for name, m in resolved.models.items()}
    return plan_rows(file=st.file, cloud=st.spec.cloud, pools=pools, models=models, fits=fits)
