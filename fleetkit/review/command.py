"""The ``fleetkit review`` command (registered on the main CLI)."""

from __future__ import annotations

import io
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from fleetkit.console import OutputFileOpt, RootOpt, choice_flag, err_console, fail, find_root, out_console
from fleetkit.errors import Issue, SpecError
from fleetkit.output import check_output_file, write_file
from fleetkit.review.core import review, review_problems
from fleetkit.review.formats import to_json, to_markdown, to_renderables


class ReviewFormat(StrEnum):
    table = "table"
    markdown = "markdown"
    json = "json"


class Renderer(StrEnum):
    auto = "auto"
    preview = "preview"
    policies = "policies"


def review_command(
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            "-b",
            metavar="GIT_REV",
            help="Revision to compare with. Default: the merge-base of HEAD and origin/main when origin/main "
            "exists, else HEAD (only uncommitted changes).",
        ),
    ] = None,
    stack: Annotated[
        list[str] | None,
        typer.Option(
            "--stack", "-s", help="Stack to show (repeatable). Default: every stack of either side."
        ),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            metavar="table|markdown|json",
            help="table (terminal), markdown (a pull-request comment), json (scripts).",
        ),
    ] = ReviewFormat.table.value,
    render: Annotated[
        str,
        typer.Option(
            "--render",
            metavar="auto|preview|policies",
            help="How manifests are rendered: preview (full offline preview of each side), policies (serving "
            "policies only, fast), auto (preview when the program runs, else policies).",
        ),
    ] = Renderer.auto.value,
    output: OutputFileOpt = None,
    root: RootOpt = None,
) -> None:
    """Review a change to the fleet: what it does, stack by stack.

    Compares the fleet at a base git revision with the working tree and shows, per stack, the change in
    behaviour in words and tables (routes and weights, QoS tiers and shed order, failover order,
    timeouts and retries, autoscaling, GPU pools, models), then the raw diff of the rendered manifests
    and the lint findings (and guardrail verdicts) the change introduces. The base is read with
    `git archive` into a temporary directory: the working tree is never touched.

    Exit codes: 0 reviewed, 1 the change introduces lint errors or blocking guardrail verdicts,
    2 unusable input (not a git repository, unknown revision, invalid spec). See runbooks/review.md.
    """
    # every mistake on the command line is reported at once, before either side is rendered
    problems: list[Issue] = []
    chosen = choice_flag("--format", output_format, [f.value for f in ReviewFormat], problems)
    fmt = ReviewFormat(chosen) if chosen else ReviewFormat.table
    mode = choice_flag("--render", render, [r.value for r in Renderer], problems) or Renderer.auto.value
    if output is not None and str(output) == "-":
        output = None  # `-o -`: stdout
    project: Path | None = None
    try:
        project = find_root(root)
    except SpecError as err:
        problems += err.problems
    if output is not None:
        try:  # the review may not overwrite the project it reads
            check_output_file(output, "--output", _inputs(project))
        except SpecError as err:
            problems += err.problems
    if project is None:
        fail(SpecError(problems))
    try:
        if problems:
            review_problems(project, base, stack or None, problems)
        if fmt is ReviewFormat.table and output is None:
            with err_console.status("rendering both sides…"):
                result = review(project, base, stack or None, mode)  # type: ignore[arg-type]
        else:
            result = review(project, base, stack or None, mode)  # type: ignore[arg-type]
    except SpecError as err:
        fail(err)
        return
    if fmt is ReviewFormat.table:
        if output is not None:
            buf = io.StringIO()
            console = Console(file=buf, width=160, highlight=False, emoji=False, no_color=True)
            for renderable in to_renderables(result):
                console.print(renderable)
            _write(output, buf.getvalue())
        else:
            for renderable in to_renderables(result):
                out_console.print(renderable)
    else:
        text = to_markdown(result) if fmt is ReviewFormat.markdown else to_json(result)
        if output is not None:
            _write(output, text)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    if output is not None:
        err_console.print(f"review written to {output}")
    raise typer.Exit(result.exit_code)


def _inputs(project: Path | None) -> list[Path]:
    """What the review reads: the project's stack files and program entry."""
    if project is None:
        return []
    return [project / "stacks", project / "Pulumi.yaml", project / "__main__.py"]


def _write(output: Path, text: str) -> None:
    """Write the review file whole (a temporary file beside it, then a rename), or fail with exit 2."""
    try:
        write_file(output, text)
    except OSError as exc:
        fail(
            SpecError(
                [
                    Issue.at(
                        "--output",
                        str(output),
                        "output.write-failed",
                        f"cannot write the review: {exc.strerror or exc}",
                        str(output),
                    )
                ]
            )
        )
