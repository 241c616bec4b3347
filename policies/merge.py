"""Merging a per-model override over a fleet default: the override's explicitly set fields win."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Maps merge key by key (recursively); any other value in ``over`` replaces the base value."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def merged_model(cls: type[M], default: M, override: M | None) -> M:
    """``default`` with the fields that ``override`` sets explicitly, validated again as a whole."""
    if override is None:
        return default
    return cls.model_validate(deep_merge(default.model_dump(), override.model_dump(exclude_unset=True)))
