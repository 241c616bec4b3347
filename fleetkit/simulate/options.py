"""The checks of ``fleetkit simulate``'s options: every mistake on the command line, found at once.

Options that name something in the fleet (a cluster, a model service, a pool) are checked against the
rendered fleet; the output paths and the numbers before anything is rendered. Each problem is an
:class:`~fleetkit.errors.Issue` at the option, with the bad value.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from fleetkit.console import find_root
from fleetkit.errors import Issue, SpecError
from fleetkit.output import check_output_file

if TYPE_CHECKING:
    from fleetkit.simulate.fleet import SimulatedFleet
    from fleetkit.simulate.scenarios import Scenario


def pairs(option: str, items: list[str], problems: list[Issue], number: bool = False) -> dict[str, str]:
    """``KEY=VALUE`` items of a repeatable option (VALUE a finite number ≥ 0 when ``number``)."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            problems.append(Issue.at(option, item, "simulate.bad-pair", "expected KEY=VALUE", item))
            continue
        if number:
            try:
                if not math.isfinite(float(value)) or float(value) < 0:
                    raise ValueError
            except ValueError:
                problems.append(
                    Issue.at(option, item, "simulate.bad-number", "expected a finite number ≥ 0", value)
                )
                continue
        out[key] = value
    return out


def project_root(root: Path | None, problems: list[Issue]) -> Path | None:
    """The project (``--root``, else found from the current directory), or None and a problem."""
    try:
        return find_root(root)
    except SpecError as err:
        problems += err.problems
        return None


def scenarios_to_run(
    fleet: SimulatedFleet,
    custom: Scenario,
    given: bool,
    standard: bool | None,
    picture: str | None,
    problems: list[Issue],
) -> list[Scenario]:
    """The standard set (unless a scenario option is given, or --no-standard), plus the one given."""
    from fleetkit.simulate.scenarios import (
        standard_scenarios,
    )  # imported on use: `fleetkit --help` loads this module

    scenarios = standard_scenarios(fleet) if standard or (standard is None and not given) else []
    if given or not scenarios:
        scenarios = [s for s in scenarios if s.name != custom.name] + [custom]
    names = [s.name for s in scenarios]
    if picture is not None and picture not in names:
        problems.append(
            Issue.at(
                "--picture",
                picture,
                "simulate.unknown-scenario",
                "not one of the scenarios run: " + "; ".join(names),
                picture,
            )
        )
    return scenarios


def raise_with_spec_problems(project: Path, problems: list[Issue]) -> NoReturn:
    """Raise ``problems`` together with the stack specs' own (loading the specs renders nothing)."""
    from fleetkit.loader import load_fleet  # imported on use: `fleetkit --help` loads this module

    try:
        load_fleet(project)
    except SpecError as err:
        problems = [*problems, *err.problems]
    raise SpecError(problems)


def capacity_options(
    fleet: SimulatedFleet, assume: list[str], demand: list[str], problems: list[Issue]
) -> tuple[dict[str, float], dict[str, float]]:
    assumptions = {k: float(v) for k, v in pairs("--assume", assume, problems, number=True).items()}
    # the range each assumption makes sense in (fleetkit.simulate.capacity): fractions, and counts above 0
    known = {"efficiency": (0.0, 1.0), "batch": (1.0, math.inf), "output_tokens": (1.0, math.inf),
             "utilisation": (0.0, 1.0)}  # fmt: skip
    for k, v in assumptions.items():
        if k not in known:
            close = difflib.get_close_matches(k, list(known), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            problems.append(Issue.at("--assume", k, "simulate.unknown-assumption",
                                     f"{hint}known: " + ", ".join(known), k))  # fmt: skip
            continue
        lo, hi = known[k]
        fraction = hi == 1.0
        if not (lo < v <= hi if fraction else v >= lo):
            want = f"more than {lo:g} and at most {hi:g}" if fraction else f"{lo:g} or more"
            problems.append(
                Issue.at("--assume", f"{k}={v:g}", "simulate.bad-number", f"{k} must be {want}", v)
            )
    demands = {k: float(v) for k, v in pairs("--demand", demand, problems, number=True).items()}
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


def check_options(fleet: SimulatedFleet, problems: list[Issue], *, origin: list[str], baseline: str) -> None:
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


def check_outputs(
    project: Path | None, from_dir: Path | None, diagram: Path | None, output: Path | None
) -> list[Issue]:
    """The report and diagram files must be writable and may not touch what is read (checked before rendering)."""
    inputs = [p for p in (project / "stacks" if project else None, from_dir) if p is not None]
    wanted: list[tuple[str, Path]] = [("--output", output)] if output is not None else []
    if diagram is not None:
        wanted += [("--diagram", diagram.with_suffix(suffix)) for suffix in (".svg", ".mmd", ".png")]
    problems: list[Issue] = []
    for flag, path in wanted:
        if any(p.file == flag for p in problems):
            continue  # one problem per flag: the diagram's three files share their directory
        try:
            check_output_file(path, flag, inputs)
        except SpecError as err:
            problems += err.problems
    return problems
