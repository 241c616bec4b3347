"""The ``fleetkit`` command line.

Expected errors (bad stack files, policies, flags) are caught here only, printed as bullets with
file, path, rule and value, and exit with code 2 — never a traceback. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from fleetkit.buckets import check_pins, pinned_models
from fleetkit.console import (
    FleetkitGroup,
    RootOpt,
    StackOpt,
    err_console,
    fail,
    find_root,
    int_flag,
    out_console,
)
from fleetkit.errors import EXIT_USAGE, Issue, SpecError
from fleetkit.lint.command import lint_command
from fleetkit.loader import load_fleet
from fleetkit.output import check_output_dir, stack_files, write_tree
from fleetkit.preview import preview_fleet
from fleetkit.report import capacity_tables, preview_report
from fleetkit.review.command import review_command
from fleetkit.simulate.command import simulate_command

app = typer.Typer(
    name="fleetkit",
    help=(
        "Multi-cloud deployment kit for self-hosted LLM inference.\n\n"
        "One typed Pulumi program per region stack: GPU node pools (EKS/GKE/AKS), a multi-cluster Istio mesh, "
        "vLLM model services and serving policies. `fleetkit preview` runs the real program offline under "
        "Pulumi's mock runtime and shows exactly what `pulumi up` would create — no cloud account needed."
    ),
    no_args_is_help=True,
    add_completion=False,
    cls=FleetkitGroup,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="PATH=VALUE",
        help="Override a spec value for the selected stacks, highest precedence: `--set models.llama-3-8b.replicas.max=6` (value parsed as YAML).",
    ),
]


@app.command()
def validate(
    root: RootOpt = None,
    stack: StackOpt = None,
    set_: SetOpt = None,
    check_buckets: Annotated[
        bool,
        typer.Option(
            "--check-buckets",
            help="Also fetch each pinned model's manifest from its bucket and report a "
            "weights_digest that does not match (network; exit 1 on a mismatch).",
        ),
    ] = False,
) -> None:
    """Check every stack file, the fleet file and the policies without rendering anything.

    Reports every problem at once (file, path in the document, rule, bad value) and exits with
    code 2 if there is any. Offline unless `--check-buckets`.
    """
    try:
        fleet = load_fleet(find_root(root), only=stack or None, overrides=set_ or [])
    except SpecError as err:
        fail(err)
        return
    n = len(fleet.stacks)
    out_console.print(
        f"[green]✓[/green] {n} stack{'s' if n != 1 else ''} valid: {', '.join(sorted(fleet.stacks))}"
    )
    pins, unpinned = pinned_models(fleet)
    if not check_buckets:
        out_console.print(
            f"bucket manifests not checked (offline): {len(pins)} pinned weights_digest(s); "
            "--check-buckets compares them with the buckets",
            soft_wrap=True,
        )
        return
    bad = 0
    for res in check_pins(pins):
        bad += not res.ok
        mark = "[green]✓[/green]" if res.ok else "[red]✗[/red]"
        out_console.print(
            f"{mark} " + escape(f"{res.pin.weights_uri} ({', '.join(res.pin.where)}): {res.detail}"),
            soft_wrap=True,
        )
    out_console.print(
        f"checked {len(pins)} pinned model manifest(s) against their buckets, {bad} mismatch(es); "
        f"{unpinned} model(s) without weights_digest not checked",
        soft_wrap=True,
    )
    if bad:
        raise typer.Exit(1)


@app.command()
def preview(
    root: RootOpt = None,
    stack: StackOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="Write `DIR/STACK/resources.json`, `outputs.json` and `manifests/*.yaml` (deterministic). "
            "DIR is replaced as a whole: a new or empty directory, or one an earlier `--out` wrote.",
        ),
    ] = None,
    set_: SetOpt = None,
    details: Annotated[
        bool, typer.Option("--details", help="Also list every resource, not only counts by type.")
    ] = False,
    jobs: Annotated[
        str | None,
        typer.Option(
            "--jobs",
            "-j",
            metavar="N",
            help="Worker processes for region stacks (default: up to 2, one per core). Output is the same for any value.",
        ),
    ] = None,
) -> None:
    """Preview stacks offline: run the real Pulumi program under the mock runtime.

    Shows, per stack, what `pulumi up` would create: resources by type, GPU pools, models, serving
    policies, and the lint verdicts on the rendered manifests. With `--out`, writes every resource and
    every Kubernetes object as files; the same input always gives byte-identical files.
    """
    # flags and the output path are checked with the spec, before anything is rendered
    usage: list[Issue] = []
    workers = int_flag("--jobs", jobs, usage, rule="cli.bad-jobs")
    project: Path | None = None
    try:
        project = find_root(root)
    except SpecError as err:
        usage.extend(err.problems)
    if out is not None:
        try:  # the output may not touch the stack files it is rendered from
            check_output_dir(out, "--out", [project / "stacks"] if project else [])
        except SpecError as err:
            usage.extend(err.problems)
    if project is None:
        fail(SpecError(usage))
    try:
        fleet = load_fleet(project, only=stack or None, overrides=set_ or [])
    except SpecError as err:
        fail(SpecError([*usage, *err.problems]))
    if usage:
        fail(SpecError(usage))
    try:
        with err_console.status("previewing…") as status:

            def progress(name: str, what: str) -> None:
                status.update(f"{what} [bold]{name}[/bold]…")

            results = preview_fleet(
                fleet, only=stack or None, cli_sets=set_ or [], progress=progress, jobs=workers
            )
        report = preview_report(fleet, results, details=details)
        for renderable in report.renderables:
            out_console.print(renderable)
        if out is not None:
            files: dict[str, str] = {}
            for name, res in results.items():
                files.update(stack_files(res, report.extra_files.get(name)))
            write_tree(out, files, "--out")
            out_console.print(f"wrote {len(files)} files for {len(results)} stacks to {out}")
    except SpecError as err:
        fail(err)
        return
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@app.command("plan-capacity")
def plan_capacity(root: RootOpt = None, stack: StackOpt = None, set_: SetOpt = None) -> None:
    """Per stack: GPU pools, GPUs and GPU memory, which models go where, and the headroom left."""
    try:
        fleet = load_fleet(find_root(root), only=stack or None, overrides=set_ or [])
    except SpecError as err:
        fail(err)
        return
    for table in capacity_tables(fleet, stack or None):
        out_console.print(table)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def weights(ctx: typer.Context) -> None:
    """The S3 weight-cache agent (`fleetkit weights sync|publish|status|warm …`, same as `fleetkit-weights`)."""
    try:  # the agent is its own, optional distribution (images/weight-cache): imported only when asked for
        from fleetkit_weights.cli import main as weights_main
    except ImportError:
        fail(
            SpecError(
                [
                    Issue.at(
                        "fleetkit weights",
                        "",
                        "cli.missing-agent",
                        "the weight-cache agent is not installed (pip install -e images/weight-cache)",
                    )
                ]
            )
        )
        return
    raise typer.Exit(weights_main(list(ctx.args)))


app.command("lint")(lint_command)
app.command("review")(review_command)
app.command("simulate")(simulate_command)


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, prog_name="fleetkit", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
