"""The whole fleet's offline preview, in the documented first bring-up order.

1. the trust roots; 2. the region stacks, each seeing only the trust roots (regions come up in any
order, so a reference from one region to another is a reference to a stack that may not exist yet:
recorded in ``ref_problems``); 3. the peering stack, seeing every region. With more than one job the
region stacks run in forked workers (:mod:`fleetkit.preview.workers`), one cloud per worker where
possible; the result is the same as a sequential run.
"""

from __future__ import annotations

import os

from fleetkit.fleet import Fleet
from fleetkit.preview.stack import StackPreview, run_stack
from fleetkit.preview.workers import Pool, Progress, batches, can_fork
from fleetkit.spec import PeeringStackSpec


def default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def preview_fleet(
    fleet: Fleet,
    only: list[str] | None = None,
    cli_sets: list[str] | None = None,
    progress: Progress | None = None,
    jobs: int | None = None,
) -> dict[str, StackPreview]:
    """Preview stacks in bring-up order, resolving StackReferences as it goes; return ``only`` (or all).

    A wanted peering stack reads every region, so every region runs when one is wanted, asked for
    or not (only the asked-for stacks are returned).
    """
    root = fleet.root
    names = sorted(fleet.stacks)
    wanted = only or names
    # each stack gets the --set items the loader applied to it (``models.…`` never reaches a trust root)
    sets_for = {n: [s for s in cli_sets or [] if s in fleet.stacks[n].overrides] for n in wanted}
    jobs = default_jobs() if jobs is None else jobs
    regions = [n for n in names if fleet.stacks[n].is_region]
    peering = [n for n in names if isinstance(fleet.stacks[n].spec, PeeringStackSpec) and n in wanted]
    roots = [n for n in names if n not in regions and not isinstance(fleet.stacks[n].spec, PeeringStackSpec)]
    run_regions = regions if peering else [n for n in regions if n in wanted]
    results: dict[str, StackPreview] = {}
    if jobs <= 1 or len(run_regions) < 2 or not can_fork():
        for name in roots:
            if progress:
                progress(name, "previewing")
            results[name] = run_stack(root, name, {}, sets_for.get(name))
        up = dict(results)
        for name in run_regions:
            if progress:
                progress(name, "previewing" if name in wanted else "reading outputs of")
            results[name] = run_stack(root, name, up, sets_for.get(name))
    else:
        pool = Pool(root, min(jobs, len(run_regions)))
        try:
            if roots:
                results.update(pool.run([roots], {}, sets_for, progress, "previewing"))
            results.update(
                pool.run(
                    batches(fleet, run_regions, len(pool.conns)),
                    dict(results),
                    sets_for,
                    progress,
                    "previewing",
                )
            )
        finally:
            pool.close()
    for name in peering:
        if progress:
            progress(name, "previewing")
        results[name] = run_stack(root, name, dict(results), sets_for.get(name))
    return {n: results[n] for n in names if n in wanted}
