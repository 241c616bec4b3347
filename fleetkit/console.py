"""What every ``fleetkit`` command shares: the consoles, finding the project, and failing cleanly.

Lives below the commands (``fleetkit.cli``, ``fleetkit.review.command``, ``fleetkit.lint.command``) so they
import it rather than each other (as fastapi-cli keeps its console in ``utils/cli.py``). Expected
errors are printed here as bullets with exit code 2 — never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

from fleetkit.errors import EXIT_USAGE, Issue, SpecError

# piped output (CI logs, files) gets a fixed, wide layout instead of 80 columns
err_console = Console(stderr=True, highlight=False, emoji=False, width=None if sys.stderr.isatty() else 160)
out_console = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 160)


def find_root(root: Path | None) -> Path:
    """The project directory: ``--root`` (must hold Pulumi.yaml), else found upwards from the cwd."""
    if root is not None:
        if not (root / "Pulumi.yaml").exists():
            raise SpecError(
                [
                    Issue.at(
                        "--root",
                        str(root),
                        "cli.not-a-project",
                        "no Pulumi.yaml in that directory",
                        str(root),
                    )
                ]
            )
        return root.resolve()
    here = Path.cwd().resolve()
    for cand in (here, *here.parents):
        if (cand / "Pulumi.yaml").exists() and (cand / "stacks").is_dir():
            return cand
    raise SpecError(
        [
            Issue.at(
                "--root",
                str(here),
                "cli.not-a-project",
                "not inside a fleetkit project (no Pulumi.yaml with a stacks/ directory found upwards)",
            )
        ]
    )


def fail(err: SpecError) -> NoReturn:
    """Print every problem of ``err`` as a bullet and exit with code 2."""
    err_console.print(err.render(), markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)
