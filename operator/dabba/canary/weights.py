"""The weight schedule: which canary percentage comes after which (pure).

A run walks a *schedule*, a strictly increasing tuple of canary weights in percent. Step ``i``
routes ``schedule[i]`` percent to the canary; the run is ready for promotion once the last step
has collected its ``checksPerStep`` passing ticks. The schedule is, in order of precedence:

- ``analysis.stepWeights`` as given (e.g. ``[1, 2, 10, 80]``);
- ``analysis.stepWeight`` repeated up to ``maxWeight`` (default 50), the last step clamped to
  ``maxWeight``: step 20, max 50 gives ``(20, 40, 50)``. Flagger adds the step and then compares,
  so the same spec reaches 60 % there, above the maximum the user asked for;
- ``(5, 10, 25, 50)`` when neither is given (SPEC §1.2);
- ``(100,)`` for the ``kubernetes`` router, which cannot split traffic: blue/green switches the
  apex Service to the canary in one step and judges it there (``maxWeight`` does not apply).

Promotion does not step back down: once the primary runs the new template, traffic returns to
it in one move (``PRIMARY_ONLY``), because both sides now serve the same revision.
"""

from __future__ import annotations

from dabba.canary.model import (
    DEFAULT_MAX_WEIGHT,
    DEFAULT_STEP_WEIGHTS,
    PRIMARY_ONLY,
    CanarySpec,
    Router,
    Weights,
)

__all__ = [
    "PRIMARY_ONLY",
    "clamp",
    "is_last_step",
    "linear_schedule",
    "max_weight",
    "next_weight",
    "schedule",
    "split",
    "weight_at",
]


def clamp(weight: int, maximum: int) -> int:
    """Keep ``weight`` within ``0..maximum`` (and ``maximum`` within ``0..100``)."""
    top = max(0, min(maximum, 100))
    return max(0, min(weight, top))


def linear_schedule(step: int, maximum: int | None) -> tuple[int, ...]:
    """``step, 2*step, ...`` up to ``maximum``, the last step clamped to ``maximum``.

    Args:
        step: percent added per step, 1-100.
        maximum: highest canary weight; ``None`` means the default 50, raised to ``step`` if
            the step alone is larger (a lone ``stepWeight: 60`` is valid and means one step).

    Returns:
        The schedule, never empty, never above ``maximum``.
    """
    if step < 1:
        raise ValueError(f"stepWeight must be at least 1, got {step}")
    top = clamp(maximum if maximum is not None else max(DEFAULT_MAX_WEIGHT, step), 100)
    top = max(top, 1)
    weights = list(range(step, top + 1, step))
    if not weights or weights[-1] != top:
        weights.append(top)
    return tuple(clamp(w, top) for w in weights)


def schedule(spec: CanarySpec) -> tuple[int, ...]:
    """The canary weights of a run, in order (see the module docstring for the rules)."""
    if spec.router is Router.KUBERNETES:
        return (100,)
    analysis = spec.analysis
    if analysis.step_weights:
        return analysis.step_weights
    if analysis.step_weight is not None:
        return linear_schedule(analysis.step_weight, analysis.max_weight)
    return DEFAULT_STEP_WEIGHTS


def max_weight(spec: CanarySpec) -> int:
    """The highest canary weight a run reaches before promotion."""
    return schedule(spec)[-1]


def weight_at(steps: tuple[int, ...], index: int) -> int:
    """The canary weight of step ``index`` (clamped into the schedule)."""
    return steps[max(0, min(index, len(steps) - 1))]


def is_last_step(steps: tuple[int, ...], index: int) -> bool:
    """Whether step ``index`` is the last one, after which the run is promoted."""
    return index >= len(steps) - 1


def next_weight(steps: tuple[int, ...], index: int) -> int | None:
    """The canary weight after step ``index``, or ``None`` when the schedule is done."""
    if is_last_step(steps, index):
        return None
    return steps[max(index + 1, 0)]


def split(canary: int) -> Weights:
    """The primary/canary split for a canary weight."""
    return Weights.for_canary(clamp(canary, 100))
