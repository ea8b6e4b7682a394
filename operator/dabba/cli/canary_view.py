"""What ``dabba canary …`` shows: a Canary's status as a document, sections and a line. Pure.

Everything is derived from one document (:func:`canary_document`), so ``-o json``, the
terminal view, the piped view and the ``--watch`` lines can never disagree. The document is
built from the API dicts leniently: a status written by an older operator, or none at all
yet, still renders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

from rich.text import Text

from dabba.canary.model import DEFAULT_STEP_WEIGHTS
from dabba.canary.weights import linear_schedule
from dabba.cli.humanize import (
    NONE,
    age,
    format_number,
    parse_time,
    relative,
    short_revision,
)
from dabba.cli.output import Cell, Column, Fields, Section, Table, styled
from dabba.k8s import meta

#: Width of the weight bar in cells.
BAR_WIDTH: Final = 20
#: How many of the object's Events the view keeps (the newest).
MAX_EVENTS: Final = 10
#: Defaults the CRD leaves to the operator (SPEC §1.2), for "1/5 failed" style displays.
DEFAULT_THRESHOLD: Final = 5
DEFAULT_MAX_INCONCLUSIVE: Final = 10

#: Request annotations by action name (the value is the request id, an RFC 3339 time).
REQUEST_ANNOTATIONS: Final[Mapping[str, str]] = {
    "promote": meta.CANARY_PROMOTE_ANNOTATION,
    "abort": meta.CANARY_ABORT_ANNOTATION,
    "retry": meta.CANARY_RETRY_ANNOTATION,
}

#: Phases in which a run is under way and can still be promoted early or aborted.
RUNNING_PHASES: Final = frozenset({"Waiting", "Progressing", "WaitingPromotion"})

PHASE_STYLES: Final[Mapping[str, str]] = {
    "Succeeded": "bold green",
    "Failed": "bold red",
    "Progressing": "bold cyan",
    "Promoting": "bold blue",
    "Finalising": "bold blue",
    "WaitingPromotion": "bold yellow",
    "Waiting": "yellow",
    "Initializing": "yellow",
    "Initialized": "green",
    "Terminating": "magenta",
}
RESULT_STYLES: Final[Mapping[str, str]] = {
    "Successful": "green",
    "Failed": "bold red",
    "Inconclusive": "yellow",
    "Error": "magenta",
}
RUN_RESULT_STYLES: Final[Mapping[str, str]] = {
    "Succeeded": "green",
    "Failed": "red",
    "Superseded": "yellow",
}


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def schedule(spec: Mapping[str, Any]) -> tuple[int, ...]:
    """The weight steps of a run, as the operator computes them (``dabba.canary.weights``)."""
    if spec.get("router") == "kubernetes":
        return (100,)
    analysis = _map(spec.get("analysis"))
    steps = analysis.get("stepWeights")
    if isinstance(steps, list) and steps and all(isinstance(s, int) for s in steps):
        return tuple(steps)
    step = analysis.get("stepWeight")
    if isinstance(step, int) and step >= 1:
        max_weight = analysis.get("maxWeight")
        return linear_schedule(step, max_weight if isinstance(max_weight, int) else None)
    return DEFAULT_STEP_WEIGHTS


def weight_bar(weight: int, width: int = BAR_WIDTH, *, fill: str = "█", empty: str = "░") -> str:
    """A bar of ``width`` cells, ``weight`` percent filled.

    Any weight above 0 shows at least one filled cell and any weight below 100 at least one
    empty cell, so 1 % and 99 % never look like 0 % and 100 %.
    """
    clamped = max(0, min(100, weight))
    filled = round(clamped * width / 100)
    if clamped > 0:
        filled = max(filled, 1)
    if clamped < 100:  # noqa: PLR2004
        filled = min(filled, width - 1)
    return fill * filled + empty * (width - filled)


def condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The status condition of ``type_``, if any."""
    return next((c for c in _list(status.get("conditions")) if c.get("type") == type_), None)


