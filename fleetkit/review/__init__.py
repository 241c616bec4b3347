"""``fleetkit review``: what a change to the fleet does, stack by stack.

* :mod:`.gitrev` — the base revision, extracted with ``git archive`` into a temporary directory;
* :mod:`.semantic` — the behavioural diff of two typed stack specs, in words;
* :mod:`.render` — both sides rendered (full preview or serving policies), raw diff, lint and
  guardrail deltas;
* :mod:`.core` — the review itself; :mod:`.formats` — table, markdown and JSON; :mod:`.command` — the command.

How to read a review: runbooks/review.md. Import from the submodules (``fleetkit.review.core.review``);
the package itself stays light because the CLI imports :mod:`.command` at start-up.
"""
