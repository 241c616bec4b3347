"""The offline preview: the real Pulumi program under the recording mock runtime, every stack recorded.

- :mod:`fleetkit.preview.stack` — one stack: its config as Pulumi passes it, ``__main__.py`` run on
  :mod:`fleetkit.mocks.runtime`, and the views files are written from (``StackPreview``);
- :mod:`fleetkit.preview.bringup` — the fleet in the documented first bring-up order, StackReferences
  resolved from the stacks already up;
- :mod:`fleetkit.preview.workers` — the forked worker processes that run region stacks in parallel.

Writing the files is :mod:`fleetkit.output`. Secret values (Pulumi secrets) are never written:
they appear as ``"[secret]"`` in every file.
"""

from fleetkit.preview.bringup import default_jobs, preview_fleet
from fleetkit.preview.stack import SECRET, StackPreview, config_for, run_stack

__all__ = ["SECRET", "StackPreview", "config_for", "default_jobs", "preview_fleet", "run_stack"]