def canary_message(status: Mapping[str, Any]) -> str:
    """The one sentence that best explains the Canary's state."""
    for type_ in ("Ready", "Promoted"):
        cond = condition(status, type_)
        if cond and _str(cond.get("message")):
            return str(cond["message"])
    history = _list(status.get("history"))
    return str(history[0].get("reason") or "") if history else ""


def _event(event: Mapping[str, Any]) -> dict[str, Any]:
    when = (
        event.get("lastTimestamp")
        or _map(event.get("series")).get("lastObservedTime")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or _map(event.get("metadata")).get("creationTimestamp")
    )
    return {
        "type": str(event.get("type") or ""),
        "reason": str(event.get("reason") or ""),
        "message": str(event.get("message") or ""),
        "count": _int(event.get("count"), 1) or _int(_map(event.get("series")).get("count"), 1),
        "lastSeen": when if isinstance(when, str) else None,
    }


def canary_document(obj: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Everything ``dabba canary get`` shows, with stable keys (the ``-o json`` document).

    Args:
        obj: the Canary as the API returns it.
        events: its Events, oldest first (the newest :data:`MAX_EVENTS` are kept).
    """
    md, spec, status = _map(obj.get("metadata")), _map(obj.get("spec")), _map(obj.get("status"))
    annotations = _map(md.get("annotations"))
    analysis = _map(spec.get("analysis"))
    steps = schedule(spec)
    handled = _map(status.get("handledRequests"))
    requests: dict[str, Any] = {}
    for action, key in REQUEST_ANNOTATIONS.items():
        value = _str(annotations.get(key))
        requests[action] = (
            None if value is None else {"id": value, "handled": handled.get(action) == value}
        )
    paused_value = annotations.get(meta.CANARY_PAUSE_ANNOTATION)
    return {
        "kind": meta.CANARY_KIND,
        "namespace": md.get("namespace"),
        "name": md.get("name"),
        "created": md.get("creationTimestamp"),
        "target": _map(spec.get("targetRef")).get("name"),
        "router": spec.get("router") or "istio",
        "phase": _str(status.get("phase")),
        "paused": paused_value is not None,
        "pausedSince": _str(paused_value),
        "suspended": bool(spec.get("suspend")),
        "weight": _int(status.get("canaryWeight")),
        "steps": list(steps),
        "stepIndex": _int(status.get("stepIndex")),
        "failedChecks": _int(status.get("failedChecks")),
        "threshold": _int(analysis.get("threshold"), DEFAULT_THRESHOLD),
        "inconclusiveChecks": _int(status.get("inconclusiveChecks")),
        "maxInconclusive": _int(analysis.get("maxInconclusive"), DEFAULT_MAX_INCONCLUSIVE),
        "revision": _str(status.get("revision")),
        "lastPromotedRevision": _str(status.get("lastPromotedRevision")),
        "lastFailedRevision": _str(status.get("lastFailedRevision")),
        "lastTransitionTime": _str(status.get("lastTransitionTime")),
        "message": canary_message(status),
        "conditions": [
            {
                "type": c.get("type"),
                "status": c.get("status"),
                "reason": c.get("reason"),
                "message": c.get("message"),
                "lastTransitionTime": c.get("lastTransitionTime"),
            }
            for c in _list(status.get("conditions"))
        ],
        "analysis": [
            {
                "metric": a.get("metric"),
                "value": a.get("value") if isinstance(a.get("value"), int | float) else None,
                "threshold": a.get("threshold"),
                "result": a.get("result"),
                "message": a.get("message") or "",
                "query": a.get("query"),
                "time": a.get("time"),
            }
            for a in _list(status.get("lastAnalysis"))
        ],
        "requests": requests,
        "events": [_event(e) for e in events][-MAX_EVENTS:],
        "history": [
            {
                "revision": h.get("revision"),
                "result": h.get("result"),
                "started": h.get("started"),
                "finished": h.get("finished"),
                "reason": h.get("reason") or "",
            }
            for h in _list(status.get("history"))
        ],
    }


# ---------------------------------------------------------------------------------------------
# manual controls


def refusal(action: str, doc: Mapping[str, Any]) -> str | None:  # noqa: PLR0911 - one per case
    """Why ``action`` makes no sense from the Canary's current status, or None.

    Advisory only: status may lag the operator by one evaluation, which is why the commands
    accept ``--force``.
    """
    name, phase = doc["name"], doc["phase"]
    if action not in {"promote", "abort", "retry"}:
        return None
    if phase is None:
        return (
            f"Canary {name} has no status yet: the operator has not initialised it "
            "(is dabba running and watching this namespace?)"
        )
    if phase == "Terminating":
        return f"Canary {name} is being deleted"
    if action == "retry":
        if phase == "Failed":
            return None
        return f"retry re-runs a failed revision, but Canary {name} is {phase}, not Failed"
    if phase in RUNNING_PHASES:
        return None
    if phase == "Succeeded" and action == "promote":
        revision = short_revision(doc.get("lastPromotedRevision") or doc.get("revision"))
        return f"Canary {name} is Succeeded: revision {revision} is already promoted"
    if phase == "Failed":
        return (
            f"Canary {name} is Failed: the run was rolled back; "
            f"use `dabba canary retry {name}` to run the revision again"
        )
    if phase in {"Promoting", "Finalising"}:
        return f"Canary {name} is {phase}: the promotion is already under way"
    return f"Canary {name} is {phase}: no run is in progress, so there is nothing to {action}"


# ---------------------------------------------------------------------------------------------
# rendering


def state_text(doc: Mapping[str, Any]) -> str:
    """``Progressing``, ``Progressing (paused)`` or ``Pending`` (no status yet)."""
    phase = doc["phase"] or "Pending"
    return f"{phase} (paused)" if doc["paused"] else phase


def weight_cell(doc: Mapping[str, Any], *, terminal: bool) -> Cell:
    """Bar, percentage and the step within the schedule."""
    weight, steps = doc["weight"], doc["steps"]
    schedule_text = " → ".join(str(s) for s in steps)
    if doc["weight"] and doc["stepIndex"] < len(steps):
        where = f"step {doc['stepIndex'] + 1}/{len(steps)}: {schedule_text}"
    else:
        where = f"steps {schedule_text}"
    if terminal:
        text = Text()
        bar = weight_bar(weight)
        filled = len(bar.rstrip("░"))
        text.append(bar[:filled], style="green")
        text.append(bar[filled:], style="bright_black")
        text.append(f" {weight:>3}%", style="bold")
        text.append(f"   {where}", style="dim")
        return text
    return f"[{weight_bar(weight, fill='#', empty='.')}] {weight}%   {where}"


def _pause_text(doc: Mapping[str, Any], now: dt.datetime) -> str:
    since = parse_time(doc["pausedSince"])
    when = f" since {relative(since, now)}" if since else ""
    return f"yes{when} (dabba canary resume {doc['name']})"


def _requests_text(doc: Mapping[str, Any], now: dt.datetime) -> str | None:
    parts = []
    for action, request in doc["requests"].items():
        if request is None:
            continue
        when = parse_time(request["id"])
        state = "handled" if request["handled"] else "pending"
        parts.append(
            f"{action} requested {relative(when, now) if when else request['id']} ({state})"
        )
    return "; ".join(parts) or None


def summary_fields(doc: Mapping[str, Any], now: dt.datetime, *, terminal: bool) -> Fields:
    """The header block of ``canary get``."""
    since = parse_time(doc["lastTransitionTime"])
    phase = Text()
    phase.append(state_text(doc), style=PHASE_STYLES.get(doc["phase"] or "", "bold"))
    if since is not None:
        phase.append(f"  for {age(since, now)}")
    items: list[tuple[str, Cell]] = [
        ("Phase", phase),
        ("Weight", weight_cell(doc, terminal=terminal)),
        (
            "Checks",
            f"{doc['failedChecks']}/{doc['threshold']} failed, "
            f"{doc['inconclusiveChecks']}/{doc['maxInconclusive']} inconclusive in a row",
        ),
        ("Revision", short_revision(doc["revision"])),
        ("Last promoted", short_revision(doc["lastPromotedRevision"])),
        ("Last failed", short_revision(doc["lastFailedRevision"])),
        ("Target", f"Deployment {doc['target']} via {doc['router']}"),
    ]
    if doc["paused"]:
        items.append(("Paused", styled(_pause_text(doc, now), "bold yellow")))
    if doc["suspended"]:
        items.append(("Suspended", styled("yes (spec.suspend)", "bold yellow")))
    if requests := _requests_text(doc, now):
        items.append(("Requests", requests))
    if doc["message"]:
        items.append(("Message", doc["message"]))
    return Fields(items, title=f"Canary {doc['namespace']}/{doc['name']}")


def analysis_table(doc: Mapping[str, Any], now: dt.datetime) -> Table:
    """Each metric's last value against its threshold."""
    times = [t for t in (parse_time(a["time"]) for a in doc["analysis"]) if t is not None]
    title = "Analysis"
    if times:
        title += f" (last tick {relative(max(times), now)})"
    return Table(
        columns=(
            Column("Metric"),
            Column("Value", justify="right"),
            Column("Threshold"),
            Column("Result"),
            Column("Message", max_width=60),
        ),
        rows=[
            (
                str(a["metric"] or NONE),
                format_number(a["value"]),
                str(a["threshold"] or NONE),
                styled(str(a["result"] or NONE), RESULT_STYLES.get(str(a["result"]))),
                str(a["message"]),
            )
            for a in doc["analysis"]
        ],
        title=title,
        empty="no analysis yet",
    )


def events_table(doc: Mapping[str, Any], now: dt.datetime) -> Table:
    """Recent Events, oldest first (as ``kubectl describe``)."""
    rows: list[Sequence[Cell]] = []
    for e in doc["events"]:
        seen = age(parse_time(e["lastSeen"]), now)
        if e["count"] > 1:
            seen += f" (x{e['count']})"
        rows.append(
            (
                seen,
                styled(e["type"], "yellow" if e["type"] == "Warning" else None),
                e["reason"],
                e["message"],
            )
        )
    return Table(
        columns=(Column("Last seen"), Column("Type"), Column("Reason"), Column("Message")),
        rows=rows,
        title="Events",
        empty="no events",
    )


def history_table(doc: Mapping[str, Any], now: dt.datetime) -> Table:
    """The last runs, newest first."""
    rows: list[Sequence[Cell]] = []
    for h in doc["history"]:
        started, finished = parse_time(h["started"]), parse_time(h["finished"])
        took = NONE
        if started and finished:
            took = age(started, finished)
        rows.append(
            (
                short_revision(h["revision"]),
                styled(str(h["result"] or NONE), RUN_RESULT_STYLES.get(str(h["result"]))),
                relative(started, now),
                took,
                str(h["reason"]),
            )
        )
    return Table(
        columns=(
            Column("Revision"),
            Column("Result"),
            Column("Started"),
            Column("Took"),
            Column("Reason"),
        ),
        rows=rows,
        title="History",
        empty="no finished runs",
    )


def canary_sections(doc: Mapping[str, Any], now: dt.datetime, *, terminal: bool) -> list[Section]:
    """The whole ``canary get`` view."""
    return [
        summary_fields(doc, now, terminal=terminal),
        analysis_table(doc, now),
        events_table(doc, now),
        history_table(doc, now),
    ]


def watch_line(doc: Mapping[str, Any]) -> str:
    """One line for ``--watch`` when piped: printed whenever it changes."""
    parts = [
        f"phase={doc['phase'] or 'Pending'}",
        *(["paused"] if doc["paused"] else []),
        f"weight={doc['weight']}%",
        f"failed={doc['failedChecks']}/{doc['threshold']}",
        f"revision={short_revision(doc['revision'])}",
    ]
    parts.extend(
        f"{a['metric']}={format_number(a['value'])}:{a['result'] or NONE}" for a in doc["analysis"]
    )
    return " ".join(parts)


def event_line(event: Mapping[str, Any]) -> str:
    """One Event as a ``--watch`` line."""
    return f"event {event['type']} {event['reason']}: {event['message']}"
