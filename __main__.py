"""fleetkit Pulumi program: load the stack spec, build the stack's top-level component, export outputs."""

from pathlib import Path

from fleetkit.program import run

run(Path(__file__).resolve().parent)
