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

from fleetkit.console import OutputFileOpt, RootOpt, choice_flag, err_console, fail, float_flag, out_console
from fleetkit.errors import Issue, SpecError
from fleetkit.simulate.options import (
    capacity_options,
    check_options,
    check_outputs,
    pairs,
    project_root,
    raise_with_spec_problems,
    scenarios_to_run,
)

if TYPE_CHECKING:
    from fleetkit.simulate.fleet import SimulatedFleet
    from fleetkit.simulate.report import SimulationReport


class SimFormat(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


def write_atomically(files: dict[Path, bytes]) -> None:
    """Write every file or none: each goes to a temporary file beside it, renamed at the end; if a rename
    fails (or Ctrl-C comes) part-way, the files already renamed are put back as they were."""
    staged: list[tuple[Path, str]] = []
    done: list[tuple[Path, str | None]] = []  # (path, hard link to its old content, or None if it was new)
    streams = {p for p in files if p.exists() and not p.is_file()}  # /dev/stdout, a pipe: written directly
    for path in sorted(streams):
        path.write_bytes(files[path])
    try:
        for path, data in files.items():
            if path in streams:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            staged.append((path, tmp))
        for path, tmp in staged:
            old = None
            if path.exists():
                old = f"{tmp}.old"
                os.link(path, old)
            done.append((path, old))
            os.replace(tmp, path)
    except BaseException:
        for path, old in reversed(done):
            if old is not None:
                os.replace(old, path)
            else:
                path.unlink(missing_ok=True)
        raise
    finally:
        for _, tmp in staged:
            for leftover in (tmp, f"{tmp}.old"):
                if os.path.exists(leftover):
                    os.unlink(leftover)


def _load(project: Path, from_dir: Path | None) -> SimulatedFleet:
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


def _diagram_files(
    report: SimulationReport, shown: str, diagram: Path, warn: Callable[[str], None]
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


def _emit(
    report: SimulationReport, fmt: SimFormat, output: Path | None, shown: str, files: dict[Path, bytes]
) -> None:
    """Print the report, or add it to ``files``; then write every file whole (or none, exit 2)."""
    # imported on use, as above: only once a report is written
    from rich.console import Console

    from fleetkit.simulate.markdown import report_markdown
    from fleetkit.simulate.report import to_json, to_renderables

    if fmt is SimFormat.table:
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
        text = to_json(report) if fmt is SimFormat.json else report_markdown(report, shown)
        if output is not None:
            files[output] = text.encode()
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    try:
        write_atomically(files)
    except OSError as exc:
        fail(SpecError([Issue.at("--output", str(exc.filename or output), "output.write-failed",
                                 f"cannot write (nothing was changed): {exc.strerror or exc}")]))  # fmt: skip


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
        str,
        typer.Option(
            "--concurrency",
            metavar="N",
            help="In-flight requests of each class at one gateway replica (circuit breakers). 0: not modelled.",
        ),
    ] = "0",
    rate: Annotated[
        str,
        typer.Option(
            "--rate",
            metavar="RPS",
            help="Requests/s of each class at one gateway replica (local rate limits, 429). 0: not modelled.",
        ),
    ] = "0",
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
        str,
        typer.Option(
            "--format",
            "-f",
            metavar="table|json|markdown",
            help="table (terminal), json (scripts), markdown (a pull-request comment with the Mermaid diagram).",
        ),
    ] = SimFormat.table.value,
    output: OutputFileOpt = None,
    diagram: Annotated[
        Path | None,
        typer.Option(
            "--diagram",
            metavar="PATH",
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
            metavar="DIR",
            help="Read the rendered fleet from a `fleetkit preview --out DIR` directory instead of rendering now.",
        ),
    ] = None,
    root: RootOpt = None,
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
    from fleetkit.simulate.diagram import scenario_for_picture
    from fleetkit.simulate.report import (
        findings,
        request_classes,
        route_classes,
        simulate,
    )
    from fleetkit.simulate.scenarios import parse_scenario

    # the flags and output paths are checked before the fleet is rendered, and reported with its problems
    problems: list[Issue] = []
    fmt = SimFormat(choice_flag("--format", output_format, [f.value for f in SimFormat], problems) or "table")
    in_flight = float_flag("--concurrency", concurrency, problems)
    per_second = float_flag("--rate", rate, problems)
    if not path.startswith("/") or any(c.isspace() for c in path):
        problems.append(
            Issue.at("--path", path, "cli.bad-value", "a request path starts with / and has no spaces", path)
        )
    if output is not None and str(output) == "-":
        output = None  # `-o -`: stdout
    project = project_root(root, problems)
    problems += check_outputs(project, from_dir, diagram, output)
    if picture is not None and diagram is None and fmt is not SimFormat.markdown:
        problems.append(Issue.at("--picture", picture, "cli.no-effect",
                                 "only the diagram shows a picture: add --diagram PATH or --format markdown", picture))  # fmt: skip
    try:
        if project is None:
            raise SpecError(problems)
        if problems and from_dir is None:  # not worth a render: report them with the spec's own
            raise_with_spec_problems(project, problems)
        try:
            with err_console.status("rendering the fleet…"):
                fleet = _load(project, from_dir)
        except SpecError as err:
            raise SpecError([*problems, *err.problems]) from None
        headers = pairs("--header", header or [], problems)
        claims = pairs("--claim", claim or [], problems)
        assumptions, demands = capacity_options(fleet, assume or [], demand or [], problems)
        check_options(fleet, problems, origin=origin or [], baseline=baseline)
        custom, more = parse_scenario(
            fleet,
            down or [],
            replicas or [],
            eject or [],
            no_capacity or [],
            baseline if baseline in ("min", "max") else "min",
        )
        problems += more
        given = bool(down or replicas or eject or no_capacity)
        scenarios = scenarios_to_run(fleet, custom, given, standard, picture, problems)
        if problems:
            raise SpecError(problems)
        extra = {
            "path": path,
            "stream": stream,
            "zone": zone,
            "concurrency": in_flight,
            "rate": per_second,
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
                    fleet, path=path, stream=stream, zone=zone, concurrency=in_flight, rate=per_second
                )
                if not origin or c.request.origin in origin
            ]
        report = simulate(fleet, scenarios, classes, assumptions, demands)
    except SpecError as err:
        fail(err)
        return
    shown = picture or scenario_for_picture(report, [custom.name] if given else None)
    files = _diagram_files(report, shown, diagram, err_console.print) if diagram is not None else {}
    _emit(report, fmt, output, shown, files)
    for p in sorted(files):
        err_console.print(f"wrote {p}")
    if check and findings(report):
        raise typer.Exit(1)
