"""Progressive delivery of a Deployment (SPEC §1).

The pure core decides; the adapters observe and act:

- ``model``: the Canary spec and status as frozen dataclasses, with ``from_k8s``/``to_k8s``.
- ``weights``: the weight schedule (which canary percentage comes after which).
- ``analysis``: the builtin PromQL templates per mesh and the judgement of measured values
  (Successful, Failed, Inconclusive, Error).
- ``state_machine``: ``plan()`` says which webhooks and queries a tick needs, ``decide()`` turns
  the spec, the stored status and what was observed into a new status and a list of actions.

None of these modules performs I/O or reads the clock; import-linter enforces it.
"""
