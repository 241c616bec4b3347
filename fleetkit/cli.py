"""The ``fleetkit`` command line.

Expected errors (bad stack files, policies, flags) are caught here only, printed as bullets with
file, path, rule and value, and exit with code 2 — never a traceback. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from fleetkit.errors import EXIT_USAGE, Problem, SpecError

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
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

# piped output (CI logs, files) gets a fixed, wide layout instead of 80 columns
err_console = Console(stderr=True, highlight=False, emoji=False, width=None if sys.stderr.isatty() else 160)
out_console = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 160)

RootOpt = Annotated[
    Optional[Path],
    typer.Option("--root", help="Project directory (holds Pulumi.yaml and stacks/). Default: found from the current directory."),
]
StackOpt = Annotated[
    Optional[list[str]],
    typer.Option("--stack", "-s", help="Stack to work on (repeatable). Default: every stack in stacks/."),
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        help="Override a spec value for the selected stacks, highest precedence: `--set models.llama-3-8b.replicas.max=6` (value parsed as YAML).",
    ),
]


def find_root(root: Path | None) -> Path:
    if root is not None:
        if not (root / "Pulumi.yaml").exists():
            raise SpecError([Problem("--root", str(root), "cli.not-a-project", "no Pulumi.yaml in that directory", str(root))])
        return root.resolve()
    here = Path.cwd().resolve()
    for cand in (here, *here.parents):
        if (cand / "Pulumi.yaml").exists() and (cand / "stacks").is_dir():
            return cand
    raise SpecError([Problem("--root", str(here), "cli.not-a-project",
                             "not inside a fleetkit project (no Pulumi.yaml with a stacks/ directory found upwards)")])


def fail(err: SpecError) -> None:
    err_console.print(err.render(), markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)


@app.command()
def validate(
    root: RootOpt = None,
    stack: StackOpt = None,
    set_: SetOpt = None,
    check_buckets: Annotated[
        bool,
        typer.Option("--check-buckets", help="Also fetch each pinned model's manifest from its bucket and report a "
                                             "weights_digest that does not match (network; exit 1 on a mismatch)."),
    ] = False,
) -> None:
    """Check every stack file, the fleet file and the policies without rendering anything.

    Reports every problem at once (file, path in the document, rule, bad value) and exits with
    code 2 if there is any. Offline unless `--check-buckets`.
    """
    from fleetkit.buckets import check_pins, pinned_models
    from fleetkit.loader import load_fleet

    try:
        fleet = load_fleet(find_root(root), only=stack or None, overrides=set_ or [])
    except SpecError as err:
        fail(err)
        return
    n = len(fleet.stacks)
    out_console.print(f"[green]✓[/green] {n} stack{'s' if n != 1 else ''} valid: {', '.join(sorted(fleet.stacks))}")
    pins, unpinned = pinned_models(fleet)
    if not check_buckets:
        out_console.print(f"bucket manifests not checked (offline): {len(pins)} pinned weights_digest(s); "
                          "--check-buckets compares them with the buckets", soft_wrap=True)
        return
    bad = 0
    for res in check_pins(pins):
        bad += not res.ok
        mark = "[green]✓[/green]" if res.ok else "[red]✗[/red]"
        out_console.print(f"{mark} " + escape(f"{res.pin.weights_uri} ({', '.join(res.pin.where)}): {res.detail}"),
                          soft_wrap=True)
    out_console.print(f"checked {len(pins)} pinned model manifest(s) against their buckets, {bad} mismatch(es); "
                      f"{unpinned} model(s) without weights_digest not checked", soft_wrap=True)
    if bad:
        raise typer.Exit(1)


@app.command()
def preview(
    root: RootOpt = None,
    stack: StackOpt = None,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", help="Write DIR/<stack>/resources.json, outputs.json and manifests/*.yaml (deterministic)."),
    ] = None,
    set_: SetOpt = None,
    details: Annotated[bool, typer.Option("--details", help="Also list every resource, not only counts by type.")] = False,
    jobs: Annotated[
        Optional[int],
        typer.Option("--jobs", "-j", min=1, help="Worker processes for region stacks (default: up to 2, one per core). Output is the same for any value."),
    ] = None,
) -> None:
    """Preview stacks offline: run the real Pulumi program under the mock runtime.

    Shows, per stack, what `pulumi up` would create: resources by type, GPU pools, models, serving
    policies, and the lint verdicts on the rendered manifests. With `--out`, writes every resource and
    every Kubernetes object as files; the same input always gives byte-identical files.
    """
    from fleetkit.loader import load_fleet
    from fleetkit.preview import preview_fleet
    from fleetkit.report import preview_report

    try:
        project = find_root(root)
        fleet = load_fleet(project, only=stack or None, overrides=set_ or [])
        with err_console.status("previewing…") as status:
            def progress(name: str, what: str) -> None:
                status.update(f"{what} [bold]{name}[/bold]…")

            results = preview_fleet(fleet, only=stack or None, cli_sets=set_ or [], progress=progress, jobs=jobs)
        report = preview_report(fleet, results, details=details)
        for renderable in report.renderables:
            out_console.print(renderable)
        if out is not None:
            from fleetkit.output import stack_files, write_tree

            files: dict[str, str] = {}
            for name, res in results.items():
                files.update(stack_files(res, report.extra_files.get(name)))
            write_tree(out, files)
            out_console.print(f"wrote {len(files)} files for {len(results)} stacks to {out}")
    except SpecError as err:
        fail(err)
        return
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@app.command("plan-capacity")
def plan_capacity(root: RootOpt = None, stack: StackOpt = None, set_: SetOpt = None) -> None:
    """Per stack: GPU pools, GPUs and GPU memory, which models go where, and the headroom left."""
    from fleetkit.loader import load_fleet
    from fleetkit.report import capacity_tables

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
    try:
        from fleetkit_weights.cli import main as weights_main
    except ImportError:
        fail(SpecError([Problem("fleetkit weights", "", "cli.missing-agent",
                                "the weight-cache agent is not installed (pip install -e images/weight-cache)")]))
        return
    raise typer.Exit(weights_main(list(ctx.args)))


from fleetkit.lint.cli import lint_command  # noqa: E402  (registered after the core commands)

app.command("lint")(lint_command)

from fleetkit.review.cli import review_command  # noqa: E402

app.command("review")(review_command)


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, prog_name="fleetkit", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
