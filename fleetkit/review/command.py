"""The ``fleetkit review`` command (registered on the main CLI)."""

from __future__ import annotations

import io
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from fleetkit.console import err_console, fail, find_root, out_console
from fleetkit.errors import Issue, SpecError
from fleetkit.output import check_output_file, write_file
from fleetkit.review.core import review
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
        ReviewFormat,
        typer.Option(
            "--format",
            "-f",
            case_sensitive=False,
            help="table (terminal), markdown (a pull-request comment), json (scripts).",
        ),
    ] = ReviewFormat.table,
    render: Annotated[
        Renderer,
        typer.Option(
            "--render",
            case_sensitive=False,
            help="How manifests are rendered: preview (full offline preview of each side), policies (serving "
            "policies only, fast), auto (preview when the program runs, else policies).",
        ),
    ] = Renderer.auto,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the review to this file instead of stdout."),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            help="Project directory (holds Pulumi.yaml and stacks/). Default: found from the "
            "current directory.",
        ),
    ] = None,
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
    try:
        if output is not None:
            check_output_file(output, "--output")  # before both sides are rendered
        project = find_root(root)
        if output_format is ReviewFormat.table and output is None:
            with err_console.status("rendering both sides…"):
                result = review(project, base, stack or None, render.value)
        else:
            result = review(project, base, stack or None, render.value)
    except SpecError as err:
        fail(err)
        return
    if output_format is ReviewFormat.table:
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
        text = to_markdown(result) if output_format is ReviewFormat.markdown else to_json(result)
        if output is not None:
            _write(output, text)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    if output is not None:
        err_console.print(f"review written to {output}")
    raise typer.Exit(result.exit_code)


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
