"""Helpers for the model-service tests: the demo fleet, plans and a stand-in identity."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from components.model_plan import ModelPlan, WorkloadIdentity, plan_model
from components.model_render import s3_env_from_secret
from fleetkit.loader import Fleet, load_fleet
from fleetkit.resolve import resolve
from fleetkit.spec import RegionStackSpec

ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def demo_fleet() -> Fleet:
    return load_fleet(ROOT)


def spec_of(stack: str) -> RegionStackSpec:
    spec = demo_fleet().stacks[stack].spec
    assert isinstance(spec, RegionStackSpec)
    return spec


def plan_for(stack: str, model: str, spec: RegionStackSpec | None = None) -> ModelPlan:
    """The plan of a demo model; ``spec`` replaces the stack's spec (the fleet context stays the demo's)."""
    return plan_model(resolve(spec or spec_of(stack)), model, demo_fleet().context_for(stack), stack=stack)


def with_model(spec: RegionStackSpec, model: str, **changes: Any) -> RegionStackSpec:
    """A copy of the spec with one model's fields replaced (re-validated)."""
    data = spec.model_dump()
    data["models"][model].update(changes)
    return RegionStackSpec.model_validate(data)


def stub_identity(plan: ModelPlan) -> WorkloadIdentity:
    return WorkloadIdentity(
        service_account=plan.name,
        service_account_annotations={"example.com/identity": "stub"},
        agent_env=s3_env_from_secret("fleetkit-weights-s3"),
    )


def all_plans() -> list[tuple[str, str]]:
    return [(s, m) for s, st in sorted(demo_fleet().region_stacks().items()) for m in sorted(st.spec.models)]  # type: ignore[union-attr]
