"""The ``fleetkit simulate`` command (registered on the main CLI)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from enum import StrEnum
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleetkit.errors import Issue, SpecError

if TYPE_CHECKING:
    from fleetkit.simulate.fleet import Fleet
    from fleetkit.simulate.report import Report


class SimFormat(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


def _pairs(option: str, items: list[str], problems: list[Issue], number: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            problems.append(Issue.at(option, item, "simulate.bad-pair", "expected KEY=VALUE", item))
            continue
        if number:
            try:
                if float(value) < 0:
                    raise ValueError
            except ValueError:
                problems.append(Issue.at(option, item, "simulate.bad-number", "expected a number ≥ 0", value))
                continue
        out[key] = value
    return out


def write_atomically(files: dict[Path, bytes]) -> None:
    """Write every file or none: each goes to a temporary file beside it, renamed at the end."""
    staged: list[tuple[Path, str]] = []
    try:
        for path, data in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            staged.append((path, tmp))
        for path, tmp in staged:
            os.replace(tmp, path)
    finally:
        for _, tmp in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _load(project: Path, from_dir: Path | None) -> Fleet:
    """The rendered fleet: from a preview directory (its manifests are the whole input, joined with the
    project's topology and weight sizes), or the project's stacks rendered now by the offline preview
    (model facts from the resolve step, routing from the rendering: :mod:`fleetkit.simulate.source`)."""
    # imported here, not at module level: `fleetkit --help` loads this module and must stay fast
    from fleetkit.loader import load_fleet
    from fleetkit.simulate.fleet import build_fleet
    from fleetkit.simulate.source import (
        fleet_from_stacks,
        merge_topology,
        read_preview_dir,
        topology_from_specs,
        weights_from_specs,
    )

    specs = load_fleet(project)
    if from_dir is not None:
        manifests, from_outputs = read_preview_dir(from_dir)
        topology = merge_topology(topology_from_specs(specs), from_outputs)
        return build_fleet(manifests, topology, weights_from_specs(specs))
    from fleetkit.preview import preview_fleet  # Pulumi's mock runtime: only when rendering now

    results = preview_fleet(specs)
    return fleet_from_stacks(specs, {name: res.manifests() for name, res in results.items()})


def _capacity_options(
    fleet: Fleet, assume: list[str], demand: list[str], problems: list[Issue]
) -> tuple[dict[str, float], dict[str, float]]:
    assumptions = {k: float(v) for k, v in _pairs("--assume", assume, problems, number=True).items()}
    known = ("efficiency", "batch", "output_tokens", "utilisation")
    problems += [
        Issue.at("--assume", k, "simulate.unknown-assumption", "known: " + ", ".join(known), k)
        for k in assumptions
        if k not in known
    ]
    demands = {k: float(v) for k, v in _pairs("--demand", demand, problems, number=True).items()}
    services = sorted({w.model for w in fleet.workloads})
    problems += [
        Issue.at(
            "--demand",
            d,
            "simulate.unknown-model",
            f"no model service of that name ({', '.join(services)})",
            d,
        )
        for d in demands
        if d not in services
    ]
    return assumptions, demands


def _check_options(
    fleet: Fleet,
    problems: list[Issue],
    *,
    origin: list[str],
    baseline: str,
    diagram: Path | None,
    output: Path | None,
) -> None:
    if baseline not in ("min", "max"):
        problems.append(
            Issue.at("--baseline", baseline, "simulate.bad-baseline", "expected min or max", baseline)
        )
    problems += [
        Issue.at(
            "--origin",
            o,
            "simulate.unknown-cluster",
            f"no mesh cluster {o!r} (clusters: {', '.join(sorted(fleet.clusters))})",
            o,
        )
        for o in origin
        if o not in fleet.clusters
    ]
    for option, path in (("--diagram", diagram), ("--output", output)):
        if path is not None and not path.parent.is_dir():
            problems.append(
                Issue.at(
                    option, str(path), "simulate.no-directory", "its directory does not exist", str(path)
                )
            )


def _diagram_files(
    report: Report, shown: str, diagram: Path, warn: Callable[[str], None]
) -> dict[Path, bytes]:
    # imported on use: the diagram module is only needed with --diagram
    from fleetkit.simulate.diagram import png_available, to_mermaid, to_svg, write_png

    svg = to_svg(report, shown)
    files = {
        diagram.with_suffix(".svg"): svg.encode(),
        diagram.with_suffix(".mmd"): to_mermaid(report, shown).encode(),
    }
    why = png_available()
    if why is not None:
        warn(f"no PNG: {why}")
        return files
    fd, name = tempfile.mkstemp(suffix=".png")
    os.close(fd)
    png = Path(name)
    try:
        write_png(svg, png)
        files[diagram.with_suffix(".png")] = png.read_bytes()
    finally:
        png.unlink()
    return files


def simulate_command(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="The OpenAI body's `model` (repeatable). Default: every model's served name.",
        ),
    ] = None,
    tier: Annotated[
        list[str] | None,
        typer.Option(
            "--tier",
            "-t",
            help="The verified JWT `tier` claim (repeatable). Default: every tier the fleet knows.",
        ),
    ] = None,
    origin: Annotated[
        list[str] | None,
        typer.Option(
            "--origin",
            help="Mesh cluster whose ingress receives the request (repeatable). Default: every cluster.",
        ),
    ] = None,
    path: Annotated[str, typer.Option("--path", help="Request path.")] = "/v1/chat/completions",
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            "-H",
            help="A header the client sends itself, NAME=VALUE (repeatable; e.g. a forged tier header).",
        ),
    ] = None,
    claim: Annotated[
        list[str] | None, typer.Option("--claim", help="Another verified JWT claim, NAME=VALUE (repeatable).")
    ] = None,
    stream: Annotated[
        bool, typer.Option("--stream", help="A streaming request (same routing; recorded in the output).")
    ] = False,
    zone: Annotated[
        str, typer.Option("--zone", help="Zone of the ingress gateway pod (locality-aware failover).")
    ] = "",
    concurrency: Annotated[
        float,
        typer.Option(
            "--concurrency",
            min=0,
            help="In-flight requests of each class at one gateway replica (circuit breakers). 0: not modelled.",
        ),
    ] = 0.0,
    rate: Annotated[
        float,
        typer.Option(
            "--rate",
            min=0,
            help="Requests/s of each class at one gateway replica (local rate limits, 429). 0: not modelled.",
        ),
    ] = 0.0,
    down: Annotated[
        list[str] | None,
        typer.Option(
            "--down",
            help="cluster:NAME, region:NAME, network:NAME or zone:NAME is down (repeatable; combined into one scenario).",
        ),
    ] = None,
    replicas: Annotated[
        list[str] | None,
        typer.Option(
            "--replicas",
            help="DEPLOYMENT=N|min|max|zero; DEPLOYMENT is NAME, CLUSTER/NAME or SERVICE:VERSION (repeatable).",
        ),
    ] = None,
    eject: Annotated[
        list[str] | None,
        typer.Option(
            "--eject",
            help="SERVICE:VERSION (or CLUSTER/SERVICE:VERSION) returns errors; outlier detection ejects it within maxEjectionPercent.",
        ),
    ] = None,
    no_capacity: Annotated[
        list[str] | None,
        typer.Option("--no-capacity", help="POOL or CLUSTER/POOL cannot run pods (repeatable)."),
    ] = None,
    baseline: Annotated[
        str,
        typer.Option(
            "--baseline",
            help="Replicas of every Deployment before the scenario: min (autoscaler minimum) or max.",
        ),
    ] = "min",
    standard: Annotated[
        bool | None,
        typer.Option(
            "--standard/--no-standard",
            help="Run the standard scenario set (healthy, each cluster/region/network down, each model's primary at zero). Default: on unless a scenario option is given.",
        ),
    ] = None,
    assume: Annotated[
        list[str] | None,
        typer.Option(
            "--assume", help="Capacity assumption KEY=VALUE: efficiency, batch, output_tokens, utilisation."
        ),
    ] = None,
    demand: Annotated[
        list[str] | None,
        typer.Option("--demand", help="Fleet-wide requests/s of a model service, MODEL=RPS (repeatable)."),
    ] = None,
    output_format: Annotated[
        SimFormat,
        typer.Option(
            "--format",
            "-f",
            case_sensitive=False,
            help="table (terminal), json (scripts), markdown (a pull-request comment with the Mermaid diagram).",
        ),
    ] = SimFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to this file instead of stdout.")
    ] = None,
    diagram: Annotated[
        Path | None,
        typer.Option(
            "--diagram",
            help="Write the flow diagram: PATH.svg, PATH.mmd (Mermaid) and PATH.png when cairosvg is installed.",
        ),
    ] = None,
    picture: Annotated[
        str | None,
        typer.Option(
            "--picture",
            help="Scenario the diagram shows (default: the first non-healthy scenario given, else healthy).",
        ),
    ] = None,
    with_routes: Annotated[
        bool,
        typer.Option(
            "--route-classes",
            help="Also simulate, per route, a client that sends the exact headers the route matches (header routing, forged headers).",
        ),
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Exit 1 when, with everything healthy, a request class gets an error or is answered by another model while its own model has pods.",
        ),
    ] = False,
    from_dir: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Read the rendered fleet from a `fleetkit preview --out DIR` directory instead of rendering now.",
        ),
    ] = None,
    root: Annotated[
        Path | None, typer.Option("--root", help="Project directory (holds Pulumi.yaml and stacks/).")
    ] = None,
) -> None:
    """What-if: where every request goes under failures.

    Reads the fleet as deployed (each model's pool, GPU class, replica bounds and engine arguments
    resolved from the stacks; every stack's rendered VirtualServices, DestinationRules, Services,
    pod labels and edge filters; the mesh topology) and computes, for each
    request class and scenario, the distribution of outcomes: served by (cluster, model, version,
    GPU class) — flagged when another model answers — or an HTTP error with its reason (no route,
    unknown model, no endpoints, circuit open, 429). Istio 1.30/Envoy semantics, each rule cited
    in `fleetkit/simulate/__init__.py`. A capacity view says whether the surviving replicas can
    carry each model's traffic (assumptions printed with the result).

    Examples: `fleetkit simulate` (standard scenarios, every class); `fleetkit simulate -m
    meta-llama/Llama-3.1-70B-Instruct -t premium --origin aws-use1 --down region:europe-west4
    --diagram out/sim`. Exit codes: 0 simulated, 2 unusable input (file, option, rule, value); with `--check`, 1 when the healthy fleet has findings.
    """
    # imported on use, not at module level: `fleetkit --help` loads this module and must stay fast
    from rich.console import Console

    from fleetkit.console import err_console, fail, find_root, out_console
    from fleetkit.simulate.diagram import scenario_for_picture
    from fleetkit.simulate.markdown import report_markdown
    from fleetkit.simulate.report import (
        findings,
        request_classes,
        route_classes,
        simulate,
        to_json,
        to_renderables,
    )
    from fleetkit.simulate.scenarios import parse_scenario, standard_scenarios

    try:
        project = find_root(root)
        with err_console.status("rendering the fleet…"):
            fleet = _load(project, from_dir)
        problems: list[Issue] = []
        headers = _pairs("--header", header or [], problems)
        claims = _pairs("--claim", claim or [], problems)
        assumptions, demands = _capacity_options(fleet, assume or [], demand or [], problems)
        _check_options(
            fleet, problems, origin=origin or [], baseline=baseline, diagram=diagram, output=output
        )
        custom, more = parse_scenario(
            fleet,
            down or [],
            replicas or [],
            eject or [],
            no_capacity or [],
            baseline if baseline in ("min", "max") else "min",
        )
        problems += more
        if problems:
            raise SpecError(problems)
        scenarios = []
        given = bool(down or replicas or eject or no_capacity)
        if standard or (standard is None and not given):
            scenarios = standard_scenarios(fleet)
        if given or not scenarios:
            scenarios = [s for s in scenarios if s.name != custom.name] + [custom]
        names = [s.name for s in scenarios]
        if picture is not None and picture not in names:
            raise SpecError(
                [
                    Issue.at(
                        "--picture",
                        picture,
                        "simulate.unknown-scenario",
                        "not one of the scenarios run: " + "; ".join(names),
                        picture,
                    )
                ]
            )
        extra = {
            "path": path,
            "stream": stream,
            "zone": zone,
            "concurrency": concurrency,
            "rate": rate,
            "headers": headers,
        }
        classes = request_classes(
            fleet,
            models=model or None,
            tier_values=tier or None,
            origins=origin or None,
            claims=claims,
            **extra,
        )
        if with_routes:
            classes += [
                c
                for c in route_classes(
                    fleet, path=path, stream=stream, zone=zone, concurrency=concurrency, rate=rate
                )
                if not origin or c.request.origin in origin
            ]
        report = simulate(fleet, scenarios, classes, assumptions, demands)
    except SpecError as err:
        fail(err)
        return
    shown = picture or scenario_for_picture(report, [custom.name] if given else None)
    files = _diagram_files(report, shown, diagram, err_console.print) if diagram is not None else {}
    if output_format is SimFormat.table:
        if output is not None:
            buf = StringIO()
            console = Console(file=buf, width=160, highlight=False, emoji=False, no_color=True)
            for r in to_renderables(report):
                console.print(r)
            files[output] = buf.getvalue().encode()
        else:
            for r in to_renderables(report):
                out_console.print(r)
    else:
        text = to_json(report) if output_format is SimFormat.json else report_markdown(report, shown)
        if output is not None:
            files[output] = text.encode()
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    write_atomically(files)
    for p in sorted(files):
        err_console.print(f"wrote {p}")
    if check and findings(report):
        raise typer.Exit(1)
