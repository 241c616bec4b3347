"""fleetkit-guardrails: the kit's CrossGuard policy pack.

* :mod:`policies.crossguard.rules` — the guardrails as pure functions over ``(type, name, inputs)``
  records. Standard library only, so the same code runs inside the pack (its own virtualenv holds
  just ``pulumi-policy``) and offline in ``fleetkit preview`` (:mod:`fleetkit.guardrails`).
* ``__main__.py`` — thin adapters from ``pulumi_policy`` arguments to those records; the pack itself
  (``pulumi preview --policy-pack policies/crossguard``).

Importing this package imports neither ``pulumi`` nor ``pulumi_policy``.
"""
