"""Mock outputs for the offline preview and the tests, one module per area; importing this package
registers all. :mod:`fleetkit.mocks.runtime` is the recording mock runtime that answers with them."""

import importlib
import pkgutil

from fleetkit.mocks.registry import INVOKES, RESOURCE_OUTPUTS, MockResource, invoke, resource_outputs

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _mod not in ("registry", "runtime"):
        importlib.import_module(f"{__name__}.{_mod}")

__all__ = ["INVOKES", "RESOURCE_OUTPUTS", "MockResource", "invoke", "resource_outputs"]
